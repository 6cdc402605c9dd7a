-- SSE fan-out, one handler for both servers (bench/ngx_sse.sh):
--   GET /events         an event stream; gets every published event
--   GET /publish?n=K    sends K events to every open stream, then answers
-- Subscribers are channels of this process (one nginx worker): the
-- publishing request's task feeds them, each stream's own task writes.
local lowbit = require "lowbit"
local sse = require "lowbit.sse"

local subs = {}

return function(w, r)
  local path = r.url.path
  if path == "/events" then
    local e = sse.new_emitter(w)
    local ch = lowbit.chan(64)
    subs[ch] = true
    e:send(sse.event{ name = "ready", data = "ok" })
    while true do
      local ev = ch:recv()
      if ev == nil then break end
      if not e:send(ev) then break end
    end
    subs[ch] = nil
  elseif path == "/publish" then
    local n = tonumber(r.url.raw_query:match("n=(%d+)")) or 1
    for i = 1, n do
      local ev = sse.event{ name = "tick", id = tostring(i), data = '{"n":' .. i .. ',"text":"fan-out bench"}' }
      for ch in pairs(subs) do ch:send(ev) end
    end
    w:write("published\n")
  elseif path == "/close" then
    for ch in pairs(subs) do ch:close() end
    w:write("closed\n")
  else
    w:write_header(404)
  end
end
