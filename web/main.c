/*
 * main.c — mailroom-web, the dashboard (docs/dashboard.md): a program of its own, so
 * that neither the CLI nor the consumer carries an HTTP server for it.
 *
 *     mailroom-web [--listen 127.0.0.1:8025] [--queue a,b] [--token-file FILE] ...
 *
 * main() reads the options and checks them against the security rules before anything
 * listens: a non-loopback address needs --allow-remote, and then a token, a public
 * origin, and reads behind the token too; the Redis URL given as an option must not
 * hold a password. Then it opens the queues, starts the server and the live feed, and
 * waits for SIGTERM or SIGINT (blocked in every thread, taken here with sigwait), after
 * which it ends the streams, stops the server and exits 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

/* The security rules on the options (see the top of this file). 0, or the exit
 * status with err filled. */
static int check_options(web_app *app, char err[WEB_ERR_MAX])
{
    web_options *o = &app->opt;
    if (o->redis_on_command_line && mailroom_url_has_password(o->redis)) {
        snprintf(err, WEB_ERR_MAX,
                 "--redis: a password on the command line is refused (ps "
                 "shows it): use MAILROOM_REDIS_URL or "
                 "MAILROOM_REDIS_PASSWORD_FILE");
        return WEB_EXIT_USAGE;
    }
    if (web_listen_parse(o->listen, &app->listen, err) != 0)
        return WEB_EXIT_USAGE;
    if (!app->listen.loopback && !o->allow_remote) {
        snprintf(err, WEB_ERR_MAX,
                 "--listen %.80s is not a loopback address: add --allow-remote "
                 "to serve the network",
                 o->listen);
        return WEB_EXIT_CONFIG;
    }
    if (!app->listen.loopback && (!o->token_file || !o->public_origin)) {
        snprintf(err, WEB_ERR_MAX, "--allow-remote needs --token-file and --public-origin");
        return WEB_EXIT_CONFIG;
    }
    if (!app->listen.loopback)
        o->private_reads = 1;
    if (o->private_reads && !o->token_file) {
        snprintf(err, WEB_ERR_MAX, "--private needs --token-file");
        return WEB_EXIT_CONFIG;
    }
    if (o->token_file && web_token_load(&app->token, o->token_file, err) != 0)
        return WEB_EXIT_CONFIG;
    return web_listen_names(&app->listen, o->public_origin, err) == 0 ? 0 : WEB_EXIT_CONFIG;
}

/* Blocks SIGTERM and SIGINT (inherited by every thread started later) and ignores
 * SIGPIPE (a browser that goes away mid-answer). */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Starts the server and the feed, then waits for a stop signal. */
static int serve(web_app *app, char err[WEB_ERR_MAX])
{
    sigset_t set;
    struct MHD_Daemon *d = NULL;
    int sig = 0;
    block_signals(&set);
    if (web_server_start(app, &d, err) != 0)
        return WEB_EXIT_UNAVAIL;
    if (web_listen_names(&app->listen, app->opt.public_origin, err) != 0 ||
        !(app->feed = web_feed_start(app))) {
        web_server_stop(d);
        snprintf(err, WEB_ERR_MAX, "cannot start the live feed");
        return WEB_EXIT_SOFTWARE;
    }
    web_log("info", "listening on http://%s/ (%zu queue%s; actions %s; reads %s)",
            app->listen.shown, app->n_queues, app->n_queues == 1 ? "" : "s",
            app->token.set ? "need the token" : "disabled (no --token-file)",
            app->opt.private_reads ? "need the token" : "open");
    while (sigwait(&set, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
        ;
    web_log("info", "signal %d: stopping", sig);
    web_feed_stop(app->feed);
    web_server_stop(d);
    web_feed_free(app->feed);
    app->feed = NULL;
    return WEB_EXIT_OK;
}

int main(int argc, char **argv)
{
    web_app app;
    char err[WEB_ERR_MAX] = "";
    int rc;
    memset(&app, 0, sizeof app);
    switch (web_options_parse(argc, argv, &app.opt, err)) {
    case WEB_PARSE_EXIT: return WEB_EXIT_OK;
    case WEB_PARSE_USAGE: rc = WEB_EXIT_USAGE; goto out;
    case WEB_PARSE_RUN: break;
    }
    app.redis_url = app.opt.redis_on_command_line ? app.opt.redis : NULL;
    if ((rc = check_options(&app, err)) != 0)
        goto out;
    if (web_queues_open(&app.queues, &app.n_queues, app.opt.queues, app.redis_url, err) != 0) {
        rc = WEB_EXIT_CONFIG;
        goto out;
    }
    rc = serve(&app, err);
out:
    web_queues_close(app.queues, app.n_queues);
    if (rc != WEB_EXIT_OK)
        fprintf(stderr, "mailroom-web: %s%s\n", err,
                rc == WEB_EXIT_USAGE ? " (try 'mailroom-web --help')" : "");
    return rc;
}
