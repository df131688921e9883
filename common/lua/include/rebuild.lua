--[[
  rebuild: replaces a list by the entries kept, in their order, in chunks of 1000
  (RPUSH takes at most as many arguments as Lua can unpack). Rebuilding is linear;
  removing entries one by one with LREM would be quadratic.
]]
local function rebuild(key, kept)
  redis.call('DEL', key)
  for i = 1, #kept, 1000 do
    redis.call('RPUSH', key, unpack(kept, i, math.min(i + 999, #kept)))
  end
end
