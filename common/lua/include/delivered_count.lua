--[[
  delivered_count: how many recipients of the record's map say sent (earlier attempts
  delivered to them). Needs decoded.
]]
local function delivered_count(key)
  local n = 0
  for _, answer in pairs(decoded(redis.call('HGET', key, 'recipients'))) do
    if type(answer) == 'table' and answer.state == S.sent then n = n + 1 end
  end
  return n
end
