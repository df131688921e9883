--[[
  lease: whether a take still holds its job: its copy is still in its processing list
  and the record's lease is still its token. A worker asks this before it sends a
  message's end of data whenever its consumer's heartbeats had a gap long enough for
  its leases to lapse (a stall: SIGSTOP, a frozen VM, a long swap), so that a job
  another consumer recovered meanwhile is not sent twice.

  Input:
    KEYS job         mailroom:{Q}:job:<id>
    KEYS processing  mailroom:{Q}:processing:<consumer>
    ARGV raw         the raw job, exactly as taken
    ARGV token       the lease BEGIN took

  Output:
    1 when the lease holds, else 0
]]
if redis.call('HGET', job, 'lease') ~= token then return 0 end
if not redis.call('LPOS', processing, raw) then return 0 end
return 1
