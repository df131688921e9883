--[[
  oldest: the times of the job taken next (the right end of pending), for the queue's
  latency in `mailroom stats`: its created_at and send_at. A job larger than max_bytes
  (a hostile one) is not decoded: its times are looked for in its first 4096 bytes.

  Input:
    KEYS pending     mailroom:{Q}:pending
    ARGV max_bytes   the largest valid job, bytes

  Output:
    {created_at, send_at} ('' each when absent or unreadable), or {} when pending is
    empty
]]
local raw = redis.call('LINDEX', pending, -1)
if not raw then return {} end
local function member(name)
  if #raw <= tonumber(max_bytes) then
    local ok, job = pcall(cjson.decode, raw)
    if ok and type(job) == 'table' and type(job[name]) == 'string' then return job[name] end
    return ''
  end
  return string.match(string.sub(raw, 1, 4096), '[{,]%s*"' .. name .. '"%s*:%s*"([%w:.+-]+)"')
    or ''
end
return {member('created_at'), member('send_at')}
