--[[
  release: a job a consumer held goes back to the right end of pending (taken next),
  its record back to queued with the consumer and the lease cleared and the reason in
  error, its lifetime renewed, and a recovered event. A job whose record is already
  sent is not queued again: that copy is dropped (a duplicate of a mail that went out).
  A record another consumer holds now (a second copy of the job in flight there) is
  left alone; the copy still goes back, and BEGIN sorts it out.
  Needs event and job_id. Returns 1 when the job went back to pending, else 0.
]]
local function release(raw, pending, job_prefix, why, by, at, ttl, queue, channel,
                       max_bytes, owner)
  local id = job_id(raw, max_bytes)
  local n, state = 0, nil
  local key = job_prefix .. id
  if id ~= '' then
    n = tonumber(redis.call('HGET', key, 'attempts')) or 0
    state = redis.call('HGET', key, 'state')
  end
  if state == S.sent then
    announce(channel, event(id, 'duplicate', n, '', '',
      'already sent: a copy held by ' .. owner .. ' dropped', by, at, queue))
    return 0
  end
  redis.call('RPUSH', pending, raw)
  if id ~= '' and (state == S.sending or state == S.queued) and
     (redis.call('HGET', key, 'consumer') or owner) == owner then
    redis.call('HSET', key, 'state', S.queued, 'error', why, 'updated_at', at)
    redis.call('HDEL', key, 'consumer', 'lease')
    redis.call('EXPIRE', key, ttl)
  end
  announce(channel, event(id, 'recovered', n, '', '', why, by, at, queue))
  return 1
end
