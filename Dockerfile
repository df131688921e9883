# mailroom: mailroom-consumer (the default), the mailroom CLI and mailroom-webhook on
# Debian 12.
#
#   docker build -t mailroom:local .
#   docker run --rm mailroom:local --help
#   docker run --rm --entrypoint mailroom mailroom:local --help
#
# Two stages: "build" compiles with the -dev packages and installs into a staging
# tree; the final stage holds only the runtime libraries, the two programs and an
# unprivileged user. docker-compose.yml and deploy/README.md show how to run it.

# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        cmake gcc make libc6-dev pkg-config \
        libhiredis-dev libjson-c-dev libssl-dev libidn2-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps build trees, .git and deploy/secrets out of the context.
COPY . .

# Tests are not built here (no cmocka, no Redis); they run in CI (scripts/test).
RUN cmake -S . -B /build \
        -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX=/usr/local \
        -DMAILROOM_BUILD_TESTS=OFF -DBUILD_TESTING=OFF \
 && cmake --build /build --parallel "$(nproc)" \
 && DESTDIR=/staging cmake --install /build --strip \
 && /staging/usr/local/bin/mailroom-consumer --version \
 && /staging/usr/local/bin/mailroom --version \
 && /staging/usr/local/bin/mailroom-webhook --version

# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# Runtime libraries only: hiredis, json-c, OpenSSL (the SMTP engine's TLS), libidn2
# (IDN domains), libcurl (mailroom-webhook's HTTP client), and the CA certificates SMTP
# servers and the webhook's application are verified against.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libhiredis0.14 libjson-c5 libssl3 libidn2-0 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so that files mounted into the container (the keys file, a CA
# bundle) can be made readable to it on the host: chown 10001 or chgrp 10001.
RUN groupadd --system --gid 10001 mailroom \
 && useradd --system --uid 10001 --gid mailroom --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin mailroom

# The programs link libmailroom statically: the shared library is not needed here.
COPY --from=build /staging/usr/local/bin/mailroom-consumer /staging/usr/local/bin/mailroom \
     /staging/usr/local/bin/mailroom-webhook /usr/local/bin/

USER mailroom
# The consumer blocks SIGTERM and takes it with sigtimedwait(), so it shuts down
# cleanly as PID 1: it finishes the jobs in hand for up to --shutdown-timeout (30 s),
# returns the rest to the queue and exits 0. Give it longer than that to stop
# (docker stop -t 45, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailroom-consumer"]
