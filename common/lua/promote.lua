--[[
  promote: the housekeeper's move of due jobs from scheduled to the right end of
  pending, where they are taken next.

  Input:
    KEYS scheduled  mailroom:{Q}:scheduled
    KEYS pending    mailroom:{Q}:pending
    ARGV now_ms     ms since the epoch
    ARGV batch      the most jobs to move in one call

  Output:
    the number moved
]]
local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now_ms, 'LIMIT', 0, batch)
for _, raw in ipairs(due) do
  redis.call('ZREM', scheduled, raw)
  redis.call('RPUSH', pending, raw)
end
return #due
