/*
 * address: mailbox parsing and validation (see address.h). Everything here is strict
 * on purpose: an address or name that reaches a header or an SMTP command has been
 * through these checks, so CR/LF injection and malformed envelopes stop here.
 */
#include "address.h"

#include "error.h"

#include <string.h>

int addr_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* RFC 5322 atext: the characters of a dot-atom other than the dots. */
static int is_atext(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int local_valid(const char *s, size_t len)
{
    if (len == 0 || len > ADDR_LOCAL_MAX || s[0] == '.' || s[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return 0;
        } else if (!is_atext(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Host name: two or more labels of letters, digits and inner hyphens, each 1..63. */
static int domain_valid(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    size_t labels = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            size_t n = i - start;
            if (n == 0 || n > 63 || s[start] == '-' || s[i - 1] == '-')
                return 0;
            labels++;
            start = i + 1;
        } else if (!is_alnum(s[i]) && s[i] != '-') {
            return 0;
        }
    }
    return labels >= 2;
}

int addr_spec_valid(const char *s, size_t len)
{
    if (len == 0 || len > ADDR_SPEC_MAX || memchr(s, '\0', len))
        return 0;
    const char *at = memchr(s, '@', len);
    if (!at)
        return 0;
    size_t local_len = (size_t)(at - s);
    if (memchr(at + 1, '@', len - local_len - 1))
        return 0;
    return local_valid(s, local_len) && domain_valid(at + 1, len - local_len - 1);
}

int addr_name_valid(const char *s, size_t len)
{
    if (len > ADDR_NAME_MAX || !addr_utf8_valid(s, len))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return 0;
    }
    return 1;
}

static void trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* Copies a display name, removing one level of "..." quoting and its backslashes. */
static int copy_name(const char *s, size_t len, char out[ADDR_NAME_MAX + 1], mr_error *err)
{
    size_t n = 0;
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        for (size_t i = 1; i + 1 < len; i++) {
            char c = s[i];
            if (c == '\\' && i + 2 < len)
                c = s[++i];
            else if (c == '"')
                return mr_fail(err, MAILROOM_EINVAL, "unescaped quote in display name");
            if (n >= ADDR_NAME_MAX)
                return mr_fail(err, MAILROOM_EINVAL, "display name too long");
            out[n++] = c;
        }
    } else {
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '"')
                return mr_fail(err, MAILROOM_EINVAL, "quote inside unquoted display name");
        }
        if (len > ADDR_NAME_MAX)
            return mr_fail(err, MAILROOM_EINVAL, "display name too long");
        memcpy(out, s, len);
        n = len;
    }
    out[n] = '\0';
    if (!addr_name_valid(out, n))
        return mr_fail(err, MAILROOM_EINVAL,
                       "display name has control characters or invalid UTF-8");
    return 0;
}

int addr_parse(const char *s, size_t len, addr_mailbox *out, mr_error *err)
{
    out->name[0] = out->spec[0] = '\0';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return mr_fail(err, MAILROOM_EINVAL, "control character (CR, LF, NUL, ...) in address");
    }
    trim(&s, &len);
    const char *spec = s;
    size_t spec_len = len;
    if (len && s[len - 1] == '>') {
        const char *lt = NULL;
        for (size_t i = len; i-- > 0;) {
            if (s[i] == '<') {
                lt = s + i;
                break;
            }
        }
        if (!lt)
            return mr_fail(err, MAILROOM_EINVAL, "'>' without '<' in address");
        const char *name = s;
        size_t name_len = (size_t)(lt - s);
        trim(&name, &name_len);
        if (memchr(name, '<', name_len) || memchr(name, '>', name_len))
            return mr_fail(err, MAILROOM_EINVAL, "'<' or '>' in display name");
        if (copy_name(name, name_len, out->name, err) != 0)
            return -1;
        spec = lt + 1;
        spec_len = len - (size_t)(spec - s) - 1;
    }
    if (!addr_spec_valid(spec, spec_len))
        return mr_fail(err, MAILROOM_EINVAL, "malformed address (expected local@domain.tld)");
    memcpy(out->spec, spec, spec_len);
    out->spec[spec_len] = '\0';
    return 0;
}
