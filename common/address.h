/*
 * address: parsing and validation of the mailboxes a job carries. A mailbox is either a
 * bare address ("ming@example.com") or a display name and an address
 * ("王小明 <ming@example.com>", "\"Doe, Jane\" <jane@example.com>").
 *
 * An address is local@domain:
 *   - the local part is a dot-atom (RFC 5322) whose atext also admits any non-ASCII
 *     UTF-8 character (RFC 6531/6532), except the C1 controls U+0080..U+009F; at most
 *     64 octets. It is never normalised or case-folded: it belongs to the receiving
 *     host and goes out byte for byte. Quoted local parts ("a b"@example.com) are
 *     refused: nothing we send to needs them (RFC 5321 4.1.2 advises against them) and
 *     each place that writes an address would need its own quoting rules.
 *   - the domain is two or more labels separated by ASCII dots. A label of ASCII
 *     letters, digits and inner hyphens (at most 63) is a host name label and is kept as
 *     written. Any other label (non-ASCII, or an A-label starting "xn--") goes through
 *     libidn2, IDNA2008 with UTS #46 non-transitional mapping (idn2_to_ascii_8z with
 *     IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL), and is refused with libidn2's reason when
 *     it refuses it; the resulting A-label must decode and encode back to itself and be
 *     a host name label (STD3 rules: letters, digits, hyphens). Domain literals
 *     ([127.0.0.1]) are refused.
 *   - at most 254 octets as given, and at most 254 octets on the envelope (the domain
 *     as A-labels, which is usually the longer form); the domain at most 253 octets as
 *     A-labels, each label at most 63.
 * examples/registration/mailroom.php applies the same rules with PHP's intl extension
 * (tests/integration/test_intl_addresses.py compares the two).
 *
 * Display names are any UTF-8 text without control characters; they are encoded when
 * the message is built, never copied raw into a header.
 */
#ifndef MAILROOM_ADDRESS_H
#define MAILROOM_ADDRESS_H

#include <stddef.h>

#include "error.h"

#define ADDR_SPEC_MAX 254   /* octets of an address, as given and on the envelope */
#define ADDR_LOCAL_MAX 64   /* octets of a local part */
#define ADDR_DOMAIN_MAX 253 /* octets of a domain as A-labels */
#define ADDR_LABEL_MAX 63   /* octets of a domain label as an A-label */
#define ADDR_NAME_MAX 256

/*
 * A parsed mailbox. The three forms of its address, and where each goes:
 *
 *   spec      the address as the job gives it (UTF-8; the domain in U-labels or A-labels
 *             as written): what records, events and logs show, and the address in the
 *             headers when utf8 is set (RFC 6532).
 *   envelope  the address for MAIL FROM / RCPT TO: the local part unchanged, the domain
 *             as A-labels ("ming@xn--fsqu00a.xn--0zwm56d"); also the header form when
 *             utf8 is 0, so that such headers stay 7-bit. Equal to spec for an ASCII
 *             address at a host name.
 *   utf8      1 when the local part has non-ASCII characters: the envelope then needs
 *             SMTPUTF8 (RFC 6531) and the message UTF-8 headers; a server that does not
 *             offer SMTPUTF8 cannot take it.
 *
 * The worker builds its envelope from these: for every to, cc and bcc mailbox (and the
 * bare from address through addr_spec_parse) it sends `envelope`, and asks for SMTPUTF8
 * when any of them, or any address in the headers, has utf8 set (mime_needs_smtputf8()
 * answers that for a whole job).
 */
typedef struct addr_mailbox {
    char name[ADDR_NAME_MAX + 1];     /* display name, unquoted, UTF-8; "" when none */
    char spec[ADDR_SPEC_MAX + 1];     /* local@domain as given */
    char envelope[ADDR_SPEC_MAX + 1]; /* local@domain, the domain as A-labels */
    int utf8;                         /* the local part is non-ASCII: SMTPUTF8 needed */
} addr_mailbox;

/*
 * Checks a bare address (len bytes at s) against the rules above. Returns 0 and, when
 * the pointers are not NULL, fills envelope with its envelope form and *utf8 with
 * whether its local part is non-ASCII; or -1 with err saying what is wrong
 * (MAILROOM_EINVAL, or MAILROOM_ENOMEM when libidn2 ran out of memory).
 */
int addr_spec_parse(const char *s, size_t len, char envelope[ADDR_SPEC_MAX + 1], int *utf8,
                    mr_error *err);

/* 1 when s (len bytes) is a well-formed address as described above, else 0. */
int addr_spec_valid(const char *s, size_t len);

/* 1 when s is acceptable as a display name: valid UTF-8, at most ADDR_NAME_MAX bytes,
 * no control characters (CR, LF, NUL, ...). */
int addr_name_valid(const char *s, size_t len);

/*
 * Parses a mailbox. Returns 0 and fills *out (all four fields), or -1 with err saying
 * what is wrong.
 */
int addr_parse(const char *s, size_t len, addr_mailbox *out, mr_error *err);

/* 1 when s is valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
int addr_utf8_valid(const char *s, size_t len);

#endif
