-- A server example shuts down within its deadline even when its clients
-- have stopped reading (issue 10, defect 6): examples/sse.lua, its event
-- streams stalled on full sockets, exits promptly after SIGTERM.
local lowbit = require "lowbit"
local support = require "support"
local sh, host = support.sh, support.host

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
    local port = 21000 + math.random(0, 8999)
    local client = support.tmpfile(CLIENT, ".py")
    local pidfile = os.tmpname()
    -- Interval 0: events as fast as the server can write them.
    sh(("cd %s && (%s examples/sse.lua 127.0.0.1:%d 0 >/dev/null 2>&1 & echo $! > %s)"):format(
      support.root, host, port, pidfile))
    local pid = io.open(pidfile):read("*l")
    sh(("for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:%d/ && break; sleep 0.05; done"):format(port))
    sh(("(python3 %s %d >/dev/null 2>&1 & echo $! > %s)"):format(client, port, pidfile))
    local cpid = io.open(pidfile):read("*l")
    os.remove(pidfile)
    local exited = false
    support.run(function()
      lowbit.sleep(3) -- the streams fill the sockets; the server's writes wait
      sh("kill -TERM " .. pid)
      for _ = 1, 200 do -- 10 s at most (the old server was still running then)
        local _, rc = sh("kill -0 " .. pid .. " 2>/dev/null")
        if rc ~= 0 then exited = true; break end
        lowbit.sleep(0.05)
      end
    end)
    sh("kill -9 " .. pid .. " " .. cpid .. " 2>/dev/null")
    os.remove(client)
    assert.is_true(exited, "examples/sse.lua still runs 10 s after SIGTERM")
  end)
end)
