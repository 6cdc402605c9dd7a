-- HTTPS: lowbit's HTTP server over lowbit.tls, driven by curl and by
-- lowbit's own client; the test CA is made here with openssl.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local tls = require "lowbit.tls"
local errors = require "lowbit.errors"
local support = require "support"
local run = support.run

local dir

setup(function() dir = support.make_pki() end)
teardown(function() if dir then os.execute("rm -rf '" .. dir .. "'") end end)

local function hello(w, r)
  w:header():set("Content-Type", "text/plain")
  w:write("secure hello " .. r.url.path .. " " .. r.body:read_all() .. "\n")
end

local function serve_tls(handler)
  local srv, ln = support.http_server{ handler = handler, read_header_timeout = 5,
    tls = assert(tls.server_config{ cert = dir .. "/srv.pem", key = dir .. "/srv.key", alpn = { "http/1.1" } }) }
  return ln:port(), srv
end

describe("https", function()
  it("curl with the test CA gets the response over TLS, and keeps the connection alive", function()
    local out
    run(function()
      local port, srv = serve_tls(hello)
      local url = ("https://localhost:%d"):format(port)
      -- curl is a separate process: run it from a task so the server serves meanwhile.
      local done = lowbit.chan(1)
      lowbit.go(function()
        local uv = require "luv"
        local stdout = uv.new_pipe()
        local buf = {}
        uv.spawn("curl", { args = { "-s", "--cacert", dir .. "/ca.pem", "--resolve", "localhost:" .. port .. ":127.0.0.1",
          "-d", "x=1", url .. "/a", url .. "/b", "-w", " conns=%{num_connects}\n" }, stdio = { nil, stdout, nil } },
          function() end)
        uv.read_start(stdout, function(err, data) if data then buf[#buf + 1] = data else uv.close(stdout); done:send(table.concat(buf)) end end)
      end)
      out = done:recv()
      srv:close()
    end)
    assert.equal("secure hello /a x=1\n conns=1\nsecure hello /b x=1\n conns=0\n", out)
  end)

  it("curl refuses the server without the CA (verification on)", function()
    local rc
    run(function()
      local port, srv = serve_tls(hello)
      local done = lowbit.chan(1)
      lowbit.go(function()
        local uv = require "luv"
        uv.spawn("curl", { args = { "-s", "-o", "/dev/null", ("https://127.0.0.1:%d/"):format(port) } },
          function(code) done:send(code) end)
      end)
      rc = done:recv()
      srv:close()
    end)
    assert.equal(60, rc) -- CURLE_PEER_FAILED_VERIFICATION
  end)

  it("lowbit's client speaks HTTPS with verification, pooling and ALPN", function()
    run(function()
      local port, srv = serve_tls(hello)
      local opts = { tls = { ca_file = dir .. "/ca.pem" } }
      for i = 1, 3 do
        local resp = assert(http.request{ method = "POST", url = ("https://localhost:%d/n%d"):format(port, i),
                                          body = "b" .. i, tls = opts.tls })
        assert.equal(200, resp.status)
        assert.equal("secure hello /n" .. i .. " b" .. i .. "\n", resp:read_all())
        assert.equal("http/1.1", resp.conn:alpn())
      end
      assert.equal(1, require("lowbit.http.client").idle_count())
      http.close_idle_connections()
      -- Without the CA: the system store does not know it.
      local resp, err = http.get(("https://localhost:%d/"):format(port))
      assert.is_nil(resp)
      assert.is_true(errors.is(err, tls.HANDSHAKE), tostring(err))
      srv:close()
    end)
  end)

  it("a plain-HTTP client talking to the TLS port gets Go's 400 and no log line, the server goes on", function()
    run(function()
      local logged
      local srv = http.server{ handler = hello, error_log = function(m) logged = m end, read_header_timeout = 2,
                               tls = assert(tls.server_config{ cert = dir .. "/srv.pem", key = dir .. "/srv.key" }) }
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() srv:serve(ln) end)
      local c = assert(net.dial(nil, ln:addr()))
      c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      c:set_read_deadline(lowbit.now() + 3)
      local d = support.read_all(c)
      c:close()
      lowbit.sleep(0.05)
      assert.equal("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n", d)
      assert.is_nil(logged)
      local resp = assert(http.get(("https://localhost:%d/ok"):format(ln:port()), { tls = { ca_file = dir .. "/ca.pem" } }))
      assert.equal("secure hello /ok \n", resp:read_all())
      http.close_idle_connections()
      srv:close()
    end)
  end)
  -- The server's system calls per new connection, seen by strace on the
  -- host binary serving n curl requests (TLS 1.3, `Connection: close`).
  -- Returns each connection's count of writes, the count of epoll_ctl
  -- calls on the listener and the connections (curl's output pipes come
  -- and go in epoll too), the failed epoll_ctl calls, and the count of
  -- setsockopt calls on the connections.
  local function strace_new_conns(n)
    local script = support.tmpfile([[
local lowbit, http, net, tls = require "lowbit", require "lowbit.http", require "lowbit.net", require "lowbit.tls"
local uv = require "luv"
return function(ctx, dir, n)
  local srv = http.server{ handler = function(w) w:write("hi\n") end,
    tls = assert(tls.server_config{ cert = dir .. "/srv.pem", key = dir .. "/srv.key" }) }
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function() srv:serve(ln) end)
  local url = ("https://127.0.0.1:%d/"):format(ln:port())
  for _ = 1, tonumber(n) do
    local done = lowbit.chan(1)
    local out = uv.new_pipe()
    local got = {}
    uv.spawn("curl", { args = { "-s", "--cacert", dir .. "/ca.pem", "-H", "Connection: close", url },
      stdio = { nil, out, nil } }, function() end)
    uv.read_start(out, function(_, d) if d then got[#got + 1] = d else uv.close(out); done:send(table.concat(got)) end end)
    io.stdout:write((done:recv()))
  end
  srv:close()
end
]], ".lua")
    local trace = os.tmpname()
    local out, rc = support.sh(("strace -o %s -e trace=accept4,epoll_ctl,write,close,setsockopt -e signal=none %s %s %s %d 2>&1")
      :format(trace, support.host, script, dir, n))
    os.remove(script)
    local f = assert(io.open(trace))
    local lines = f:read("*a")
    f:close()
    os.remove(trace)
    assert.equal(0, rc, out)
    assert.equal(("hi\n"):rep(n), out)
    local writes, open, epoll, failed, lfd, sockopts = {}, {}, 0, {}, nil, 0
    for line in lines:gmatch("[^\n]+") do
      local l, fd = line:match("^accept4%((%d+),.-%) = (%d+)")
      if fd then lfd = l; writes[#writes + 1] = 0; open[fd] = #writes end
      if line:match("^epoll_ctl.*= %-1") then failed[#failed + 1] = line end
      local efd = line:match("^epoll_ctl%(%d+, EPOLL_CTL_%u+, (%d+),")
      if efd and (efd == lfd or open[efd]) then epoll = epoll + 1 end
      local wfd = line:match("^write%((%d+),")
      if wfd and open[wfd] then writes[open[wfd]] = writes[open[wfd]] + 1 end
      local sfd = line:match("^setsockopt%((%d+),")
      if sfd and open[sfd] then sockopts = sockopts + 1 end
      local cfd = line:match("^close%((%d+)%)")
      if cfd then open[cfd] = nil end
    end
    assert.equal(n, #writes)
    return writes, epoll, failed, sockopts
  end

  -- Accepting used to make libuv stop watching the listener until the
  -- accept task took the connection, and start again then: an ADD failing
  -- with EEXIST and a MOD, per connection.
  it("accepts a connection with no epoll_ctl churn: its ADD and DEL only (strace)", function()
    local _, epoll, failed = strace_new_conns(3)
    assert.same({}, failed)
    -- (and one DEL of the listener when the server closes)
    assert.is_true(epoll <= 2 * 3 + 1, "epoll_ctl calls on the listener and the connections: " .. epoll)
  end)
  -- A response that ends the connection takes its close_notify with it
  -- (close_notify used to take a write and a TCP segment of its own).
  it("answers `Connection: close` in one write: ticket, response and close_notify together (strace)", function()
    local writes = strace_new_conns(3)
    -- the handshake's flight, then the rest
    assert.same({ 2, 2, 2 }, writes)
  end)
  -- TCP_NODELAY is set on the listener once: accepted sockets inherit it
  -- (it was a setsockopt per connection).
  it("sets no socket option per accepted connection: TCP_NODELAY comes from the listener (strace)", function()
    local _, _, _, sockopts = strace_new_conns(2)
    assert.equal(0, sockopts)
    run(function()
      local ffi = require "ffi"
      pcall(ffi.cdef, "int getsockopt(int, int, int, void *, unsigned int *);")
      local ln = assert(net.listen("127.0.0.1:0"))
      local accepted = lowbit.chan(1)
      lowbit.go(function() accepted:send(ln:accept()) end)
      local c = assert(net.dial(nil, ln:addr()))
      local s = accepted:recv()
      for _, conn in ipairs({ s, c }) do
        local v, len = ffi.new("int[1]"), ffi.new("unsigned int[1]", 4)
        assert.equal(0, ffi.C.getsockopt(conn.fd, 6, 1, v, len)) -- IPPROTO_TCP, TCP_NODELAY
        assert.equal(1, v[0])
      end
      c:close(); s:close(); ln:close()
    end)
  end)
end)
