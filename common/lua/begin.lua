--[[
  begin: a consumer is about to send a job it took; this takes the job's lease. The
  lease is a fencing token (unique per take) kept in the record's lease field, next
  to the consumer holding it; every later transition of the job checks it, and the
  consumer's heartbeat keeps it alive (a consumer silent for dead_after has lost it).

  A job no longer in this consumer's processing list is not its own any more (another
  consumer recovered it while this one was stalled, even one Redis handed to its
  blocked take meanwhile): lost. A record that says sent means a redelivered copy: it
  is acknowledged without sending (duplicate); one that says cancelled (mailroom
  cancel) is acknowledged without sending too (cancelled). A record that says sending under a live
  lease of another take means a second copy of a job in flight: this copy is dropped
  (inflight). A BEGIN run again with the same token (its reply lost to a Redis
  restart) answers as the first did. Otherwise the attempt is counted, the record says
  sending, and the lease is this take's. The answer also carries the addresses a
  retry must still reach (owed; '' for every recipient of the job) and how many of
  the job's recipients earlier attempts delivered to.

  Input:
    KEYS job          mailroom:{Q}:job:<id>
    KEYS processing   mailroom:{Q}:processing:<consumer>, where the job is held
    KEYS consumers    mailroom:{Q}:consumers, the heartbeats
    ARGV raw          the raw job, exactly as taken
    ARGV now          RFC 3339
    ARGV consumer     this consumer's id
    ARGV queue        the queue's name, for the event
    ARGV channel      mailroom:{Q}:status
    ARGV ttl          lifetime of the status record, seconds
    ARGV id           the job's id
    ARGV token        this take's fencing token
    ARGV dead_after   ms of silence after which a consumer's lease has lapsed

  Output:
    {'sending', attempts, owed, delivered}, {'duplicate', attempts},
    {'inflight', attempts}, {'cancelled', attempts} or {'lost', 0}
]]
--@include event
--@include announce
--@include now_ms
--@include decoded
--@include delivered_count
if not redis.call('LPOS', processing, raw) then
  return {'lost', 0}
end
local state, owner, lease, n = unpack(redis.call('HMGET', job, 'state', 'consumer', 'lease',
  'attempts'))
n = tonumber(n) or 0
if state == S.sending and lease == token then
  return {S.sending, n, redis.call('HGET', job, 'owed') or '', delivered_count(job)}
end
if state == S.sent or state == S.cancelled then
  redis.call('LREM', processing, 1, raw)
  local why = state == S.sent and 'already sent: acknowledged without sending again'
    or 'cancelled: acknowledged without sending'
  announce(channel, event(id, 'duplicate', n, '', '', why, consumer, now, queue))
  return {state == S.sent and 'duplicate' or 'cancelled', n}
end
if state == S.sending and owner then
  local beat = tonumber(redis.call('ZSCORE', consumers, owner))
  if beat and beat >= now_ms() - tonumber(dead_after) then
    redis.call('LREM', processing, 1, raw)
    announce(channel, event(id, 'duplicate', n, '', '',
      'a copy of a job in flight on consumer ' .. owner .. ': dropped', consumer, now, queue))
    return {'inflight', n}
  end
end
n = redis.call('HINCRBY', job, 'attempts', 1)
redis.call('HSET', job, 'state', S.sending, 'updated_at', now, 'consumer', consumer,
  'lease', token)
redis.call('EXPIRE', job, ttl)
announce(channel, event(id, S.sending, n, '', '', '', consumer, now, queue))
return {S.sending, n, redis.call('HGET', job, 'owed') or '', delivered_count(job)}
