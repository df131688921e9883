--[[
  dead_purge: `mailroom dead purge [--older-than D]`. Without an age, deletes the
  dead list. With one, removes the entries whose "at" (RFC 3339, parsed here: UTC "Z"
  or an offset) is before Redis' TIME minus that age, and rebuilds the list from the
  others in their order; an entry without a readable "at" stays.

  Input:
    KEYS dead        mailroom:{Q}:dead
    ARGV older_than  age in ms; '' for every entry

  Output:
    the number of entries removed
]]
--@include rebuild
if older_than == '' then
  local n = redis.call('LLEN', dead)
  redis.call('DEL', dead)
  return n
end

-- ms since the epoch of an RFC 3339 time, nil when it is not one (days from civil:
-- Howard Hinnant's algorithm).
local function epoch_ms(s)
  local y, mo, d, h, mi, se, frac, tz = string.match(s,
    '^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$')
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + tonumber(d) - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  local ms = ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60000 + tonumber(se) * 1000
  if #frac > 1 then ms = ms + math.floor(tonumber('0' .. frac) * 1000) end
  if tz == 'Z' or tz == 'z' then return ms end
  local sign, oh, om = string.match(tz, '^([+-])(%d%d):(%d%d)$')
  if not sign then return nil end
  local off = (tonumber(oh) * 60 + tonumber(om)) * 60000
  if sign == '+' then return ms - off end
  return ms + off
end

local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(older_than)
local kept, n = {}, 0
for _, raw in ipairs(redis.call('LRANGE', dead, 0, -1)) do
  local ok, e = pcall(cjson.decode, raw)
  local at = ok and type(e) == 'table' and type(e.at) == 'string' and epoch_ms(e.at)
  if at and at < cutoff then n = n + 1 else kept[#kept + 1] = raw end
end
if n > 0 then rebuild(dead, kept) end
return n
