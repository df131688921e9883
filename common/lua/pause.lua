--[[
  pause: `mailroom pause` and `mailroom resume`. A paused queue has the key paused,
  whose value is when it was paused (RFC 3339); consumers take nothing from it while
  it exists. Pausing a paused queue keeps its first time; resuming a running one does
  nothing. A change is announced with an event (state paused or resumed, id null).

  Input:
    KEYS paused    mailroom:{Q}:paused
    ARGV pause     '1' to pause, '0' to resume
    ARGV now       RFC 3339
    ARGV queue     the queue's name, for the event
    ARGV channel   mailroom:{Q}:status

  Output:
    1 when the queue's state changed, 0 when it already was so
]]
--@include event
--@include announce
local changed
if pause == '1' then
  changed = redis.call('SET', paused, now, 'NX') and 1 or 0
else
  changed = redis.call('DEL', paused)
end
if changed == 1 then
  local what = pause == '1' and 'paused' or 'resumed'
  announce(channel, event('', what, 0, '', '', what .. ' by an operator', '', now, queue))
end
return changed
