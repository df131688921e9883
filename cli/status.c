/*
 * status.c — `mailroom status ID`: the job's status record (mailroom_status) printed
 * as one line of JSON (output.c), members in a fixed order. Reads no signing key:
 * whoever may read the queue may ask.
 */
#include "cli.h"

/* `status ID`: opens a handle without a key, reads the record, prints it; no record is
 * exit 1 (MAILROOM_ENOTFOUND through exit.c's table). */
int cmd_status(const struct cli *c, struct failure *f)
{
    const char *id = c->operands.v[1];
    mailroom *m = NULL;
    mailroom_job_status st;
    int rc;

    if ((rc = open_handle(c, 0, 0, 0, &m, f)) != EXIT_OK)
        goto out;
    int lrc = mailroom_status(m, id, &st);
    if (lrc != MAILROOM_OK) {
        rc = fail_lib(f, "status", m, lrc);
        goto out;
    }
    rc = out_status(m, &st, "status", f);
out:
    mailroom_close(m);
    return rc;
}
