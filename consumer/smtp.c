/*
 * smtp: see smtp.h. Facts about libcurl 7.88 that shape this file:
 * - every server reply line reaches CURLOPT_HEADERFUNCTION; the reply text is nowhere
 *   else. After a failed MAIL/RCPT/DATA libcurl closes with QUIT, so the last line can
 *   be "221 Bye": the deciding reply is the first final line >= 400 of the transaction.
 * - a reused connection that died while idle is not retried by libcurl.
 * - libcurl dot-stuffs after CRLF only; messages are built with CRLF and CURLOPT_CRLF
 *   stays off.
 */
#include "smtp.h"

#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

/* Copies a reply line with CR/LF removed and anything unprintable replaced by '?', so
 * it is safe in a log line, a JSON event and a Redis hash. */
static void clean_line(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = 0;
    while (len && (src[len - 1] == '\r' || src[len - 1] == '\n'))
        len--;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[n++] = (char)((c >= 0x20 && c < 0x7F) ? c : '?');
    }
    dst[n] = '\0';
}

static int reply_code(const char *line)
{
    if (strlen(line) < 3)
        return 0;
    for (int i = 0; i < 3; i++)
        if (line[i] < '0' || line[i] > '9')
            return 0;
    return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

static size_t on_reply_line(char *data, size_t size, size_t nitems, void *userdata)
{
    smtp_session *s = userdata;
    size_t len = size * nitems;
    char line[512] = ""; /* zeroed: the analyzer cannot follow clean_line */
    clean_line(line, sizeof line, data, len);
    /* a final line is "NNN" or "NNN text"; anything shorter is not a reply line */
    int is_final = strlen(line) >= 3 && (line[3] == ' ' || line[3] == '\0');
    if (is_final && reply_code(line) >= 400 && !s->failure_line[0])
        memcpy(s->failure_line, line, sizeof line);
    /* 221 answers QUIT, which libcurl sends after the transaction when the connection
     * is not kept (recycling, failures): never the reply that decides the outcome */
    if (is_final && reply_code(line) != 221)
        memcpy(s->last_line, line, sizeof line);
    return len;
}

static size_t on_read_body(char *out, size_t size, size_t nitems, void *userdata)
{
    smtp_session *s = userdata;
    size_t room = size * nitems, left = s->body_len - s->body_off;
    size_t n = left < room ? left : room;
    memcpy(out, s->body + s->body_off, n);
    s->body_off += n;
    return n;
}

/* libcurl calls this at least once a second during a transfer: non-zero aborts it. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const smtp_session *s = userdata;
    return s->cfg->abort && atomic_load(s->cfg->abort) ? 1 : 0;
}

int smtp_url_has_credentials(const char *url)
{
    CURLU *u = curl_url();
    char *user = NULL, *password = NULL;
    int has = 0;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        has = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
              curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK;
    }
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return has;
}

int smtp_url_is_loopback(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int loopback = 0;
    struct in_addr v4;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        loopback = (inet_pton(AF_INET, host, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127) ||
                   strcmp(host, "[::1]") == 0 || strcmp(host, "localhost") == 0;
    curl_free(host);
    curl_url_cleanup(u);
    return loopback;
}

int smtp_session_init(smtp_session *s, const smtp_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->curl = curl_easy_init();
    if (!s->curl)
        return -1;
    CURL *c = s->curl;
    curl_easy_setopt(c, CURLOPT_URL, cfg->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read_body);
    curl_easy_setopt(c, CURLOPT_READDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_reply_line);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->curl_err);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_MAXAGE_CONN, cfg->idle_max_s);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    /* the smallest upload buffer libcurl allows: it is allocated for every message */
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    if (cfg->tls_required && strncmp(cfg->url, "smtp://", 7) == 0)
        curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (cfg->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cfg->user)
        curl_easy_setopt(c, CURLOPT_USERNAME, cfg->user);
    if (cfg->password)
        curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->password);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    return 0;
}

void smtp_session_free(smtp_session *s)
{
    if (!s || !s->curl)
        return;
    curl_easy_cleanup(s->curl);
    s->curl = NULL;
}

/* Temporary vs permanent for a failed transfer, from the deciding reply code. An AUTH
 * refusal is a configuration problem of ours, not the message's: temporary. */
static smtp_outcome classify(CURLcode rc, int code)
{
    if (rc == CURLE_LOGIN_DENIED)
        return SMTP_TEMPORARY;
    if (code >= 500 && code < 600)
        return SMTP_PERMANENT;
    return SMTP_TEMPORARY;
}

static CURLcode transfer(smtp_session *s, const char *msg, size_t msg_len, int fresh,
                         long *new_connections)
{
    s->body = msg;
    s->body_len = msg_len;
    s->body_off = 0;
    s->last_line[0] = s->failure_line[0] = s->curl_err[0] = '\0';
    int recycle =
        s->cfg->max_per_connection > 0 && s->sent_on_connection + 1 >= s->cfg->max_per_connection;
    curl_easy_setopt(s->curl, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
    curl_easy_setopt(s->curl, CURLOPT_FORBID_REUSE, recycle ? 1L : 0L);
    CURLcode rc = curl_easy_perform(s->curl);
    *new_connections = 0;
    curl_easy_getinfo(s->curl, CURLINFO_NUM_CONNECTS, new_connections);
    if (*new_connections > 0)
        s->sent_on_connection = 0;
    s->sent_on_connection++;
    if (recycle || rc != CURLE_OK)
        s->sent_on_connection = 0;
    return rc;
}

/*
 * After an abandoned transfer libcurl still holds the connection, and cleaning the
 * handle up would send QUIT and wait for a server that may be hanging in DATA (and may
 * then accept the message). Shutting the socket down first makes the server see the
 * client drop, which aborts the transaction, and makes the cleanup immediate.
 */
static void cut_connection(smtp_session *s)
{
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(s->curl, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK && fd != CURL_SOCKET_BAD)
        shutdown(fd, SHUT_RDWR);
}

/* A failure with no reply at all on a connection that was reused: it died while idle. */
static int dead_reused_connection(const smtp_session *s, CURLcode rc, long new_connections)
{
    return new_connections == 0 && !s->failure_line[0] &&
           (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
            rc == CURLE_WEIRD_SERVER_REPLY);
}

void smtp_send(smtp_session *s, const char *from, const char *const *rcpt, size_t n_rcpt,
               const char *msg, size_t msg_len, smtp_result *res)
{
    memset(res, 0, sizeof *res);
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < n_rcpt; i++) {
        struct curl_slist *next = curl_slist_append(list, rcpt[i]);
        if (!next) {
            res->outcome = SMTP_TEMPORARY;
            snprintf(res->error, sizeof res->error, "out of memory");
            goto out;
        }
        list = next;
    }
    curl_easy_setopt(s->curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(s->curl, CURLOPT_MAIL_RCPT, list);
    long new_connections = 0;
    CURLcode rc = transfer(s, msg, msg_len, 0, &new_connections);
    if (rc != CURLE_OK && dead_reused_connection(s, rc, new_connections))
        rc = transfer(s, msg, msg_len, 1, &new_connections);
    const char *deciding = s->failure_line[0] ? s->failure_line : s->last_line;
    snprintf(res->reply, sizeof res->reply, "%s", deciding);
    res->code = reply_code(deciding);
    if (rc == CURLE_OK) {
        res->outcome = SMTP_SENT;
    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
        res->outcome = SMTP_ABORTED;
        snprintf(res->error, sizeof res->error, "smtp: abandoned by shutdown");
        cut_connection(s);
    } else {
        res->outcome = classify(rc, s->failure_line[0] ? res->code : 0);
        if (!s->failure_line[0]) {
            res->code = 0;
            res->reply[0] = '\0';
        }
        snprintf(res->error, sizeof res->error, "smtp: %s",
                 s->curl_err[0] ? s->curl_err : curl_easy_strerror(rc));
    }
out:
    curl_easy_setopt(s->curl, CURLOPT_MAIL_RCPT, NULL);
    curl_slist_free_all(list);
}
