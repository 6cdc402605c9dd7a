-- TCP echo round trips over loopback: C clients, each sending a 64-byte
-- message and waiting for it to come back, for D seconds.
--   build/bin/lowbit bench/echo.lua [clients] [seconds] [size]
local lowbit = require "lowbit"
local net = require "lowbit.net"

local C = tonumber(arg and arg[1]) or 32
local D = tonumber(arg and arg[2]) or 3
local SIZE = tonumber(arg and arg[3]) or 64

local ln = assert(net.listen("127.0.0.1:0"))
lowbit.go(function()
  while true do
    local c = ln:accept()
    if not c then return end
    lowbit.go(function()
      while true do
        local d = c:read()
        if not d or not c:write(d) then break end
      end
      c:close()
    end)
  end
end)

local msg = string.rep("m", SIZE)
local count = 0
local stop = lowbit.now() + D
local wg = lowbit.waitgroup()
for _ = 1, C do
  wg:add(1)
  lowbit.go(function()
    local c = assert(net.dial(nil, ln:addr()))
    while lowbit.now() < stop do
      c:write(msg)
      if not c:read_full(SIZE) then break end
      count = count + 1
    end
    c:close()
    wg:done()
  end)
end
local t0 = lowbit.now()
wg:wait()
local dt = lowbit.now() - t0
ln:close()
print(("tcp echo (same process, %d conns, %d B): %.0f round trips/s, %.1f us/round trip per conn"):format(
  C, SIZE, count / dt, dt / (count / C) * 1e6))
dofile("bench/report.lua").line{ suite = "tcp_echo", case = ("%d conns, %d B, same process"):format(C, SIZE),
  metric = "round_trips_per_s", value = count / dt, unit = "round trips/s", better = "higher" }
