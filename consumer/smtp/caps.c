/*
 * caps: see caps.h. The reply text holds one line per '\n'; the first line is the
 * server's name and greeting, never a keyword.
 */
#include "caps.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *keyword;
    unsigned flag;
} known[] = {
    {"PIPELINING", SMTP_CAP_PIPELINING}, {"STARTTLS", SMTP_CAP_STARTTLS},
    {"8BITMIME", SMTP_CAP_8BITMIME},     {"SMTPUTF8", SMTP_CAP_SMTPUTF8},
    {"CHUNKING", SMTP_CAP_CHUNKING},     {"ENHANCEDSTATUSCODES", SMTP_CAP_ENHANCEDSTATUSCODES},
};

/* 1 when the n bytes at p are word, in any case. */
static int word_is(const char *p, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

/* AUTH's parameters: mechanism names separated by spaces. */
static void parse_auth(const char *p, const char *end, smtp_caps *caps)
{
    caps->flags |= SMTP_CAP_AUTH;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        const char *w = p;
        while (p < end && *p != ' ')
            p++;
        if (word_is(w, (size_t)(p - w), "PLAIN"))
            caps->flags |= SMTP_CAP_AUTH_PLAIN;
        else if (word_is(w, (size_t)(p - w), "LOGIN"))
            caps->flags |= SMTP_CAP_AUTH_LOGIN;
    }
}

/* SIZE's parameter: the limit in bytes; none, 0 or anything but digits: no limit. */
static void parse_size(const char *p, const char *end, smtp_caps *caps)
{
    unsigned long long v = 0;
    caps->flags |= SMTP_CAP_SIZE;
    while (p < end && *p == ' ')
        p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (v > (~0ULL - 9) / 10)
            return; /* absurdly large: as good as no limit */
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (p == end)
        caps->size_max = v;
}

/* One EHLO line: keyword, then parameters after a space (or '=' for old AUTH=). */
static void parse_line(const char *p, const char *end, smtp_caps *caps)
{
    const char *k = p;
    while (p < end && *p != ' ' && *p != '=')
        p++;
    size_t n = (size_t)(p - k);
    if (word_is(k, n, "AUTH")) {
        parse_auth(p < end ? p + 1 : p, end, caps);
        return;
    }
    if (word_is(k, n, "SIZE")) {
        parse_size(p, end, caps);
        return;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (word_is(k, n, known[i].keyword))
            caps->flags |= known[i].flag;
}

void smtp_caps_parse(const smtp_reply *ehlo, smtp_caps *caps)
{
    memset(caps, 0, sizeof *caps);
    const char *p = ehlo->text.data ? ehlo->text.data : "";
    const char *end = p + ehlo->text.len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return; /* one line: no extensions */
    for (p = nl + 1; p < end;) {
        nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        parse_line(p, stop, caps);
        p = nl ? nl + 1 : end;
    }
}
