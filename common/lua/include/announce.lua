--[[
  announce: an event goes out twice: PUBLISH on the queue's status channel (live, for
  whoever listens now) and XADD onto the queue's events stream (mailroom:{Q}:events,
  the channel's name with "events" for "status", so the same hash tag), capped near
  100 000 entries (MAXLEN ~), from which an application reads where it left off.
]]
local function announce(channel, payload)
  redis.call('PUBLISH', channel, payload)
  redis.call('XADD', string.sub(channel, 1, -7) .. 'events', 'MAXLEN', '~', '100000', '*',
    'event', payload)
end
