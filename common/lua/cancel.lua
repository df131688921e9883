--[[
  cancel: `mailroom cancel ID`. A job whose record says queued or retrying becomes
  cancelled and is never sent. The copy the library found in scheduled or pending
  (raw) leaves both (every copy of those bytes); a copy a consumer holds (taken, not
  begun) stays in its processing list, and BEGIN acknowledges it without sending
  (begin.lua). A job that is sending, or already final, is refused. Counted in the
  stats hash (cancelled) and in the minute's outcomes, kept 48 h as finish.lua keeps
  them, and announced with an event.

  Input:
    KEYS job         mailroom:{Q}:job:<id>
    KEYS pending     mailroom:{Q}:pending
    KEYS scheduled   mailroom:{Q}:scheduled
    KEYS stats       mailroom:{Q}:stats
    KEYS minute      mailroom:{Q}:minute:<unix minute>
    ARGV raw         the raw job as the library found it; '' when it found none
    ARGV id          the job's id
    ARGV why         the record's error and the event's, e.g. 'cancelled by an operator'
    ARGV now         RFC 3339
    ARGV queue       the queue's name, for the event
    ARGV channel     mailroom:{Q}:status
    ARGV ttl         lifetime of the status record, seconds

  Output:
    {'cancelled', where}: where the copy was removed from ('scheduled', 'pending', or
    '' when from neither); {'state', state} when the record's state forbids it;
    {'none', ''} when there is no record
]]
--@include event
--@include announce
local state = redis.call('HGET', job, 'state')
if not state then return {'none', ''} end
if state ~= S.queued and state ~= S.retrying then return {'state', state} end
local where = ''
if raw ~= '' then
  if redis.call('ZREM', scheduled, raw) > 0 then where = 'scheduled' end
  if redis.call('LREM', pending, 0, raw) > 0 then where = 'pending' end
end
redis.call('HSET', job, 'state', S.cancelled, 'error', why, 'updated_at', now)
redis.call('HDEL', job, 'lease')
redis.call('EXPIRE', job, ttl)
redis.call('HINCRBY', stats, 'cancelled', 1)
if redis.call('HINCRBY', minute, S.cancelled, 1) == 1 and redis.call('TTL', minute) < 0 then
  redis.call('EXPIRE', minute, 172800)
end
local n = tonumber(redis.call('HGET', job, 'attempts')) or 0
announce(channel, event(id, S.cancelled, n, '', '', why, '', now, queue))
return {'cancelled', where}
