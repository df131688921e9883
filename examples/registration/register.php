<?php
/*
 * register.php — the registration step of a PHP web application, as a command:
 *
 *     php register.php EMAIL NAME
 *
 * It does what the POST /register handler of a web app does: check the input, store
 * the new user with an activation token, and send the activation email through
 * mailroom (mailroom.php next to this file). Sending costs one Redis round trip; the
 * SMTP work happens later in a mailroom-consumer, so the request never waits on it.
 *
 * The job id is chosen by the application: "signup:" plus the (lowercased) address
 * with every byte outside [a-z0-9.-] written as _XX. The id is an idempotency key: if
 * the form is submitted twice, or the request is retried after a timeout, the second
 * send is refused as a duplicate and exactly one mail goes out. For that to be right
 * the user record is created only once (SET NX), and a repeated registration reuses the
 * stored token, so the link in the one mail that was sent stays valid.
 *
 * Users live in the same Redis as JSON strings under example:user:<email>, and
 * example:signup:<job id> names the user of a job, for callback.php, which records the
 * activation mail's outcome that mailroom-webhook reports (show_user.php shows it). Settings
 * come from the environment, as for every mailroom program: MAILROOM_REDIS_URL,
 * MAILROOM_QUEUE, and the signing key from MAILROOM_KEYS_FILE (first line) or
 * MAILROOM_SECRET — never from the command line.
 *
 * Exit status: 0 activation mail queued, 3 already queued before (a double
 * submission; nothing sent), 2 bad usage or invalid input, 1 any other failure.
 */

declare(strict_types=1);

require __DIR__ . '/mailroom.php';

const EXIT_QUEUED = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_DUPLICATE = 3;

const MAIL_FROM = 'noreply@example.com';
const MAIL_FROM_NAME = '滴水网';
const ACTIVATE_URL = 'https://example.com/activate?token=';
const LINK_VALID_SECONDS = 24 * 3600;

/** "signup:" plus the address, each byte outside [a-z0-9.-] as _XX (a SHA-256 when too long). */
function signup_id(string $email): string
{
    $safe = preg_replace_callback('/[^a-z0-9.-]/', fn ($m) => sprintf('_%02X', ord($m[0])), $email);
    // ids are at most 128 bytes; an encoded address always holds "_40" (the @), so the
    // hashed form cannot collide with it
    return 'signup:' . (strlen($safe) <= 121 ? $safe : 'sha256.' . hash('sha256', $email));
}

/** "Display Name" <addr>, the name quoted so that commas and the like are harmless. */
function mailbox(string $name, string $email): string
{
    return '"' . addcslashes($name, '"\\') . '" <' . $email . '>';
}

/** The activation email for a user record. */
function activation_email(array $user): array
{
    $link = ACTIVATE_URL . $user['token'];
    $h = fn (string $s) => htmlspecialchars($s, ENT_QUOTES | ENT_HTML5, 'UTF-8');
    return [
        'to' => [mailbox($user['name'], $user['email'])],
        'from' => MAIL_FROM,
        'from_name' => MAIL_FROM_NAME,
        'subject' => '请激活您的账户 / Activate your account',
        'text' => "{$user['name']}，您好：\n\n"
            . "感谢您的注册。请在 24 小时内点击下面的链接激活您的账户：\n$link\n\n"
            . "Hello {$user['name']},\n\n"
            . "thank you for signing up. Open this link within 24 hours to activate your account:\n$link\n",
        'html' => "<p>{$h($user['name'])}，您好：</p>\n"
            . "<p>感谢您的注册。请在 24 小时内点击下面的链接激活您的账户：</p>\n"
            . "<p><a href=\"{$h($link)}\">激活账户 / Activate your account</a></p>\n"
            . "<p>Hello {$h($user['name'])}, thank you for signing up.</p>\n",
        // a link mailed a day late is useless: the consumer gives up after this
        'expires_at' => time() + LINK_VALID_SECONDS,
    ];
}

/** A new user record with a fresh activation token. */
function new_user(string $email, string $name): array
{
    return ['email' => $email, 'name' => $name, 'created_at' => gmdate('Y-m-d\TH:i:s\Z'),
            'token' => bin2hex(random_bytes(32))];
}

/**
 * Stores the user unless one with this address exists. Returns [record, created]; an
 * existing record is returned as stored: its token is the one already mailed.
 */
function store_user(Redis $redis, array $user): array
{
    $key = 'example:user:' . $user['email'];
    $json = json_encode($user, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
    if ($redis->set($key, $json, ['nx'])) {
        return [$user, true];
    }
    $stored = $redis->get($key);
    $user = is_string($stored) ? json_decode($stored, true) : null;
    if (!is_array($user) || !isset($user['email'], $user['name'], $user['token'], $user['created_at'])) {
        throw new MailroomException("user record $key is unreadable");
    }
    return [$user, false];
}

function main(array $argv): int
{
    $help = count($argv) === 2 && in_array($argv[1], ['-h', '--help'], true);
    if (count($argv) !== 3) {
        fwrite($help ? STDOUT : STDERR,
            "usage: php register.php EMAIL NAME\n"
            . "Registers a user and sends the activation email through mailroom.\n"
            . "Environment: MAILROOM_REDIS_URL, MAILROOM_QUEUE, MAILROOM_KEYS_FILE or MAILROOM_SECRET.\n"
            . "Exit status: 0 queued, 3 already queued before (nothing sent), 2 usage or invalid input,\n"
            . "1 any other failure.\n");
        return $help ? EXIT_QUEUED : EXIT_USAGE;
    }
    $email = strtolower(trim($argv[1]));
    $name = trim($argv[2]);
    if ($name === '' || strlen($name) > 100 || preg_match('/[\x00-\x1F\x7F<>]/', $name)
        || !preg_match('//u', $name)) {
        fwrite(STDERR, "register: NAME must be 1 to 100 bytes of UTF-8 without control characters, '<' or '>'\n");
        return EXIT_USAGE;
    }
    $id = signup_id($email);

    try {
        $redis = Mailroom::connect();
        $mailroom = Mailroom::fromEnv($redis);
    } catch (MailroomException $e) {
        fwrite(STDERR, 'register: ' . $e->getMessage() . "\n");
        return EXIT_FAILED;
    }
    $user = new_user($email, $name);
    try {
        $mailroom->validate(activation_email($user));     // a bad address stops here
    } catch (MailroomInvalidException $e) {
        fwrite(STDERR, 'register: invalid EMAIL or NAME: ' . $e->getMessage() . "\n");
        return EXIT_USAGE;
    }

    try {
        [$user, $created] = store_user($redis, $user);
        // callback.php finds the user of an outcome by its job id
        $redis->set('example:signup:' . $id, $user['email']);
        $mail = activation_email($user);
        $t0 = hrtime(true);
        try {
            $mailroom->send($mail, $id);
            $duplicate = false;
        } catch (MailroomDuplicateException) {
            $duplicate = true;
        }
        $us = intdiv(hrtime(true) - $t0, 1000);
        $state = $duplicate ? ($mailroom->status($id)['state'] ?? 'unknown') : 'queued';
    } catch (MailroomException | RedisException | JsonException $e) {
        fwrite(STDERR, 'register: ' . $e->getMessage() . "\n");
        return EXIT_FAILED;
    }

    echo $created ? "new user {$user['email']} ({$user['name']})\n"
                  : "{$user['email']} is already registered (since {$user['created_at']})\n";
    echo $duplicate
        ? "activation mail not sent again: job $id is already recorded (state $state)\n"
        : "activation mail queued: job $id\n";
    echo "Mailroom::send took $us us\n";
    return $duplicate ? EXIT_DUPLICATE : EXIT_QUEUED;
}

exit(main($argv));
