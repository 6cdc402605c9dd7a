-- SSE fan-out: one emitter loop publishes events that a lowbit HTTP server
-- delivers to N connected clients (lowbit SSE readers over loopback, in
-- this same process). Prints events/s delivered in total.
--   build/bin/lowbit bench/sse_fanout.lua [clients] [events]
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local sse = require "lowbit.sse"
local context = require "lowbit.context"

local N = tonumber(arg and arg[1]) or 1000
local EVENTS = tonumber(arg and arg[2]) or 200

-- Subscribers: each connected handler has a channel the emitter loop feeds.
local subs, nsubs = {}, 0
local ready = lowbit.waitgroup()
ready:add(N)

local srv = http.server{ handler = function(w, r)
  local e = sse.new_emitter(w)
  local ch = lowbit.chan(64)
  subs[ch] = true
  nsubs = nsubs + 1
  ready:done()
  while true do
    local ev = ch:recv()
    if ev == nil then break end
    if not e:send(ev) then break end
  end
  subs[ch] = nil
end }
local ln = assert(net.listen("127.0.0.1:0"))
lowbit.go(function() srv:serve(ln) end)

local received = 0
local done = lowbit.waitgroup()
done:add(N)
for _ = 1, N do
  lowbit.go(function()
    local resp = assert(http.get("http://" .. ln:addr() .. "/events"))
    local rd = sse.new_reader(resp.body)
    for _ = 1, EVENTS do
      if not rd:read() then break end
      received = received + 1
    end
    resp.body:close()
    done:done()
  end)
end
ready:wait()

local t0 = lowbit.now()
-- The emitter loop: one event per round to every subscriber.
for i = 1, EVENTS do
  local ev = sse.event{ name = "tick", id = tostring(i), data = '{"n":' .. i .. ',"text":"fan-out bench"}' }
  for ch in pairs(subs) do ch:send(ev) end
end
done:wait()
local dt = lowbit.now() - t0
for ch in pairs(subs) do ch:close() end
srv:close()
print(("sse fan-out: %d clients x %d events: %.0f events/s delivered (%.3f s)"):format(N, EVENTS, received / dt, dt))
dofile("bench/report.lua").line{ suite = "sse_fanout", case = ("%d clients x %d events"):format(N, EVENTS),
  metric = "events_per_s", value = received / dt, unit = "events/s", better = "higher" }
