--[[
  job_id: the "id" member of a raw job, '' when none can be read (the caller only uses
  it to find the job's record). A job of at most max_bytes is decoded with cjson; a
  larger one (hostile: never decoded, to spare Redis the time and memory) is searched
  leniently, in its first 4096 bytes, for an "id" member after '{' or ','.
]]
local function job_id(raw, max_bytes)
  if #raw <= tonumber(max_bytes) then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == 'table' and type(decoded.id) == 'string' then
      return decoded.id
    end
    return ''
  end
  return string.match(string.sub(raw, 1, 4096), '[{,]%s*"id"%s*:%s*"([%w._:-]+)"') or ''
end
