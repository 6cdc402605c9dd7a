-- WebSocket echo in one process: C lowbit clients send a message to a
-- lowbit server and wait for it to come back, for D seconds per size, with
-- and without permessage-deflate. Prints messages/s.
--   build/bin/lowbit bench/websockets.lua [clients] [seconds]
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local websockets = require "lowbit.websockets"
local buffer = require "string.buffer"
local R = dofile("bench/report.lua").suite("websockets_inprocess")

local C = tonumber(arg and arg[1]) or 8
local D = tonumber(arg and arg[2]) or 2

local function run_size(addr, size, compression)
  local msg = string.rep("m", size)
  local count = 0
  local stop = lowbit.now() + D
  local wg = lowbit.waitgroup()
  for _ = 1, C do
    wg:add(1)
    lowbit.go(function()
      local c = assert(websockets.dial("ws://" .. addr .. "/ws", { compression = compression }))
      local buf = buffer.new()
      while lowbit.now() < stop do
        c:write_message(websockets.BINARY, msg)
        buf:reset()
        if not c:read_message(buf) then break end
        count = count + 1
      end
      c:close()
      wg:done()
    end)
  end
  wg:wait()
  return count / D
end

local function main()
  local srv = http.server{ handler = function(w, r)
    local c = websockets.accept(w, r, { read_limit = websockets.READ_LIMIT_LARGE })
    if not c then return end
    local buf = buffer.new()
    while true do
      buf:reset()
      local m, op = c:read_message(buf)
      if not m or not c:write_message(op, buf) then break end
    end
  end }
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function() srv:serve(ln) end)
  for _, compression in ipairs({ false, true }) do
    for _, size in ipairs({ 16, 4096, 65536 }) do
      local rate = run_size(ln:addr(), size, compression)
      print(("websockets echo  %-9s size=%-6d %8.0f msgs/s (%d clients, in-process)"):format(
        compression and "deflate" or "plain", size, rate, C))
      R:line{ case = ("echo %s %d B, %d clients"):format(compression and "deflate" or "plain", size, C),
        metric = "msgs_per_s", value = rate, unit = "msgs/s", better = "higher" }
    end
  end
  srv:close()
end

if lowbit.is_running() then main() else lowbit.run(main) end
