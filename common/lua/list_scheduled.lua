--[[
  list_scheduled: one page of the scheduled set (`mailroom list scheduled|retrying`,
  the dashboard): retries and jobs waiting for their send_at, soonest due first. A page
  starts at a due time (ms) and skips the entries due at exactly that time that the
  previous page listed: the set orders them by due time, then by their bytes, and the
  promotion of due jobs only ever removes entries before the page.

  Input:
    KEYS scheduled   mailroom:{Q}:scheduled
    ARGV min         the earliest due time to list, ms; '-inf' from the start
    ARGV skip        how many entries due at exactly min to skip
    ARGV count       the most entries to return
    ARGV job_prefix  mailroom:{Q}:job:
    ARGV max_bytes   the largest valid job, bytes

  Output:
    {size, entry...}: the set's size, then each entry as listed makes it ({id, raw,
    bytes, due ms, state, attempts, error}), soonest due first
]]
--@include job_id
--@include listed
local out = {redis.call('ZCARD', scheduled)}
local page = redis.call('ZRANGEBYSCORE', scheduled, min, '+inf', 'WITHSCORES', 'LIMIT', skip,
  count)
for i = 1, #page, 2 do
  out[#out + 1] = listed(page[i], page[i + 1], job_prefix, max_bytes)
end
return out
