/*
 * reply: see reply.h. The reader keeps the received bytes in one buffer and parses
 * whole lines in place; only a partial line stays behind (moved to the front before
 * the next read). A reply's lines are assembled into cur, whose text buffer is reused
 * from reply to reply.
 */
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void smtp_reader_init(smtp_reader *r)
{
    memset(r, 0, sizeof *r);
    r->cur.text = (buf)BUF_INIT;
}

void smtp_reader_reset(smtp_reader *r)
{
    r->start = r->end = 0;
    r->in_reply = 0;
    r->failed = 0;
    r->cur.code = 0;
    r->cur.n_lines = 0;
    r->cur.enhanced[0] = '\0';
    buf_reset(&r->cur.text);
}

void smtp_reader_trim(smtp_reader *r)
{
    if (r->cap > SMTP_READER_INITIAL && r->start == r->end) {
        free(r->data);
        r->data = NULL;
        r->cap = r->start = r->end = 0;
    }
    if (r->cur.text.cap > SMTP_LINE_MAX && !r->in_reply)
        buf_free(&r->cur.text);
}

void smtp_reader_free(smtp_reader *r)
{
    if (!r)
        return;
    free(r->data);
    buf_free(&r->cur.text);
    smtp_reader_init(r);
}

/* Makes the buffer hold at least need bytes. */
static int reader_grow(smtp_reader *r, size_t need, mr_error *err)
{
    if (need <= r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : SMTP_READER_INITIAL;
    while (cap < need)
        cap *= 2;
    char *data = realloc(r->data, cap);
    if (!data)
        return mr_fail(err, MAILROOM_ENOMEM, "out of memory for the SMTP receive buffer");
    r->data = data;
    r->cap = cap;
    return 0;
}

/* Moves the unparsed bytes to the front of the buffer. */
static void reader_compact(smtp_reader *r)
{
    if (r->start == 0)
        return;
    memmove(r->data, r->data + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
}

char *smtp_reader_space(smtp_reader *r, size_t *room, mr_error *err)
{
    reader_compact(r);
    if (r->end == r->cap) {
        if (r->cap >= SMTP_LINE_MAX) {
            mr_fail(err, MAILROOM_EPROTO, "reply line longer than %d bytes", SMTP_LINE_MAX);
            return NULL;
        }
        if (reader_grow(r, r->cap + 1, err) != 0)
            return NULL;
    }
    *room = r->cap - r->end;
    return r->data + r->end;
}

void smtp_reader_commit(smtp_reader *r, size_t n)
{
    r->end += n;
}

int smtp_reader_feed(smtp_reader *r, const void *data, size_t len, mr_error *err)
{
    reader_compact(r);
    if (len == 0)
        return 0;
    if (reader_grow(r, r->end + len, err) != 0)
        return -1;
    memcpy(r->data + r->end, data, len);
    r->end += len;
    return 0;
}

int smtp_reader_pending(const smtp_reader *r)
{
    return r->end > r->start || r->in_reply;
}

size_t smtp_enhanced_len(const char *text, size_t len, int code)
{
    if (len < 5 || text[0] != (char)('0' + code / 100) || text[1] != '.')
        return 0;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < len && digits < 4 && text[i] >= '0' && text[i] <= '9') {
            i++;
            digits++;
        }
        if (digits == 0 || digits > 3)
            return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.')
                return 0;
            i++;
        }
    }
    return i == len || text[i] == ' ' ? i : 0;
}

/* Appends text with everything but printable ASCII replaced by '?'. */
static int append_clean(buf *b, const char *p, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char keep = p[i];
        if (c < 0x20 || c >= 0x7F)
            keep = '?';
        b->data[b->len++] = keep;
    }
    b->data[b->len] = '\0';
    return 0;
}

/* The three-digit code at the start of a line, or -1 when it is not one (the first
 * digit must be 2 to 5). */
static int line_code(const char *p)
{
    for (int i = 0; i < 3; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    if (p[0] < '2' || p[0] > '5')
        return -1;
    return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* Starts cur over for the first line of a reply with this code. */
static void reply_begin(smtp_reply *cur, int code)
{
    cur->code = code;
    cur->n_lines = 0;
    cur->enhanced[0] = '\0';
    buf_reset(&cur->text);
}

/* Adds one line's text (after the separator) to cur. */
static int reply_add_text(smtp_reply *cur, const char *text, size_t n, mr_error *err)
{
    if ((cur->n_lines > 1 && buf_putc(&cur->text, '\n') != 0) ||
        append_clean(&cur->text, text, n) != 0)
        return mr_fail(err, MAILROOM_ENOMEM, "out of memory for an SMTP reply");
    if (cur->n_lines == 1) {
        size_t e = smtp_enhanced_len(text, n, cur->code);
        if (e > 0 && e < sizeof cur->enhanced) {
            memcpy(cur->enhanced, text, e);
            cur->enhanced[e] = '\0';
        }
    }
    return 0;
}

/*
 * Takes one line (without its line end) into the reply being assembled: 1 when it
 * was the reply's last line, 0 when more lines follow, -1 on a protocol error.
 */
static int take_line(smtp_reader *r, const char *p, size_t n, mr_error *err)
{
    if (n < 3)
        return mr_fail(err, MAILROOM_EPROTO, "reply line shorter than 3 characters");
    int code = line_code(p);
    if (code < 0)
        return mr_fail(err, MAILROOM_EPROTO, "reply line without a valid code");
    char sep = ' ';
    if (n > 3)
        sep = p[3];
    if (sep != ' ' && sep != '-')
        return mr_fail(err, MAILROOM_EPROTO, "reply code %d not followed by a space or '-'", code);
    if (!r->in_reply)
        reply_begin(&r->cur, code);
    else if (code != r->cur.code)
        return mr_fail(err, MAILROOM_EPROTO, "continuation line with code %d in a %d reply", code,
                       r->cur.code);
    if (++r->cur.n_lines > SMTP_REPLY_LINES_MAX)
        return mr_fail(err, MAILROOM_EPROTO, "reply of more than %d lines", SMTP_REPLY_LINES_MAX);
    if (reply_add_text(&r->cur, p + (n > 3 ? 4 : 3), n > 3 ? n - 4 : 0, err) != 0)
        return -1;
    r->in_reply = sep == '-';
    return r->in_reply ? 0 : 1;
}

int smtp_reader_next(smtp_reader *r, const smtp_reply **out, mr_error *err)
{
    if (r->failed)
        return mr_fail(err, MAILROOM_EPROTO, "reply stream already broken");
    for (;;) {
        size_t avail = r->end - r->start;
        size_t scan = avail < SMTP_LINE_MAX ? avail : SMTP_LINE_MAX;
        const char *p = r->data + r->start;
        const char *lf = scan ? memchr(p, '\n', scan) : NULL;
        if (!lf) {
            if (avail < SMTP_LINE_MAX)
                return 0;
            r->failed = 1;
            return mr_fail(err, MAILROOM_EPROTO, "reply line longer than %d bytes", SMTP_LINE_MAX);
        }
        size_t n = (size_t)(lf - p);
        r->start += n + 1;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        int rc = take_line(r, p, n, err);
        if (rc < 0) {
            r->failed = 1;
            return -1;
        }
        if (rc == 1) {
            *out = &r->cur;
            return 1;
        }
    }
}

/* Appends src (n bytes) to dst at *len, keeping room for the NUL. */
static void put_text(char *dst, size_t cap, size_t *len, const char *src, size_t n)
{
    if (*len + 1 >= cap)
        return;
    size_t room = cap - 1 - *len;
    size_t k = n < room ? n : room;
    memcpy(dst + *len, src, k);
    *len += k;
    dst[*len] = '\0';
}

/* Appends one line's text, without the copy of the enhanced code it may start with. */
static void put_line(char *dst, size_t cap, size_t *len, const char *p, size_t n,
                     const char *enhanced)
{
    size_t elen = strlen(enhanced);
    if (elen && n >= elen && memcmp(p, enhanced, elen) == 0 && (n == elen || p[elen] == ' ')) {
        p += n == elen ? elen : elen + 1;
        n -= n == elen ? elen : elen + 1;
    }
    if (n == 0)
        return;
    put_text(dst, cap, len, " ", 1);
    put_text(dst, cap, len, p, n);
}

void smtp_reply_format(const smtp_reply *reply, char *dst, size_t cap)
{
    if (cap == 0)
        return;
    size_t len = 0;
    char head[4 + sizeof reply->enhanced];
    size_t head_len = (size_t)snprintf(head, sizeof head, "%03d%s%s", reply->code % 1000,
                                       reply->enhanced[0] ? " " : "", reply->enhanced);
    dst[0] = '\0';
    put_text(dst, cap, &len, head, head_len < sizeof head ? head_len : sizeof head - 1);
    const char *p = reply->text.data ? reply->text.data : "";
    const char *end = p + reply->text.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        put_line(dst, cap, &len, p, (size_t)(stop - p), reply->enhanced);
        p = nl ? nl + 1 : end;
    }
}
