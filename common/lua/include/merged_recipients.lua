--[[
  merged_recipients: the record's recipients map with this attempt's answers (update,
  a JSON object) laid over it, encoded; nil when this attempt reported none. A retry
  sends only to the addresses still owed, so earlier answers stay. Needs decoded.
]]
local function merged_recipients(key, update)
  if update == '' then return nil end
  local merged = decoded(redis.call('HGET', key, 'recipients'))
  for address, answer in pairs(decoded(update)) do merged[address] = answer end
  return cjson.encode(merged)
end
