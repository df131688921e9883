--[[
  requeue: returns one orphaned entry of this consumer's own processing list (a job
  no worker holds: the take's reply was lost to a Redis restart) to the right end of
  pending with its record back to queued (release), and bumps recovered.

  Input:
    KEYS processing  mailroom:{Q}:processing:<consumer>
    KEYS pending     mailroom:{Q}:pending
    KEYS stats       mailroom:{Q}:stats
    ARGV raw         the orphaned entry
    ARGV consumer    this consumer's id
    ARGV queue       the queue's name, for the event
    ARGV channel     mailroom:{Q}:status
    ARGV job_prefix  mailroom:{Q}:job:
    ARGV now         RFC 3339
    ARGV ttl         lifetime of the status record, seconds
    ARGV max_bytes   the largest job that is decoded to read its id

  Output:
    1 when the entry was still there and went back, else 0
]]
--@include event
--@include announce
--@include job_id
--@include release
if redis.call('LREM', processing, 1, raw) == 0 then return 0 end
local why = 'orphaned in ' .. processing .. ' (reply lost to a Redis restart)'
local n = release(raw, pending, job_prefix, why, consumer, now, ttl, queue, channel, max_bytes,
  consumer)
redis.call('HINCRBY', stats, 'recovered', n)
return n
