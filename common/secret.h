/*
 * secret: secrets that come from files (SMTP password, Redis password). The file's
 * first line is the secret, without its line end. The caller owns the returned string
 * and releases it with secret_free(), which wipes it first.
 */
#ifndef MAILROOM_SECRET_H
#define MAILROOM_SECRET_H

#include <stddef.h>

#include "error.h"

/* Returns a new string, or NULL with the reason in err that names the file, never its
 * contents. An empty secret is refused. */
char *secret_read_file(const char *path, mr_error *err);
/* Wipes and frees. Accepts NULL. */
void secret_free(char *secret);

#endif
