--[[
  decoded: a JSON object kept in a record (text) as a table; {} when absent or not an
  object. The record's recipients field is one: each envelope address to what became
  of it ({"state","code","reply"}), merged over the attempts.
]]
local function decoded(text)
  if not text or text == '' then return {} end
  local ok, t = pcall(cjson.decode, text)
  if ok and type(t) == 'table' then return t end
  return {}
end
