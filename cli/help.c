/*
 * help.c — the help texts of the `mailroom` command: the general help (commands,
 * global options, exit statuses) and one text per command, printed on stdout by
 * `mailroom --help`, `mailroom COMMAND --help` and `mailroom help [COMMAND]`. The exit
 * statuses listed here are exit.c's table and cli.h's enum, seen from the user's side.
 */
#include "cli.h"

static const char usage_main[] =
    "Usage: mailroom [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Send transactional email asynchronously through a Redis queue.\n"
    "\n"
    "Commands:\n"
    "  send          enqueue an email (or a JSON-lines file of them) and print the job\n"
    "                id; --wait waits for the outcome\n"
    "  status ID     print a job's status record as one line of JSON\n"
    "  watch         print status events as they happen, or from the events\n"
    "                stream (--from ID, --group NAME)\n"
    "  stats         queue lengths, paused, latency, consumers, relays, counters,\n"
    "                sent and failed per minute\n"
    "  consumers     consumers with heartbeat age, alive or silent, jobs held, sessions\n"
    "  top           a live view of queues, consumers and relays (--once: one frame)\n"
    "  list [KIND]   jobs waiting: pending (default), scheduled or retrying; filter\n"
    "                by --to ADDR or --domain DOMAIN, page with --limit and --cursor\n"
    "  cancel ID     a queued or retrying job becomes cancelled: never sent\n"
    "  retry-now ID  a scheduled job (a retry) goes to the head of the queue\n"
    "  pause         consumers stop taking jobs from the queue\n"
    "  resume        consumers take jobs from the queue again\n"
    "  dead list     show dead letters (failed and rejected jobs), newest first\n"
    "  dead retry    put dead jobs back into the queue (ID or --all)\n"
    "  dead purge    delete dead letters (all, or --older-than DURATION)\n"
    "  suppress      the suppression list: list, add ADDR, remove ADDR, check ADDR\n"
    "  help [CMD]    show this help, or the help of CMD\n"
    "\n"
    "Global options (before or after COMMAND):\n"
    "  --redis URL        Redis URL, redis://[user@]host:port/db or\n"
    "                     redis-sentinel://host:port[,host:port...]/master[/db]\n"
    "                     (default: $MAILROOM_REDIS_URL, which may carry user:pass@,\n"
    "                     else redis://127.0.0.1:6379/0; a password never on the\n"
    "                     command line: MAILROOM_REDIS_PASSWORD_FILE)\n"
    "  --queue NAME       queue name (default: $MAILROOM_QUEUE, else \"default\")\n"
    "  --keys-file PATH   signing keys file, lines \"kid secret\"; the first key signs\n"
    "                     (default: $MAILROOM_KEYS_FILE, else the secret in\n"
    "                     $MAILROOM_SECRET with kid \"default\"). Secrets are never\n"
    "                     accepted on the command line. Only send uses a key.\n"
    "  -h, --help         show help (also: mailroom COMMAND --help)\n"
    "  --version          print the version\n"
    "\n"
    "Exit status:\n"
    "   0  success\n"
    "   1  not found: status, cancel or retry-now of an unknown job; dead retry ID\n"
    "      matched no entry; suppress check or remove of an address not suppressed\n"
    "   2  send --wait: the job ended failed, rejected or cancelled\n"
    "   3  cancel, retry-now: the job's state does not allow it (the message names\n"
    "      the state)\n"
    "  64  usage error: unknown or misplaced option, missing or conflicting options\n"
    "  65  invalid email or input data (rejected by validation, too big, NUL byte,\n"
    "      a bad line of send --jsonl: then nothing is enqueued)\n"
    "  66  an input file cannot be read\n"
    "  69  Redis unreachable, timed out, or answered with an error\n"
    "  70  internal error (out of memory)\n"
    "  73  a job with that --id already exists (send --jsonl: some line's id did)\n"
    "  74  the result could not be written to stdout\n"
    "  75  send --wait: the job was not final before the timeout (it stays queued)\n"
    "  78  configuration: no usable signing key, bad keys file, Redis URL or queue\n";

static const char usage_send[] =
    "Usage: mailroom send --to ADDR [--to ADDR]... [--cc ADDR]... [--bcc ADDR]...\n"
    "                     --from ADDR [--from-name NAME] [--reply-to ADDR]\n"
    "                     --subject TEXT (--text TEXT | --text-file FILE)\n"
    "                     [--html-file FILE] [--header 'Name: value']...\n"
    "                     [--id ID] [--send-at TIME] [--expires-at TIME]\n"
    "                     [--wait [SECONDS]]\n"
    "       mailroom send --jsonl FILE|-\n"
    "\n"
    "Validate, sign and enqueue one email; print its job id on stdout.\n"
    "\n"
    "  --to, --cc, --bcc ADDR  recipient, \"addr@example.com\" or \"Name <addr@...>\";\n"
    "                          repeat for more (at least one --to)\n"
    "  --from ADDR             sender address (bare address)\n"
    "  --from-name NAME        sender display name\n"
    "  --reply-to ADDR         Reply-To mailbox\n"
    "  --subject TEXT          subject (may be empty)\n"
    "  --text TEXT             plain-text body\n"
    "  --text-file FILE        read the plain-text body from FILE ('-': stdin)\n"
    "  --html-file FILE        read an HTML alternative from FILE ('-': stdin)\n"
    "                          (files: UTF-8, at most 256 KiB, no NUL bytes)\n"
    "  --header 'Name: value'  extra header: List-Unsubscribe, List-Unsubscribe-Post,\n"
    "                          List-Id or X-*; repeatable\n"
    "  --id ID                 idempotency key, [A-Za-z0-9._:-]{1,128}; a second send\n"
    "                          with the same id is refused (exit 73)\n"
    "  --send-at TIME          do not send before TIME (RFC 3339, e.g.\n"
    "                          2026-11-24T13:00:00Z)\n"
    "  --expires-at TIME       give up after TIME (RFC 3339)\n"
    "  --wait [SECONDS]        after printing the id, wait up to SECONDS (default 30;\n"
    "                          also --wait=SECONDS) for the outcome and print the\n"
    "                          status record as JSON. Exits 0 when sent, 2 when failed,\n"
    "                          rejected or cancelled (\"mailroom: ID STATE: ERROR\" on\n"
    "                          stderr),\n"
    "                          75 when not final in time.\n"
    "\n"
    "  --jsonl FILE|-          enqueue many emails: one JSON object per line, members\n"
    "                          to, cc, bcc (arrays of strings), from, from_name,\n"
    "                          reply_to, subject, text, html (strings), headers\n"
    "                          (object of strings), id, send_at, expires_at (RFC 3339\n"
    "                          strings); blank lines are skipped; at most 1 GiB in\n"
    "                          all. Every line is checked first: if any is bad, each\n"
    "                          bad line is named (\"mailroom: line N: ...\") and\n"
    "                          nothing is enqueued (exit 65). Otherwise all are\n"
    "                          enqueued in pipelined batches and their ids printed\n"
    "                          one per line in input order; progress and a summary\n"
    "                          go to stderr. A line whose id is already recorded is\n"
    "                          named and skipped (exit 73 after the rest). If Redis\n"
    "                          fails midway, the ids printed are exactly the lines\n"
    "                          enqueued (exit 69).\n"
    "\n"
    "Global options (--redis, --queue, --keys-file): see mailroom --help.\n";

static const char usage_status[] =
    "Usage: mailroom status ID [--json]\n"
    "\n"
    "Print the status record of job ID as one line of JSON:\n"
    "  {\"id\":..,\"queue\":..,\"state\":..,\"attempts\":N,\"smtp_code\":N|null,\n"
    "   \"smtp_reply\":..,\"error\":..,\"consumer\":..,\"created_at\":..,\"updated_at\":..}\n"
    "state is one of queued, sending, sent, retrying, failed, rejected, cancelled.\n"
    "Exits 1 when there is no record for ID (never sent, or expired).\n"
    "\n"
    "  --json   JSON output (the default and only format; accepted for compatibility)\n"
    "\n"
    "Global options (--redis, --queue): see mailroom --help. status needs no signing\n"
    "key and reads none (--keys-file is accepted and ignored).\n";

static const char usage_watch[] =
    "Usage: mailroom watch [--json] [--count N] [--timeout DURATION]\n"
    "       mailroom watch --from ID|0|$ [--json] [--count N] [--timeout DURATION]\n"
    "       mailroom watch --group NAME [--consumer NAME] [--from ID|0|$] [--json] ...\n"
    "\n"
    "Print status events, one line each: time, state, job id, attempt, then the error\n"
    "or the SMTP reply. On a terminal states are coloured (sent green, retrying\n"
    "yellow, failed and rejected red; NO_COLOR turns that off). Runs until SIGINT or\n"
    "SIGTERM (exit 0).\n"
    "\n"
    "Without --from or --group: the live events of the queue's status channel, from\n"
    "now on. With them: the queue's events stream (mailroom:{Q}:events, the last\n"
    "100 000 or so events), which lets a reader resume; each line then starts with\n"
    "the event's stream id (--json: a \"stream_id\" member after the event's own).\n"
    "\n"
    "  --json               print each event's JSON exactly as published\n"
    "  --count N            exit 0 after N events\n"
    "  --timeout DURATION   exit 0 after DURATION without an event (30s, 5m, ...;\n"
    "                       a plain number is seconds)\n"
    "  --from ID|0|$        read the stream: after the entry ID (the stream id last\n"
    "                       printed, to resume), from the oldest event kept (0), or\n"
    "                       only new events ($). With --group: where the group\n"
    "                       starts when it does not exist yet (default $)\n"
    "  --group NAME         read the stream as a reader of consumer group NAME, which\n"
    "                       Redis keeps the position of: each event is acknowledged\n"
    "                       once printed; events given to this reader and not\n"
    "                       acknowledged (it was stopped in between) come again first\n"
    "  --consumer NAME      this reader's name in the group (default: the host name);\n"
    "                       readers of one group share its events\n"
    "\n"
    "Events trimmed from the stream before they were read are announced on stderr\n"
    "(\"mailroom: warning: events before ID were trimmed ...\"; --json: \"trimmed\":true on\n"
    "the next event). Names: [A-Za-z0-9._:-]{1,64}.\n"
    "Exits 69 when Redis cannot be reached or the subscription is lost.\n";

static const char usage_stats[] =
    "Usage: mailroom stats [--json]\n"
    "\n"
    "Show the queue at a glance: whether it is paused, pending jobs and how long the\n"
    "job taken next has waited (from its created_at, or its send_at when later: the\n"
    "latency to watch), scheduled jobs (and how many are due), jobs each consumer\n"
    "holds, dead letters, consumers with their heartbeat age and SMTP sessions, the\n"
    "relays every queue shares (circuit, rate, sessions, throttles, failures), the\n"
    "counters (sent, retried, failed, rejected, recovered, cancelled) and mails sent\n"
    "and failed (or rejected) per minute (sliding estimates over the last minute).\n"
    "\n"
    "  --json   one JSON object: {\"pending\":N,\"scheduled\":N,\"scheduled_due\":N,\n"
    "           \"dead\":N,\"processing\":{CONSUMER:N,..},\"consumers\":[{\"id\":..,\n"
    "           \"heartbeat_age_ms\":N,\"processing\":N},..],\"counters\":{..},\n"
    "           \"sent_per_min\":X,\"failed_per_min\":X,\"paused\":BOOL,\n"
    "           \"paused_at\":TIME|null,\"oldest_pending_age_ms\":N,\"relays\":[{\n"
    "           \"name\",\"circuit\",\"failures\",\"last_error\",\"opened_at\",\n"
    "           \"probe_at\",\"prober\",\"rate\",\"rate_max\",\"throttles\",\n"
    "           \"throttled_at\",\"sessions\",\"last_used_at\"},..]} (times RFC 3339\n"
    "           or null; rates in messages per second, 0 for no limit)\n";

static const char usage_consumers[] =
    "Usage: mailroom consumers [--json] [--dead-after DURATION]\n"
    "\n"
    "List the consumers of the queue: id, state, heartbeat age and the jobs each one\n"
    "holds. A consumer is alive when its last heartbeat is at most DURATION old\n"
    "(default 30s), else silent; one that holds jobs without any heartbeat is listed\n"
    "as unregistered. Ages are measured with the Redis server's clock.\n"
    "\n"
    "With what each consumer says of itself (every second, in its info hash): SMTP\n"
    "sessions open of its concurrency, host and pid, the queues it serves, its relays\n"
    "and its version.\n"
    "\n"
    "  --json                 one JSON object per line: {\"id\":..,\n"
    "                         \"heartbeat_age_ms\":N|null,\"alive\":true|false,\n"
    "                         \"state\":\"alive\"|\"silent\"|\"unregistered\",\n"
    "                         \"processing\":N,\"host\",\"pid\",\"version\",\n"
    "                         \"started_at\",\"queues\",\"relays\",\"concurrency\",\n"
    "                         \"sessions\"} (the last eight null without an info hash)\n"
    "  --dead-after DURATION  silent after this long without a heartbeat\n";

static const char usage_dead[] =
    "Usage: mailroom dead list [--limit N] [--json]\n"
    "       mailroom dead retry (ID | --all) [--json]\n"
    "       mailroom dead purge [--older-than DURATION] [--json]\n"
    "\n"
    "Dead letters are the jobs that ended failed or rejected, with their reason.\n"
    "\n"
    "  list    the newest N entries (default 20): a table of time, state, job id and\n"
    "          reason, or with --json each entry as stored, one per line:\n"
    "          {\"reason\",\"at\",\"consumer\",\"job\",\"id\",\"state\"}\n"
    "  retry   atomically removes the entries of job ID (or every entry with --all),\n"
    "          puts their jobs back at the head of the queue (taken next) and resets\n"
    "          their status records to queued with no attempts. Prints how many went\n"
    "          back; exits 1 when no entry has that ID. Entries without an id (a job\n"
    "          too broken to read one) only go back with --all.\n"
    "  purge   deletes every entry, or with --older-than DURATION (30s, 15m, 12h, 7d)\n"
    "          those older than that. Prints how many went.\n"
    "\n"
    "  --json  retry and purge print {\"retried\":N} or {\"purged\":N}\n";

static const char usage_list[] =
    "Usage: mailroom list [pending|scheduled|retrying] [--to ADDR | --domain DOMAIN]\n"
    "                     [--limit N] [--cursor C] [--json]\n"
    "\n"
    "List the jobs waiting in the queue: pending (the default) in the order consumers\n"
    "take them, the job taken next first; scheduled (retries, and jobs waiting for\n"
    "their send_at) soonest due first; retrying, those scheduled jobs whose record\n"
    "says retrying. Each line: id, state and attempts (from the status record), the\n"
    "job's created_at (pending) or due time (scheduled), its first recipient (+ how\n"
    "many more) and subject, then the record's last error when there is one. Strings\n"
    "from the queue are printed with control characters masked.\n"
    "\n"
    "  --to ADDR        only jobs with this recipient (to, cc or bcc); any case, the\n"
    "                   domain in Unicode or ASCII (xn--) form\n"
    "  --domain DOMAIN  only jobs with a recipient at this domain\n"
    "  --limit N        at most N jobs (default 20)\n"
    "  --cursor C       go on where a previous listing stopped (it prints\n"
    "                   \"more: --cursor C\"); a pending walk goes on after the last\n"
    "                   job it showed, or from the job taken next when that one was\n"
    "                   taken meanwhile: it may show a job twice, never skips one\n"
    "  --json           one JSON object: {\"queue\",\"kind\",\"total\",\"jobs\":[{\"id\",\n"
    "                   \"recipients\":[..],\"state\",\"attempts\",\"error\",\"subject\",\n"
    "                   \"created_at\",\"send_at\",\"due_at\",\"bytes\",\"readable\"},..],\n"
    "                   \"next_cursor\":C|null} (\"total\": entries in the list or set)\n";

static const char usage_cancel[] =
    "Usage: mailroom cancel ID [--json]\n"
    "\n"
    "Cancel job ID: a job whose status record says queued or retrying becomes\n"
    "cancelled and is never sent. Its copy is removed from pending or scheduled; a\n"
    "copy a consumer has taken but not begun is dropped by that consumer before\n"
    "sending. Counted (counter \"cancelled\"), with a status event (state cancelled).\n"
    "Exits 1 when there is no record for ID, 3 when the job is sending or already\n"
    "final (sent, failed, rejected, cancelled): the message names its state.\n"
    "\n"
    "  --json   print {\"id\",\"cancelled\":true,\"removed_from\":\"pending\"|\n"
    "           \"scheduled\"|null}\n";

static const char usage_retry_now[] =
    "Usage: mailroom retry-now ID [--json]\n"
    "\n"
    "Move job ID from scheduled to the head of pending, where it is taken next: a\n"
    "retrying job waiting for its next attempt, or a queued one whose send_at has\n"
    "come. Its record keeps its state and attempts; a status event (state queued)\n"
    "says it moved. Exits 1 when there is no record for ID, 3 when the job is not\n"
    "waiting in scheduled (pending, sending, final) or waits for a send_at still to\n"
    "come (its producer signed that time: it is never sent earlier).\n"
    "\n"
    "  --json   print {\"id\",\"moved\":true}\n";

static const char usage_pause[] =
    "Usage: mailroom pause [--json]\n"
    "       mailroom resume [--json]\n"
    "\n"
    "pause: consumers stop taking jobs from the queue (--queue, or MAILROOM_QUEUE);\n"
    "jobs wait in pending and scheduled, jobs already taken are finished. The key\n"
    "mailroom:{Q}:paused holds when it was paused; stats, top and the dashboard show\n"
    "it. resume: consumers take jobs again. Each announces a status event (state\n"
    "paused or resumed) when it changes something; doing it twice is no error.\n"
    "\n"
    "  --json   print {\"queue\",\"paused\":BOOL,\"changed\":BOOL}\n";

static const char usage_top[] =
    "Usage: mailroom top [--queue NAME[,NAME...]] [--once]\n"
    "\n"
    "A live view, refreshed every second: for each queue its state (running or\n"
    "PAUSED), pending, scheduled, processing and dead jobs, the age of the oldest\n"
    "pending job, and sent and failed per minute; the consumers (each once: id,\n"
    "state, heartbeat age, jobs held, sessions, host, queues); the relays (circuit,\n"
    "rate now / configured, sessions, throttles, failures, last error). q or Ctrl-C\n"
    "quits and gives the terminal back. A Redis failure is shown and retried.\n"
    "\n"
    "  --queue A,B,C   the queues to show (default: $MAILROOM_QUEUE, else \"default\")\n"
    "  --once          print one frame, plain text, and exit (69 when Redis fails);\n"
    "                  without it, top needs a terminal on stdout (else exit 64)\n";

static const char usage_suppress[] =
    "Usage: mailroom suppress list [--limit N] [--cursor C] [--json]\n"
    "       mailroom suppress add ADDR [--for DURATION] [--reason TEXT] [--json]\n"
    "       mailroom suppress remove ADDR [--json]\n"
    "       mailroom suppress check ADDR [--json]\n"
    "\n"
    "The suppression list, shared by every queue: recipients consumers skip because a\n"
    "relay refused them for good (a 5xx with a permanent address status) or an\n"
    "operator added them. Addresses match in any case, the domain in Unicode or\n"
    "ASCII (xn--) form. An entry lapses after its duration.\n"
    "\n"
    "  list     the entries lasting longest first (default 20; --cursor C goes on):\n"
    "           address, until when, who added it, the SMTP code, the reason\n"
    "  add      put ADDR on the list (replacing its entry) for DURATION (default\n"
    "           30d), with --reason TEXT (default \"added by an operator\")\n"
    "  remove   take ADDR off the list; exits 1 when it was not on it\n"
    "  check    print ADDR's entry; exits 1 when it is not suppressed\n"
    "\n"
    "  --json   list prints {\"total\",\"entries\":[..],\"next_cursor\":C|null}; add and\n"
    "           check print the entry {\"address\",\"reason\",\"code\",\"at\",\"queue\",\n"
    "           \"id\",\"source\",\"expires_at\"}; remove prints {\"address\",\n"
    "           \"removed\":true}\n";

static const char usage_help[] =
    "Usage: mailroom help [COMMAND]\n"
    "\n"
    "Show the general help, or the help of COMMAND (send, status, watch, stats,\n"
    "consumers, top, list, cancel, retry-now, pause, resume, dead, suppress, help).\n";

/* The help text of a command (top-level help for none). */
static const char *usage_for(enum command cmd)
{
    switch (cmd) {
    case CMD_SEND: return usage_send;
    case CMD_STATUS: return usage_status;
    case CMD_HELP: return usage_help;
    case CMD_WATCH: return usage_watch;
    case CMD_STATS: return usage_stats;
    case CMD_CONSUMERS: return usage_consumers;
    case CMD_DEAD: return usage_dead;
    case CMD_LIST: return usage_list;
    case CMD_CANCEL: return usage_cancel;
    case CMD_RETRY_NOW: return usage_retry_now;
    case CMD_PAUSE:
    case CMD_RESUME: return usage_pause;
    case CMD_TOP: return usage_top;
    case CMD_SUPPRESS: return usage_suppress;
    case CMD_NONE:
    default: return usage_main;
    }
}

/* `help [CMD]` and `--help`: picks the text to print (see cli.h). */
const char *help_text(const struct cli *c, struct failure *f, int *rc)
{
    *rc = EXIT_OK;
    if (c->cmd != CMD_HELP)
        return usage_for(c->cmd);
    if (c->operands.n > 2) {
        *rc = fail(f, EXIT_USAGE, "help: unexpected argument '%.64s'", c->operands.v[2]);
        return NULL;
    }
    if (c->operands.n < 2)
        return usage_main;
    enum command about = command_from_name(c->operands.v[1]);
    if (about == CMD_NONE) {
        *rc = fail(f, EXIT_USAGE, "help: unknown command '%.64s'", c->operands.v[1]);
        return NULL;
    }
    return usage_for(about);
}
