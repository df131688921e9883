--[[
  retry_now: `mailroom retry-now ID`. A job waiting in scheduled (a retry, or one
  whose send_at has come and that the housekeeper has not promoted yet) goes to the
  right end of pending, taken next, with an event. Its record keeps its state and
  attempts, as after a promotion. Refused when the record says anything but retrying
  or queued, when the copy is no longer scheduled, and for a queued job whose send_at
  (signed by its producer: a promise not to send before) is still to come.

  Input:
    KEYS job         mailroom:{Q}:job:<id>
    KEYS scheduled   mailroom:{Q}:scheduled
    KEYS pending     mailroom:{Q}:pending
    ARGV raw         the raw job as the library found it in scheduled
    ARGV id          the job's id
    ARGV send_at     the job's send_at, ms since the epoch; '' when it has none
    ARGV now         RFC 3339
    ARGV queue       the queue's name, for the event
    ARGV channel     mailroom:{Q}:status

  Output:
    {'moved', state}; {'state', state} when the record's state forbids it; {'gone',
    state} when the copy is not in scheduled; {'not_yet', state} before its send_at;
    {'none', ''} when there is no record
]]
--@include event
--@include announce
--@include now_ms
local state = redis.call('HGET', job, 'state')
if not state then return {'none', ''} end
if state ~= S.retrying and state ~= S.queued then return {'state', state} end
if not redis.call('ZSCORE', scheduled, raw) then return {'gone', state} end
if state == S.queued and send_at ~= '' and tonumber(send_at) > now_ms() then
  return {'not_yet', state}
end
redis.call('ZREM', scheduled, raw)
redis.call('RPUSH', pending, raw)
local n = tonumber(redis.call('HGET', job, 'attempts')) or 0
announce(channel, event(id, S.queued, n, '', '',
  'retry-now: moved to the head of pending by an operator', '', now, queue))
return {'moved', state}
