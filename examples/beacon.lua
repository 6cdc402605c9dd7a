-- beacon: UDP discovery on loopback, server and seeker in one process.
--
--   build/bin/lowbit examples/beacon.lua
--
-- On a LAN the seeker would probe the broadcast address
-- ("255.255.255.255:9999" or the subnet's, e.g. "192.168.1.255:9999");
-- here both ends sit on 127.0.0.1 so the example runs anywhere.
-- Finishes on its own.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local net = require "lowbit.net"
local buffer = require "string.buffer"
local beacon = require "lowbit.beacon"

return function(ctx)
  -- a free port for the example
  local probe_sock = assert(net.listen_udp("127.0.0.1:0"))
  local addr = probe_sock:local_addr()
  probe_sock:close()

  local sctx, stop = context.with_cancel(ctx)
  local served = lowbit.chan(1)
  lowbit.go(function()
    served:send(beacon.serve(sctx, addr, buffer.new(),
      function(probe) return probe == "WHO-HAS-API" end, "api at 127.0.0.1:8080"))
  end)
  lowbit.sleep(0.05)

  local seek_ctx, cancel = context.with_timeout(ctx, 2)
  local buf = buffer.new()
  local n, from = beacon.seek(seek_ctx, addr, "WHO-HAS-API", buf)
  cancel()
  if n then
    print(("found %s: %s (%d bytes)"):format(from, buf:tostring(), n))
  else
    print("discovery failed: " .. tostring(from))
  end

  local quiet_ctx, cancel2 = context.with_timeout(ctx, 0.3)
  local _, err = beacon.seek(quiet_ctx, addr, "WRONG PROBE", buffer.new())
  cancel2()
  print("wrong probe: " .. tostring(err) .. (err == context.DEADLINE_EXCEEDED and " (unwrapped)" or ""))

  stop()
  print("serve returned: " .. tostring(served:recv()))
end
