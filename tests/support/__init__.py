"""mailroom's test support: every server, process and helper that the integration tests,
the chaos test, the demo (scripts/demo.py) and the benchmarks (bench/py) start or use.

Each module has one concern:

    paths          where the repository, the binaries and the examples are
    procs          spawn and reap children (process groups, atexit kill of leftovers),
                   free ports, wait_for, running a program, /proc readings
    redis_server   a private redis-server (plain, AOF, replica), restartable; clients
                   and pub/sub subscriptions read on a thread
    sentinel       a Sentinel cluster: master, replica and sentinels
    smtp_sink      Postfix's smtp-sink (error modes, dumps, counters), restartable
    smtp_receiver  aiosmtpd receivers: the recorder, STARTTLS/implicit TLS with AUTH
    pki            a throw-away CA and server certificates made with openssl
    consumer       the mailroom-consumer process and the binaries' environment
    webhook        the mailroom-webhook process, and an HTTP receiver checking its
                   signed deliveries
    php_server     PHP's built-in web server (the example's callback page)
    state          mailroom's keys in Redis, the dead list, counters, status events
    jobs           making, signing and enqueueing v1 jobs by hand
    messages       reading the messages a receiver got
    libmailroom    the ctypes binding of libmailroom and its return codes
    case           ServerTestCase, the base of the integration suites
    list_cases     prints every Python test case for ctest (tests/python.cmake)

A script puts tests/ on sys.path and imports the modules it needs:

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/
    from support.redis_server import RedisServer

    with RedisServer() as redis, Receiver() as rx:
        env = mailroom_env(redis, secret=SECRET, smtp=rx)
        with Consumer(env, "--id", "c1") as consumer:
            rc, out, err = run_cli("send", "--to", "a@example.com", ..., env=env)
            rx.wait_for_count(1, timeout=10)
            assert consumer.stop() == 0

Everything listens on free 127.0.0.1 ports only and cleans up after itself. Only the
Python standard library, Debian's python3-redis and python3-aiosmtpd are used (run with
/usr/bin/python3); the modules the benchmarks use (paths, procs, redis_server, smtp_sink,
consumer, state) need no aiosmtpd.
"""
