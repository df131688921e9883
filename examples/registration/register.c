/*
 * register.c — the registration step of a web application, as a command:
 *
 *     mailroom-register-example EMAIL NAME
 *
 * It does what the POST /register handler of a web app does: check the input, store
 * the new user with an activation token, and send the activation email through
 * libmailroom. mailroom_send() validates, signs and enqueues the job in one Redis round
 * trip — well under a millisecond, which the program measures and prints — and a
 * mailroom-consumer does the SMTP work later, so the request never waits on it.
 *
 * The job id is chosen by the application: "signup:" plus the lowercased address with
 * every byte outside [a-z0-9.-] written as _XX (ming@example.com becomes
 * signup:ming_40example.com). The id is an idempotency key: if the form is submitted
 * twice, or the request is retried after a timeout, mailroom_send() refuses the second
 * job with MAILROOM_EDUPLICATE and exactly one mail goes out. For that to be right, the
 * user record is created only once, atomically, and a repeated registration reuses the
 * stored token, so the link in the one mail that was sent stays valid. (If the first
 * send failed, say Redis was down, the retry sends the mail with that same token.)
 *
 * The "users table" is a directory of small files, one per address, named after the
 * id; EXAMPLE_USERS_DIR chooses it (default ./example-users). A record is written to a
 * temporary file and then link()ed into place, which fails if the user exists: a
 * concurrent second request never sees half a record. The mailroom settings come from
 * the environment (MAILROOM_REDIS_URL, MAILROOM_QUEUE, MAILROOM_KEYS_FILE or
 * MAILROOM_SECRET): mailroom_options_init() leaves every field NULL.
 *
 * Exit status: 0 activation mail queued, 3 already queued before (a double submission;
 * nothing sent), 2 bad usage or invalid input, 1 any other failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <mailroom.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_QUEUED = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_DUPLICATE = 3 };

#define MAIL_FROM "noreply@example.com"
#define MAIL_FROM_NAME "滴水网"
#define ACTIVATE_URL "https://example.com/activate?token="
#define LINK_VALID_S (24 * 3600)
#define TOKEN_BYTES 32
#define EMAIL_MAX 254
#define NAME_MAX_BYTES 100

/* A registered user, as stored in its file. */
typedef struct user {
    char email[EMAIL_MAX + 1];
    char name[NAME_MAX_BYTES + 1];
    char created_at[32];
    char token[2 * TOKEN_BYTES + 1];
} user;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mailroom-register-example EMAIL NAME\n"
            "Registers a user and sends the activation email through mailroom.\n"
            "Environment: MAILROOM_REDIS_URL, MAILROOM_QUEUE, MAILROOM_KEYS_FILE or\n"
            "MAILROOM_SECRET; EXAMPLE_USERS_DIR (where users are stored, ./example-users).\n"
            "Exit status: 0 queued, 3 already queued before (nothing sent), 2 usage or\n"
            "invalid input, 1 any other failure.\n");
}

/* malloc'ed printf; NULL when memory ran out. */
static char *strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *strprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Trims blanks and lowercases (ASCII) the address. -1 when empty or too long. */
static int normalize_email(const char *in, char out[EMAIL_MAX + 1])
{
    while (*in == ' ' || *in == '\t')
        in++;
    size_t n = strlen(in);
    while (n && (in[n - 1] == ' ' || in[n - 1] == '\t'))
        n--;
    if (n == 0 || n > EMAIL_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] - 'A' + 'a') : in[i];
    out[n] = '\0';
    return 0;
}

/*
 * The job id (and file name) for an address: "signup:" plus the address with each byte
 * outside [a-z0-9.-] as _XX. Ids are at most 128 bytes; a longer result becomes
 * "signup:sha256.<hex>", which cannot collide with an encoded address (that always
 * holds "_40", the @). Same rule as register.php.
 */
static void signup_id(const char *email, char out[MAILROOM_ID_MAX])
{
    static const char hex[] = "0123456789ABCDEF";
    static const char safe[] = "abcdefghijklmnopqrstuvwxyz0123456789.-";
    size_t len = strlen("signup:");
    for (const char *p = email; *p; p++)
        len += strchr(safe, *p) ? 1 : 3;
    if (len > MAILROOM_ID_MAX - 1) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)email, strlen(email), md);
        size_t n = (size_t)snprintf(out, MAILROOM_ID_MAX, "signup:sha256.");
        for (size_t i = 0; i < sizeof md; i++, n += 2)
            snprintf(out + n, MAILROOM_ID_MAX - n, "%02x", md[i]);
        return;
    }
    size_t n = (size_t)snprintf(out, MAILROOM_ID_MAX, "signup:");
    for (const unsigned char *p = (const unsigned char *)email; *p; p++) {
        if (strchr(safe, *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '_';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 0x0F];
        }
    }
    out[n] = '\0';
}

/* A random activation token, hex. */
static int new_token(char out[2 * TOKEN_BYTES + 1])
{
    unsigned char raw[TOKEN_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* Text safe inside HTML elements and attributes (malloc'ed). */
static char *html_escape(const char *s)
{
    char *out = malloc(6 * strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        switch (*s) {
        case '&': o += sprintf(o, "&amp;"); break;
        case '<': o += sprintf(o, "&lt;"); break;
        case '>': o += sprintf(o, "&gt;"); break;
        case '"': o += sprintf(o, "&quot;"); break;
        case '\'': o += sprintf(o, "&#39;"); break;
        default: *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

/* "Display Name" <addr>, the name quoted so that commas and the like are harmless. */
static char *mailbox(const char *name, const char *email)
{
    char *out = malloc(2 * strlen(name) + strlen(email) + 6), *o = out;
    if (!out)
        return NULL;
    *o++ = '"';
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\')
            *o++ = '\\';
        *o++ = *p;
    }
    sprintf(o, "\" <%s>", email);
    return out;
}

/* The activation email of a user: its strings are malloc'ed, free with mail_free(). */
typedef struct mail {
    char *to, *text, *html;
    const char *to_list[1];
    mailroom_email e;
} mail;

static void mail_free(mail *m)
{
    free(m->to);
    free(m->text);
    free(m->html);
    memset(m, 0, sizeof *m);
}

static int mail_build(mail *m, const user *u, const char *id)
{
    char *name_html = html_escape(u->name);
    memset(m, 0, sizeof *m);
    m->to = mailbox(u->name, u->email);
    m->text = strprintf("%s，您好：\n\n"
                        "感谢您的注册。请在 24 小时内点击下面的链接激活您的账户：\n"
                        "%s%s\n\n"
                        "Hello %s,\n\n"
                        "thank you for signing up. Open this link within 24 hours to "
                        "activate your account:\n%s%s\n",
                        u->name, ACTIVATE_URL, u->token, u->name, ACTIVATE_URL, u->token);
    /* the token is hex and the URL fixed: only the name needs escaping */
    m->html = name_html ? strprintf("<p>%s，您好：</p>\n"
                                    "<p>感谢您的注册。请在 24 小时内点击下面的链接激活您的账户：</p>\n"
                                    "<p><a href=\"%s%s\">激活账户 / Activate your account</a></p>\n"
                                    "<p>Hello %s, thank you for signing up.</p>\n",
                                    name_html, ACTIVATE_URL, u->token, name_html)
                        : NULL;
    free(name_html);
    if (!m->to || !m->text || !m->html) {
        mail_free(m);
        return -1;
    }
    m->to_list[0] = m->to;
    m->e = (mailroom_email){
        .to = m->to_list,
        .n_to = 1,
        .from = MAIL_FROM,
        .from_name = MAIL_FROM_NAME,
        .subject = "请激活您的账户 / Activate your account",
        .text = m->text,
        .html = m->html,
        .id = id,
        /* a link mailed a day late is useless: the consumer gives up after this */
        .expires_at = time(NULL) + LINK_VALID_S,
    };
    return 0;
}

/* Reads a user file ("key=value" lines). -1 when unreadable or incomplete. */
static int user_read(const char *path, user *u)
{
    char line[512];
    int rc = -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    memset(u, 0, sizeof *u);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const struct {
            const char *key;
            char *dst;
            size_t size;
        } fields[] = {{"email=", u->email, sizeof u->email},
                      {"name=", u->name, sizeof u->name},
                      {"created_at=", u->created_at, sizeof u->created_at},
                      {"token=", u->token, sizeof u->token}};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            size_t k = strlen(fields[i].key);
            if (strncmp(line, fields[i].key, k) == 0)
                snprintf(fields[i].dst, fields[i].size, "%s", line + k);
        }
    }
    if (u->email[0] && u->name[0] && u->created_at[0] && strlen(u->token) == 2 * TOKEN_BYTES)
        rc = 0;
    fclose(f);
    return rc;
}

/*
 * Stores u as <dir>/<file>.user unless that file exists; then *u becomes the stored
 * user and *created 0. Returns 0, or -1 with errno-based reasons printed.
 */
static int user_store(const char *dir, const char *file, user *u, int *created)
{
    int rc = -1, fd = -1, have_tmp = 0;
    FILE *f = NULL;
    char *path = strprintf("%s/%s.user", dir, file);
    char *tmp = strprintf("%s/.%s.XXXXXX", dir, file);
    if (!path || !tmp) {
        fprintf(stderr, "register: out of memory\n");
        goto out;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "register: cannot create %s: %s\n", dir, strerror(errno));
        goto out;
    }
    if ((fd = mkstemp(tmp)) >= 0)
        have_tmp = 1;
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        fprintf(stderr, "register: cannot write in %s: %s\n", dir, strerror(errno));
        goto out;
    }
    fd = -1; /* owned by f now */
    fprintf(f, "email=%s\nname=%s\ncreated_at=%s\ntoken=%s\n", u->email, u->name,
            u->created_at, u->token);
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "register: cannot write %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    f = NULL;
    /* link() refuses to replace an existing file: this is the atomic "insert if new" */
    if (link(tmp, path) == 0) {
        *created = 1;
    } else if (errno == EEXIST) {
        *created = 0;
        if (user_read(path, u) != 0) {
            fprintf(stderr, "register: user record %s is unreadable\n", path);
            goto out;
        }
    } else {
        fprintf(stderr, "register: cannot create %s: %s\n", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (have_tmp)
        unlink(tmp);
    free(tmp);
    free(path);
    return rc;
}

/* The file name of a user: the id without "signup:". */
static const char *user_file(const char *id)
{
    return id + strlen("signup:");
}

static long long elapsed_us(const struct timespec *a, const struct timespec *b)
{
    return (long long)(b->tv_sec - a->tv_sec) * 1000000LL + (b->tv_nsec - a->tv_nsec) / 1000;
}

int main(int argc, char **argv)
{
    int status = EXIT_FAILED, created = 0;
    mailroom *m = NULL;
    mail msg = {0};
    user u = {0};
    char id[MAILROOM_ID_MAX], job_id[MAILROOM_ID_MAX];

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return EXIT_QUEUED;
    }
    if (argc != 3) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (normalize_email(argv[1], u.email) != 0) {
        fprintf(stderr, "register: EMAIL must be 1 to %d characters\n", EMAIL_MAX);
        return EXIT_USAGE;
    }
    size_t name_len = strlen(argv[2]);
    if (name_len == 0 || name_len > NAME_MAX_BYTES || strpbrk(argv[2], "<>")) {
        fprintf(stderr, "register: NAME must be 1 to %d bytes, without '<' or '>'\n",
                NAME_MAX_BYTES);
        return EXIT_USAGE;
    }
    memcpy(u.name, argv[2], name_len + 1);
    signup_id(u.email, id);

    mailroom_options opts;
    mailroom_options_init(&opts); /* NULL fields: MAILROOM_* environment */
    int rc = mailroom_open(&m, &opts);
    if (rc != MAILROOM_OK) {
        fprintf(stderr, "register: %s\n", m ? mailroom_errmsg(m) : mailroom_strerror(rc));
        goto out;
    }

    /* A new user with a fresh token; checked (address, name) before it is stored. */
    time_t now = time(NULL);
    struct tm tm;
    strftime(u.created_at, sizeof u.created_at, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    if (new_token(u.token) != 0) {
        fprintf(stderr, "register: no randomness for a token\n");
        goto out;
    }
    if (mail_build(&msg, &u, id) != 0) {
        fprintf(stderr, "register: out of memory\n");
        goto out;
    }
    if ((rc = mailroom_validate(m, &msg.e)) != MAILROOM_OK) {
        fprintf(stderr, "register: %s (EMAIL or NAME)\n", mailroom_errmsg(m));
        status = rc == MAILROOM_EINVAL ? EXIT_USAGE : EXIT_FAILED;
        goto out;
    }

    const char *dir = getenv("EXAMPLE_USERS_DIR");
    if (user_store(dir && *dir ? dir : "example-users", user_file(id), &u, &created) != 0)
        goto out;
    if (!created) { /* a repeated registration: mail the stored token, not a new one */
        mail_free(&msg);
        if (mail_build(&msg, &u, id) != 0) {
            fprintf(stderr, "register: out of memory\n");
            goto out;
        }
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = mailroom_send(m, &msg.e, job_id);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    if (created)
        printf("new user %s (%s)\n", u.email, u.name);
    else
        printf("%s is already registered (since %s)\n", u.email, u.created_at);
    if (rc == MAILROOM_OK) {
        printf("activation mail queued: job %s\n", job_id);
        status = EXIT_QUEUED;
    } else if (rc == MAILROOM_EDUPLICATE) {
        mailroom_job_status st;
        int known = mailroom_status(m, id, &st) == MAILROOM_OK;
        printf("activation mail not sent again: job %s is already recorded (state %s)\n", id,
               known ? mailroom_state_name(st.state) : "unknown");
        status = EXIT_DUPLICATE;
    } else {
        fprintf(stderr, "register: cannot send the activation mail: %s\n", mailroom_errmsg(m));
        goto out;
    }
    printf("mailroom_send took %lld us\n", elapsed_us(&t0, &t1));
out:
    mail_free(&msg);
    mailroom_close(m);
    return status;
}
