/* deliver: see deliver.h. */
#define _POSIX_C_SOURCE 200809L
#include "deliver.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "mailroom_admin.h"
#include "mailroom_version.h"

#define ANSWER_KEPT 160 /* bytes of a failed answer's body kept for the error */
#define HEADER_MAX 512

struct deliverer {
    const webhook_config *cfg; /* borrowed */
    CURL *curl;                /* owned, reused: keep-alive connections */
};

/* The start of the answer's body, for the error of a failed delivery. */
typedef struct answer {
    char text[ANSWER_KEPT + 1];
    size_t len;
} answer;

/* curl's write callback: keeps the first ANSWER_KEPT bytes, takes (and drops) all. */
static size_t keep_answer(char *data, size_t size, size_t n, void *user)
{
    answer *a = user;
    size_t bytes = size * n, room = ANSWER_KEPT - a->len;
    size_t take = bytes < room ? bytes : room;
    memcpy(a->text + a->len, data, take);
    a->len += take;
    a->text[a->len] = '\0';
    return bytes;
}

deliverer *deliverer_new(const webhook_config *cfg)
{
    deliverer *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cfg = cfg;
    if (!(d->curl = curl_easy_init())) {
        free(d);
        return NULL;
    }
    return d;
}

void deliverer_free(deliverer *d)
{
    if (!d)
        return;
    curl_easy_cleanup(d->curl);
    free(d);
}

/* Appends "name: value" to the header list; NULL (the list freed) when memory ran out. */
static struct curl_slist *header(struct curl_slist *list, const char *name, const char *value)
{
    char line[HEADER_MAX];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *more = curl_slist_append(list, line);
    if (!more)
        curl_slist_free_all(list);
    return more;
}

/* "v1=<hex>" for every secret, comma separated, over ts "." body. 0 or -1. */
static int signatures(const webhook_config *cfg, long long ts, const char *body, size_t len,
                      buf *out)
{
    for (int i = 0; i < cfg->n_secrets; i++) {
        char sig[MAILROOM_WEBHOOK_SIG_MAX];
        if (mailroom_webhook_sign(cfg->secrets[i], cfg->secret_len[i], ts, body, len, sig) !=
                MAILROOM_OK ||
            (i && buf_putc(out, ',') != 0) || buf_puts(out, sig) != 0)
            return -1;
    }
    return 0;
}

/* The request's headers: signed now. NULL when memory ran out. */
static struct curl_slist *request_headers(const webhook_config *cfg, const char *body, size_t len,
                                          const char *delivery_id, int attempt)
{
    long long ts = (long long)time(NULL);
    char ts_text[24], attempt_text[16];
    buf sig = BUF_INIT;
    struct curl_slist *h = NULL;
    snprintf(ts_text, sizeof ts_text, "%lld", ts);
    snprintf(attempt_text, sizeof attempt_text, "%d", attempt);
    if (signatures(cfg, ts, body, len, &sig) == 0 &&
        (h = header(NULL, "Content-Type", "application/json")) &&
        (h = header(h, "User-Agent", "mailroom-webhook/" MAILROOM_VERSION_STRING)) &&
        (h = header(h, "Expect", "")) && (h = header(h, "X-Mailroom-Timestamp", ts_text)) &&
        (h = header(h, "X-Mailroom-Signature", sig.data)) &&
        (h = header(h, "X-Mailroom-Delivery", delivery_id)))
        h = header(h, "X-Mailroom-Attempt", attempt_text);
    buf_free(&sig);
    return h;
}

/* Sets the options of one request on d's handle. 0, or -1 when curl refused one. */
static int request_setup(deliverer *d, const char *body, size_t len, struct curl_slist *headers,
                         answer *a, char errbuf[CURL_ERROR_SIZE])
{
    const webhook_config *cfg = d->cfg;
    CURL *c = d->curl;
    curl_easy_reset(c);
    int ok =
        curl_easy_setopt(c, CURLOPT_URL, cfg->o.url) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->o.timeout) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->o.connect_timeout) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_answer) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_WRITEDATA, a) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
    if (ok && cfg->o.ca_file)
        ok = curl_easy_setopt(c, CURLOPT_CAINFO, cfg->o.ca_file) == CURLE_OK;
    return ok ? 0 : -1;
}

/* Fills out's error from a finished request: curl's failure or the HTTP status and
 * the start of the answer (made printable). */
static void describe(CURLcode cc, const char *errbuf, const answer *a, delivery_result *out)
{
    if (cc != CURLE_OK) {
        mr_text_printf(out->error, sizeof out->error, "%s",
                       errbuf[0] ? errbuf : curl_easy_strerror(cc));
        return;
    }
    if (out->status >= 200 && out->status < 300) {
        out->error[0] = '\0';
        return;
    }
    mr_text_printf(out->error, sizeof out->error, "HTTP %ld%s%.*s", out->status, a->len ? ": " : "",
                   (int)a->len, a->text);
}

int deliver_post(deliverer *d, const char *body, size_t len, const char *delivery_id, int attempt,
                 delivery_result *out)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    answer a = {"", 0};
    memset(out, 0, sizeof *out);
    struct curl_slist *headers = request_headers(d->cfg, body, len, delivery_id, attempt);
    if (!headers || request_setup(d, body, len, headers, &a, errbuf) != 0) {
        snprintf(out->error, sizeof out->error, "%s", "could not set up the request");
        curl_slist_free_all(headers);
        return -1;
    }
    int64_t t0 = clock_mono_ms();
    CURLcode cc = curl_easy_perform(d->curl);
    out->duration_ms = clock_mono_ms() - t0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &out->status);
    describe(cc, errbuf, &a, out);
    curl_slist_free_all(headers);
    return cc == CURLE_OK && out->status >= 200 && out->status < 300;
}
