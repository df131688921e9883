<?php
/*
 * mailroom.php — a small mailroom producer for PHP (>= 8.1) with phpredis.
 *
 * It speaks wire format v1 (docs/protocol.md) exactly as libmailroom does: it builds
 * the job from an email, validates it (the rules of common/job.c, so a job this class
 * accepts is one the consumer accepts), signs the canonical form with HMAC, encodes it
 * as compact UTF-8 JSON and enqueues it with the same Lua ENQUEUE script as the C
 * producer (byte for byte, so EVALSHA finds the script whichever producer loaded it
 * first). That script writes the status record and pushes the job in one round trip,
 * and refuses an id that is already recorded: a caller-chosen id is an idempotency key.
 *
 *     require 'mailroom.php';
 *     $redis = Mailroom::connect();               // MAILROOM_REDIS_URL
 *     $mailroom = Mailroom::fromEnv($redis);      // MAILROOM_QUEUE, MAILROOM_KEYS_FILE
 *                                                 // or MAILROOM_SECRET
 *     $id = $mailroom->send([
 *         'to' => ['王小明 <ming@example.com>'], 'from' => 'noreply@example.com',
 *         'from_name' => '滴水网', 'subject' => '请激活您的账户',
 *         'text' => "https://example.com/activate?token=…\n",
 *     ], 'signup:42');                            // MailroomDuplicateException when sent before
 *
 * Run on its own it checks itself against the signing vectors:
 *
 *     php mailroom.php check-vectors [tests/vectors/signing.json] [--json]
 *
 * PHP pitfalls handled here: keys are sorted with ksort(SORT_STRING), which compares
 * bytes (the default flag compares numeric-looking keys as numbers), and PHP turns keys
 * such as "10" into integers, so they are cast back; strlen() counts bytes, as the
 * canonical form requires; an empty PHP array is both a list and a map, so empty
 * headers (and empty cc/bcc) are left out of the job; headers are encoded as a JSON
 * object and lists as JSON arrays whatever their PHP keys; a PCRE "$" also matches
 * before a final newline, so every pattern here ends in \z.
 *
 * Addresses may be international (docs/protocol.md 1.2): IDN domains (ming@例子.测试) and
 * UTF-8 local parts (用户@例子.测试) are checked by the consumer's rules (see "addresses"
 * below); IDN domains need PHP's intl extension (php-intl), without which they are
 * refused.
 */

declare(strict_types=1);

/** Every failure of this library. */
class MailroomException extends RuntimeException
{
}

/** The email, an argument or a setting is invalid; nothing was enqueued. */
class MailroomInvalidException extends MailroomException
{
}

/** A job with this id is already recorded (a double submission); nothing was enqueued. */
class MailroomDuplicateException extends MailroomException
{
}

final class Mailroom
{
    /** The text of lua_enqueue in common/script.c, byte for byte (same SHA1). */
    // build/lua/enqueue.lua, as the build generates it from common/lua/enqueue.lua
    public const ENQUEUE = <<<'LUA'
--[[
  enqueue: the producer's one round trip. Refuses an id whose record exists, writes
  the status record as queued and queues the raw job: onto pending, or into
  scheduled when it is due later.

  Input:
    KEYS job        mailroom:{Q}:job:<id>, the status record
    KEYS pending    mailroom:{Q}:pending
    KEYS scheduled  mailroom:{Q}:scheduled
    ARGV raw        the signed job
    ARGV now        RFC 3339 time of the call
    ARGV ttl        lifetime of the status record, seconds
    ARGV due        ms since the epoch to schedule the job at; '' to queue it now

  Output:
    1, or the error reply DUPLICATE when a record with this id exists
]]
-- generated: the job states
local S = {
  unknown = 'unknown',
  queued = 'queued',
  sending = 'sending',
  sent = 'sent',
  retrying = 'retrying',
  failed = 'failed',
  rejected = 'rejected',
  cancelled = 'cancelled',
}
-- generated: the keys and arguments named by the Input block
local job = KEYS[1]
local pending = KEYS[2]
local scheduled = KEYS[3]
local raw = ARGV[1]
local now = ARGV[2]
local ttl = ARGV[3]
local due = ARGV[4]
if redis.call('EXISTS', job) == 1 then
  return redis.error_reply('DUPLICATE a job with this id is already recorded')
end
redis.call('HSET', job, 'state', S.queued, 'attempts', '0', 'created_at', now,
  'updated_at', now)
redis.call('EXPIRE', job, ttl)
if due == '' then
  redis.call('LPUSH', pending, raw)
else
  redis.call('ZADD', scheduled, due, raw)
end
return 1
LUA . "\n";

    public const JOB_MAX_BYTES = 262144;
    public const DEFAULT_STATUS_TTL = 604800;   // 7 days, as the C producer
    public const ALGS = ['hmac-sha1' => 'sha1', 'hmac-sha256' => 'sha256'];

    private const ID_RE = '/^[A-Za-z0-9._:-]{1,128}\z/';
    private const QUEUE_RE = '/^[A-Za-z0-9._:-]{1,64}\z/';
    private const KID_RE = '/^[A-Za-z0-9._-]{1,64}\z/';
    private const MIN_SECRET = 16;
    private const MAX_RCPT = 100;
    private const MAX_HEADERS = 32;
    private const ATEXT = "A-Za-z0-9!#$%&'*+\\/=?^_`{|}~-";
    private const RFC3339_RE =
        '/^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\z/';

    /** The members an email passed to send() may have, in the order the job carries them. */
    private const EMAIL_MEMBERS = ['to', 'cc', 'bcc', 'from', 'from_name', 'reply_to',
        'subject', 'text', 'html', 'headers', 'send_at', 'expires_at'];

    /** Lifetime of a job's status record, in seconds (a duplicate is refused meanwhile). */
    public int $statusTtl = self::DEFAULT_STATUS_TTL;

    private string $prefix;

    public function __construct(
        private Redis $redis,
        string $queue,
        private string $kid,
        #[\SensitiveParameter] private string $secret,
        private string $alg = 'hmac-sha1'
    ) {
        if (!preg_match(self::QUEUE_RE, $queue)) {
            throw new MailroomInvalidException('queue name must match [A-Za-z0-9._:-]{1,64}');
        }
        if (!preg_match(self::KID_RE, $kid)) {
            throw new MailroomInvalidException('kid must match [A-Za-z0-9._-]{1,64}');
        }
        if (strlen($secret) < self::MIN_SECRET) {
            throw new MailroomInvalidException("key '$kid' is shorter than " . self::MIN_SECRET . ' bytes');
        }
        if (!isset(self::ALGS[$alg])) {
            throw new MailroomInvalidException('alg must be hmac-sha1 or hmac-sha256');
        }
        $this->prefix = 'mailroom:{' . $queue . '}:';
    }

    /** Keeps the secret out of var_dump() and print_r(). */
    public function __debugInfo(): array
    {
        return ['queue key prefix' => $this->prefix, 'kid' => $this->kid, 'alg' => $this->alg,
                'secret' => '(hidden)', 'statusTtl' => $this->statusTtl];
    }

    // ------------------------------------------------------------------ configuration

    /**
     * A phpredis connection for a redis://[user:pass@]host[:port][/db] URL (default
     * MAILROOM_REDIS_URL, else redis://127.0.0.1:6379/0), with timeouts in seconds.
     */
    public static function connect(?string $url = null, float $timeout = 1.0): Redis
    {
        $url ??= (string)getenv('MAILROOM_REDIS_URL');
        if ($url === '') {
            $url = 'redis://127.0.0.1:6379/0';
        }
        $u = parse_url($url);
        if ($u === false || ($u['scheme'] ?? '') !== 'redis' || !isset($u['host'])) {
            throw new MailroomInvalidException('Redis URL must look like redis://[user:pass@]host:port/db');
        }
        $host = trim($u['host'], '[]');
        $port = $u['port'] ?? 6379;
        $db = ltrim($u['path'] ?? '', '/');
        if ($db !== '' && !ctype_digit($db)) {
            throw new MailroomInvalidException('Redis URL: database must be a number');
        }
        $redis = new Redis();
        try {
            if (!$redis->connect($host, $port, $timeout)) {
                throw new MailroomException("cannot connect to Redis at $host:$port");
            }
            $redis->setOption(Redis::OPT_READ_TIMEOUT, $timeout);
            if (isset($u['pass'])) {
                $pass = rawurldecode($u['pass']);
                $auth = isset($u['user']) && $u['user'] !== ''
                    ? [rawurldecode($u['user']), $pass] : $pass;
                if (!$redis->auth($auth)) {
                    throw new MailroomException('Redis AUTH refused');
                }
            } elseif (isset($u['user']) && $u['user'] !== '') {
                // redis://secret@host: a password alone, as the C producer reads it
                if (!$redis->auth(rawurldecode($u['user']))) {
                    throw new MailroomException('Redis AUTH refused');
                }
            }
            if ($db !== '' && $db !== '0' && !$redis->select((int)$db)) {
                throw new MailroomException("Redis SELECT $db refused");
            }
        } catch (RedisException $e) {
            throw new MailroomException("cannot connect to Redis at $host:$port: " . $e->getMessage(), 0, $e);
        }
        return $redis;
    }

    /**
     * The signing key from the environment, as the C producer finds it: the first
     * "kid secret" line of MAILROOM_KEYS_FILE, else MAILROOM_SECRET with kid "default".
     *
     * @return array{0: string, 1: string} [kid, secret]
     */
    public static function keyFromEnv(): array
    {
        $file = (string)getenv('MAILROOM_KEYS_FILE');
        if ($file !== '') {
            $lines = @file($file, FILE_IGNORE_NEW_LINES);
            if ($lines === false) {
                throw new MailroomInvalidException("cannot open keys file $file");
            }
            foreach ($lines as $n => $line) {
                $line = trim($line, " \t\r\n");
                if ($line === '' || $line[0] === '#') {
                    continue;
                }
                $parts = preg_split('/[ \t]+/', $line, 2);
                if (count($parts) !== 2) {
                    throw new MailroomInvalidException('keys file line ' . ($n + 1) . ': expected "kid secret"');
                }
                return [$parts[0], $parts[1]];
            }
            throw new MailroomInvalidException("keys file $file holds no key");
        }
        $secret = (string)getenv('MAILROOM_SECRET');
        if ($secret === '') {
            throw new MailroomInvalidException('no signing key: set MAILROOM_SECRET or MAILROOM_KEYS_FILE');
        }
        return ['default', $secret];
    }

    /** A producer configured from MAILROOM_QUEUE and the key in the environment. */
    public static function fromEnv(Redis $redis, string $alg = 'hmac-sha1'): self
    {
        $queue = (string)getenv('MAILROOM_QUEUE');
        [$kid, $secret] = self::keyFromEnv();
        return new self($redis, $queue !== '' ? $queue : 'default', $kid, $secret, $alg);
    }

    // ------------------------------------------------------------------ signing

    private static function str(string $s): string
    {
        return strlen($s) . ':' . $s;
    }

    private static function leaf(mixed $v, string $where): string
    {
        if (!is_string($v)) {
            throw new MailroomInvalidException("$where: " . get_debug_type($v) . ' where only a string is allowed');
        }
        return 's' . self::str($v);
    }

    /**
     * The canonical form of a job (docs/protocol.md 2), the top-level "sig" left out:
     * members in bytewise key order, each str(key) value; a string is "s" str, a list
     * "a" count ":" values, a map (or stdClass) "o" count ":" str(key) value ...
     */
    public static function canonical(array $obj): string
    {
        unset($obj['sig']);
        ksort($obj, SORT_STRING);
        $out = '';
        foreach ($obj as $k => $v) {
            $k = (string)$k;
            $out .= self::str($k);
            if (is_string($v)) {
                $out .= self::leaf($v, "member '$k'");
            } elseif (is_array($v) && array_is_list($v)) {       // to, cc, bcc
                $out .= 'a' . count($v) . ':';
                foreach ($v as $s) {
                    $out .= self::leaf($s, "member '$k'");
                }
            } elseif (is_array($v) || $v instanceof stdClass) {  // headers
                $v = (array)$v;
                ksort($v, SORT_STRING);
                $out .= 'o' . count($v) . ':';
                foreach ($v as $name => $s) {
                    $out .= self::str((string)$name) . self::leaf($s, "member '$k'");
                }
            } else {
                throw new MailroomInvalidException("member '$k': " . get_debug_type($v)
                    . ' is not allowed (strings, arrays of strings, objects of strings only)');
            }
        }
        return $out;
    }

    /** Lowercase hex HMAC(alg, secret, canonical(job)). */
    public static function signature(array $job, #[\SensitiveParameter] string $secret,
                                     string $alg = 'hmac-sha1'): string
    {
        if (!isset(self::ALGS[$alg])) {
            throw new MailroomInvalidException('alg must be hmac-sha1 or hmac-sha256');
        }
        return hash_hmac(self::ALGS[$alg], self::canonical($job), $secret);
    }

    /** The job with this producer's kid and alg set and "sig" computed over the result. */
    public function sign(array $job): array
    {
        unset($job['sig']);
        $job['kid'] = $this->kid;
        $job['alg'] = $this->alg;
        $job['sig'] = self::signature($job, $this->secret, $this->alg);
        return $job;
    }

    // ------------------------------------------------------------------ sending

    /**
     * Validates, signs and enqueues an email; returns the job id ($id, or a new ULID).
     *
     * $email: to (a mailbox or a list), from, subject and text are required; cc, bcc,
     * from_name, reply_to, html, headers (name => value: List-Unsubscribe,
     * List-Unsubscribe-Post, List-Id, X-*), send_at and expires_at (DateTimeInterface,
     * Unix time or RFC 3339 string) are optional. Mailboxes are "addr@example.com" or
     * "Display Name <addr@example.com>". $queue sends it to another queue than the
     * constructor's (a lane: "reset" for a password reset, "receipts" for a receipt).
     *
     * @throws MailroomInvalidException   the email is invalid (nothing enqueued)
     * @throws MailroomDuplicateException a job with this id is already recorded
     * @throws MailroomException          Redis failed
     */
    public function send(array $email, ?string $id = null, ?string $queue = null): string
    {
        $now = new DateTimeImmutable('now', new DateTimeZone('UTC'));
        $nowMs = (int)$now->format('Uv');
        if ($id !== null && !preg_match(self::ID_RE, $id)) {
            throw new MailroomInvalidException('id must match [A-Za-z0-9._:-]{1,128}');
        }
        if ($queue !== null && !preg_match(self::QUEUE_RE, $queue)) {
            throw new MailroomInvalidException('queue name must match [A-Za-z0-9._:-]{1,64}');
        }
        $prefix = $queue === null ? $this->prefix : 'mailroom:{' . $queue . '}:';
        $job = $this->buildJob($email, $id ?? self::ulid($nowMs), $now->format('Y-m-d\TH:i:s\Z'));
        $due = '';                                   // '' = now, else send_at in ms
        if (isset($job['send_at'])) {
            $at = (int)(new DateTimeImmutable($job['send_at']))->format('U') * 1000;
            if ($at > $nowMs) {
                $due = (string)$at;
            }
        }
        $job = $this->sign($job);
        $wire = $job;
        if (isset($wire['headers'])) {
            $wire['headers'] = (object)$wire['headers'];     // a JSON object, never []
        }
        try {
            $raw = json_encode($wire, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        } catch (JsonException $e) {
            throw new MailroomInvalidException('cannot encode the job: ' . $e->getMessage(), 0, $e);
        }
        if (strlen($raw) > self::JOB_MAX_BYTES) {
            throw new MailroomInvalidException('job is ' . strlen($raw) . ' bytes, over the limit of '
                . self::JOB_MAX_BYTES);
        }
        $this->enqueue($prefix, $job['id'], $raw, $now->format('Y-m-d\TH:i:s.v\Z'), $due);
        return $job['id'];
    }

    /** Checks an email exactly as send() would, without a key or Redis. */
    public function validate(array $email): void
    {
        $this->buildJob($email, self::ulid(), gmdate('Y-m-d\TH:i:s\Z'));
    }

    /**
     * A job's status record (state, attempts, smtp_code, smtp_reply, error, created_at,
     * updated_at, consumer), or null when there is none.
     */
    public function status(string $id): ?array
    {
        if (!preg_match(self::ID_RE, $id)) {
            throw new MailroomInvalidException('id must match [A-Za-z0-9._:-]{1,128}');
        }
        try {
            $h = $this->redis->hGetAll($this->prefix . 'job:' . $id);
        } catch (RedisException $e) {
            throw new MailroomException('status: Redis: ' . $e->getMessage(), 0, $e);
        }
        if (!is_array($h)) {
            throw new MailroomException('status: Redis: ' . (string)$this->redis->getLastError());
        }
        return $h === [] ? null : $h;
    }

    /** A ULID: 48-bit milliseconds, 80 random bits, 26 characters of Crockford base32. */
    public static function ulid(?int $ms = null): string
    {
        $ms ??= (int)floor(microtime(true) * 1000);
        $bytes = substr(pack('J', $ms), 2) . random_bytes(10);   // 16 bytes, big endian
        $alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
        $out = '';
        for ($c = 0; $c < 26; $c++) {
            // 26 characters hold 130 bits: character c starts at bit 5c - 2 of the value
            $v = 0;
            for ($k = 0, $bit = 5 * $c - 2; $k < 5; $k++, $bit++) {
                $v <<= 1;
                if ($bit >= 0) {
                    $v |= (ord($bytes[$bit >> 3]) >> (7 - ($bit & 7))) & 1;
                }
            }
            $out .= $alphabet[$v];
        }
        return $out;
    }

    /** Runs ENQUEUE: EVALSHA, and EVAL when Redis does not have the script yet. */
    private function enqueue(string $prefix, string $id, string $raw, string $nowIso,
                             string $due): void
    {
        // phpredis would prefix the KEYS and serialize or compress the ARGV of EVAL:
        // the key names and the raw job must reach Redis exactly as written here.
        if ((string)$this->redis->getOption(Redis::OPT_PREFIX) !== ''
            || $this->redis->getOption(Redis::OPT_SERIALIZER) !== Redis::SERIALIZER_NONE
            || (defined('Redis::OPT_COMPRESSION')
                && $this->redis->getOption(Redis::OPT_COMPRESSION) !== Redis::COMPRESSION_NONE)) {
            throw new MailroomInvalidException(
                'use a Redis connection without OPT_PREFIX, OPT_SERIALIZER or OPT_COMPRESSION');
        }
        $args = [$prefix . 'job:' . $id, $prefix . 'pending', $prefix . 'scheduled',
                 $raw, $nowIso, (string)$this->statusTtl, $due];
        $reply = $this->run('evalSha', sha1(self::ENQUEUE), $args);
        if ($reply === 'NOSCRIPT') {
            $reply = $this->run('eval', self::ENQUEUE, $args);
        }
        if ($reply === 'DUPLICATE') {
            throw new MailroomDuplicateException("a job with id '$id' is already recorded");
        }
        if ($reply !== 1) {
            throw new MailroomException('enqueue: unexpected reply from Redis: ' . var_export($reply, true));
        }
    }

    /**
     * One EVAL/EVALSHA. phpredis reports an error reply either by returning false (for
     * ERR and NOSCRIPT) or by throwing (for others, such as DUPLICATE); both end here.
     * Returns the reply, or 'NOSCRIPT' / 'DUPLICATE'.
     */
    private function run(string $verb, string $script, array $args): mixed
    {
        $this->redis->clearLastError();
        try {
            $reply = $this->redis->{$verb}($script, $args, 3);
            $error = $reply === false ? (string)$this->redis->getLastError() : '';
        } catch (RedisException $e) {
            $error = $e->getMessage();
            if (!preg_match('/^(NOSCRIPT|DUPLICATE)\b/', $error)) {
                throw new MailroomException('enqueue: Redis: ' . $error, 0, $e);
            }
        }
        foreach (['NOSCRIPT', 'DUPLICATE'] as $known) {
            if (str_starts_with($error, $known)) {
                return $known;
            }
        }
        if ($error !== '') {
            throw new MailroomException('enqueue refused by Redis: ' . $error);
        }
        return $reply;
    }

    // ------------------------------------------------------------------ validation

    /** The unsigned job for an email, validated; members in the C producer's order. */
    private function buildJob(array $email, string $id, string $createdAt): array
    {
        foreach ($email as $k => $_) {
            if (!in_array($k, self::EMAIL_MEMBERS, true)) {
                throw new MailroomInvalidException(in_array($k, ['v', 'id', 'created_at', 'kid', 'alg', 'sig'], true)
                    ? "member '$k' is set by the producer (pass an id as send()'s second argument)"
                    : "unknown member '$k'");
            }
        }
        $job = ['v' => '1', 'id' => $id];
        $rcpt = 0;
        foreach (['to', 'cc', 'bcc'] as $k) {
            $list = $email[$k] ?? [];
            $list = is_string($list) ? [$list] : $list;
            if (!is_array($list)) {
                throw new MailroomInvalidException("member '$k' must be a mailbox or a list of mailboxes");
            }
            $list = array_values($list);                 // a JSON array whatever the keys
            foreach ($list as $i => $mb) {
                if (++$rcpt > self::MAX_RCPT) {
                    throw new MailroomInvalidException('more than ' . self::MAX_RCPT . ' recipients');
                }
                self::checkText($mb, $k, false, 254 + 256 + 8);
                self::checkMailbox($mb, "member '$k' item $i");
            }
            if ($list !== []) {
                $job[$k] = $list;
            }
        }
        if (!isset($job['to'])) {
            throw new MailroomInvalidException("member 'to' must hold at least one address");
        }
        $plain = ['from' => 254, 'from_name' => 256, 'reply_to' => 254 + 256 + 8, 'subject' => 2000,
                  'text' => self::JOB_MAX_BYTES, 'html' => self::JOB_MAX_BYTES];
        foreach ($plain as $k => $max) {
            if (isset($email[$k])) {
                self::checkText($email[$k], $k, $k === 'text' || $k === 'html', $max);
                $job[$k] = $email[$k];
            } elseif (in_array($k, ['from', 'subject', 'text'], true)) {
                throw new MailroomInvalidException("missing member '$k'");
            }
        }
        try {
            self::envelopeAddress($job['from']);
        } catch (MailroomInvalidException $e) {
            throw new MailroomInvalidException("member 'from' is not a well-formed address: "
                . $e->getMessage(), 0, $e);
        }
        if (isset($job['reply_to'])) {
            self::checkMailbox($job['reply_to'], "member 'reply_to'");
        }
        $headers = $email['headers'] ?? [];
        if ($headers instanceof stdClass) {
            $headers = (array)$headers;
        }
        if (!is_array($headers) || ($headers !== [] && array_is_list($headers))) {
            throw new MailroomInvalidException("member 'headers' must be a map of name => value");
        }
        if (count($headers) > self::MAX_HEADERS) {
            throw new MailroomInvalidException('more than ' . self::MAX_HEADERS . ' headers');
        }
        foreach ($headers as $name => $value) {
            if (!self::headerAllowed((string)$name)) {
                throw new MailroomInvalidException("header '$name' is not allowed (List-Unsubscribe, "
                    . 'List-Unsubscribe-Post, List-Id, X-*)');
            }
            self::checkText($value, (string)$name, false, 998);
        }
        if ($headers !== []) {
            $job['headers'] = $headers;                  // empty headers: no member at all
        }
        $job['created_at'] = $createdAt;
        foreach (['send_at', 'expires_at'] as $k) {
            if (isset($email[$k])) {
                $job[$k] = self::time($email[$k], $k);
            }
        }
        return $job;
    }

    /** A string of valid UTF-8 without NUL, at most $max bytes; control characters
     *  only where $multiline (bodies). */
    private static function checkText(mixed $s, string $what, bool $multiline, int $max): void
    {
        if (!is_string($s)) {
            throw new MailroomInvalidException("member '$what' must be a string");
        }
        if (strlen($s) > $max) {
            throw new MailroomInvalidException("member '$what' is " . strlen($s) . " bytes, over the limit of $max");
        }
        if (!preg_match('//u', $s)) {
            throw new MailroomInvalidException("member '$what' is not valid UTF-8");
        }
        if (str_contains($s, "\0")) {
            throw new MailroomInvalidException("member '$what' contains a NUL character");
        }
        if (!$multiline && preg_match('/[\x00-\x1F\x7F]/', $s)) {
            throw new MailroomInvalidException("member '$what' contains a control character (CR, LF, ...)");
        }
    }

    // ------------------------------------------------------------------ addresses
    //
    // The rules of common/address.c, one for one (docs/protocol.md 1.1), so that an
    // address this class accepts is one the consumer accepts: a dot-atom local part of
    // ASCII atext and UTF-8 (no C1 controls), at most 64 octets, never normalised; a
    // domain of two or more labels, each an ASCII host name label kept as written or an
    // internationalised label converted to its A-label; at most 254 octets as given and
    // as A-labels. The C side converts with libidn2 (IDNA2008, UTS #46 non-transitional
    // mapping); here ICU's UTS #46 (intl's idn_to_ascii) does the mapping, and the
    // IDNA2008 checks ICU leaves out are made below as libidn2 2.3 makes them: code
    // points disallowed by RFC 5892 (symbols, punctuation: ICU lets them through), the
    // Unicode versions of libidn2's tables, and its bidi rule (RFC 5893 rules 1-3, 5, 6;
    // not 4). tests/integration/test_intl_addresses.py checks the two give the same
    // answers. Without the intl extension, internationalised domains are refused.

    /** An ASCII host name label: 1..63 letters, digits and inner hyphens. */
    private const LDH_LABEL_RE = '/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\z/';
    /** The Unicode versions of libidn2 2.3's tables (Debian 12): its UTS #46 mapping
     *  knows Unicode 14.0, its IDNA2008 code point properties Unicode 12.1. */
    private const IDNA_MAPPING_UNICODE = [14, 0];
    private const IDNA_TABLES_UNICODE = [12, 1];
    private const IDNA_FLAGS = IDNA_NONTRANSITIONAL_TO_ASCII | IDNA_CHECK_CONTEXTJ;

    /**
     * The envelope form of an address: the local part unchanged, the domain as A-labels
     * ("ming@例子.测试" gives "ming@xn--fsqu00a.xn--0zwm56d").
     *
     * @throws MailroomInvalidException naming what is wrong
     */
    public static function envelopeAddress(string $s): string
    {
        $len = strlen($s);
        if ($len === 0) {
            throw new MailroomInvalidException('empty address');
        }
        if ($len > 254) {
            throw new MailroomInvalidException("address is $len octets, over the limit of 254");
        }
        if (preg_match('/[\x00-\x1F\x7F]/', $s)) {
            throw new MailroomInvalidException('control character (CR, LF, NUL, ...) in address');
        }
        if (!preg_match('//u', $s)) {
            throw new MailroomInvalidException('address is not valid UTF-8');
        }
        $at = strpos($s, '@');
        if ($at === false) {
            throw new MailroomInvalidException("no '@' in address (expected local@domain.tld)");
        }
        if (strpos($s, '@', $at + 1) !== false) {
            throw new MailroomInvalidException("more than one '@' in address");
        }
        $local = substr($s, 0, $at);
        self::checkLocal($local);
        $envelope = $local . '@' . self::domainEnvelope(substr($s, $at + 1));
        if (strlen($envelope) > 254) {
            throw new MailroomInvalidException('address is ' . strlen($envelope) . ' octets on the '
                . 'envelope (the domain as A-labels), over the limit of 254');
        }
        return $envelope;
    }

    /** 1 when the address is acceptable (see envelopeAddress()). */
    public static function addressValid(string $s): bool
    {
        try {
            self::envelopeAddress($s);
            return true;
        } catch (MailroomInvalidException) {
            return false;
        }
    }

    /** A dot-atom of ASCII atext and non-ASCII UTF-8 other than U+0080..U+009F. */
    private static function checkLocal(string $local): void
    {
        if ($local === '') {
            throw new MailroomInvalidException('empty local part (expected local@domain.tld)');
        }
        if ($local[0] === '"') {
            throw new MailroomInvalidException('quoted local parts are not accepted');
        }
        if (strlen($local) > 64) {
            throw new MailroomInvalidException('local part is ' . strlen($local) . ' octets, over the limit of 64');
        }
        if ($local[0] === '.' || str_ends_with($local, '.')) {
            throw new MailroomInvalidException("local part starts or ends with '.'");
        }
        if (str_contains($local, '..')) {
            throw new MailroomInvalidException("'..' in local part");
        }
        if (preg_match('/[\x{80}-\x{9F}]/u', $local)) {
            throw new MailroomInvalidException('C1 control character in local part');
        }
        if (preg_match('/[^\x80-\xFF.' . self::ATEXT . ']/', $local, $m)) {
            throw new MailroomInvalidException("'{$m[0]}' in local part (an unquoted local part is "
                . 'RFC 5322 atext, dots and UTF-8)');
        }
    }

    /** The domain as A-labels: two or more labels, at most 253 octets. */
    private static function domainEnvelope(string $domain): string
    {
        if ($domain !== '' && $domain[0] === '[') {
            throw new MailroomInvalidException('domain literals ([...]) are not accepted');
        }
        $labels = array_map([self::class, 'labelEnvelope'], explode('.', $domain));
        $out = implode('.', $labels);
        if (strlen($out) > 253) {
            throw new MailroomInvalidException('domain is over 253 octets as A-labels');
        }
        if (count($labels) < 2) {
            throw new MailroomInvalidException('the domain needs two or more labels (expected local@domain.tld)');
        }
        return $out;
    }

    /** One label: a host name label as written, anything else through idnLabel(). */
    private static function labelEnvelope(string $label): string
    {
        if ($label === '') {
            throw new MailroomInvalidException('empty label in the domain');
        }
        if (strncasecmp($label, 'xn--', 4) === 0 || preg_match('/[\x80-\xFF]/', $label)) {
            return self::idnLabel($label);
        }
        if (!preg_match(self::LDH_LABEL_RE, $label)) {
            throw new MailroomInvalidException("domain label '$label' is not a host name label "
                . '(letters, digits, inner hyphens, at most 63)');
        }
        return $label;
    }

    /** An internationalised label (non-ASCII, or an A-label) to its A-label. */
    private static function idnLabel(string $label): string
    {
        if (!function_exists('idn_to_ascii')) {
            throw new MailroomInvalidException("domain label '$label': international domain names "
                . "need PHP's intl extension (php-intl)");
        }
        $refused = "domain label '$label' refused by IDNA2008: ";
        foreach (self::codePoints($label) as $cp) {
            if (self::unicodeAge($cp) > self::IDNA_MAPPING_UNICODE) {
                throw new MailroomInvalidException($refused
                    . sprintf('U+%04X is newer than Unicode 14.0', $cp));
            }
        }
        $ace = idn_to_ascii($label, self::IDNA_FLAGS, INTL_IDNA_VARIANT_UTS46, $info);
        if ($ace === false) {
            throw new MailroomInvalidException($refused . self::idnaErrors($info['errors'] ?? 0));
        }
        if (strncmp($ace, 'xn--', 4) === 0) {
            $u = idn_to_utf8($ace, self::IDNA_FLAGS, INTL_IDNA_VARIANT_UTS46, $info);
            if ($u === false) {
                throw new MailroomInvalidException($refused . self::idnaErrors($info['errors'] ?? 0));
            }
            $cps = self::codePoints($u);
            foreach ($cps as $cp) {
                if (!self::idna2008Allowed($cp)) {
                    throw new MailroomInvalidException($refused
                        . sprintf('U+%04X is not allowed in a domain name', $cp));
                }
            }
            if (!self::bidiAllowed($cps)) {
                throw new MailroomInvalidException($refused . 'forbidden bi-directional properties');
            }
        }
        if (!preg_match(self::LDH_LABEL_RE, $ace)) {
            throw new MailroomInvalidException("domain label '$label' maps to '$ace', not a host name "
                . 'label (letters, digits, inner hyphens, at most 63)');
        }
        return $ace;
    }

    /** @return int[] the code points of a valid UTF-8 string */
    private static function codePoints(string $s): array
    {
        return array_map([IntlChar::class, 'ord'], preg_split('//u', $s, -1, PREG_SPLIT_NO_EMPTY));
    }

    /** @return array{0: int, 1: int} the Unicode version a code point was assigned in */
    private static function unicodeAge(int $cp): array
    {
        $age = IntlChar::charAge($cp);
        return [$age[0], $age[1]];
    }

    /** What ICU's UIDNA_ERROR_* bits say, in words. */
    private static function idnaErrors(int $bits): string
    {
        static $names = [0x1 => 'empty label', 0x2 => 'label longer than 63', 0x8 => 'leading hyphen',
            0x10 => 'trailing hyphen', 0x20 => "'--' in the third and fourth positions",
            0x40 => 'leading combining mark', 0x80 => 'disallowed character',
            0x100 => 'invalid punycode', 0x200 => 'label separator inside a label',
            0x400 => 'invalid A-label', 0x800 => 'forbidden bi-directional properties',
            0x1000 => 'forbidden context-j character'];
        $why = [];
        foreach ($names as $bit => $name) {
            if ($bits & $bit) {
                $why[] = $name;
            }
        }
        return $why ? implode(', ', $why) : sprintf('error 0x%x', $bits);
    }

    /**
     * A code point of a U-label that IDNA2008 (RFC 5892, with libidn2's Unicode 12.1
     * tables) allows in lookups: PVALID, CONTEXTJ or CONTEXTO. The derivation of RFC 5892
     * section 3, in its order, from ICU's properties.
     */
    private static function idna2008Allowed(int $cp): bool
    {
        static $exceptionsValid = [0xDF, 0x3C2, 0x6FD, 0x6FE, 0xF0B, 0x3007,   // PVALID
            0xB7, 0x375, 0x5F3, 0x5F4, 0x30FB];                                  // CONTEXTO
        static $exceptionsDisallowed = [0x640, 0x7FA, 0x302E, 0x302F, 0x3031, 0x3032, 0x3033,
            0x3034, 0x3035, 0x303B];
        static $letterDigits = [IntlChar::CHAR_CATEGORY_LOWERCASE_LETTER,
            IntlChar::CHAR_CATEGORY_UPPERCASE_LETTER, IntlChar::CHAR_CATEGORY_OTHER_LETTER,
            IntlChar::CHAR_CATEGORY_DECIMAL_DIGIT_NUMBER, IntlChar::CHAR_CATEGORY_MODIFIER_LETTER,
            IntlChar::CHAR_CATEGORY_NON_SPACING_MARK, IntlChar::CHAR_CATEGORY_COMBINING_SPACING_MARK];
        static $oldHangul = [IntlChar::HST_LEADING_JAMO, IntlChar::HST_VOWEL_JAMO,
            IntlChar::HST_TRAILING_JAMO];
        if (in_array($cp, $exceptionsValid, true) || ($cp >= 0x660 && $cp <= 0x669)
            || ($cp >= 0x6F0 && $cp <= 0x6F9)) {
            return true;
        }
        if (in_array($cp, $exceptionsDisallowed, true)
            || self::unicodeAge($cp) > self::IDNA_TABLES_UNICODE
            || IntlChar::charType($cp) === IntlChar::CHAR_CATEGORY_UNASSIGNED) {
            return false;
        }
        if (($cp >= 0x61 && $cp <= 0x7A) || ($cp >= 0x30 && $cp <= 0x39) || $cp === 0x2D
            || $cp === 0x200C || $cp === 0x200D) {
            return true;                                 // LDH, and the CONTEXTJ joiners
        }
        $c = IntlChar::chr($cp);
        return Normalizer::normalize($c, Normalizer::FORM_KC_CF) === $c      // stable
            && !IntlChar::hasBinaryProperty($cp, IntlChar::PROPERTY_DEFAULT_IGNORABLE_CODE_POINT)
            && !IntlChar::hasBinaryProperty($cp, IntlChar::PROPERTY_WHITE_SPACE)
            && !IntlChar::hasBinaryProperty($cp, IntlChar::PROPERTY_NONCHARACTER_CODE_POINT)
            && !($cp >= 0x20D0 && $cp <= 0x20FF) && !($cp >= 0x1D100 && $cp <= 0x1D24F)
            && !in_array(IntlChar::getIntPropertyValue($cp, IntlChar::PROPERTY_HANGUL_SYLLABLE_TYPE),
                $oldHangul, true)
            && in_array(IntlChar::charType($cp), $letterDigits, true);
    }

    /**
     * The bidi rule as libidn2 2.3 applies it to a label holding an R, AL or AN code
     * point: it starts with L (then only L, EN, NSM and the neutrals ES, CS, ET, ON, BN,
     * ending on one of the first three) or with R or AL (then R, AL, EN, AN, NSM and the
     * same neutrals, ending on one of the first five).
     *
     * @param int[] $cps
     */
    private static function bidiAllowed(array $cps): bool
    {
        $dir = array_map([IntlChar::class, 'charDirection'], $cps);
        $rtl = [IntlChar::CHAR_DIRECTION_RIGHT_TO_LEFT, IntlChar::CHAR_DIRECTION_RIGHT_TO_LEFT_ARABIC];
        if (!array_intersect($dir, [...$rtl, IntlChar::CHAR_DIRECTION_ARABIC_NUMBER])) {
            return true;
        }
        $numbers = [IntlChar::CHAR_DIRECTION_EUROPEAN_NUMBER, IntlChar::CHAR_DIRECTION_DIR_NON_SPACING_MARK];
        if ($dir[0] === IntlChar::CHAR_DIRECTION_LEFT_TO_RIGHT) {
            $ends = [IntlChar::CHAR_DIRECTION_LEFT_TO_RIGHT, ...$numbers];
        } elseif (in_array($dir[0], $rtl, true)) {
            $ends = [...$rtl, IntlChar::CHAR_DIRECTION_ARABIC_NUMBER, ...$numbers];
        } else {
            return false;
        }
        $neutral = [IntlChar::CHAR_DIRECTION_EUROPEAN_NUMBER_SEPARATOR,
            IntlChar::CHAR_DIRECTION_COMMON_NUMBER_SEPARATOR,
            IntlChar::CHAR_DIRECTION_EUROPEAN_NUMBER_TERMINATOR,
            IntlChar::CHAR_DIRECTION_OTHER_NEUTRAL, IntlChar::CHAR_DIRECTION_BOUNDARY_NEUTRAL];
        $endOk = true;
        foreach (array_slice($dir, 1) as $d) {
            if (in_array($d, $ends, true)) {
                $endOk = true;
            } elseif (in_array($d, $neutral, true)) {
                $endOk = false;
            } else {
                return false;
            }
        }
        return $endOk;
    }

    /**
     * "addr@example.com" or "Display Name <addr@example.com>" (the name may be quoted),
     * parsed as common/address.c's addr_parse() does.
     */
    private static function checkMailbox(string $mb, string $where): void
    {
        $mb = trim($mb, " \t");
        $spec = $mb;
        if (str_ends_with($mb, '>')) {
            $lt = strrpos($mb, '<');
            if ($lt === false) {
                throw new MailroomInvalidException("$where: '>' without '<' in address");
            }
            $name = trim(substr($mb, 0, $lt), " \t");
            if (strpbrk($name, '<>') !== false) {
                throw new MailroomInvalidException("$where: '<' or '>' in display name");
            }
            self::checkName($name, $where);
            $spec = substr($mb, $lt + 1, -1);
        }
        try {
            self::envelopeAddress($spec);
        } catch (MailroomInvalidException $e) {
            throw new MailroomInvalidException("$where: malformed address: " . $e->getMessage(), 0, $e);
        }
    }

    /** A display name: quoted ("..." with \x for x) or not (then without '"'), at most
     *  256 bytes once unquoted, valid UTF-8 without control characters. */
    private static function checkName(string $name, string $where): void
    {
        $len = strlen($name);
        if ($len >= 2 && $name[0] === '"' && $name[$len - 1] === '"') {
            $out = '';
            for ($i = 1; $i + 1 < $len; $i++) {
                $c = $name[$i];
                if ($c === '\\' && $i + 2 < $len) {
                    $c = $name[++$i];
                } elseif ($c === '"') {
                    throw new MailroomInvalidException("$where: unescaped quote in display name");
                }
                $out .= $c;
            }
            $name = $out;
        } elseif (str_contains($name, '"')) {
            throw new MailroomInvalidException("$where: quote inside unquoted display name");
        }
        if (strlen($name) > 256) {
            throw new MailroomInvalidException("$where: display name too long");
        }
        if (!preg_match('//u', $name) || preg_match('/[\x00-\x1F\x7F]/', $name)) {
            throw new MailroomInvalidException("$where: display name has control characters or "
                . 'invalid UTF-8');
        }
    }

    private static function headerAllowed(string $name): bool
    {
        if (in_array(strtolower($name), ['list-unsubscribe', 'list-unsubscribe-post', 'list-id'], true)) {
            return true;
        }
        return (bool)preg_match('/^X-[A-Za-z0-9-]{1,74}\z/i', $name)
            && stripos($name, 'X-Mailroom-') !== 0;
    }

    /** A time as the job carries it: RFC 3339 UTC, whole seconds. */
    private static function time(mixed $t, string $what): string
    {
        if (is_int($t)) {
            $t = (new DateTimeImmutable('@' . $t));
        } elseif (is_string($t)) {
            if (!preg_match(self::RFC3339_RE, $t)) {
                throw new MailroomInvalidException("member '$what' is not an RFC 3339 timestamp");
            }
            $t = new DateTimeImmutable($t);
        } elseif (!$t instanceof DateTimeInterface) {
            throw new MailroomInvalidException("member '$what' must be a DateTimeInterface, a Unix time or a string");
        }
        return $t->setTimezone(new DateTimeZone('UTC'))->format('Y-m-d\TH:i:s\Z');
    }
}

/*
 * Script mode: php mailroom.php check-vectors [FILE] [--json]. Recomputes the canonical
 * form and signature of every vector; prints "ok"/"FAIL" lines (exit 1 on a failure),
 * or with --json the computed values for another program to compare:
 * {"vectors": [{"name", "canonical_hex", "sig"}], "canonical_only": [{"name", "canonical_hex"}]}.
 */
function mailroom_check_vectors(array $args): int
{
    $json = in_array('--json', $args, true);
    $files = array_values(array_filter($args, fn ($a) => $a !== '--json'));
    $file = $files[0] ?? __DIR__ . '/../../tests/vectors/signing.json';
    $text = @file_get_contents($file);
    if ($text === false) {
        fwrite(STDERR, "cannot read $file\n");
        return 2;
    }
    // objects stay stdClass: {} must not turn into [] (an empty list)
    $doc = json_decode($text, false, 512, JSON_THROW_ON_ERROR);
    $out = ['vectors' => [], 'canonical_only' => []];
    $failed = 0;
    foreach ($doc->vectors as $v) {
        $job = (array)$v->job;
        $canonical = Mailroom::canonical($job);
        if (class_exists('Redis')) {     // the producer's own path: sign() sets kid and alg
            $sig = (new Mailroom(new Redis(), 'default', $job['kid'], $v->key, $v->alg))->sign($job)['sig'];
        } else {
            $sig = Mailroom::signature($job, $v->key, $v->alg);
        }
        $out['vectors'][] = ['name' => $v->name, 'canonical_hex' => bin2hex($canonical), 'sig' => $sig];
        $ok = $canonical === $v->canonical && $sig === $v->sig;
        $failed += $ok ? 0 : 1;
        if (!$json) {
            echo ($ok ? 'ok   ' : 'FAIL '), $v->name,
                 $canonical === $v->canonical ? '' : ' (canonical form differs)',
                 $sig === $v->sig ? '' : ' (signature differs)', "\n";
        }
    }
    foreach ($doc->canonical_only as $v) {
        $canonical = Mailroom::canonical((array)$v->object);
        $out['canonical_only'][] = ['name' => $v->name, 'canonical_hex' => bin2hex($canonical)];
        $ok = $canonical === $v->canonical;
        $failed += $ok ? 0 : 1;
        if (!$json) {
            echo ($ok ? 'ok   ' : 'FAIL '), $v->name, $ok ? '' : ' (canonical form differs)', "\n";
        }
    }
    if ($json) {
        echo json_encode($out, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR), "\n";
    } else {
        $n = count($doc->vectors) + count($doc->canonical_only);
        echo $failed ? "$failed of $n vectors FAILED\n" : "all $n vectors reproduced\n";
    }
    return $failed ? 1 : 0;
}

// only when this file is the script php runs (not when included, nor under php -r)
if (PHP_SAPI === 'cli' && ($_SERVER['SCRIPT_FILENAME'] ?? '') !== ''
    && realpath($_SERVER['SCRIPT_FILENAME']) === __FILE__) {
    $args = array_slice($argv, 1);
    if (($args[0] ?? '') !== 'check-vectors') {
        fwrite(STDERR, "usage: php mailroom.php check-vectors [FILE] [--json]\n"
            . "(include this file from your application to send mail)\n");
        exit(2);
    }
    exit(mailroom_check_vectors(array_slice($args, 1)));
}
