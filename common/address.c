/*
 * address: mailbox parsing and validation (see address.h). Everything here is strict
 * on purpose: an address or name that reaches a header or an SMTP command has been
 * through these checks, so CR/LF injection and malformed envelopes stop here.
 *
 * Internationalised domains are converted label by label, never as a whole: ASCII host
 * name labels stay as written (libidn2 and PHP's intl disagree on some of them, such as
 * "ab--cd", which both refuse as U-labels though they are fine host names), and each
 * other label is converted on its own, so that a label separator other than '.' (the
 * ideographic full stop U+3002, for instance) cannot split a label behind our back: it
 * maps to '.', which a label may not hold. examples/registration/mailroom.php does the
 * same, label by label, and tests/integration/test_intl_addresses.py holds the two to
 * the same answers.
 */
#include "address.h"

#include "error.h"

#include <idn2.h>
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

/* The libidn2 conversion every internationalised label goes through: IDNA2008 with
 * UTS #46 non-transitional mapping of NFC input. IDN2_USE_STD3_ASCII_RULES is not set:
 * libidn2 2.3 then drops the characters it should refuse ("ü_b" becomes "üb"), so the
 * STD3 rules are applied afterwards instead (ldh_label() and std3_symbol()). */
#define IDN_FLAGS (IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL)

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

static int has_8bit(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    }
    return 0;
}

/* 1 when s has a C0 control character or DEL. */
static int has_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return 1;
    }
    return 0;
}

/* 1 when the label starts with the ACE prefix "xn--", in any case. */
static int is_ace(const char *s, size_t len)
{
    return len >= 4 && (s[0] == 'x' || s[0] == 'X') && (s[1] == 'n' || s[1] == 'N') &&
           s[2] == '-' && s[3] == '-';
}

/* A host name label (RFC 952/1123, STD3): 1..63 letters, digits and inner hyphens. */
static int ldh_label(const char *s, size_t len)
{
    if (len == 0 || len > ADDR_LABEL_MAX || s[0] == '-' || s[len - 1] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_alnum(s[i]) && s[i] != '-')
            return 0;
    }
    return 1;
}

/* 1 when the U-label u holds U+2260, U+226E or U+226F (≠ ≮ ≯): the only non-ASCII code
 * points UTS #46 lets through without STD3 rules that STD3 rules refuse (each decomposes
 * to '=', '<' or '>' and a combining mark). */
static int std3_symbol(const char *u)
{
    for (const char *p = strstr(u, "\xe2\x89"); p; p = strstr(p + 2, "\xe2\x89")) {
        unsigned char c = (unsigned char)p[2];
        if (c == 0xA0 || c == 0xAE || c == 0xAF)
            return 1;
    }
    return 0;
}

/*
 * The local part (RFC 5322 dot-atom, RFC 6532 UTF-8 atext): single inner dots between
 * atoms of ASCII atext or non-ASCII characters other than the C1 controls; the whole
 * already known to be valid UTF-8 without C0 controls. Sets *utf8 when a byte is
 * non-ASCII.
 */
static int local_check(const char *s, size_t len, int *utf8, mr_error *err)
{
    if (len == 0)
        return mr_fail(err, MAILROOM_EINVAL, "empty local part (expected local@domain.tld)");
    if (s[0] == '"')
        return mr_fail(err, MAILROOM_EINVAL, "quoted local parts are not accepted");
    if (len > ADDR_LOCAL_MAX)
        return mr_fail(err, MAILROOM_EINVAL, "local part is %zu octets, over the limit of %d", len,
                       ADDR_LOCAL_MAX);
    if (s[0] == '.' || s[len - 1] == '.')
        return mr_fail(err, MAILROOM_EINVAL, "local part starts or ends with '.'");
    *utf8 = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' && s[i + 1] == '.')
            return mr_fail(err, MAILROOM_EINVAL, "'..' in local part");
        if (c >= 0x80) {
            *utf8 = 1;
            if (c == 0xC2 && (unsigned char)s[i + 1] <= 0x9F) /* U+0080..U+009F */
                return mr_fail(err, MAILROOM_EINVAL, "C1 control character in local part");
        } else if (c != '.' && !is_atext(s[i])) {
            return mr_fail(err, MAILROOM_EINVAL,
                           "'%c' in local part (an unquoted local part is RFC 5322 atext, "
                           "dots and UTF-8)",
                           s[i]);
        }
    }
    return 0;
}

/*
 * An internationalised label (non-ASCII, or an A-label) to its A-label through libidn2.
 * An A-label that libidn2 returns must decode and encode back to itself (libidn2 2.3
 * passes "xn--" labels that decode to disallowed characters), hold none of ≠ ≮ ≯, and
 * be a host name label: what maps to '_', ' ', '.' or the like is refused.
 */
static int idn_label(const char *s, size_t len, char out[ADDR_LABEL_MAX + 1], size_t *out_len,
                     mr_error *err)
{
    char in[ADDR_SPEC_MAX + 1];
    char *ace = NULL, *u = NULL, *back = NULL;
    int rc = -1;
    memcpy(in, s, len); /* len < ADDR_SPEC_MAX: the caller's address is at most that */
    in[len] = '\0';
    int irc = idn2_to_ascii_8z(in, &ace, IDN_FLAGS);
    if (irc == IDN2_OK && is_ace(ace, strlen(ace))) {
        irc = idn2_to_unicode_8z8z(ace, &u, 0);
        if (irc == IDN2_OK)
            irc = idn2_to_ascii_8z(u, &back, IDN_FLAGS);
        if (irc == IDN2_OK && strcmp(back, ace) != 0)
            irc = IDN2_ALABEL_ROUNDTRIP_FAILED;
    }
    if (irc != IDN2_OK) {
        mr_fail(err, irc == IDN2_MALLOC ? MAILROOM_ENOMEM : MAILROOM_EINVAL,
                "domain label '%s' refused by IDNA2008 (libidn2): %s", in, idn2_strerror(irc));
        goto out;
    }
    size_t n = strlen(ace);
    if (u && std3_symbol(u)) {
        mr_fail(err, MAILROOM_EINVAL,
                "domain label '%s' holds U+2260, U+226E or U+226F, which host names do not "
                "allow (STD3 rules)",
                in);
        goto out;
    }
    if (!ldh_label(ace, n)) {
        mr_fail(err, MAILROOM_EINVAL,
                "domain label '%s' maps to '%s', not a host name label (letters, digits, "
                "inner hyphens, at most %d)",
                in, ace, ADDR_LABEL_MAX);
        goto out;
    }
    memcpy(out, ace, n + 1);
    *out_len = n;
    rc = 0;
out:
    idn2_free(ace);
    idn2_free(u);
    idn2_free(back);
    return rc;
}

/* One label of the domain to its envelope form: a host name label as written, anything
 * else through idn_label(). */
static int label_envelope(const char *s, size_t len, char out[ADDR_LABEL_MAX + 1], size_t *out_len,
                          mr_error *err)
{
    if (len == 0)
        return mr_fail(err, MAILROOM_EINVAL, "empty label in the domain");
    if (has_8bit(s, len) || is_ace(s, len))
        return idn_label(s, len, out, out_len, err);
    if (!ldh_label(s, len))
        return mr_fail(err, MAILROOM_EINVAL,
                       "domain label '%.*s' is not a host name label (letters, digits, inner "
                       "hyphens, at most %d)",
                       (int)len, s, ADDR_LABEL_MAX);
    memcpy(out, s, len);
    out[len] = '\0';
    *out_len = len;
    return 0;
}

/* The domain (len bytes at s) to its envelope form in out: two or more labels joined by
 * '.', at most ADDR_DOMAIN_MAX octets. */
static int domain_envelope(const char *s, size_t len, char out[ADDR_DOMAIN_MAX + 1], mr_error *err)
{
    size_t n = 0, labels = 0, start = 0;
    if (len > 0 && s[0] == '[')
        return mr_fail(err, MAILROOM_EINVAL, "domain literals ([...]) are not accepted");
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        char label[ADDR_LABEL_MAX + 1];
        size_t label_len = 0;
        if (label_envelope(s + start, i - start, label, &label_len, err) != 0)
            return -1;
        if (n + (labels > 0) + label_len > ADDR_DOMAIN_MAX)
            return mr_fail(err, MAILROOM_EINVAL, "domain is over %d octets as A-labels",
                           ADDR_DOMAIN_MAX);
        if (labels++ > 0)
            out[n++] = '.';
        memcpy(out + n, label, label_len);
        n += label_len;
        start = i + 1;
    }
    out[n] = '\0';
    if (labels < 2)
        return mr_fail(err, MAILROOM_EINVAL,
                       "the domain needs two or more labels (expected local@domain.tld)");
    return 0;
}

/* The checks on the address as a whole: length as given, no control characters, UTF-8,
 * exactly one '@'. Returns that '@', or NULL with err saying what is wrong. */
static const char *spec_at(const char *s, size_t len, mr_error *err)
{
    const char *at = NULL;
    if (len == 0)
        mr_fail(err, MAILROOM_EINVAL, "empty address");
    else if (len > ADDR_SPEC_MAX)
        mr_fail(err, MAILROOM_EINVAL, "address is %zu octets, over the limit of %d", len,
                ADDR_SPEC_MAX);
    else if (has_ctl(s, len))
        mr_fail(err, MAILROOM_EINVAL, "control character (CR, LF, NUL, ...) in address");
    else if (!addr_utf8_valid(s, len))
        mr_fail(err, MAILROOM_EINVAL, "address is not valid UTF-8");
    else if (!(at = memchr(s, '@', len)))
        mr_fail(err, MAILROOM_EINVAL, "no '@' in address (expected local@domain.tld)");
    else if (memchr(at + 1, '@', len - (size_t)(at - s) - 1)) {
        mr_fail(err, MAILROOM_EINVAL, "more than one '@' in address");
        at = NULL;
    }
    return at;
}

int addr_spec_parse(const char *s, size_t len, char envelope[ADDR_SPEC_MAX + 1], int *utf8,
                    mr_error *err)
{
    char domain[ADDR_DOMAIN_MAX + 1];
    int high = 0;
    const char *at = spec_at(s, len, err);
    if (!at)
        return -1;
    size_t local_len = (size_t)(at - s);
    if (local_check(s, local_len, &high, err) != 0 ||
        domain_envelope(at + 1, len - local_len - 1, domain, err) != 0)
        return -1;
    size_t domain_len = strlen(domain);
    if (local_len + 1 + domain_len > ADDR_SPEC_MAX)
        return mr_fail(err, MAILROOM_EINVAL,
                       "address is %zu octets on the envelope (the domain as A-labels), over "
                       "the limit of %d",
                       local_len + 1 + domain_len, ADDR_SPEC_MAX);
    if (envelope) {
        memcpy(envelope, s, local_len + 1);
        memcpy(envelope + local_len + 1, domain, domain_len + 1);
    }
    if (utf8)
        *utf8 = high;
    return 0;
}

int addr_spec_valid(const char *s, size_t len)
{
    return addr_spec_parse(s, len, NULL, NULL, NULL) == 0;
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
    out->name[0] = out->spec[0] = out->envelope[0] = '\0';
    out->utf8 = 0;
    if (has_ctl(s, len))
        return mr_fail(err, MAILROOM_EINVAL, "control character (CR, LF, NUL, ...) in address");
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
    if (addr_spec_parse(spec, spec_len, out->envelope, &out->utf8, err) != 0)
        return mr_prefix(err, "malformed address");
    memcpy(out->spec, spec, spec_len);
    out->spec[spec_len] = '\0';
    return 0;
}
