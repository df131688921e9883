/*
 * txn: a transaction's results (smtp.h's smtp_txn): the deciding reply, the verdict and
 * why, the relay's queue id, the flags. Every path that ends a transaction goes through
 * here, so the rules are in one place: a final 2xx is SENT, 5xx PERMANENT, anything else
 * TEMPORARY, and a throttling reply (smtp_reply_is_throttle) adds SMTP_FLAG_THROTTLED.
 */
#ifndef MAILROOM_SMTP_TXN_H
#define MAILROOM_SMTP_TXN_H

#include "reply.h"
#include "smtp.h"

/* What ended a connection, to be handed to the transactions caught in it. */
typedef struct smtp_failure {
    unsigned flags; /* SMTP_FLAG_* */
    int code;       /* the reply that ended it, 0 when none */
    char enhanced[SMTP_ENHANCED_MAX];
    char reply[SMTP_REPLY_MAX];
    char error[SMTP_ERROR_MAX];
    int dead; /* EOF, reset or 421: a reused connection that
                                         a new one may replace */
} smtp_failure;

/* Results cleared, state NEW, every rcpt_replies entry zeroed. */
void smtp_txn_reset(smtp_txn *t);

/* Takes r as the deciding reply (code, enhanced code, formatted text). */
void smtp_txn_take_reply(smtp_txn *t, const smtp_reply *r);

/* DONE with this verdict; error formatted (printable, cut to fit); throttling replies
 * add SMTP_FLAG_THROTTLED. */
void smtp_txn_finish(smtp_txn *t, smtp_verdict verdict, unsigned flags, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* DONE from the final reply to the content: 2xx SENT (with the relay id), 4xx/5xx
 * refused. Returns -1 for a code that cannot answer content (the caller's protocol
 * error), else 0. */
int smtp_txn_final(smtp_txn *t, const smtp_reply *r);

/* The verdict of a 4xx/5xx refusal: 5xx PERMANENT, except 530 (authentication
 * required: our configuration, not the message); 4xx TEMPORARY. */
smtp_verdict smtp_refusal_verdict(int code);

/* DONE from its deciding reply (already taken), a refusal: "<what>: <reply>"; 530
 * adds SMTP_FLAG_AUTH. */
void smtp_txn_refused(smtp_txn *t, const char *what);

/* DONE, caught in a failed connection: TEMPORARY (ABORTED when aborted) with the
 * failure's flags, reply and error. content_sent: its content went out and no final
 * reply came, so the outcome is unknown (TEMPORARY even when aborted). */
void smtp_txn_caught(smtp_txn *t, const smtp_failure *f, int aborted, int content_sent);

/* Checks the envelope before anything is written: a sender, at least one recipient,
 * no control character (CR, LF, ...) in any address, rcpt_replies given. -1 with the
 * transaction DONE and PERMANENT when it fails. */
int smtp_txn_check(smtp_txn *t);

/* 1 when an address of the envelope holds a byte >= 0x80, or t->smtputf8. */
int smtp_txn_needs_utf8(const smtp_txn *t);

/* The relay's queue id in a formatted 2xx reply: the word after "queued as ", else
 * after "id=", else the last word when it holds a digit (Gmail's trailing "- gsmtp"
 * skipped); "" when none. */
void smtp_relay_id(const char *reply, char *dst, size_t cap);

#endif
