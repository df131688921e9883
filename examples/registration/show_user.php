<?php
/*
 * show_user.php — what the example knows about a user, as the application would show
 * it: the record register.php stored, with the activation mail's outcome that
 * mailroom-webhook reported to callback.php.
 *
 *     php show_user.php EMAIL
 *
 * Prints one line per field; exit status 0, 1 when there is no such user (or Redis
 * failed), 2 for bad usage. Settings: MAILROOM_REDIS_URL.
 */

declare(strict_types=1);

require __DIR__ . '/mailroom.php';

function main(array $argv): int
{
    if (count($argv) !== 2 || $argv[1] === '' || $argv[1][0] === '-') {
        fwrite(STDERR, "usage: php show_user.php EMAIL\n");
        return 2;
    }
    $email = strtolower(trim($argv[1]));
    try {
        $stored = Mailroom::connect()->get('example:user:' . $email);
    } catch (MailroomException | RedisException $e) {
        fwrite(STDERR, 'show_user: ' . $e->getMessage() . "\n");
        return 1;
    }
    $user = is_string($stored) ? json_decode($stored, true) : null;
    if (!is_array($user)) {
        fwrite(STDERR, "show_user: no user $email\n");
        return 1;
    }
    $mail = $user['activation_mail'] ?? null;
    echo "email: {$user['email']}\n", "name: {$user['name']}\n",
         "registered: {$user['created_at']}\n";
    echo is_array($mail)
        ? "activation mail: {$mail['state']} at {$mail['at']}"
          . ($mail['error'] !== '' ? " ({$mail['error']})" : '') . "\n"
        : "activation mail: no outcome reported yet\n";
    return 0;
}

exit(main($argv));
