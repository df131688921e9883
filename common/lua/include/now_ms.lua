--[[
  now_ms: the Redis server's clock in ms since the epoch, so that the clocks of
  consumer hosts never decide who is alive.
]]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
