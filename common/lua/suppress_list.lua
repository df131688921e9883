--[[
  suppress_list: one page of the suppression list (`mailroom suppress list`, the
  dashboard), the entry that lasts longest first (the newest, when all last as long).
  Lapsed index members are removed first, and so is a member whose entry is gone (a
  key deleted by hand): the list shows only what consumers would skip. A page starts
  at an expiry (ms) and skips the members with exactly that expiry that the previous
  page listed.

  Input:
    KEYS index     mailroom:{suppress}:index
    ARGV max       the latest expiry to list, ms; '+inf' from the start
    ARGV skip      how many members with exactly that expiry to skip
    ARGV count     the most members to look at
    ARGV prefix    mailroom:{suppress}:addr:

  Output:
    {size, looked, entry...}: the index's size once cleaned, how many members this page
    looked at, then each live one as {address, expiry ms, entry JSON}
]]
--@include now_ms
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
local page = redis.call('ZREVRANGEBYSCORE', index, max, '(' .. now, 'WITHSCORES', 'LIMIT',
  skip, count)
local out = {0, #page / 2}
for i = 1, #page, 2 do
  local json = redis.call('GET', prefix .. page[i])
  if json then
    out[#out + 1] = {page[i], page[i + 1], json}
  else
    redis.call('ZREM', index, page[i])
  end
end
out[1] = redis.call('ZCARD', index)
return out
