--[[
  event: the JSON status event every transition publishes, built here where the
  authoritative attempt count lives. Members always in this order:
  {"id","queue","state","attempts","smtp_code","smtp_reply","error","consumer","at"},
  then, from FINISH only, "relay_id" and "recipients" (extra: those members already
  encoded, each with its leading comma; nil or '' for none).
  id '' is written null (a job with no readable id); code '' is written null.
]]
local function event(id, state, attempts, code, reply, err, consumer, at, queue, extra)
  return '{"id":' .. (id == '' and 'null' or cjson.encode(id)) ..
    ',"queue":' .. cjson.encode(queue) .. ',"state":"' .. state ..
    '","attempts":' .. tostring(attempts) ..
    ',"smtp_code":' .. (code == '' and 'null' or tostring(tonumber(code))) ..
    ',"smtp_reply":' .. cjson.encode(reply) .. ',"error":' .. cjson.encode(err) ..
    ',"consumer":' .. cjson.encode(consumer) .. ',"at":' .. cjson.encode(at) ..
    (extra or '') .. '}'
end
