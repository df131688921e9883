/*
 * mime: the message builder (see mime.h).
 *
 * The message is written straight into the caller's buffer, top to bottom, with CRLF
 * line ends only: the SMTP session dot-stuffs only after CRLF and sends the bytes as they
 * are, so a bare CR or LF would reach the server as-is. Header lines are kept within 78
 * characters where the content allows (76 for lines with encoded words, as RFC 2047
 * asks) and within 998 always; the limits of the job model (display names of 256 bytes,
 * addresses of 254, ids of 128) are what make that "always" hold for address and
 * Message-ID lines, which are never split inside a token.
 *
 * Where a fold may go is decided by looking at the column of the buffer's last line
 * (cur_col), so the pieces below need no state besides the buffer itself. A mailbox in
 * an address list that does not fit on the current line is simply rendered again on a
 * fresh folded line after truncating the buffer: cheaper to reason about than
 * predicting its width.
 *
 * Addresses: see mime.h. The header form of each is decided from its spec alone (the
 * A-label envelope form, or the spec as given when the local part is non-ASCII), so a
 * header never holds a U-label unless the message needs SMTPUTF8 anyway.
 *
 * Bodies are never sent as 8bit (BODY=8BITMIME is not declared): mostly-ASCII text
 * goes quoted-printable, so it stays readable in the raw message, and anything with 20 %
 * or more bytes >= 0x80 (CJK text, for instance) goes base64, which is smaller for it.
 */
#include "mime.h"

#include "clock.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#define LINE_SOFT 78  /* RFC 5322: lines SHOULD stay within 78 characters */
#define LINE_HARD 998 /* RFC 5322: lines MUST stay within 998 characters */
#define EW_LINE 76    /* RFC 2047: lines with encoded words within 76 */
#define EW_PREFIX "=?UTF-8?B?"
#define EW_OVERHEAD 12    /* "=?UTF-8?B?" and "?=" */
#define EW_B64_MAX 60     /* 75 - 12 = 63 characters, rounded down to whole quanta */
#define FIELD_NAME_MAX 76 /* "Name:" then fits a 78-character line */
#define QP_LINE 76        /* RFC 2045: encoded lines within 76, soft "=" included */
#define B64_LINE_BYTES 57 /* 57 bytes make one 76-character base64 line */
#define BOUNDARY_MAX 70   /* RFC 2046 */

/* Column of the buffer's current (last) line: bytes since the last LF. */
static size_t cur_col(const buf *b)
{
    size_t i = b->len;
    while (i > 0 && b->data[i - 1] != '\n')
        i--;
    return b->len - i;
}

/* Length of the UTF-8 sequence at p (left bytes remain); 1 for anything malformed, so a
 * well-formed sequence is never split and a malformed one still makes progress. */
static size_t utf8_seq_len(const unsigned char *p, size_t left)
{
    size_t n = p[0] < 0xC0 ? 1 : p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3 : p[0] < 0xF8 ? 4 : 1;
    if (n > left)
        return 1;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 1;
    }
    return n;
}

/* Appends the base64 of n <= 57 bytes (OpenSSL's encoder: no line breaks, padded). */
static int put_b64(buf *out, const unsigned char *p, size_t n)
{
    unsigned char tmp[4 * ((B64_LINE_BYTES + 2) / 3) + 1];
    if (n > B64_LINE_BYTES)
        return -1;
    int w = EVP_EncodeBlock(tmp, p, (int)n);
    return w < 0 ? -1 : buf_append(out, tmp, (size_t)w);
}

/*
 * Appends s as RFC 2047 B-encoded words. Each word carries whole UTF-8 sequences only,
 * as many as fit: the first word fills what is left of the current line up to column
 * 76, later words start on their own folded line (CRLF SP) and carry up to 45 bytes
 * (60 base64 characters, a 73-character line). A word always carries at least one
 * character, even when the line is already long. Decoders drop the white space between
 * adjacent encoded words, so the words decode back to s exactly.
 */
static int put_encoded_words(buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, col = cur_col(out);
    while (i < len) {
        if (i > 0) {
            if (buf_puts(out, "\r\n ") != 0)
                return -1;
            col = 1;
        }
        size_t room = col + EW_OVERHEAD < EW_LINE ? EW_LINE - col - EW_OVERHEAD : 0;
        if (room > EW_B64_MAX)
            room = EW_B64_MAX;
        size_t max = room / 4 * 3, n = 0;
        while (i + n < len) {
            size_t c = utf8_seq_len(p + i + n, len - i - n);
            if (n > 0 && n + c > max)
                break;
            n += c;
        }
        if (buf_puts(out, EW_PREFIX) != 0 || put_b64(out, p + i, n) != 0 ||
            buf_puts(out, "?=") != 0)
            return -1;
        col += EW_OVERHEAD + 4 * ((n + 2) / 3);
        i += n;
    }
    return 0;
}

/* 1 when s is printable ASCII (no tabs, no controls) and has no "=?", which a reader
 * could take for the start of an encoded word. */
static int raw_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7E)
            return 0;
        if (s[i] == '=' && i + 1 < len && s[i + 1] == '?')
            return 0;
    }
    return 1;
}

/*
 * Lays out printable-ASCII unstructured text starting at column col. The text is cut
 * into chunks of "spaces + word"; a chunk that would pass column 78 goes on a new line
 * (CRLF before its spaces, which become the folding white space), unless it is the first
 * chunk or has no word. Unfolding (removing the CRLFs) gives the text back exactly.
 * With out == NULL nothing is written; *longest receives the longest line either way.
 */
static int fold_text(buf *out, size_t col, const char *s, size_t len, size_t *longest)
{
    size_t i = 0;
    *longest = col;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] == ' ')
            j++;
        size_t ws = j - i;
        while (j < len && s[j] != ' ')
            j++;
        size_t n = j - i;
        if (i > 0 && n > ws && col + n > LINE_SOFT) {
            if (out && buf_puts(out, "\r\n") != 0)
                return -1;
            col = 0;
        }
        if (out && buf_append(out, s + i, n) != 0)
            return -1;
        col += n;
        if (col > *longest)
            *longest = col;
        i = j;
    }
    return 0;
}

/* 1 when name is a field name we are willing to write: 1..76 printable ASCII
 * characters other than ':' (RFC 5322 ftext). */
static int field_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > FIELD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x21 || c > 0x7E || c == ':')
            return 0;
    }
    return 1;
}

int mime_header_unstructured(buf *out, const char *name, const char *value)
{
    size_t name_len = strlen(name), len = strlen(value), longest;
    if (!field_name_ok(name))
        return -1;
    if (buf_append(out, name, name_len) != 0 || buf_putc(out, ':') != 0)
        return -1;
    if (len > 0) {
        if (buf_putc(out, ' ') != 0)
            return -1;
        if (raw_ok(value, len) && fold_text(NULL, name_len + 2, value, len, &longest) == 0 &&
            longest <= LINE_HARD) {
            if (fold_text(out, name_len + 2, value, len, &longest) != 0)
                return -1;
        } else if (put_encoded_words(out, value, len) != 0) {
            return -1;
        }
    }
    return buf_puts(out, "\r\n");
}

/* RFC 5322 atext: what an atom may contain. */
static int is_atext(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

enum name_form { NAME_PHRASE, NAME_QUOTED, NAME_ENCODED };

/*
 * How a display name must be written: as is when it is atoms separated by single
 * spaces (a phrase that reads back identically), quoted when it is other printable
 * ASCII (specials such as ',' '.' '"', or spaces a phrase would collapse), encoded when
 * it has bytes outside printable ASCII or "=?" (which a quoted-string would not protect
 * from readers that decode encoded words everywhere).
 */
static enum name_form name_form(const char *s, size_t len)
{
    enum name_form form = NAME_PHRASE;
    if (!raw_ok(s, len))
        return NAME_ENCODED;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            if (i == 0 || i + 1 == len || s[i + 1] == ' ')
                form = NAME_QUOTED;
        } else if (!is_atext(s[i])) {
            form = NAME_QUOTED;
        }
    }
    return form;
}

/* Appends a quoted-string: '"' and '\' escaped with a backslash. */
static int put_quoted(buf *out, const char *s, size_t len)
{
    if (buf_putc(out, '"') != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if ((s[i] == '"' || s[i] == '\\') && buf_putc(out, '\\') != 0)
            return -1;
        if (buf_putc(out, s[i]) != 0)
            return -1;
    }
    return buf_putc(out, '"');
}

/* Appends a mailbox from its parts; the angle address moves to a folded line of its own
 * when it would pass column 78 after the name. The address goes in its header form: the
 * envelope form (the domain as A-labels, 7-bit) unless its local part is non-ASCII,
 * which only SMTPUTF8 can carry, and then as given (RFC 6532). */
static int put_mailbox(buf *out, const char *name, size_t name_len, const char *spec,
                       size_t spec_len)
{
    char envelope[ADDR_SPEC_MAX + 1];
    int utf8 = 0;
    if (addr_spec_parse(spec, spec_len, envelope, &utf8, NULL) != 0)
        return -1;
    const char *addr = utf8 ? spec : envelope;
    size_t addr_len = utf8 ? spec_len : strlen(envelope);
    if (name_len == 0)
        return buf_append(out, addr, addr_len);
    int rc;
    switch (name_form(name, name_len)) {
    case NAME_PHRASE: rc = buf_append(out, name, name_len); break;
    case NAME_QUOTED: rc = put_quoted(out, name, name_len); break;
    default: rc = put_encoded_words(out, name, name_len); break;
    }
    if (rc != 0)
        return -1;
    const char *sep = cur_col(out) + addr_len + 3 > LINE_SOFT ? "\r\n <" : " <";
    if (buf_puts(out, sep) != 0 || buf_append(out, addr, addr_len) != 0)
        return -1;
    return buf_putc(out, '>');
}

int mime_append_mailbox(buf *out, const addr_mailbox *mb)
{
    return put_mailbox(out, mb->name, strlen(mb->name), mb->spec, strlen(mb->spec));
}

/* 1 when the mailbox string s parses and its local part is non-ASCII. */
static int mailbox_utf8(const char *s)
{
    addr_mailbox mb;
    return s && addr_parse(s, strlen(s), &mb, NULL) == 0 && mb.utf8;
}

int mime_needs_smtputf8(const job *j)
{
    int utf8 = 0;
    if (j->from && addr_spec_parse(j->from, strlen(j->from), NULL, &utf8, NULL) == 0 && utf8)
        return 1;
    if (mailbox_utf8(j->reply_to))
        return 1;
    const char *const *lists[3] = {j->to, j->cc, j->bcc};
    size_t counts[3] = {j->n_to, j->n_cc, j->n_bcc};
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            if (mailbox_utf8(lists[l][i]))
                return 1;
        }
    }
    return 0;
}

/*
 * Appends "Name: mb, mb, ...\r\n" for mailbox strings as a job carries them. Each is
 * parsed with addr_parse and rendered in place after ", "; when that made the line pass
 * column 78 or the mailbox itself spans lines (a long encoded name), the buffer is cut
 * back and the mailbox is rendered again on a new line after ",\r\n ".
 */
static int put_address_list(buf *out, const char *name, const char *const *list, size_t n,
                            mr_error *err)
{
    addr_mailbox mb;
    if (buf_puts(out, name) != 0 || buf_puts(out, ": ") != 0)
        goto oom;
    for (size_t k = 0; k < n; k++) {
        if (addr_parse(list[k], strlen(list[k]), &mb, err) != 0)
            return -1;
        if (k > 0 && buf_putc(out, ',') != 0)
            goto oom;
        size_t mark = out->len;
        if ((k > 0 && buf_putc(out, ' ') != 0) || mime_append_mailbox(out, &mb) != 0)
            goto oom;
        if (k > 0 &&
            (memchr(out->data + mark, '\n', out->len - mark) != NULL || cur_col(out) > LINE_SOFT)) {
            out->len = mark;
            out->data[mark] = '\0';
            if (buf_puts(out, "\r\n ") != 0 || mime_append_mailbox(out, &mb) != 0)
                goto oom;
        }
    }
    if (buf_puts(out, "\r\n") == 0)
        return 0;
oom:
    return mr_fail(err, MAILROOM_ENOMEM, "out of memory building the message");
}

int mime_msgid_local(buf *out, const char *job_id)
{
    static const char hex[] = "0123456789ABCDEF";
    if (job_id[0] == '\0')
        return -1;
    for (const unsigned char *p = (const unsigned char *)job_id; *p; p++) {
        unsigned c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-') {
            if (buf_putc(out, (char)c) != 0)
                return -1;
        } else {
            char esc[3] = {'=', hex[c >> 4], hex[c & 0xF]};
            if (buf_append(out, esc, sizeof esc) != 0)
                return -1;
        }
    }
    return 0;
}

/*
 * The multipart boundary: "=_mailroom_" and 32 hex digits of SHA-256(job id), so it is
 * stable across retries of a job. No collision check against the bodies is needed: both
 * parts are quoted-printable or base64, and neither can produce "=_" ('=' starts a QP
 * escape "=XX" or a soft break "=\r\n"; in base64 it is only trailing padding), so no
 * body line can begin with "--=_".
 */
static int make_boundary(const char *id, char out[BOUNDARY_MAX + 1])
{
    static const char hex[] = "0123456789abcdef";
    static const char prefix[] = "=_mailroom_";
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (!SHA256((const unsigned char *)id, strlen(id), md))
        return -1;
    memcpy(out, prefix, sizeof prefix - 1);
    char *p = out + sizeof prefix - 1;
    for (size_t i = 0; i < 16; i++) {
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 0xF];
    }
    *p = '\0';
    return 0;
}

/*
 * Quoted-printable (RFC 2045 6.7) of text whose line ends may be CRLF, LF or CR; each
 * becomes a hard CRLF. '=', controls other than tab, DEL, bytes >= 0x80, and a space or
 * tab before a line break or at the end are written as "=XX". Encoded lines stay within
 * 76 characters: a soft break "=\r\n" goes in before any token (a literal byte or a whole
 * "=XX") that would pass column 75, or 76 for the last token before a hard break. Text
 * that does not end with a line break ends with a soft break, so the output is empty or
 * ends with CRLF and still decodes to exactly the (CRLF-normalised) text.
 */
static int put_qp_body(buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n') {
            if (buf_puts(out, "\r\n") != 0)
                return -1;
            col = 0;
            if (c == '\r' && i + 1 < len && s[i + 1] == '\n')
                i++;
            continue;
        }
        int hard_next = i + 1 < len && (s[i + 1] == '\r' || s[i + 1] == '\n');
        int escape = c == '=' || c >= 0x7F || (c < 0x20 && c != '\t') ||
                     ((c == ' ' || c == '\t') && (hard_next || i + 1 == len));
        size_t tok = escape ? 3 : 1;
        if (col + tok > (hard_next ? QP_LINE : QP_LINE - 1)) {
            if (buf_puts(out, "=\r\n") != 0)
                return -1;
            col = 0;
        }
        if (escape) {
            char esc[3] = {'=', hex[c >> 4], hex[c & 0xF]};
            if (buf_append(out, esc, sizeof esc) != 0)
                return -1;
        } else if (buf_putc(out, (char)c) != 0) {
            return -1;
        }
        col += tok;
    }
    if (len > 0 && s[len - 1] != '\r' && s[len - 1] != '\n')
        return buf_puts(out, "=\r\n");
    return 0;
}

/* Base64 of the CRLF-normalised text, fed through a 57-byte line buffer so that every
 * output line is 76 characters (the last one shorter) followed by CRLF. */
typedef struct b64_line {
    unsigned char in[B64_LINE_BYTES];
    size_t n;
} b64_line;

static int b64_flush(buf *out, b64_line *l)
{
    if (l->n == 0)
        return 0;
    int rc = put_b64(out, l->in, l->n) != 0 || buf_puts(out, "\r\n") != 0 ? -1 : 0;
    l->n = 0;
    return rc;
}

static int b64_push(buf *out, b64_line *l, unsigned char c)
{
    l->in[l->n++] = c;
    return l->n == B64_LINE_BYTES ? b64_flush(out, l) : 0;
}

static int put_base64_body(buf *out, const char *s, size_t len)
{
    b64_line l = {.n = 0};
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n') {
            if (b64_push(out, &l, '\r') != 0 || b64_push(out, &l, '\n') != 0)
                return -1;
            if (c == '\r' && i + 1 < len && s[i + 1] == '\n')
                i++;
        } else if (b64_push(out, &l, c) != 0) {
            return -1;
        }
    }
    return b64_flush(out, &l);
}

/* Appends the Content-Type and Content-Transfer-Encoding lines, the blank line and the
 * encoded body of one text part; base64 when 20 % or more of the bytes are >= 0x80. */
static int put_part(buf *out, const char *subtype, const char *s, size_t len)
{
    size_t high = 0;
    for (size_t i = 0; i < len; i++)
        high += (unsigned char)s[i] >= 0x80;
    int b64 = len > 0 && high * 5 >= len;
    if (buf_printf(out,
                   "Content-Type: text/%s; charset=UTF-8\r\n"
                   "Content-Transfer-Encoding: %s\r\n\r\n",
                   subtype, b64 ? "base64" : "quoted-printable") != 0)
        return -1;
    return b64 ? put_base64_body(out, s, len) : put_qp_body(out, s, len);
}

/* The body of the message: one part, or multipart/alternative with text first. Each
 * encoded part is empty or ends with CRLF; the CRLF before a delimiter belongs to the
 * delimiter (RFC 2046), so the parts decode to exactly their text. A length of 0 with
 * a non-empty string (a job built by hand, not decoded) falls back to strlen. */
static int put_body(buf *out, const job *j)
{
    size_t text_len = j->text ? (j->text_len ? j->text_len : strlen(j->text)) : 0;
    size_t html_len = j->html ? (j->html_len ? j->html_len : strlen(j->html)) : 0;
    char boundary[BOUNDARY_MAX + 1];
    if (!j->html)
        return put_part(out, "plain", j->text, text_len);
    if (!j->text)
        return put_part(out, "html", j->html, html_len);
    if (make_boundary(j->id, boundary) != 0)
        return -1;
    if (buf_printf(out,
                   "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n"
                   "--%s\r\n",
                   boundary, boundary) != 0 ||
        put_part(out, "plain", j->text, text_len) != 0 ||
        buf_printf(out, "\r\n--%s\r\n", boundary) != 0 ||
        put_part(out, "html", j->html, html_len) != 0 ||
        buf_printf(out, "\r\n--%s--\r\n", boundary) != 0)
        return -1;
    return 0;
}

/* The From line: from_name (may be NULL) and the bare from address. */
static int put_from(buf *out, const job *j)
{
    const char *name = j->from_name ? j->from_name : "";
    if (buf_puts(out, "From: ") != 0 ||
        put_mailbox(out, name, strlen(name), j->from, strlen(j->from)) != 0)
        return -1;
    return buf_puts(out, "\r\n");
}

int mime_build(const job *j, buf *out, mr_error *err)
{
    char from_envelope[ADDR_SPEC_MAX + 1], date[CLOCK_ISO_MAX];
    buf_reset(out);
    if (!j->id || !j->id[0] || !j->from || (!j->text && !j->html))
        return mr_fail(err, MAILROOM_EINVAL, "job lacks an id, a from address or a body");
    if (addr_spec_parse(j->from, strlen(j->from), from_envelope, NULL, err) != 0)
        return mr_prefix(err, "malformed from address");
    const char *domain = strrchr(from_envelope, '@') + 1; /* A-labels: Message-ID is ASCII */
    for (size_t i = 0; i < j->n_headers; i++)
        if (!field_name_ok(j->headers[i].name) || !j->headers[i].value)
            return mr_fail(err, MAILROOM_EINVAL, "malformed extra header");
    clock_format_rfc5322(j->created_ms, date);
    if (buf_printf(out, "Date: %s\r\n", date) != 0 || put_from(out, j) != 0)
        goto oom;
    if (j->n_to > 0) {
        if (put_address_list(out, "To", j->to, j->n_to, err) != 0)
            return -1;
    } else if (buf_puts(out, "To: undisclosed-recipients:;\r\n") != 0) {
        goto oom;
    }
    if (j->n_cc > 0 && put_address_list(out, "Cc", j->cc, j->n_cc, err) != 0)
        return -1;
    if (j->reply_to && put_address_list(out, "Reply-To", &j->reply_to, 1, err) != 0)
        return -1;
    if (mime_header_unstructured(out, "Subject", j->subject ? j->subject : "") != 0 ||
        buf_puts(out, "Message-ID: <") != 0 || mime_msgid_local(out, j->id) != 0 ||
        buf_printf(out, "@%s>\r\nMIME-Version: 1.0\r\n", domain) != 0)
        goto oom;
    for (size_t i = 0; i < j->n_headers; i++) {
        if (mime_header_unstructured(out, j->headers[i].name, j->headers[i].value) != 0)
            goto oom;
    }
    if (put_body(out, j) == 0)
        return 0;
oom:
    return mr_fail(err, MAILROOM_ENOMEM, "out of memory building the message");
}
