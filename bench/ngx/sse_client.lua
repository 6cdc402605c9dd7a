-- The client side of bench/ngx_sse.sh: N SSE streams on BASE/events, then
-- BASE/publish?n=EVENTS; prints the server's CPU per delivered event, read
-- from /proc/PID/stat (the server's pid: one process, nginx with
-- master_process off or the lowbit host).
--   build/bin/lowbit bench/ngx/sse_client.lua BASE N EVENTS PID
local lowbit = require "lowbit"
local http = require "lowbit.http"
local sse = require "lowbit.sse"

local base, N, EVENTS, pid = arg[1], tonumber(arg[2]) or 100, tonumber(arg[3]) or 200, arg[4]
local function cpu()
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local s = f:read("*a"); f:close()
  local rest = s:match("%) (.*)$")
  local t = {}
  for x in rest:gmatch("%S+") do t[#t + 1] = x end
  return (tonumber(t[12]) + tonumber(t[13])) / 100 -- utime, stime (CLK_TCK 100)
end

local ready, done = lowbit.waitgroup(), lowbit.waitgroup()
ready:add(N); done:add(N)
local received = 0
for _ = 1, N do
  lowbit.go(function()
    local resp = assert(http.get(base .. "/events"))
    local rd = sse.new_reader(resp.body)
    assert(rd:read(), "no ready event")
    ready:done()
    for _ = 1, EVENTS do
      if not rd:read() then break end
      received = received + 1
    end
    resp.body:close()
    done:done()
  end)
end
ready:wait()
local c0, t0 = cpu(), lowbit.now()
local resp = assert(http.get(base .. "/publish?n=" .. EVENTS))
resp.body:read_all()
done:wait()
local c1, dt = cpu(), lowbit.now() - t0
local r2 = http.get(base .. "/close")
if r2 then r2.body:read_all() end
print(("%d streams x %d events: %d delivered, %.0f events/s, server cpu/event %.2f us"):format(
  N, EVENTS, received, received / dt, (c1 - c0) * 1e6 / math.max(received, 1)))
