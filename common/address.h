/*
 * address: parsing and validation of the mailboxes a job carries. A mailbox is either a
 * bare address ("ming@example.com") or a display name and an address
 * ("王小明 <ming@example.com>", "\"Doe, Jane\" <jane@example.com>"). Addresses are
 * ASCII dot-atom local parts at a dot-separated host name; quoted local parts, domain
 * literals and non-ASCII addresses are refused (libcurl does not negotiate SMTPUTF8).
 * Display names are any UTF-8 text without control characters; they are encoded when
 * the message is built, never copied raw into a header.
 */
#ifndef MAILROOM_ADDRESS_H
#define MAILROOM_ADDRESS_H

#include <stddef.h>

#include "error.h"

#define ADDR_SPEC_MAX 254
#define ADDR_LOCAL_MAX 64
#define ADDR_NAME_MAX 256

typedef struct addr_mailbox {
    char name[ADDR_NAME_MAX + 1]; /* display name, unquoted, UTF-8; "" when none */
    char spec[ADDR_SPEC_MAX + 1]; /* local@domain, ASCII */
} addr_mailbox;

/* 1 when s (len bytes) is a well-formed address as described above, else 0. */
int addr_spec_valid(const char *s, size_t len);

/* 1 when s is acceptable as a display name: valid UTF-8, at most ADDR_NAME_MAX bytes,
 * no control characters (CR, LF, NUL, ...). */
int addr_name_valid(const char *s, size_t len);

/*
 * Parses a mailbox. Returns 0 and fills *out, or -1 with err saying what is wrong.
 */
int addr_parse(const char *s, size_t len, addr_mailbox *out, mr_error *err);

/* 1 when s is valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
int addr_utf8_valid(const char *s, size_t len);

#endif
