--[[
  relay_circuit: one relay's circuit breaker, shared by every consumer of it.
  Consecutive connection, TLS or greeting (421) failures, counted across consumers,
  open the circuit at the threshold: consumers then take no job for that relay (its
  jobs wait in pending, no attempt counted). One consumer at a time probes it (a
  connection without a job) once probe_at has come, with a backoff that doubles from
  one second up to probe_max; the first good session, probe or not, closes it.

  Input:
    KEYS relay      mailroom:relay:{R}
    ARGV op         failure, success or probe (may this worker probe now?)
    ARGV who        <consumer>:<worker>, the prober
    ARGV threshold  consecutive failures that open the circuit
    ARGV probe_max  the longest wait between two probes, ms
    ARGV hold_ms    probe: how long the prober keeps the right to probe
    ARGV error      failure: what went wrong, for the record

  Output:
    {circuit, failures, probe_at, changed}: the circuit as it is now ('closed',
    'half-open', 'open'), the consecutive failures, when the next probe may go (ms,
    Redis' clock; 0 when closed), and 1 when this call changed the circuit; for probe,
    circuit is 'probe' when this worker is to probe now
]]
--@include now_ms
local now = now_ms()
local f = redis.call('HMGET', relay, 'circuit', 'failures', 'probe_at', 'probe_delay',
  'prober_until')
local circuit = f[1] or 'closed'
local failures, probe_at = tonumber(f[2]) or 0, tonumber(f[3]) or 0

if op == 'success' then
  if circuit == 'closed' and failures == 0 then return {circuit, 0, 0, 0} end
  redis.call('HSET', relay, 'circuit', 'closed', 'failures', 0, 'probe_at', 0,
    'prober', '', 'prober_until', 0, 'probe_delay', 0)
  return {'closed', 0, 0, circuit == 'closed' and 0 or 1}
end

if op == 'probe' then
  local free = tonumber(f[5]) or 0
  if circuit == 'closed' then return {circuit, failures, 0, 0} end
  if now < probe_at or (circuit == 'half-open' and now < free) then
    return {circuit, failures, probe_at, 0}
  end
  redis.call('HSET', relay, 'circuit', 'half-open', 'prober', who,
    'prober_until', now + tonumber(hold_ms))
  return {'probe', failures, probe_at, 1}
end

failures = redis.call('HINCRBY', relay, 'failures', 1)
redis.call('HSET', relay, 'last_error', error, 'failed_at', now)
if circuit == 'closed' and failures < tonumber(threshold) then
  return {circuit, failures, 0, 0}
end
if circuit == 'open' then return {circuit, failures, probe_at, 0} end
-- opening now, or a probe failed: the next probe after the doubled wait
local delay = circuit == 'closed' and 1000
  or math.min(tonumber(probe_max), 2 * (tonumber(f[4]) or 1000))
redis.call('HSET', relay, 'circuit', 'open', 'probe_at', now + delay, 'probe_delay', delay,
  'prober', '', 'prober_until', 0)
if circuit == 'closed' then redis.call('HSET', relay, 'opened_at', now) end
return {'open', failures, now + delay, 1}
