--[[
  reclaim: at a consumer's start and stop, every job of its processing list goes back
  to pending (newest first to the right end, so the oldest is taken first) with its record
  back to queued, consumer and lease cleared (release), and the consumer leaves the
  heartbeat set.

  Input:
    KEYS processing  mailroom:{Q}:processing:<consumer>
    KEYS pending     mailroom:{Q}:pending
    KEYS consumers   mailroom:{Q}:consumers
    ARGV consumer    this consumer's id
    ARGV why         why the jobs go back, for their records and events
    ARGV queue       the queue's name, for the events
    ARGV channel     mailroom:{Q}:status
    ARGV job_prefix  mailroom:{Q}:job:
    ARGV now         RFC 3339
    ARGV ttl         lifetime of the status record, seconds
    ARGV max_bytes   the largest job that is decoded to read its id

  Output:
    the number of jobs moved
]]
--@include event
--@include announce
--@include job_id
--@include release
local n = 0
while true do
  local raw = redis.call('LPOP', processing)
  if not raw then break end
  n = n + release(raw, pending, job_prefix, why, consumer, now, ttl, queue, channel,
    max_bytes, consumer)
end
redis.call('ZREM', consumers, consumer)
return n
