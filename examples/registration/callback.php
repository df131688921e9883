<?php
/*
 * callback.php — the page mailroom-webhook posts every final outcome to
 * (docs/webhook.md): it marks the user's activation mail as sent or failed in the
 * example's own storage, where `php show_user.php EMAIL` shows it. Run it with PHP's
 * built-in server, and point the webhook at it:
 *
 *     php -S 127.0.0.1:8080 examples/registration/callback.php
 *     mailroom-webhook --url http://127.0.0.1:8080/mailroom/callback
 *
 * For each request it:
 *   1. checks the signature and the timestamp (webhook_verify.php) on the raw body,
 *      before reading anything in it: 401 when it is not genuine or too old;
 *   2. records the delivery id (SET NX, kept 7 days): a delivery seen before (the
 *      webhook repeats one whose answer it did not get) is answered 200 and not
 *      applied again;
 *   3. finds the user the job was for (register.php keeps example:signup:<job id> →
 *      email) and writes the outcome into the user's record, unless the record
 *      already holds a later one (outcomes can arrive out of order: compare "at");
 *   4. answers 200 quickly; anything else makes the webhook retry, so a failure to
 *      store (Redis down) answers 503 and forgets the delivery id.
 *
 * Users live in Redis as JSON under example:user:<email> (register.php); every
 * verified request is also appended to example:webhook:log ("<delivery id> <state>
 * <applied|duplicate|unknown job>", the newest 1000), which the tests read. Settings:
 * MAILROOM_REDIS_URL, and the secret from MAILROOM_WEBHOOK_SECRET_FILE (every line a
 * secret it accepts: two during a rotation) or MAILROOM_WEBHOOK_SECRET.
 */

declare(strict_types=1);

require __DIR__ . '/mailroom.php';
require __DIR__ . '/webhook_verify.php';

const DELIVERY_TTL = 7 * 24 * 3600;   // longer than the webhook's --max-age (3 days)
const LOG_KEY = 'example:webhook:log';
const FINAL_STATES = ['sent', 'failed', 'rejected', 'cancelled'];

/** Ends the request with a status and a small JSON answer. */
function answer(int $status, array $what): never
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($what, JSON_UNESCAPED_SLASHES), "\n";
    exit;
}

/** The secrets this page accepts: the lines of MAILROOM_WEBHOOK_SECRET_FILE (but
 *  empty ones and '#' comments), else MAILROOM_WEBHOOK_SECRET. */
function webhook_secrets(): array
{
    $file = (string)getenv('MAILROOM_WEBHOOK_SECRET_FILE');
    if ($file !== '') {
        $lines = @file($file, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES);
        $lines = $lines === false ? [] : array_map(fn ($l) => rtrim($l, "\r"), $lines);
        return array_values(array_filter($lines, fn ($l) => $l !== '' && $l[0] !== '#'));
    }
    $secret = (string)getenv('MAILROOM_WEBHOOK_SECRET');
    return $secret === '' ? [] : [$secret];
}

/** '' when the request is genuine under one of the secrets, else why not. */
function verify_request(string $body): string
{
    $why = 'no secret configured';
    foreach (webhook_secrets() as $secret) {
        $why = mailroom_webhook_verify($secret, $body, $_SERVER['HTTP_X_MAILROOM_TIMESTAMP'] ?? null,
            $_SERVER['HTTP_X_MAILROOM_SIGNATURE'] ?? null);
        if ($why === '') {
            break;
        }
    }
    return $why;
}

/**
 * Writes the outcome into the user's record unless it holds a later one, with
 * WATCH/MULTI so that two deliveries at once cannot undo each other. Returns true when
 * the record changed.
 */
function mark_activation_mail(Redis $redis, string $userKey, array $event): bool
{
    for ($try = 0; $try < 5; $try++) {
        $redis->watch($userKey);
        $stored = $redis->get($userKey);
        $user = is_string($stored) ? json_decode($stored, true) : null;
        if (!is_array($user)) {
            $redis->unwatch();
            return false;
        }
        $known = $user['activation_mail']['at'] ?? '';
        if ($known !== '' && strcmp($known, (string)$event['at']) > 0) {
            $redis->unwatch();
            return false;                       // an older outcome arriving late
        }
        $user['activation_mail'] = [
            'state' => $event['state'], 'at' => $event['at'], 'error' => $event['error'] ?? '',
            'delivery_id' => $event['delivery_id'],
        ];
        $json = json_encode($user, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        if ($redis->multi()->set($userKey, $json)->exec() !== false) {
            return true;
        }
    }
    throw new MailroomException("$userKey kept changing");
}

/** Applies one verified outcome; returns what became of it (for the answer and the log). */
function apply_outcome(Redis $redis, array $event): string
{
    $deliveryKey = 'example:webhook:delivery:' . $event['delivery_id'];
    if (!$redis->set($deliveryKey, '1', ['nx', 'ex' => DELIVERY_TTL])) {
        return 'duplicate';
    }
    try {
        $email = $redis->get('example:signup:' . $event['id']);
        if (!is_string($email)) {
            return 'unknown job';               // not a signup mail of this example
        }
        mark_activation_mail($redis, 'example:user:' . $email, $event);
        return 'applied';
    } catch (Throwable $e) {
        $redis->del($deliveryKey);              // not applied: let the webhook retry it
        throw $e;
    }
}

function main(): void
{
    if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
        header('Allow: POST');
        answer(405, ['error' => 'POST only']);
    }
    $body = (string)file_get_contents('php://input');
    $why = verify_request($body);
    if ($why !== '') {
        answer(401, ['error' => $why]);
    }
    $event = json_decode($body, true);
    if (!is_array($event) || !is_string($event['delivery_id'] ?? null) || !is_string($event['at'] ?? null)
        || !in_array($event['state'] ?? null, FINAL_STATES, true) || !is_string($event['id'] ?? null)) {
        answer(200, ['ignored' => 'not an outcome this page knows']);   // retrying would not help
    }
    try {
        $redis = Mailroom::connect();
        $result = apply_outcome($redis, $event);
        $redis->multi()->rPush(LOG_KEY, "{$event['delivery_id']} {$event['state']} $result")
            ->lTrim(LOG_KEY, -1000, -1)->exec();
    } catch (MailroomException | RedisException | JsonException $e) {
        error_log('callback: ' . $e->getMessage());
        answer(503, ['error' => 'storage unavailable']);
    }
    answer(200, ['ok' => true, 'result' => $result]);
}

main();
