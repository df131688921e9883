/* secret: see secret.h. */
#define _POSIX_C_SOURCE 200809L
#include "secret.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *secret_read_file(const char *path, mr_error *err)
{
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        mr_fail(err, MAILROOM_EINVAL, "cannot open secret file %s: %s", path, strerror(errno));
        return NULL;
    }
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n <= 0) {
        mr_fail(err, MAILROOM_EINVAL, "secret file %s is empty", path);
        if (line)
            OPENSSL_cleanse(line, cap);
        free(line);
        return NULL;
    }
    return line;
}

void secret_free(char *secret)
{
    if (!secret)
        return;
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
}
