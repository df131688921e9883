--[[
  find_pending: a stretch of the pending list searched for one job (mailroom cancel),
  inside Redis so that the list does not travel: the entries that contain the needle
  (the job's id in quotes) come back, for the library to confirm by reading their id.
  The library walks the list from the left end (the newest job) in stretches: a job
  pushed meanwhile moves the others right, so an entry may be looked at twice, never
  skipped; consumers take from the right end, which moves nothing.

  Input:
    KEYS pending     mailroom:{Q}:pending
    ARGV start       the index (from the left end) to start at
    ARGV count       how many entries to look at
    ARGV needle      text a matching entry contains
    ARGV max_bytes   the largest valid job, bytes: larger entries are never returned

  Output:
    {next, entry...}: the index after the entries looked at (0 when the list ended
    there), then the entries that contain the needle
]]
local first = tonumber(start)
local stretch = redis.call('LRANGE', pending, first, first + tonumber(count) - 1)
local out = {0}
if #stretch == tonumber(count) then out[1] = first + #stretch end
for _, raw in ipairs(stretch) do
  if #raw <= tonumber(max_bytes) and string.find(raw, needle, 1, true) then
    out[#out + 1] = raw
  end
end
return out
