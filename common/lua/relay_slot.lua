--[[
  relay_slot: the connection slots of one relay (--relay-connections), shared by every
  consumer of it, for relays that limit the sessions of a client. A worker holds a
  slot while it may keep a connection to the relay open; slots carry an expiry that
  their holder's heartbeat renews, so a consumer that dies frees its slots.

  Input:
    KEYS sessions  mailroom:relay:{R}:sessions
    ARGV op        acquire or release
    ARGV who       <consumer>:<worker>
    ARGV max       the number of slots (acquire)
    ARGV hold_ms   how long a slot lasts unless renewed (acquire)

  Output:
    1 when the slot is this worker's (acquire) or was freed (release), else 0
]]
--@include now_ms
if op == 'release' then return redis.call('ZREM', sessions, who) end
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', sessions, '-inf', now)
if not redis.call('ZSCORE', sessions, who)
    and redis.call('ZCARD', sessions) >= tonumber(max) then
  return 0
end
redis.call('ZADD', sessions, now + tonumber(hold_ms), who)
return 1
