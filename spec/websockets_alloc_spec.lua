-- The websockets hot path makes no garbage. In a file of its own: a busted
-- file runs in its own process, so no earlier test (real sockets, yields
-- mid-frame) can have made LuaJIT give up compiling these loops, which the
-- check depends on (interpreted, FFI pointers and 64-bit fields are boxed).
local lowbit = require "lowbit"
local net = require "lowbit.net"
local websockets = require "lowbit.websockets"
local buffer = require "string.buffer"
local wsf = require "wsframes"
local run = require("support").run

local canned_conn, client_frames = wsf.canned_conn, wsf.client_frames
local read_all = require("support").read_all
local BINARY, rep = websockets.BINARY, string.rep

describe("websockets hot path garbage", function()
  it("read_message(buf) makes no garbage; write_message to TCP makes none either", function()
    run(function()
      local N = 65536
      local cc = canned_conn(client_frames(3 * N + 2000, 16))
      local s = websockets.new(cc, { server = true, compression = false })
      local buf = buffer.new()
      for _ = 1, 2000 do buf:reset(); s:read_message(buf) end
      -- The loop makes no garbage once LuaJIT has compiled it (interpreted,
      -- 64-bit header fields are boxed). Which round gets compiled varies
      -- from run to run, so the best of three rounds is what counts: a real
      -- per-message allocation shows in every round.
      local grown = math.huge
      for _ = 1, 3 do
        collectgarbage(); collectgarbage()
        collectgarbage("stop")
        local before = collectgarbage("count")
        for _ = 1, N do buf:reset(); s:read_message(buf) end
        grown = math.min(grown, (collectgarbage("count") - before) * 1024)
        collectgarbage("restart")
      end
      assert.is_true(grown < 64 * 1024, ("read_message(buf) allocated %d bytes over %d messages"):format(grown, N))

      -- writes: straight to the socket; only the deltas around the calls count
      local ln = assert(net.listen("127.0.0.1:0"))
      local peer
      lowbit.go(function() peer = ln:accept(); read_all(peer) end)
      local raw = assert(net.dial(nil, ln:addr()))
      local w = websockets.new(raw, { server = true })
      local payload = buffer.new():put(rep("w", 16))
      for _ = 1, 500 do w:write_message(BINARY, payload) end
      lowbit.sleep(0.05)
      collectgarbage(); collectgarbage()
      collectgarbage("stop")
      -- (4000 small frames fit the socket buffers: nothing yields, so no
      -- other task runs inside the loop)
      local b0 = collectgarbage("count")
      for _ = 1, 4000 do w:write_message(BINARY, payload) end
      local total = (collectgarbage("count") - b0) * 1024
      collectgarbage("restart")
      -- Any per-message string or table would be >= 40 bytes x 4000 =
      -- 160 KB; what stays under 64 KB is one-off (a trace compiled, a
      -- slow-path write when a loaded machine fills the socket buffer).
      assert.is_true(total < 64 * 1024, ("write_message allocated %d bytes over 4000 messages"):format(total))
      raw:close()
      ln:close()
    end)
  end)
end)
