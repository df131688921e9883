--[[
  dead_retry: `mailroom dead retry ID|--all`. Every matching dead-list entry has its
  raw job RPUSHed onto pending, newest entry first, so the oldest is taken first and
  all before the backlog. Its status record is reset to queued with no attempts,
  unless it says sent: a rejected entry may carry a forged id, and a sent job's
  record must keep saying so. An entry is decoded only when its text holds the quoted
  id (or for --all), to spare decoding large jobs; entries that cannot be decoded,
  hold no job string, or hold only the start of an oversized job (truncated) stay.
  The dead list is then rebuilt from the entries left.

  Input:
    KEYS dead        mailroom:{Q}:dead
    KEYS pending     mailroom:{Q}:pending
    ARGV id          the job id; '' for every entry
    ARGV job_prefix  mailroom:{Q}:job:
    ARGV now         RFC 3339
    ARGV ttl         lifetime of the status record, seconds

  Output:
    the number of entries retried
]]
--@include rebuild
local all = id == ''
local needle = '"' .. id .. '"'
local kept, moved = {}, 0
for _, raw in ipairs(redis.call('LRANGE', dead, 0, -1)) do
  local e = nil
  if all or string.find(raw, needle, 1, true) then
    local ok, d = pcall(cjson.decode, raw)
    if ok and type(d) == 'table' and type(d.job) == 'string' and not d.truncated and
       (all or d.id == id) then
      e = d
    end
  end
  if e then
    redis.call('RPUSH', pending, e.job)
    if type(e.id) == 'string' and e.id ~= '' then
      local key = job_prefix .. e.id
      if redis.call('HGET', key, 'state') ~= S.sent then
        redis.call('HSET', key, 'state', S.queued, 'attempts', '0', 'error', '',
          'smtp_code', '', 'smtp_reply', '', 'updated_at', now)
        redis.call('EXPIRE', key, ttl)
      end
    end
    moved = moved + 1
  else
    kept[#kept + 1] = raw
  end
end
if moved > 0 then rebuild(dead, kept) end
return moved
