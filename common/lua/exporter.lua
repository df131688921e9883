--[[
  exporter: the queue's metrics exporter (docs/operations.md). One consumer per queue
  holds the lease mailroom:{Q}:exporter and exports the queue-level figures on its
  /metrics; the others export none, so a Prometheus that scrapes every consumer counts
  nothing twice. This takes the lease for consumer when nobody holds it (SET PX),
  renews it when consumer holds it (PEXPIRE), and while consumer holds it reads the
  figures in the same step; with ttl_ms '0' it gives the lease up (at shutdown) and
  reads nothing. Nothing here touches a job.

  For the per-domain figures (like Postfix' qshape) it also answers a bounded sample
  of the pending jobs, oldest first (from the right end, taken next): at most `sample`
  jobs, fewer once they weigh `budget` bytes, an entry over max_bytes given as ''. The
  consumer decodes them, not Redis: returning 1 MiB costs Redis about a third of what
  decoding it here would. The processing lists are derived from the queue's prefix: they
  share its hash tag, so this holds in a Redis Cluster slot too.

  Input:
    KEYS exporter           mailroom:{Q}:exporter
    KEYS pending            mailroom:{Q}:pending
    KEYS scheduled          mailroom:{Q}:scheduled
    KEYS dead               mailroom:{Q}:dead
    KEYS consumers          mailroom:{Q}:consumers
    KEYS recovered          mailroom:{Q}:recovered
    KEYS paused             mailroom:{Q}:paused
    ARGV consumer           this consumer's id
    ARGV ttl_ms             the lease's life, ms; '0' gives it up
    ARGV processing_prefix  mailroom:{Q}:processing:
    ARGV alive_ms           a consumer whose heartbeat is this recent counts as alive
    ARGV sample             the most pending jobs sampled
    ARGV budget             the most bytes of pending jobs sampled
    ARGV max_bytes          the largest entry answered ('' instead)

  Output:
    0 when another consumer holds the lease, or when it was given up; else
    {1, now_ms, pending, scheduled, processing, dead, paused (0 or 1), consumers alive,
     then the sampled entries, the oldest first}
]]
--@include now_ms
local holder = redis.call('GET', exporter)
if ttl_ms == '0' then
  -- a timeout of 0 deletes the key: no DEL, which the consumer's ACL role lacks
  if holder == consumer then redis.call('PEXPIRE', exporter, 0) end
  return 0
end
if holder == consumer then
  redis.call('PEXPIRE', exporter, ttl_ms)
elseif not holder then
  redis.call('SET', exporter, consumer, 'PX', ttl_ms)
else
  return 0
end

-- The jobs in the processing lists of the consumers of a set.
local function held(set)
  local n = 0
  for _, c in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    n = n + redis.call('LLEN', processing_prefix .. c)
  end
  return n
end

local limit, most, largest = tonumber(sample), tonumber(budget), tonumber(max_bytes)
local sampled, bytes, stop = {}, 0, -1
while #sampled < limit and bytes < most do
  local n = math.min(100, limit - #sampled)
  local entries = redis.call('LRANGE', pending, stop - n + 1, stop)
  for i = #entries, 1, -1 do
    local raw = entries[i]
    bytes = bytes + #raw
    if #raw > largest then raw = '' end
    sampled[#sampled + 1] = raw
    if bytes >= most then break end
  end
  if #entries < n then break end
  stop = stop - n
end

local now = now_ms()
local out = {1, now, redis.call('LLEN', pending), redis.call('ZCARD', scheduled),
  held(consumers) + held(recovered), redis.call('LLEN', dead), redis.call('EXISTS', paused),
  redis.call('ZCOUNT', consumers, now - tonumber(alive_ms), '+inf')}
for _, raw in ipairs(sampled) do out[#out + 1] = raw end
return out
