--[[
  toobig: rejects the entries of a processing list larger than the largest valid job,
  without ever sending them to a consumer (the take stopped reading such an entry at
  its length). Each is removed, dead-listed with only its first keep_bytes and its true
  size, and its record, when an id can be read leniently from its first bytes, closed
  as rejected (never over a sent one), with a rejected event and counter.

  Input:
    KEYS processing  mailroom:{Q}:processing:<consumer>
    KEYS dead        mailroom:{Q}:dead
    KEYS stats       mailroom:{Q}:stats
    ARGV max_bytes   the largest valid job, bytes
    ARGV keep_bytes  how much of an entry the dead list keeps
    ARGV consumer    this consumer's id
    ARGV queue       the queue's name, for the events
    ARGV channel     mailroom:{Q}:status
    ARGV job_prefix  mailroom:{Q}:job:
    ARGV now         RFC 3339
    ARGV ttl         lifetime of the status record, seconds
    ARGV dead_max    the dead list's cap

  Output:
    the number of entries rejected
]]
--@include event
--@include announce
--@include job_id
local limit = tonumber(max_bytes)
local n = 0
for _, raw in ipairs(redis.call('LRANGE', processing, 0, -1)) do
  if #raw > limit and redis.call('LREM', processing, 1, raw) == 1 then
    n = n + 1
    local id = job_id(raw, max_bytes)
    local why = 'invalid job: ' .. #raw .. ' bytes, over the limit of ' .. max_bytes
    local entry = {reason = why, at = now, consumer = consumer,
      job = string.sub(raw, 1, tonumber(keep_bytes)), job_bytes = #raw, truncated = true,
      state = S.rejected}
    if id ~= '' then entry.id = id end
    redis.call('LPUSH', dead, cjson.encode(entry))
    redis.call('LTRIM', dead, 0, tonumber(dead_max) - 1)
    local attempts = 0
    if id ~= '' and redis.call('HGET', job_prefix .. id, 'state') ~= S.sent then
      redis.call('HSET', job_prefix .. id, 'state', S.rejected, 'error', why,
        'updated_at', now, 'consumer', consumer)
      redis.call('EXPIRE', job_prefix .. id, ttl)
      attempts = tonumber(redis.call('HGET', job_prefix .. id, 'attempts')) or 0
    end
    redis.call('HINCRBY', stats, 'rejected', 1)
    announce(channel, event(id, S.rejected, attempts, '', '', why, consumer, now,
      queue))
  end
end
return n
