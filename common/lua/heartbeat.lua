--[[
  heartbeat: records this consumer's heartbeat with the Redis server's clock (so the
  clocks of consumer hosts do not matter); the heartbeat is also what keeps the
  leases of the jobs it holds alive. With recover = '1', the processing lists of up
  to 10 consumers silent for longer than dead_after are drained: each job goes back
  to the right end of pending with its record back to queued (release), and the
  recovered counter is bumped. Those consumers leave the heartbeat set for the
  recovered set, where their lists are drained again at every heartbeat for
  forget_after more: a take one of them had blocked in Redis when it stopped may still
  land there (a blocked BLMOVE is served or times out in Redis, whatever the client
  does). A recovered consumer that comes back (a stall, not a death) heartbeats again,
  leaves the recovered set, and finds at its next step that it lost what was
  recovered. The processing lists and job records are derived from the queue's
  prefixes: they share its hash tag, so this holds in a Redis Cluster slot too.

  Input:
    KEYS consumers          mailroom:{Q}:consumers
    KEYS recovered          mailroom:{Q}:recovered
    KEYS pending            mailroom:{Q}:pending
    KEYS stats              mailroom:{Q}:stats
    ARGV consumer           this consumer's id
    ARGV dead_after         ms of silence after which a consumer is recovered
    ARGV forget_after       ms a recovered consumer's list is still drained
    ARGV recover            '1' to recover silent consumers, '0' to only heartbeat
    ARGV queue              the queue's name, for the events
    ARGV channel            mailroom:{Q}:status
    ARGV processing_prefix  mailroom:{Q}:processing:
    ARGV job_prefix         mailroom:{Q}:job:
    ARGV now                RFC 3339
    ARGV ttl                lifetime of the status record, seconds
    ARGV max_bytes          the largest job that is decoded to read its id

  Output:
    the number of jobs recovered
]]
--@include event
--@include announce
--@include job_id
--@include now_ms
--@include release
local clock = now_ms()
redis.call('ZADD', consumers, clock, consumer)
redis.call('ZREM', recovered, consumer)
if recover ~= '1' then return 0 end

-- Every job of consumer c's processing list back to pending.
local function drain(c, why)
  local n = 0
  while true do
    local raw = redis.call('LPOP', processing_prefix .. c)
    if not raw then return n end
    n = n + release(raw, pending, job_prefix, why, consumer, now, ttl, queue, channel,
      max_bytes, c)
  end
end

local moved = 0
local silent = redis.call('ZRANGEBYSCORE', consumers, '-inf', clock - tonumber(dead_after),
  'LIMIT', 0, 10)
for _, c in ipairs(silent) do
  moved = moved + drain(c, 'recovered from consumer ' .. c .. ', silent for over ' ..
    dead_after .. ' ms')
  redis.call('ZREM', consumers, c)
  redis.call('ZADD', recovered, clock, c)
end
local late = redis.call('ZRANGE', recovered, 0, -1, 'WITHSCORES')
for i = 1, #late, 2 do
  local c = late[i]
  moved = moved + drain(c, 'taken by consumer ' .. c .. ' after it was recovered as silent')
  if tonumber(late[i + 1]) < clock - tonumber(forget_after) then
    redis.call('ZREM', recovered, c)
  end
end
if moved > 0 then redis.call('HINCRBY', stats, 'recovered', moved) end
return moved
