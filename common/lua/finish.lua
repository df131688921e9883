--[[
  finish: records the outcome of a job a consumer held, in one step: the status
  record, the acknowledgement (LREM from processing), the move to scheduled
  (retrying; queued = a job taken before its send_at, deferred uncounted) or to the
  dead list (failed, rejected), the counter and the event.

  Fencing: an outcome is written only by the take that holds the job: its copy was
  still in its processing list and the record's lease is its token (a job rejected or
  deferred before BEGIN has no lease yet: token ''). A consumer that lost the job
  (recovered while it was stalled; or another copy took the lease) writes nothing,
  except that a 250 it really got is recorded once: the record says sent, the sent
  counter is bumped, and no copy is scheduled again. A record that already says sent
  is never turned into anything else, and the sent counter counts a job once: another
  outcome for a copy of a sent job is dropped as a duplicate, except a rejection (a
  forged or altered copy), which still goes to the dead list (its id may be forged).
  A record that says cancelled stays so (a job deferred before its send_at, or
  refused, after an operator cancelled it); only a real 250 overrides it.
  A FINISH run again because its reply was lost (Redis restarted in between) finds
  its copy gone and the record already in that state under its token: it does
  nothing, so counters and events are not doubled.
  Each recipient's answer is merged into the record's recipients map, the addresses
  still owed kept for the retry, and the relay's queue id kept; the event carries
  relay, relay_id and the merged recipients after its usual members.
  An attempt the relay throttled, or that could not reach it (no connection, TLS or
  greeting failure), is put back uncounted: state queued, due soon, the attempt BEGIN
  counted taken back, its own counter bumped instead (throttled, unreachable).

  Input:
    KEYS job         mailroom:{Q}:job:<id>
    KEYS processing  mailroom:{Q}:processing:<consumer>
    KEYS stats       mailroom:{Q}:stats
    KEYS target      mailroom:{Q}:dead (failed, rejected) or mailroom:{Q}:scheduled
    KEYS minute      mailroom:{Q}:minute:<unix minute>, the outcomes of that minute by
                     state (kept 48 h: the history of stats and the dashboard)
    ARGV raw         the raw job, exactly as taken
    ARGV state       sent, retrying, failed, rejected or queued
    ARGV code        the deciding SMTP reply code, '' when none
    ARGV reply       that reply line
    ARGV why         why it is not sent, '' when it is
    ARGV now         RFC 3339
    ARGV consumer    this consumer's id
    ARGV queue       the queue's name, for the event
    ARGV channel     mailroom:{Q}:status
    ARGV ttl         lifetime of the status record, seconds
    ARGV id          the job's id, '' when it has no readable one
    ARGV tail        the dead-list entry (failed, rejected) or the due ms (retrying,
                     queued); '' when sent
    ARGV dead_max    the dead list's cap
    ARGV token       the lease BEGIN took for this attempt; '' before BEGIN
    ARGV relay_id    the relay's queue id from its final 2xx; '' when none
    ARGV recipients  this attempt's answer per envelope address, a JSON object
                     (merged into the record's); '' when none
    ARGV owed        the addresses a retry must still reach, a JSON array
                     (retrying); '' otherwise
    ARGV relay       the relay that took (or refused) the mail, host:port; '' when none
    ARGV uncounted   throttled or unreachable: a put-back whose attempt does not count
                     (state queued); '' otherwise

  Output:
    {'recorded', attempts}; {'again', attempts} for a FINISH run twice; {'lost', 0}
    when the job was no longer this take's; {'lost_sent', attempts} when it was not
    but its 250 was recorded; {'already_sent', attempts} when the record said sent;
    {'cancelled', attempts} when it said cancelled (mailroom cancel) and the outcome
    is anything but sent: the copy is acknowledged, the record left cancelled
]]
--@include event
--@include announce
--@include decoded
--@include merged_recipients
local removed = redis.call('LREM', processing, 1, raw)
local record, lease, n = nil, nil, 0
if id ~= '' then
  local fields = redis.call('HMGET', job, 'state', 'lease', 'attempts')
  record, lease, n = fields[1], fields[2], tonumber(fields[3]) or 0
end
local holds = removed == 1 and (token == '' or lease == token)

-- The outcome's line in the per-minute history.
local function count_minute(what)
  if redis.call('HINCRBY', minute, what, 1) == 1 and redis.call('TTL', minute) < 0 then
    redis.call('EXPIRE', minute, 172800)
  end
end

local function count_sent()
  redis.call('HINCRBY', stats, 'sent', 1)
  count_minute(S.sent)
end

local merged = id ~= '' and merged_recipients(job, recipients) or nil
local extra = ''
if relay ~= '' then extra = ',"relay":' .. cjson.encode(relay) end
if relay_id ~= '' then extra = extra .. ',"relay_id":' .. cjson.encode(relay_id) end
if merged then extra = extra .. ',"recipients":' .. merged end

local function write_record()
  redis.call('HSET', job, 'state', state, 'smtp_code', code, 'smtp_reply', reply,
    'error', why, 'updated_at', now, 'consumer', consumer)
  if relay ~= '' then redis.call('HSET', job, 'relay', relay) end
  if relay_id ~= '' then redis.call('HSET', job, 'relay_id', relay_id) end
  if merged then redis.call('HSET', job, 'recipients', merged) end
  if owed ~= '' then
    redis.call('HSET', job, 'owed', owed)
  else
    redis.call('HDEL', job, 'owed')
  end
  redis.call('EXPIRE', job, ttl)
end

if not holds then
  if removed == 0 and id ~= '' and record == state and (token == '' or lease == token) then
    return {'again', n}
  end
  if state == S.sent and id ~= '' and record ~= S.sent then
    write_record()
    count_sent()
    announce(channel, event(id, state, n, code, reply,
      'sent by a consumer that had lost the job: another copy may be sent too',
      consumer, now, queue, extra))
    return {'lost_sent', n}
  end
  return {'lost', 0}
end
if record == S.cancelled and state ~= S.sent then
  announce(channel, event(id, 'duplicate', n, code, reply,
    'cancelled: this ' .. state .. ' outcome is not recorded', consumer, now, queue))
  return {'cancelled', n}
end
if record == S.sent and state ~= S.rejected then
  announce(channel, event(id, 'duplicate', n, code, reply,
    'already sent: this ' .. state .. ' outcome of another copy is not recorded',
    consumer, now, queue))
  return {'already_sent', n}
end
if id ~= '' and record ~= S.sent then
  write_record()
  if uncounted ~= '' and token ~= '' then n = redis.call('HINCRBY', job, 'attempts', -1) end
end
local counter = ({[S.retrying] = 'retried', [S.failed] = 'failed',
  [S.rejected] = 'rejected'})[state] or (uncounted ~= '' and uncounted or nil)
if counter then
  redis.call('HINCRBY', stats, counter, 1)
  count_minute(uncounted ~= '' and uncounted or state)
end
if state == S.sent then count_sent() end
if state == S.retrying or state == S.queued then
  redis.call('ZADD', target, tail, raw)
elseif state ~= S.sent then
  redis.call('LPUSH', target, tail)
  redis.call('LTRIM', target, 0, tonumber(dead_max) - 1)
end
announce(channel, event(id, state, n, code, reply, why, consumer, now, queue,
  extra))
return {'recorded', n}
