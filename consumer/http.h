/*
 * http: the consumer's HTTP endpoint (--http [ADDR:]PORT, off by default), served by
 * libmicrohttpd on a thread of its own: we never write HTTP by hand, only the bodies.
 *
 *   /metrics  the Prometheus text format 0.0.4: this process's counters (metrics.c)
 *             and, for the queues it exports, the queue-level figures (exporter.c)
 *   /healthz  200 "ok" while the process answers at all (liveness)
 *   /readyz   200 "ready", or 503 "not ready: <why>" while Redis is not reachable
 *             (the housekeeper's last heartbeat is older than 5 s, or none succeeded
 *             yet), while every relay's circuit is open, or while stopping (readiness)
 *
 * GET and HEAD only. The address is loopback unless one is given: "9780" and ":9780"
 * mean 127.0.0.1:9780; "0.0.0.0:9780" or "[::]:9780" listen everywhere and must be
 * asked for. docs/operations.md describes the series and the probes.
 */
#ifndef MAILROOM_HTTP_H
#define MAILROOM_HTTP_H

#include <sys/socket.h>

#include "config.h"
#include "error.h"

typedef struct http_server http_server;

/*
 * Reads a --http value: PORT, :PORT, IPV4:PORT, [IPV6]:PORT or localhost:PORT, the
 * port 1 to 65535, addresses numeric. Fills *addr (when not NULL) with the socket
 * address. Returns 0, or -1 with err saying what is wrong.
 */
int http_listen_parse(const char *text, struct sockaddr_storage *addr, mr_error *err);

/*
 * Starts counting (metrics_init, with cfg's consumer id, queue and relay), the queue
 * exporter (on its own Redis connection) and the HTTP server on cfg->http. cfg is
 * borrowed and must outlive the server: /readyz reads its heartbeat time and stop
 * flag. Returns the server, or NULL with err (the address is taken, ...), nothing
 * left running.
 */
http_server *http_start(const consumer_config *cfg, mr_error *err);

/* Stops the server, then the exporter (giving up its leases), then the counting; call
 * after the workers have stopped. Accepts NULL. */
void http_stop(http_server *s);

#endif
