-- A server example shuts down within its deadline even when its clients
-- have stopped reading (issue 10, defect 6): examples/sse.lua, its event
-- streams stalled on full sockets, exits promptly after SIGTERM.
local lowbit = require "lowbit"
local support = require "support"
local proc = require "support.proc"
local host = support.host

-- A client that opens event streams and never reads them (a small receive
-- buffer, so that the server's socket fills in a moment).
local CLIENT = [[
import socket, sys, time
cs = []
for _ in range(3):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(("127.0.0.1", int(sys.argv[1])))
    c.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    cs.append(c)
time.sleep(30)
]]

describe("examples/sse.lua with clients that do not read", function()
  it("exits promptly after SIGTERM", function()
    local port = support.free_port()
    local client = support.tmpfile(CLIENT, ".py")
    -- Interval 0: events as fast as the server can write them.
    local exited = false
    proc.with({ host, "examples/sse.lua", "127.0.0.1:" .. port, "0" },
      { ready = function() return proc.answers(("http://127.0.0.1:%d/"):format(port)) end }, function(server)
      proc.with({ "python3", client, port }, {}, function()
        support.run(function()
          lowbit.sleep(3) -- the streams fill the sockets; the server's writes wait
          server.signal("TERM")
          for _ = 1, 200 do -- 10 s at most (the old server was still running then)
            if server.status() then exited = true; break end
            lowbit.sleep(0.05)
          end
        end)
      end)
    end)
    os.remove(client)
    assert.is_true(exited, "examples/sse.lua still runs 10 s after SIGTERM")
  end)
end)
