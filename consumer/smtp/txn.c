/*
 * txn: see txn.h. Also smtp_reply_is_throttle() of smtp.h, which the verdict rules
 * share with the rate limiter.
 */
#include "txn.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void smtp_txn_reset(smtp_txn *t)
{
    t->state = SMTP_TXN_NEW;
    t->verdict = SMTP_TEMPORARY;
    t->code = 0;
    t->enhanced[0] = t->reply[0] = t->relay_id[0] = t->error[0] = '\0';
    t->flags = 0;
    t->n_accepted = 0;
    if (t->rcpt_replies)
        memset(t->rcpt_replies, 0, t->n_rcpt * sizeof t->rcpt_replies[0]);
}

void smtp_txn_take_reply(smtp_txn *t, const smtp_reply *r)
{
    t->code = r->code;
    snprintf(t->enhanced, sizeof t->enhanced, "%s", r->enhanced);
    smtp_reply_format(r, t->reply, sizeof t->reply);
}

/* The first place where word (lower case) occurs in s in any case, or NULL. */
static const char *find_nocase(const char *s, const char *word)
{
    size_t n = strlen(word);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && tolower((unsigned char)s[i]) == word[i])
            i++;
        if (i == n)
            return s;
    }
    return NULL;
}

/* "rate" starting a word (rate, ratelimit, rate-limited; not "generate"). */
static int says_rate(const char *text)
{
    for (const char *p = text; (p = find_nocase(p, "rate")) != NULL; p++)
        if (p == text || !isalpha((unsigned char)p[-1]))
            return 1;
    return 0;
}

int smtp_reply_is_throttle(int code, const char *text)
{
    if (code < 400 || code >= 500)
        return 0;
    if (code == 454)
        return 1;
    return text &&
           (says_rate(text) || find_nocase(text, "too many") || find_nocase(text, "throttl") ||
            find_nocase(text, "quota") || find_nocase(text, "limit exceeded"));
}

void smtp_txn_finish(smtp_txn *t, smtp_verdict verdict, unsigned flags, const char *fmt, ...)
{
    char text[SMTP_ERROR_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    mr_text_copy(t->error, sizeof t->error, text, len);
    t->state = SMTP_TXN_DONE;
    t->verdict = verdict;
    t->flags |= flags;
    if (t->code && smtp_reply_is_throttle(t->code, t->reply))
        t->flags |= SMTP_FLAG_THROTTLED;
}

int smtp_txn_final(smtp_txn *t, const smtp_reply *r)
{
    smtp_txn_take_reply(t, r);
    if (r->code >= 200 && r->code < 300) {
        smtp_relay_id(t->reply, t->relay_id, sizeof t->relay_id);
        t->state = SMTP_TXN_DONE;
        t->verdict = SMTP_SENT;
        t->error[0] = '\0';
        return 0;
    }
    if (r->code < 400)
        return -1;
    smtp_txn_refused(t, "the message was refused");
    return 0;
}

smtp_verdict smtp_refusal_verdict(int code)
{
    return code >= 500 && code != 530 ? SMTP_PERMANENT : SMTP_TEMPORARY;
}

void smtp_txn_refused(smtp_txn *t, const char *what)
{
    smtp_txn_finish(t, smtp_refusal_verdict(t->code), t->code == 530 ? SMTP_FLAG_AUTH : 0, "%s: %s",
                    what, t->reply);
}

void smtp_txn_caught(smtp_txn *t, const smtp_failure *f, int aborted, int content_sent)
{
    if (t->state == SMTP_TXN_DONE)
        return;
    if (f->code && !t->code) {
        t->code = f->code;
        snprintf(t->enhanced, sizeof t->enhanced, "%s", f->enhanced);
        snprintf(t->reply, sizeof t->reply, "%s", f->reply);
    }
    if (content_sent)
        smtp_txn_finish(t, aborted ? SMTP_ABORTED : SMTP_TEMPORARY, f->flags,
                        "outcome unknown: the content was sent but no final reply came (%s)",
                        f->error);
    else
        smtp_txn_finish(t, aborted ? SMTP_ABORTED : SMTP_TEMPORARY, f->flags, "%s", f->error);
}

/* 1 when s holds a control character (C0 or DEL). */
static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            return 1;
    return 0;
}

int smtp_txn_check(smtp_txn *t)
{
    if (!t->from || has_control(t->from)) {
        smtp_txn_finish(t, SMTP_PERMANENT, 0, "the sender is missing or holds a control character");
        return -1;
    }
    if (t->n_rcpt == 0 || !t->rcpt || !t->rcpt_replies) {
        smtp_txn_finish(t, SMTP_PERMANENT, 0, "no recipients (or no rcpt_replies for them)");
        return -1;
    }
    for (size_t i = 0; i < t->n_rcpt; i++) {
        if (!t->rcpt[i] || !t->rcpt[i][0] || has_control(t->rcpt[i])) {
            smtp_txn_finish(t, SMTP_PERMANENT, 0,
                            "recipient %zu is empty or holds a control character", i + 1);
            return -1;
        }
    }
    return 0;
}

static int has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

int smtp_txn_needs_utf8(const smtp_txn *t)
{
    if (t->smtputf8 || has_8bit(t->from))
        return 1;
    for (size_t i = 0; i < t->n_rcpt; i++)
        if (has_8bit(t->rcpt[i]))
            return 1;
    return 0;
}

/* Copies the word at p (up to a space or the end) into dst, without the brackets and
 * trailing punctuation that often surround an id. */
static void copy_word(const char *p, char *dst, size_t cap)
{
    while (*p == '<' || *p == '[' || *p == '(')
        p++;
    size_t n = strcspn(p, " ");
    while (n > 0 && strchr(">]),.;:", p[n - 1]))
        n--;
    snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

/* The start of the last word of s, skipping a trailing "- gsmtp" (Gmail's), or NULL. */
static const char *last_word(const char *s)
{
    size_t n = strlen(s);
    if (n > 8 && strcmp(s + n - 8, " - gsmtp") == 0)
        n -= 8;
    while (n > 0 && s[n - 1] == ' ')
        n--;
    size_t end = n;
    while (n > 0 && s[n - 1] != ' ')
        n--;
    return end > n ? s + n : NULL;
}

/* Past the code and the enhanced code of a formatted reply. */
static const char *reply_words(const char *reply)
{
    if (strlen(reply) < 3)
        return reply + strlen(reply);
    int code = (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
    const char *p = reply + 3;
    while (*p == ' ')
        p++;
    size_t e = smtp_enhanced_len(p, strlen(p), code);
    p += e;
    while (*p == ' ')
        p++;
    return p;
}

void smtp_relay_id(const char *reply, char *dst, size_t cap)
{
    dst[0] = '\0';
    const char *text = reply_words(reply);
    const char *p = find_nocase(text, "queued as ");
    if (p) {
        copy_word(p + 10, dst, cap);
        return;
    }
    p = find_nocase(text, "id=");
    if (p && (p == text || p[-1] == ' ')) {
        copy_word(p + 3, dst, cap);
        return;
    }
    p = last_word(text);
    if (p && strpbrk(p, "0123456789"))
        copy_word(p, dst, cap);
}
