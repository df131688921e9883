--[[
  held: what a consumer's processing list holds, for its orphan check: each entry as
  it is, except those larger than the largest valid job, given as '' so that they
  never travel to the consumer (it has them rejected with toobig).

  Input:
    KEYS processing  mailroom:{Q}:processing:<consumer>
    ARGV max_bytes   the largest valid job, bytes

  Output:
    the entries, newest first
]]
local limit = tonumber(max_bytes)
local entries = redis.call('LRANGE', processing, 0, -1)
for i, raw in ipairs(entries) do
  if #raw > limit then entries[i] = '' end
end
return entries
