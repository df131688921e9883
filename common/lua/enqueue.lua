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
