--[[
  suppress_add: puts an address on the suppression list shared by every queue of a
  deployment (docs/redis.md), or renews it: its entry with an expiry, and its place in
  the index that lists them; expired index members are trimmed on the way.

  Input:
    KEYS key      mailroom:{suppress}:addr:<address>
    KEYS index    mailroom:{suppress}:index
    ARGV address  the address in its suppression form (suppress_address())
    ARGV entry    the entry: JSON {"address","reason","code","at","queue","id","source"}
    ARGV ttl_ms   how long it lasts, ms

  Output:
    1
]]
--@include now_ms
local now = now_ms()
redis.call('SET', key, entry, 'PX', ttl_ms)
redis.call('ZADD', index, now + tonumber(ttl_ms), address)
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
return 1
