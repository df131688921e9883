/*
 * fuzz_mime: libFuzzer target for the MIME builder (consumer/mime.c) fed decoded jobs.
 *
 * Two ways to read an input, chosen by its first byte:
 *
 *   0x00 / 0x01  structure-aware: bytes 1..3 are flags and counts, the rest are fields
 *                separated by NUL bytes; a job tree is built from them with json-c and
 *                validated with job_from_tree(require_sig = 0), so nearly every input is
 *                a valid job and the fuzzer spends its time inside the encoder. 0x01
 *                also repairs the fields (valid UTF-8, no control characters, limits),
 *                0x00 passes them raw (validation decides). Layout: see struct_mode().
 *   otherwise    the input is a raw job (JSON text, as the consumer reads it from
 *                Redis): job_decode() (which needs a "sig" member but does not check it).
 *
 * Every job that validates must build (mime_build() == 0), and the message must hold:
 *   - no NUL; CRLF line ends only (no bare CR or LF); no line over 998 bytes;
 *   - a header section of well-formed fields (name ":" or a folded line that is not
 *     only white space), ended by an empty line, with no byte >= 0x80 in it unless the
 *     job needs SMTPUTF8 (mime_needs_smtputf8: an address with a non-ASCII local part),
 *     and then only in From, To, Cc and Reply-To, as valid UTF-8; no byte >= 0x80 in
 *     the body either way (bodies are quoted-printable or base64);
 *   - Date, From, To, Subject, Message-ID, MIME-Version once each; Cc and Reply-To
 *     exactly when the job has them; never Bcc; every extra header once;
 *   - round trips: From/To/Cc/Reply-To decode (phrase, quoted-string or RFC 2047
 *     B-words) to the job's display names and addresses in their header form (the
 *     envelope form, domain as A-labels, or the address as given when its local part is
 *     non-ASCII); Subject and the extra headers unfold and decode to the job's values;
 *     Message-ID decodes to the job id at the From domain as A-labels; each body part decodes (QP or base64) to the job's text or html with
 *     its line ends made CRLF; encoded words are at most 75 characters and never split
 *     a UTF-8 sequence; QP and base64 lines are at most 76 characters.
 * mime_header_unstructured() is also fed raw field bytes (any value must encode and
 * round-trip). A violated invariant abort()s, which libFuzzer reports as a crash.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <ctype.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "error.h"
#include "job.h"
#include "mime.h"

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_mime: invariant violated: %s (%s:%d)\n", #cond, __FILE__, \
                    __LINE__);                                                             \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#define LINE_HARD 998
#define EW_MAX 75
#define ENC_LINE 76
#define MAX_FIELDS 96

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The form of the Date header (day, date, a year of 4 or more digits, time, +0000) is
 * checked unless MAILROOM_FUZZ_LAX=1, so a long run can get past a known finding. */
static int g_lax;
static int g_debug; /* MAILROOM_FUZZ_DEBUG=1: why a job was refused, the message built */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *lax = getenv("MAILROOM_FUZZ_LAX");
    g_lax = lax && *lax && strcmp(lax, "0") != 0;
    g_debug = getenv("MAILROOM_FUZZ_DEBUG") != NULL;
    return 0;
}

static buf g_msg = BUF_INIT;   /* the message, reused like a worker's buffer */
static buf g_hdr = BUF_INIT;   /* standalone header lines */
static buf g_dec = BUF_INIT;   /* decoded values */
static buf g_want = BUF_INIT;  /* expected values */
static buf g_unf = BUF_INIT;   /* unfolded field values */
static buf g_tmp = BUF_INIT;   /* field repair */

/* ------------------------------------------------------------------ small helpers */

static int starts(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

static const char *find(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    for (; (size_t)(end - p) >= n; p++)
        if (memcmp(p, lit, n) == 0)
            return p;
    return NULL;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes one padded base64 unit sequence (length a multiple of 4) onto out. */
static void b64_decode(buf *out, const char *s, size_t n)
{
    CHECK(n % 4 == 0);
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + (size_t)k] == '=') {
                CHECK(i + 4 == n && k >= 2); /* padding only at the very end */
                v[k] = 0;
                pad++;
            } else {
                CHECK(pad == 0);
                v[k] = b64_val(s[i + (size_t)k]);
                CHECK(v[k] >= 0);
            }
        }
        unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
                     (unsigned)v[3];
        char b[3] = {(char)(x >> 16), (char)(x >> 8 & 0xFF), (char)(x & 0xFF)};
        CHECK(buf_append(out, b, (size_t)(3 - pad)) == 0);
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lowercase is not what mime.c writes */
}

/* Text with every CRLF, lone CR and lone LF made CRLF (what the bodies must decode to). */
static void crlf_normalise(buf *out, const char *s, size_t n)
{
    buf_reset(out);
    CHECK(buf_append(out, "", 0) == 0);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            CHECK(buf_append(out, "\r\n", 2) == 0);
            if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
                i++;
        } else {
            CHECK(buf_putc(out, s[i]) == 0);
        }
    }
}

/* ------------------------------------------------------------ message-level checks */

/* No NUL, CRLF only, lines <= 998. */
static void check_lines(const char *s, size_t n)
{
    CHECK(memchr(s, '\0', n) == NULL);
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            CHECK(i + 1 < n && s[i + 1] == '\n');
            i++;
            col = 0;
        } else {
            CHECK(s[i] != '\n');
            col++;
            CHECK(col <= LINE_HARD);
        }
    }
}

static void check_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)s[i] < 0x80);
}

typedef struct field {
    const char *name; /* into the message */
    size_t name_len;
    const char *value; /* after the ':' up to and including the field's last CRLF */
    size_t value_len;
} field;

#define MAX_HDR_FIELDS 64

/* Splits a header section (ending with its last field's CRLF) into fields, checking
 * each line's form. Returns the count. */
static size_t parse_fields(const char *h, size_t n, field *out, size_t max)
{
    const char *p = h, *end = h + n;
    size_t count = 0;
    while (p < end) {
        const char *eol = find(p, end, "\r\n");
        CHECK(eol != NULL);
        if (*p == ' ' || *p == '\t') {
            /* a folded line: belongs to the previous field, holds more than white space */
            CHECK(count > 0);
            int text = 0;
            for (const char *q = p; q < eol; q++)
                text |= *q != ' ' && *q != '\t';
            CHECK(text);
            out[count - 1].value_len = (size_t)(eol + 2 - out[count - 1].value);
        } else {
            const char *colon = p;
            while (colon < eol && *colon != ':') {
                CHECK(*colon >= 0x21 && *colon <= 0x7E);
                colon++;
            }
            CHECK(colon < eol && colon > p);
            CHECK(count < max);
            out[count].name = p;
            out[count].name_len = (size_t)(colon - p);
            out[count].value = colon + 1;
            out[count].value_len = (size_t)(eol + 2 - (colon + 1));
            count++;
        }
        p = eol + 2;
    }
    return count;
}

static int ascii_casecmp_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int x = tolower((unsigned char)a[i]), y = tolower((unsigned char)b[i]);
        if (x != y)
            return x - y;
    }
    return 0;
}

/* How many fields are called name (case-insensitive unless exact); *first: the first. */
static size_t count_fields(const field *f, size_t n, const char *name, int exact,
                           const field **first)
{
    size_t c = 0, len = strlen(name);
    *first = NULL;
    for (size_t i = 0; i < n; i++) {
        if (f[i].name_len != len)
            continue;
        if (exact ? memcmp(f[i].name, name, len) != 0 : ascii_casecmp_n(f[i].name, name, len))
            continue;
        if (!c)
            *first = &f[i];
        c++;
    }
    return c;
}

/* The field's value with its folding CRLFs removed (and the final CRLF dropped). */
static void unfold(const field *f, buf *out)
{
    buf_reset(out);
    CHECK(buf_append(out, "", 0) == 0);
    CHECK(f->value_len >= 2);
    const char *p = f->value, *end = f->value + f->value_len - 2;
    for (; p < end; p++) {
        if (*p == '\r') {
            CHECK(p[1] == '\n' && (p[2] == ' ' || p[2] == '\t'));
            p++;
            continue;
        }
        CHECK(buf_putc(out, *p) == 0);
    }
}

/* Physical lines of a field after its first: at most limit characters each. */
static void check_fold_lines(const field *f, size_t limit)
{
    const char *p = f->value, *end = f->value + f->value_len;
    const char *eol = find(p, end, "\r\n");
    while (eol && eol + 2 < end) {
        p = eol + 2;
        eol = find(p, end, "\r\n");
        CHECK(eol != NULL);
        CHECK((size_t)(eol - p) <= limit);
    }
}

/*
 * Decodes RFC 2047 B-words "=?UTF-8?B?...?=" separated by single spaces starting at *pp,
 * appending the bytes to out; stops before anything that is not " =?" after a word.
 * whole_utf8: each word must carry whole UTF-8 sequences.
 */
static void decode_words(const char **pp, const char *end, buf *out, int whole_utf8)
{
    const char *p = *pp;
    for (;;) {
        CHECK(starts(p, end, "=?UTF-8?B?"));
        const char *b = p + 10;
        const char *close = find(b, end, "?=");
        CHECK(close != NULL);
        CHECK((size_t)(close + 2 - p) <= EW_MAX);
        size_t before = out->len;
        b64_decode(out, b, (size_t)(close - b));
        CHECK(out->len > before); /* a word carries at least one character */
        if (whole_utf8)
            CHECK(addr_utf8_valid(out->data + before, out->len - before));
        p = close + 2;
        if (!starts(p, end, " =?"))
            break;
        p++;
    }
    *pp = p;
}

/* 1 when p starts a run of well-formed B-words separated by single spaces that is
 * followed by " <": a display name, not a bare address that merely begins with "=?"
 * ('=' and '?' are atext, so "=?UTF-8?B?x@example.com" is a valid address). */
static int encoded_name_ahead(const char *p, const char *end)
{
    for (;;) {
        if (!starts(p, end, "=?UTF-8?B?"))
            return 0;
        const char *q = p + 10;
        while (q < end && b64_val(*q) >= 0)
            q++;
        while (q < end && *q == '=')
            q++;
        if (!starts(q, end, "?="))
            return 0;
        p = q + 2;
        if (starts(p, end, " <"))
            return 1;
        if (!starts(p, end, " =?"))
            return 0;
        p++;
    }
}

/* An unstructured field (Subject, X-*) back to its value. */
static void decode_unstructured(const field *f, buf *out, int whole_utf8)
{
    unfold(f, &g_unf);
    buf_reset(out);
    CHECK(buf_append(out, "", 0) == 0);
    if (g_unf.len == 0)
        return;
    CHECK(g_unf.data[0] == ' ');
    const char *p = g_unf.data + 1, *end = g_unf.data + g_unf.len;
    if (starts(p, end, "=?UTF-8?B?")) {
        decode_words(&p, end, out, whole_utf8);
        CHECK(p == end);
        check_fold_lines(f, ENC_LINE);
    } else {
        /* raw: printable ASCII that a reader cannot mistake for an encoded word */
        CHECK(find(p, end, "=?") == NULL);
        CHECK(buf_append(out, p, (size_t)(end - p)) == 0);
    }
}

static int is_atext(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* One mailbox of an unfolded address list at *pp: name (decoded) and spec. */
static void decode_mailbox(const char **pp, const char *end, buf *name, buf *spec)
{
    const char *p = *pp;
    buf_reset(name);
    buf_reset(spec);
    CHECK(buf_append(name, "", 0) == 0 && buf_append(spec, "", 0) == 0);
    int has_name = 1;
    if (p < end && *p == '"') {
        for (p++;; p++) {
            CHECK(p < end);
            if (*p == '"')
                break;
            if (*p == '\\') {
                p++;
                CHECK(p < end && (*p == '"' || *p == '\\'));
            }
            CHECK(buf_putc(name, *p) == 0);
        }
        p++;
    } else if (encoded_name_ahead(p, end)) {
        decode_words(&p, end, name, 1);
    } else {
        const char *q = p;
        while (q < end && *q != ',' && !starts(q, end, " <"))
            q++;
        if (starts(q, end, " <")) {
            /* a phrase: atoms separated by single spaces */
            CHECK(q > p && p[0] != ' ' && q[-1] != ' ');
            for (const char *r = p; r < q; r++) {
                CHECK(is_atext(*r) || (*r == ' ' && r[1] != ' '));
            }
            CHECK(buf_append(name, p, (size_t)(q - p)) == 0);
            p = q;
        } else {
            has_name = 0;
            CHECK(buf_append(spec, p, (size_t)(q - p)) == 0);
            p = q;
        }
    }
    if (has_name) {
        CHECK(starts(p, end, " <"));
        p += 2;
        const char *gt = memchr(p, '>', (size_t)(end - p));
        CHECK(gt != NULL);
        CHECK(buf_append(spec, p, (size_t)(gt - p)) == 0);
        p = gt + 1;
        CHECK(name->len > 0); /* an empty name is written as a bare address */
    }
    CHECK(addr_spec_valid(spec->data, spec->len));
    *pp = p;
}

static buf g_name = BUF_INIT, g_spec = BUF_INIT;

/* An address field: its mailboxes decode to exactly names[i] / specs[i]. */
static void check_address_field(const field *f, const char *const *names,
                                const char *const *specs, size_t n)
{
    unfold(f, &g_unf);
    const char *p = g_unf.data, *end = g_unf.data + g_unf.len;
    CHECK(starts(p, end, " "));
    p++;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            CHECK(starts(p, end, ", "));
            p += 2;
        }
        decode_mailbox(&p, end, &g_name, &g_spec);
        CHECK(g_name.len == strlen(names[i]) && memcmp(g_name.data, names[i], g_name.len) == 0);
        CHECK(g_spec.len == strlen(specs[i]) && memcmp(g_spec.data, specs[i], g_spec.len) == 0);
    }
    CHECK(p == end);
}

static addr_mailbox g_mb[JOB_MAX_RCPT];
static const char *g_names[JOB_MAX_RCPT], *g_specs[JOB_MAX_RCPT];

static void check_mailbox_list(const field *f, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(addr_parse(list[i], strlen(list[i]), &g_mb[i], NULL) == 0);
        CHECK(addr_spec_valid(g_mb[i].envelope, strlen(g_mb[i].envelope)));
        g_names[i] = g_mb[i].name;
        g_specs[i] = g_mb[i].utf8 ? g_mb[i].spec : g_mb[i].envelope;
    }
    check_address_field(f, g_names, g_specs, n);
}

/* Quoted-printable body lines back to bytes, checking the encoding's rules. */
static void qp_decode(buf *out, const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    buf_reset(out);
    CHECK(buf_append(out, "", 0) == 0);
    while (p < end) {
        const char *eol = find(p, end, "\r\n");
        CHECK(eol != NULL); /* the encoded part is empty or ends with CRLF */
        CHECK((size_t)(eol - p) <= ENC_LINE);
        int soft = eol > p && eol[-1] == '=';
        const char *stop = soft ? eol - 1 : eol;
        for (const char *q = p; q < stop; q++) {
            if (*q == '=') {
                CHECK(q + 2 < stop); /* a whole "=XX" before the end or soft break */
                int hi = hexval(q[1]), lo = hexval(q[2]);
                CHECK(hi >= 0 && lo >= 0);
                CHECK(buf_putc(out, (char)(hi << 4 | lo)) == 0);
                q += 2;
            } else {
                CHECK((*q >= 0x21 && *q <= 0x7E) || *q == ' ' || *q == '\t');
                if (!soft && q + 1 == stop)
                    CHECK(*q != ' ' && *q != '\t'); /* no white space before a hard break */
                CHECK(buf_putc(out, *q) == 0);
            }
        }
        if (!soft)
            CHECK(buf_append(out, "\r\n", 2) == 0);
        p = eol + 2;
    }
}

static void base64_body_decode(buf *out, const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    buf_reset(out);
    CHECK(buf_append(out, "", 0) == 0);
    while (p < end) {
        const char *eol = find(p, end, "\r\n");
        CHECK(eol != NULL);
        CHECK(eol > p && (size_t)(eol - p) <= ENC_LINE);
        b64_decode(out, p, (size_t)(eol - p));
        p = eol + 2;
    }
}

/* One text part: its Content-Type / Content-Transfer-Encoding fields and encoded data
 * decode to text (CRLF-normalised). */
static void check_part(const field *f, size_t nf, const char *subtype, const char *data,
                       size_t data_len, const char *text, size_t text_len)
{
    const field *ct, *cte;
    char want_ct[64];
    CHECK(count_fields(f, nf, "Content-Type", 0, &ct) == 1);
    CHECK(count_fields(f, nf, "Content-Transfer-Encoding", 0, &cte) == 1);
    unfold(ct, &g_unf);
    snprintf(want_ct, sizeof want_ct, " text/%s; charset=UTF-8", subtype);
    CHECK(strcmp(g_unf.data, want_ct) == 0);
    size_t high = 0;
    for (size_t i = 0; i < text_len; i++)
        high += (unsigned char)text[i] >= 0x80;
    int b64 = text_len > 0 && high * 5 >= text_len;
    unfold(cte, &g_unf);
    CHECK(strcmp(g_unf.data, b64 ? " base64" : " quoted-printable") == 0);
    if (b64)
        base64_body_decode(&g_dec, data, data_len);
    else
        qp_decode(&g_dec, data, data_len);
    crlf_normalise(&g_want, text, text_len);
    CHECK(g_dec.len == g_want.len && memcmp(g_dec.data, g_want.data, g_dec.len) == 0);
}

static void check_date(const field *f)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    unfold(f, &g_unf);
    const char *s = g_unf.data;
    int ok = 0;
    CHECK(s[0] == ' ');
    for (size_t i = 0; i < 7; i++)
        ok |= strncmp(s + 1, days[i], 3) == 0;
    CHECK(ok && strncmp(s + 4, ", ", 2) == 0);
    CHECK(isdigit((unsigned char)s[6]) && isdigit((unsigned char)s[7]) && s[8] == ' ');
    ok = 0;
    for (size_t i = 0; i < 12; i++)
        ok |= strncmp(s + 9, months[i], 3) == 0;
    CHECK(ok && s[12] == ' ');
    const char *y = s + 13;
    size_t nd = 0;
    while (isdigit((unsigned char)y[nd]))
        nd++;
    CHECK(nd >= 4); /* RFC 5322 year: 4 or more digits */
    const char *t = y + nd;
    CHECK(strlen(t) == 15 && t[0] == ' ' && t[3] == ':' && t[6] == ':' &&
          strcmp(t + 9, " +0000") == 0);
}

/* ------------------------------------------------------------- the whole message */

static field g_fields[MAX_HDR_FIELDS], g_part_fields[8];

/* 8-bit bytes in the header section: none, unless the job needs SMTPUTF8; then valid
 * UTF-8 and only in the address fields (RFC 6532). */
static void check_header_bytes(const job *j, const char *msg, size_t hlen, size_t nf)
{
    if (!mime_needs_smtputf8(j)) {
        check_ascii(msg, hlen);
        return;
    }
    CHECK(addr_utf8_valid(msg, hlen));
    static const char *const addr_fields[] = {"From", "To", "Cc", "Reply-To"};
    for (size_t i = 0; i < nf; i++) {
        int addr = 0;
        for (size_t k = 0; k < 4; k++)
            addr |= g_fields[i].name_len == strlen(addr_fields[k]) &&
                    memcmp(g_fields[i].name, addr_fields[k], g_fields[i].name_len) == 0;
        if (!addr)
            check_ascii(g_fields[i].value, g_fields[i].value_len);
    }
}

static void check_message(const job *j, const buf *m)
{
    const field *f;
    check_lines(m->data, m->len);

    const char *msg = m->data, *end = m->data + m->len;
    const char *blank = find(msg, end, "\r\n\r\n");
    CHECK(blank != NULL && blank > msg);
    size_t hlen = (size_t)(blank + 2 - msg);
    size_t nf = parse_fields(msg, hlen, g_fields, MAX_HDR_FIELDS);
    const char *body = blank + 4;
    check_header_bytes(j, msg, hlen, nf);
    check_ascii(body, (size_t)(end - body));

    CHECK(count_fields(g_fields, nf, "Date", 0, &f) == 1);
    if (!g_lax)
        check_date(f);
    CHECK(count_fields(g_fields, nf, "MIME-Version", 0, &f) == 1);
    unfold(f, &g_unf);
    CHECK(strcmp(g_unf.data, " 1.0") == 0);
    CHECK(count_fields(g_fields, nf, "Bcc", 0, &f) == 0);

    /* From: from_name and the bare from address */
    CHECK(count_fields(g_fields, nf, "From", 0, &f) == 1);
    const char *from_name = j->from_name ? j->from_name : "";
    char from_envelope[ADDR_SPEC_MAX + 1];
    int from_utf8 = 0;
    CHECK(addr_spec_parse(j->from, strlen(j->from), from_envelope, &from_utf8, NULL) == 0);
    const char *from_hdr = from_utf8 ? j->from : from_envelope;
    check_address_field(f, &from_name, &from_hdr, 1);

    CHECK(count_fields(g_fields, nf, "To", 0, &f) == 1);
    check_mailbox_list(f, j->to, j->n_to);
    CHECK(count_fields(g_fields, nf, "Cc", 0, &f) == (j->n_cc > 0));
    if (j->n_cc)
        check_mailbox_list(f, j->cc, j->n_cc);
    CHECK(count_fields(g_fields, nf, "Reply-To", 0, &f) == (j->reply_to != NULL));
    if (j->reply_to)
        check_mailbox_list(f, &j->reply_to, 1);

    CHECK(count_fields(g_fields, nf, "Subject", 0, &f) == 1);
    decode_unstructured(f, &g_dec, 1);
    CHECK(g_dec.len == strlen(j->subject) && memcmp(g_dec.data, j->subject, g_dec.len) == 0);

    /* Message-ID: <escaped id @ from domain> */
    CHECK(count_fields(g_fields, nf, "Message-ID", 0, &f) == 1);
    unfold(f, &g_unf);
    {
        const char *s = g_unf.data, *e = g_unf.data + g_unf.len;
        CHECK(starts(s, e, " <") && e[-1] == '>');
        const char *at = e - 1;
        while (at > s && *at != '@')
            at--;
        CHECK(*at == '@');
        const char *dom = strrchr(from_envelope, '@') + 1;
        CHECK((size_t)(e - 1 - (at + 1)) == strlen(dom) && memcmp(at + 1, dom, strlen(dom)) == 0);
        buf_reset(&g_dec);
        CHECK(buf_append(&g_dec, "", 0) == 0);
        for (const char *q = s + 2; q < at; q++) {
            if (*q == '=') {
                CHECK(q + 2 < at && hexval(q[1]) >= 0 && hexval(q[2]) >= 0);
                CHECK(buf_putc(&g_dec, (char)(hexval(q[1]) << 4 | hexval(q[2]))) == 0);
                q += 2;
            } else {
                CHECK(isalnum((unsigned char)*q) || *q == '_' || *q == '-');
                CHECK(buf_putc(&g_dec, *q) == 0);
            }
        }
        CHECK(strcmp(g_dec.data, j->id) == 0);
    }

    /* the job's extra headers, each once (exact name), decoding to its value */
    for (size_t i = 0; i < j->n_headers; i++) {
        CHECK(count_fields(g_fields, nf, j->headers[i].name, 1, &f) == 1);
        decode_unstructured(f, &g_dec, 1);
        CHECK(g_dec.len == strlen(j->headers[i].value) &&
              memcmp(g_dec.data, j->headers[i].value, g_dec.len) == 0);
    }

    /* the body */
    CHECK(count_fields(g_fields, nf, "Content-Type", 0, &f) == 1);
    if (!j->html) {
        check_part(g_fields, nf, "plain", body, (size_t)(end - body), j->text, j->text_len);
        return;
    }
    const field *cte;
    CHECK(count_fields(g_fields, nf, "Content-Transfer-Encoding", 0, &cte) == 0);
    unfold(f, &g_unf);
    const char *pre = " multipart/alternative; boundary=\"";
    CHECK(strncmp(g_unf.data, pre, strlen(pre)) == 0);
    char boundary[80];
    const char *bs = g_unf.data + strlen(pre), *be = strchr(bs, '"');
    CHECK(be && be[1] == '\0' && be > bs && (size_t)(be - bs) <= 70);
    memcpy(boundary, bs, (size_t)(be - bs));
    boundary[be - bs] = '\0';
    char delim[90], close_delim[96];
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", boundary);
    snprintf(close_delim, sizeof close_delim, "\r\n--%s--\r\n", boundary);

    const char *p = body;
    CHECK(starts(p, end, delim + 2));
    p += strlen(delim) - 2;
    for (int part = 0; part < 2; part++) {
        const char *ph_end = find(p, end, "\r\n\r\n");
        CHECK(ph_end != NULL);
        size_t pnf = parse_fields(p, (size_t)(ph_end + 2 - p), g_part_fields, 8);
        const char *data = ph_end + 4;
        const char *next = find(data, end, part == 0 ? delim : close_delim);
        /* (empty data: the CRLF before the delimiter is the delimiter's own) */
        CHECK(next != NULL);
        /* nothing in the data may look like a delimiter line */
        char dash[80];
        snprintf(dash, sizeof dash, "\r\n--%s", boundary);
        CHECK(find(data, next, dash) == NULL && !starts(data, next, dash + 2));
        if (part == 0)
            check_part(g_part_fields, pnf, "plain", data, (size_t)(next - data), j->text,
                       j->text_len);
        else
            check_part(g_part_fields, pnf, "html", data, (size_t)(next - data), j->html,
                       j->html_len);
        p = next + (part == 0 ? strlen(delim) : strlen(close_delim));
    }
    CHECK(p == end);
}

/* A validated job must build, and its message must satisfy every invariant. */
static void build_and_check(const job *j)
{
    mr_error err = MR_ERROR_INIT;
    int rc = mime_build(j, &g_msg, &err);
    if (rc != 0)
        fprintf(stderr, "fuzz_mime: mime_build refused a validated job: %s\n",
                err.msg[0] ? err.msg : "(no reason)");
    CHECK(rc == 0);
    if (g_debug)
        fprintf(stderr, "fuzz_mime: message:\n%s\n", g_msg.data);
    check_message(j, &g_msg);
}

/* mime_header_unstructured() on any value: encodes and round-trips. */
static void check_unstructured(const char *name, const char *value)
{
    buf_reset(&g_hdr);
    size_t nlen = strlen(name);
    int name_ok = nlen >= 1 && nlen <= 76;
    for (size_t i = 0; i < nlen; i++)
        name_ok &= name[i] >= 0x21 && name[i] <= 0x7E && name[i] != ':';
    int rc = mime_header_unstructured(&g_hdr, name, value);
    CHECK(rc == (name_ok ? 0 : -1));
    if (rc != 0)
        return;
    check_lines(g_hdr.data, g_hdr.len);
    check_ascii(g_hdr.data, g_hdr.len);
    field f[1];
    CHECK(g_hdr.len >= 2 && memcmp(g_hdr.data + g_hdr.len - 2, "\r\n", 2) == 0);
    CHECK(parse_fields(g_hdr.data, g_hdr.len, f, 1) == 1);
    CHECK(f[0].name_len == nlen && memcmp(f[0].name, name, nlen) == 0);
    size_t vlen = strlen(value);
    decode_unstructured(&f[0], &g_dec, addr_utf8_valid(value, vlen));
    CHECK(g_dec.len == vlen && memcmp(g_dec.data, value, vlen) == 0);
}

/* ------------------------------------------------------------- structure-aware mode */

typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct reader {
    span f[MAX_FIELDS];
    size_t n, next;
    int repair;
} reader;

static span next_field(reader *r)
{
    span s = {"", 0};
    if (r->next < r->n)
        s = r->f[r->next];
    r->next++;
    return s;
}

/* Repairs a field into g_tmp: valid UTF-8 (bad bytes become '?'), control characters
 * become spaces unless allow_ctl, at most max bytes (cut at a character boundary);
 * extra_bad characters become ')'. Without repair the field is copied as is. */
static const char *field_text(const reader *r, span s, int allow_ctl, size_t max,
                              const char *extra_bad)
{
    buf_reset(&g_tmp);
    CHECK(buf_append(&g_tmp, "", 0) == 0);
    if (!r->repair) {
        CHECK(buf_append(&g_tmp, s.p, s.n) == 0);
        return g_tmp.data;
    }
    size_t i = 0;
    while (i < s.n) {
        size_t n = 1;
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x80) {
            size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            if (i + want <= s.n && addr_utf8_valid(s.p + i, want))
                n = want;
        }
        if (g_tmp.len + n > max)
            break;
        if (n > 1) {
            CHECK(buf_append(&g_tmp, s.p + i, n) == 0);
        } else if (c >= 0x80) {
            CHECK(buf_putc(&g_tmp, '?') == 0);
        } else if ((c < 0x20 || c == 0x7F) && !allow_ctl) {
            CHECK(buf_putc(&g_tmp, ' ') == 0);
        } else if (extra_bad && c && strchr(extra_bad, (char)c)) {
            CHECK(buf_putc(&g_tmp, ')') == 0);
        } else {
            CHECK(buf_putc(&g_tmp, (char)c) == 0);
        }
        i += n;
    }
    return g_tmp.data;
}

/* Maps every byte of a field to a character of set (length 1..max; "" -> dflt). */
static void field_mapped(span s, const char *set, size_t max, const char *dflt, char *out)
{
    size_t setn = strlen(set), n = 0;
    for (size_t i = 0; i < s.n && n < max; i++)
        out[n++] = set[(unsigned char)s.p[i] % setn];
    out[n] = '\0';
    if (n == 0)
        snprintf(out, max + 1, "%s", dflt);
}

static int add_str(json_object *obj, const char *key, const char *s, size_t n)
{
    json_object *v = json_object_new_string_len(s, (int)n);
    CHECK(v != NULL);
    CHECK(json_object_object_add(obj, key, v) == 0);
    return 0;
}

/* A mailbox string from a field: the field itself when it holds '@', else a display
 * name (plain or quoted, per flags) before <local{idx}@example.com>, or the bare
 * address when the field is empty. */
static void mailbox_from_field(reader *r, span s, int quoted, size_t idx, buf *out)
{
    buf_reset(out);
    CHECK(buf_append(out, "", 0) == 0);
    if (memchr(s.p, '@', s.n)) {
        const char *t = field_text(r, s, 0, ADDR_SPEC_MAX + ADDR_NAME_MAX + 8, NULL);
        CHECK(buf_puts(out, t) == 0);
        return;
    }
    if (s.n > 0) {
        const char *name = field_text(r, s, 0, ADDR_NAME_MAX - 2, quoted ? "<>" : "<>\"");
        if (quoted) {
            CHECK(buf_putc(out, '"') == 0);
            for (const char *p = name; *p; p++) {
                if ((*p == '"' || *p == '\\') && buf_putc(out, '\\') != 0)
                    CHECK(0);
                CHECK(buf_putc(out, *p) == 0);
            }
            CHECK(buf_puts(out, "\" ") == 0);
        } else {
            CHECK(buf_puts(out, name) == 0 && buf_putc(out, ' ') == 0);
        }
        CHECK(buf_printf(out, "<rcpt%zu@example.com>", idx) == 0);
    } else {
        CHECK(buf_printf(out, "rcpt%zu@example.com", idx) == 0);
    }
}

static buf g_mbox = BUF_INIT;

static void add_mailboxes(reader *r, json_object *root, const char *key, size_t n,
                          size_t extra, int quoted, size_t *idx)
{
    json_object *arr = json_object_new_array();
    CHECK(arr != NULL);
    for (size_t i = 0; i < n; i++) {
        mailbox_from_field(r, next_field(r), quoted, (*idx)++, &g_mbox);
        CHECK(json_object_array_add(arr, json_object_new_string_len(g_mbox.data,
                                                                    (int)g_mbox.len)) == 0);
    }
    for (size_t i = 0; i < extra; i++) {
        char a[48];
        snprintf(a, sizeof a, "user%zu@host-%zu.example.org", (*idx)++, i % 7);
        CHECK(json_object_array_add(arr, json_object_new_string(a)) == 0);
    }
    CHECK(json_object_object_add(root, key, arr) == 0);
}

/*
 * Input: [mode 0x00|0x01] [F1] [F2] [F3] then fields separated by NUL bytes, read in
 * this order (missing fields are empty):
 *   id (F1 & 0x10), created_at (F1 & 0x20), from (F1 & 0x40), from_name (F1 & 0x02),
 *   subject, text, html (F1 & 0x01), to x (1 + (F2 & 3)), cc x ((F2 >> 2) & 3),
 *   bcc x ((F2 >> 4) & 1), reply_to (F1 & 0x04), headers x (F2 >> 5): name, value;
 *   then a raw header name and value for mime_header_unstructured() alone.
 * F1 & 0x08: display names quoted. F3: F3 % 101 extra generated "to" addresses (the
 * job is refused when the recipients pass 100, as it must be).
 */
static void struct_mode(const uint8_t *data, size_t size, int repair)
{
    reader r = {.n = 0, .next = 0, .repair = repair};
    uint8_t f1 = size > 0 ? data[0] : 0, f2 = size > 1 ? data[1] : 0, f3 = size > 2 ? data[2] : 0;
    const char *p = size > 3 ? (const char *)data + 3 : "", *end = p + (size > 3 ? size - 3 : 0);
    while (p <= end && r.n < MAX_FIELDS) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            z = end;
        r.f[r.n].p = p;
        r.f[r.n].n = (size_t)(z - p);
        r.n++;
        p = z + 1;
    }

    json_object *root = json_object_new_object();
    CHECK(root != NULL);
    char idbuf[JOB_ID_MAX + 1], name[80];
    add_str(root, "v", "1", 1);
    if (f1 & 0x10) {
        span s = next_field(&r);
        if (repair) {
            field_mapped(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-",
                         JOB_ID_MAX, "x", idbuf);
            add_str(root, "id", idbuf, strlen(idbuf));
        } else {
            add_str(root, "id", s.p, s.n);
        }
    } else {
        add_str(root, "id", "01JDQ6Z3K8P4W7X2M5N9R0T1AB", 26);
    }
    if (f1 & 0x20) {
        span s = next_field(&r);
        add_str(root, "created_at", s.p, s.n);
    } else {
        add_str(root, "created_at", "2026-11-24T13:00:00Z", 20);
    }
    if (f1 & 0x40) {
        span s = next_field(&r);
        add_str(root, "from", s.p, s.n);
    } else {
        add_str(root, "from", "noreply@example.com", 19);
    }
    if (f1 & 0x02) {
        const char *t = field_text(&r, next_field(&r), 0, ADDR_NAME_MAX, NULL);
        add_str(root, "from_name", t, strlen(t));
    }
    {
        const char *t = field_text(&r, next_field(&r), 0, JOB_SUBJECT_MAX, NULL);
        add_str(root, "subject", t, strlen(t));
        t = field_text(&r, next_field(&r), 1, JOB_MAX_BYTES, NULL);
        add_str(root, "text", t, strlen(t));
        if (f1 & 0x01) {
            t = field_text(&r, next_field(&r), 1, JOB_MAX_BYTES, NULL);
            add_str(root, "html", t, strlen(t));
        }
    }
    size_t idx = 0;
    int quoted = (f1 & 0x08) != 0;
    add_mailboxes(&r, root, "to", 1 + (f2 & 3u), f3 % 101u, quoted, &idx);
    if ((f2 >> 2) & 3u)
        add_mailboxes(&r, root, "cc", (f2 >> 2) & 3u, 0, quoted, &idx);
    if ((f2 >> 4) & 1u)
        add_mailboxes(&r, root, "bcc", 1, 0, quoted, &idx);
    if (f1 & 0x04) {
        mailbox_from_field(&r, next_field(&r), quoted, idx++, &g_mbox);
        add_str(root, "reply_to", g_mbox.data, g_mbox.len);
    }
    size_t nh = f2 >> 5;
    if (nh) {
        json_object *h = json_object_new_object();
        CHECK(h != NULL);
        for (size_t i = 0; i < nh; i++) {
            span ns = next_field(&r);
            static const char *const lists[] = {"List-Unsubscribe", "List-Unsubscribe-Post",
                                                "List-Id"};
            if (ns.n == 1 && (unsigned char)ns.p[0] >= 1 && (unsigned char)ns.p[0] <= 3) {
                snprintf(name, sizeof name, "%s", lists[ns.p[0] - 1]);
            } else if (repair) {
                memcpy(name, "X-", 2);
                char tmp[75];
                snprintf(tmp, sizeof tmp, "H%zu", i);
                field_mapped(ns, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-",
                             74, tmp, name + 2);
            } else {
                snprintf(name, sizeof name, "%.*s", (int)(ns.n > 79 ? 79 : ns.n), ns.p);
            }
            const char *t = field_text(&r, next_field(&r), 0, JOB_HEADER_VALUE_MAX, NULL);
            json_object *v = json_object_new_string(t);
            CHECK(v != NULL);
            CHECK(json_object_object_add(h, name, v) == 0);
        }
        CHECK(json_object_object_add(root, "headers", h) == 0);
    }
    add_str(root, "kid", "default", 7);
    add_str(root, "alg", "hmac-sha1", 9);

    job j;
    mr_error err = MR_ERROR_INIT;
    if (job_from_tree(root, 0, &j, &err) == 0)
        build_and_check(&j);
    else if (g_debug)
        fprintf(stderr, "fuzz_mime: structured job refused: %s\n", err.msg);
    job_clear(&j);

    /* the standalone encoder on raw bytes: a raw name and value, and every raw field
     * as the value of a fixed name */
    span hn = next_field(&r), hv = next_field(&r);
    char rawname[96];
    snprintf(rawname, sizeof rawname, "%.*s", (int)(hn.n > 90 ? 90 : hn.n), hn.p);
    reader raw = r;
    raw.repair = 0;
    const char *v = field_text(&raw, hv, 1, (size_t)-1, NULL);
    char *vcopy = strdup(v);
    CHECK(vcopy != NULL);
    check_unstructured(rawname[0] ? rawname : "X-Fuzz", vcopy);
    free(vcopy);
    for (size_t i = 0; i < r.n && i < 8; i++) {
        if (r.f[i].n > 4096)
            continue;
        char *s = strndup(r.f[i].p, r.f[i].n);
        CHECK(s != NULL);
        check_unstructured("Subject", s);
        free(s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] <= 0x01) {
        struct_mode(data + 1, size - 1, data[0] == 0x01);
        return 0;
    }
    job j;
    mr_error err = MR_ERROR_INIT;
    if (job_decode((const char *)data, size, &j, &err) == 0)
        build_and_check(&j);
    else if (g_debug)
        fprintf(stderr, "fuzz_mime: job refused: %s\n", err.msg);
    job_clear(&j);
    return 0;
}
