<?php
/*
 * webhook_verify.php — checks that a request really comes from mailroom-webhook
 * (docs/webhook.md, where this function is printed as the verification snippet; the
 * tests check that both say the same and that it agrees with every vector of
 * tests/vectors/webhook.json).
 */

declare(strict_types=1);

/**
 * Checks a delivery before anything in it is used: $body is the raw request body,
 * $timestamp and $signature the X-Mailroom-Timestamp and X-Mailroom-Signature headers
 * (null when missing). Returns '' when the delivery is genuine and fresh, else why not:
 * 'missing header', 'malformed timestamp', 'stale timestamp' (more than $tolerance
 * seconds from now, either way: the replay window), 'malformed signature' or
 * 'signature mismatch'.
 */
function mailroom_webhook_verify(
    #[\SensitiveParameter] string $secret,
    string $body,
    ?string $timestamp,
    ?string $signature,
    ?int $now = null,
    int $tolerance = 300
): string {
    if ($timestamp === null || $signature === null) {
        return 'missing header';
    }
    if (!preg_match('/^[0-9]{1,18}\z/', $timestamp)) {
        return 'malformed timestamp';
    }
    if (abs((int)$timestamp - ($now ?? time())) > $tolerance) {
        return 'stale timestamp';
    }
    $expected = hash_hmac('sha256', $timestamp . '.' . $body, $secret);
    $seen = false;
    foreach (explode(',', $signature) as $value) {   // one "v1=" per secret of the sender
        $value = trim($value, " \t");
        if (!preg_match('/^v1=[0-9a-fA-F]{64}\z/', $value)) {
            continue;                                 // another version, or garbage
        }
        $seen = true;
        if (hash_equals($expected, strtolower(substr($value, 3)))) {
            return '';
        }
    }
    return $seen ? 'signature mismatch' : 'malformed signature';
}
