--[[
  listed: one entry of a listing (list_pending, list_scheduled) as the library reads
  it: {id, raw, bytes, due, state, attempts, error}. The raw job travels as it is,
  except one larger than max_bytes (never a valid job: a hostile one), which comes as
  '' with its size; its id is still looked for (job_id). The state, attempts and last
  error are its record's ('' when it has none). due is '' for a pending job.
  Needs job_id.
]]
local function listed(raw, due, job_prefix, max_bytes)
  local id = job_id(raw, max_bytes)
  local state, attempts, err = false, false, false
  if id ~= '' then
    local f = redis.call('HMGET', job_prefix .. id, 'state', 'attempts', 'error')
    state, attempts, err = f[1], f[2], f[3]
  end
  local shown = raw
  if #raw > tonumber(max_bytes) then shown = '' end
  return {id, shown, tostring(#raw), due, state or '', attempts or '', err or ''}
end
