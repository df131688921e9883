--[[
  relay_rate: the send rate one relay allows, shared by every consumer of it: a GCRA
  limiter (a virtual clock, tat, that each message granted moves on by 1/rate), so that
  three consumers with --rate 10/s send 10 messages a second in all, evenly spaced. A
  message asked for less than half an interval after its turn keeps the schedule (the
  askers' own latency does not slow the rate down); after an idle spell the clock
  restarts from now.

  The rate adapts. A throttling reply (421/451/454 that says so) halves it, at most
  once a second (the replies of messages already on their way would otherwise cut it
  again and again), down to the floor; after 2 quiet seconds it grows back by a tenth
  of the rate the last cut left, every 2 seconds, up to the ceiling: the configured
  rate, or, when none is configured, the rate the relay was offered when it first
  throttled: every consumer's messages over the last three whole seconds (the
  housekeepers count them into offered:<second mod 8>), or the throttled consumer's
  own rate when that is more. The limiter then turns itself off once it is back there,
  or after a quiet spell when that rate was no more than the floor.
  Multiplicative decrease, additive increase, as TCP and KumoMTA do.

  Input:
    KEYS relay     mailroom:relay:{R}
    ARGV op        take (may a message go now?), refund (a granted message was not
                   sent after all) or throttle (the relay throttled us)
    ARGV rate_max  the configured rate, messages per second; '' for none
    ARGV floor     the lowest rate a cut may reach, messages per second
    ARGV seen      throttle: the rate this consumer was offering the relay, messages
                   per second

  Output:
    take: 0 when the message may go now, else the ms to wait before asking again;
    refund: 0; throttle: the rate now, in messages per 1000 seconds
]]
--@include now_ms
local QUIET_MS, CUT_EVERY_MS = 2000, 1000
local now = now_ms()
local f = redis.call('HMGET', relay, 'rate', 'ceiling', 'tat', 'throttled_at', 'raised_at',
  'step')
local rate, ceiling, tat = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]) or 0
local max = tonumber(rate_max)
if max then
  if ceiling ~= max then
    ceiling = max
    redis.call('HSET', relay, 'ceiling', max, 'rate_max', max)
  end
  if not rate or rate > max then
    rate = max
    redis.call('HSET', relay, 'rate', rate)
  end
end

-- messages per second the relay was offered over the last three whole seconds
local function offered(ms)
  local s = math.floor(ms / 1000)
  local b = redis.call('HMGET', relay, 'offered:' .. (s - 1) % 8, 'offered:' .. (s - 2) % 8,
    'offered:' .. (s - 3) % 8)
  return ((tonumber(b[1]) or 0) + (tonumber(b[2]) or 0) + (tonumber(b[3]) or 0)) / 3
end

if op == 'throttle' then
  if not rate then
    rate = math.max(offered(now), tonumber(seen) or 0, tonumber(floor))
    ceiling = rate
    redis.call('HSET', relay, 'ceiling', ceiling)
  end
  if now - (tonumber(f[4]) or 0) >= CUT_EVERY_MS then
    rate = math.max(tonumber(floor), rate / 2)
    redis.call('HSET', relay, 'rate', rate, 'throttled_at', now, 'step', rate / 10,
      'tat', now + 1000 / rate)
    redis.call('HINCRBY', relay, 'throttles', 1)
  end
  return math.floor(rate * 1000)
end
if not rate then return 0 end
if op == 'refund' then
  redis.call('HSET', relay, 'tat', math.max(now, tat - 1000 / rate))
  return 0
end

-- additive recovery after a quiet spell; without a configured rate, the limiter is
-- dropped once the rate is back at its ceiling, also when a cut could not lower it
-- (a ceiling at the floor: the throttled consumer was too new to know its rate)
local quiet_since = math.max(tonumber(f[4]) or 0, tonumber(f[5]) or 0)
if ceiling and now - quiet_since >= QUIET_MS then
  local raised = math.min(ceiling, rate + (tonumber(f[6]) or ceiling / 10))
  if not max and raised >= ceiling then
    redis.call('HDEL', relay, 'rate', 'ceiling', 'tat', 'step', 'raised_at')
    return 0
  end
  if raised > rate then
    rate = raised
    redis.call('HSET', relay, 'rate', rate, 'raised_at', now)
  end
end
if tat > now then return math.ceil(tat - now) end
redis.call('HSET', relay, 'tat', math.max(tat, now - 500 / rate) + 1000 / rate)
return 0
