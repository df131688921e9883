--[[
  suppress_add: `mailroom suppress add ADDR`: the address goes on the suppression list
  that every queue shares, replacing any entry it had: its entry (JSON) with an expiry,
  and its member in the index, scored with that expiry. Lapsed index members are
  dropped on the way.

  Input:
    KEYS index     mailroom:{suppress}:index
    KEYS entry     mailroom:{suppress}:addr:<address>
    ARGV address   the address as the list spells it (suppress.h)
    ARGV json      the entry: {"address","reason","code","at","queue","id","source"}
    ARGV for_ms    how long the entry lasts, ms

  Output:
    the entry's expiry, ms since the epoch by the Redis server's clock
]]
--@include now_ms
local now = now_ms()
local expiry = now + tonumber(for_ms)
redis.call('SET', entry, json, 'PX', for_ms)
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
redis.call('ZADD', index, expiry, address)
return expiry
