--[[
  list_pending: one page of the pending list (`mailroom list pending`, the dashboard),
  in the order consumers take the jobs: oldest first, from the right end. Positions
  count from that end (offset 0 is the job taken next).

  A page goes on after the job the previous one ended with (anchor): consumers take
  from the right end meanwhile, which moves it right, and a requeue pushed behind it
  moves it left by one per job, so it is looked for near where it was (up to 2000
  places right of it, 64 left). When it is not found (taken, or further away), the
  walk goes on from the job taken next: every job between had been taken, or listed
  already. A walk may so show a job twice; it never skips one.

  Input:
    KEYS pending     mailroom:{Q}:pending
    ARGV offset      where the page starts: jobs before it, counted from the right end
    ARGV anchor      the id of the job the previous page ended with; '' for none
    ARGV count       the most entries to return
    ARGV job_prefix  mailroom:{Q}:job:
    ARGV max_bytes   the largest valid job, bytes

  Output:
    {start, length, entry...}: where this page starts (offset or, after the anchor
    search, the place after the anchor, or 0), the list's length, then each entry as
    listed makes it ({id, raw, bytes, '', state, attempts, error}), oldest first
]]
--@include job_id
--@include listed
local length = redis.call('LLEN', pending)
local start = tonumber(offset)

-- The place after the anchor, looked for in [want - 2000, want + 64] counted from the
-- right end, nearest to where it was; 0 when it is not there.
local function after_anchor(want)
  local near, far = math.max(0, want - 1 - 2000), want - 1 + 64
  local left_lo, left_hi = math.max(0, length - 1 - far), length - 1 - near
  if left_hi < left_lo then return 0 end
  local needle, best = '"' .. anchor .. '"', nil
  for j, raw in ipairs(redis.call('LRANGE', pending, left_lo, left_hi)) do
    if string.find(raw, needle, 1, true) and job_id(raw, max_bytes) == anchor then
      local at = length - 1 - (left_lo + j - 1)
      if not best or math.abs(at - (want - 1)) < math.abs(best - (want - 1)) then best = at end
    end
  end
  return best and best + 1 or 0
end

-- Where it was is where it mostly still is: looked at first, alone.
local function anchor_at(want)
  local raw = redis.call('LINDEX', pending, -want)
  return raw and string.find(raw, '"' .. anchor .. '"', 1, true)
    and job_id(raw, max_bytes) == anchor
end

if anchor ~= '' and start > 0 and not anchor_at(start) then start = after_anchor(start) end
local out = {start, length}
local left_hi = length - 1 - start
local left_lo = math.max(0, left_hi - tonumber(count) + 1)
if left_hi >= 0 then
  local page = redis.call('LRANGE', pending, left_lo, left_hi)
  for j = #page, 1, -1 do
    out[#out + 1] = listed(page[j], '', job_prefix, max_bytes)
  end
end
return out
