-- lowbit inside nginx (conformance/openresty.md, list A): a real nginx
-- (Debian's nginx + libnginx-mod-http-lua + lua-resty-core) started from
-- spec/ngx/nginx.conf.in in a temporary prefix, stopped by its pid.
local support = require "support"
local proc = require "support.proc"
local uv = require "luv"

local root = support.root
if root:sub(1, 1) ~= "/" then root = support.sh("cd " .. root .. " && pwd"):gsub("%s+$", "") end

-- A command's stdout and stderr, and its exit status.
local function sh(cmd) return support.sh("(" .. cmd .. ") 2>&1") end
-- (nginx cannot be told to listen on port 0 and report the port it got)
local free_port, read_file = support.free_port, support.read_file

-- GET (or method) url: status, headers (lower-cased names), body.
local function fetch(url, method, extra)
  local tmp = os.tmpname()
  local out = sh(("curl -s -m 10 %s -X %s -D %s.h -o %s.b '%s'; echo"):format(extra or "", method or "GET", tmp, tmp, url))
  local head, body = read_file(tmp .. ".h") or "", read_file(tmp .. ".b") or ""
  os.remove(tmp); os.remove(tmp .. ".h"); os.remove(tmp .. ".b")
  local status = tonumber(head:match("^HTTP/[%d.]+ (%d+)"))
  local h = {}
  for name, value in head:gmatch("\n([^:\r\n]+):[ \t]*([^\r\n]*)") do h[name:lower()] = value end
  return status, h, body, out
end

local nginx = {}

local function start_nginx()
  local tmp = support.tmpdir()
  local port, h2port = free_port(), free_port()
  local conf = read_file(root .. "/spec/ngx/nginx.conf.in")
  conf = conf:gsub("@TMP@", tmp):gsub("@REPO@", root):gsub("@H2PORT@", tostring(h2port)):gsub("@PORT@", tostring(port))
  local f = assert(io.open(tmp .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  local base = "http://127.0.0.1:" .. port
  nginx = { tmp = tmp, port = port, base = base, h2 = "http://127.0.0.1:" .. h2port }
  -- daemon off: the background process is nginx's master, stopped by pid.
  local ok, p = pcall(proc.start, { "nginx", "-p", tmp, "-c", tmp .. "/nginx.conf" }, {
    env = { LOWBIT_LIB = root .. "/build/lib/liblowbit.so" }, timeout = 10,
    -- Really serving (nginx -t passes even when resty.core cannot load).
    ready = function() return fetch(base .. "/probe/luv") == 200 end,
  })
  assert(ok, "nginx did not serve: " .. tostring(p) .. "\n" .. tostring(read_file(tmp .. "/error.log")))
  nginx.proc = p
end

local function stop_nginx()
  if nginx.proc then nginx.proc.cleanup() end
  if nginx.tmp and nginx.tmp:match("^/tmp/") then sh("rm -rf " .. nginx.tmp) end
end

describe("lowbit.ngx inside nginx", function()
  setup(start_nginx)
  teardown(stop_nginx)

  it("A1: lowbit.core loads liblowbit.so; urlsign signs and verifies", function()
    local status, _, body = fetch(nginx.base .. "/probe/core")
    assert.equal(200, status, body)
    assert.equal(("version=%s path=liblowbit.so verify=true nil tampered=nil\n"):format(require("lowbit").VERSION), body)
  end)

  it("sniffs the Content-Type of a response that sets none, as lowbit's server does", function()
    local want = { html = "text/html; charset=utf-8", p = "text/html; charset=utf-8", png = "image/png",
      text = "text/plain; charset=utf-8", bin = "application/octet-stream", esc = "text/plain; charset=utf-8",
      longbin = "application/octet-stream", longtext = "text/plain; charset=utf-8", xml = "text/xml; charset=utf-8",
      pdf = "application/pdf", gif = "image/gif" }
    for k, ct in pairs(want) do
      local status, h = fetch(nginx.base .. "/probe/sniff?" .. k)
      assert.equal(200, status, k)
      assert.equal(ct, h["content-type"], k)
    end
  end)

  it("request fields made on first use: url before headers, body and Content-Length after", function()
    local status, _, body = fetch(nginx.base .. "/probe/lazy?q=1", "POST",
      "-H 'Host: lazy.test' -H 'X-A: a1' --data-binary 'body!'")
    assert.equal(200, status, body)
    assert.equal("POST|lazy.test|/probe/lazy|q=1|HTTP/1.1|1|/probe/lazy?q=1|a1|5|lazy.test|body!\n", body)
  end)

  it("the request carries the raw target, Host, proto, peer address and raw headers", function()
    local status, _, body = fetch(nginx.base .. "/probe/request?a=%2F&b", "GET", "-A Agent/1 -H 'Host: example.test'")
    assert.equal(200, status, body)
    assert.equal("GET /probe/request?a=%2F&b host=example.test proto=HTTP/1.1 remote=127.0.0.1:P cl=0 ua=Agent/1\n", body)
  end)

  it("A2: examples/app.lua answers the same under lowbit's server and under nginx", function()
    local rows = {
      { "GET", "/hello" }, { "GET", "/users/42" }, { "GET", "/files/a/b.txt" }, { "GET", "/a//b" },
      { "GET", "/nope" }, { "POST", "/hello" }, { "GET", "/teapot" }, { "GET", "/tasks" },
    }
    proc.with({ support.host, "examples/serve.lua", "examples/app.lua", "127.0.0.1:0" },
      { ready = function(p) return p.stderr():match("on (127%.0%.0%.1:%d+)") end }, function(p)
      local addr = p.ready
      for _, row in ipairs(rows) do
        local s1, h1, b1 = fetch("http://" .. addr .. row[2], row[1])
        local s2, h2, b2 = fetch(nginx.base .. row[2], row[1])
        local what = row[1] .. " " .. row[2]
        assert.is_number(s1, what)
        assert.equal(s1, s2, what)
        assert.equal(h1["content-type"], h2["content-type"], what)
        assert.equal(b1, b2, what)
        assert.equal(h1["location"], h2["location"], what)
        assert.equal(h1["allow"], h2["allow"], what)
        assert.equal(h1["x-content-type-options"], h2["x-content-type-options"], what)
      end
    end)
    -- And the rows say what list A asks for.
    local s, h, b = fetch(nginx.base .. "/a//b")
    assert.equal(307, s); assert.equal("/a/b", h["location"])
    s, h = fetch(nginx.base .. "/hello", "POST")
    assert.equal(405, s); assert.equal("GET, HEAD", h["allow"])
    s, h, b = fetch(nginx.base .. "/teapot")
    assert.equal(418, s); assert.equal("application/problem+json", h["content-type"])
    assert.matches('"status":418', b)
    s, h = fetch(nginx.base .. "/nope")
    assert.equal(404, s); assert.equal("nosniff", h["x-content-type-options"])
  end)

  it("A3: a stream's first event arrives at once, an empty flush is no error, and a client gone cancels r.ctx", function()
    local tmp = os.tmpname()
    -- curl leaves after 1 s (the handler would wait 10 s).
    sh(("curl -s -N -m 1 -o %s '%s/probe/stream'"):format(tmp, nginx.base))
    local body = read_file(tmp)
    os.remove(tmp)
    assert.equal("data: first\n\ndata: flushes true nil true nil\n\n", body)
    local state
    for _ = 1, 40 do
      state = select(3, fetch(nginx.base .. "/probe/state"))
      if state:find("abort=case 1", 1, true) then break end
      sh("sleep 0.05")
    end
    -- curl left after 1 s; the cancel came within 1 s of that.
    local after = tonumber(state:match("abort=case 1 context canceled after ([%d.]+)"))
    assert.truthy(after, state)
    assert.is_true(after < 2, state)
  end)

  it("A3: lowbit.sse's emitter streams unchanged (no 'nothing to flush' failure)", function()
    local status, h, body = fetch(nginx.base .. "/probe/sse")
    assert.equal(200, status)
    assert.equal("text/event-stream", h["content-type"])
    local ids = {}
    for id in body:gmatch("id: (%d)\n") do ids[#ids + 1] = id end
    assert.same({ "1", "2", "3" }, ids)
    assert.matches("event: tick\nid: 1\ndata: event 1\n\n", body)
    local _, _, st = fetch(nginx.base .. "/probe/state")
    assert.matches("sse=nil", st)
  end)

  for _, compression in ipairs({ false, true }) do
    it("A4/A5: lowbit.websockets echoes 16 B to 1 MiB inside nginx" .. (compression and ", permessage-deflate" or "")
      .. "; two writers in two light threads; close(1000) completes", function()
      local lowbit = require "lowbit"
      local websockets = require "lowbit.websockets"
      local got = {}
      support.run(function()
        local c = assert(websockets.dial("ws://127.0.0.1:" .. nginx.port .. "/probe/ws",
          { compression = compression, max_message_size = 4 * 1024 * 1024 }))
        got.params = c:compression() ~= nil
        c:set_deadline(lowbit.now() + 20)
        for _, n in ipairs({ 16, 4096, 65536, 1024 * 1024 }) do
          local msg = string.rep("x", n - 1) .. tostring(n % 10)
          assert(c:write_message(2, msg))
          local back, op = c:read_message()
          got[#got + 1] = back == msg and n or ("bad " .. n .. " " .. tostring(op))
        end
        assert(c:write_message(1, "big"))
        local a = assert(c:read_message())
        local b = assert(c:read_message())
        got.big = (a == string.rep("A", 1024 * 1024) or a == string.rep("B", 1024 * 1024))
          and (b == string.rep("A", 1024 * 1024) or b == string.rep("B", 1024 * 1024)) and a ~= b
        assert(c:write_message(1, "close"))
        local m, err = c:read_message()
        got.close = tostring(m) .. " " .. tostring(err and err.code)
        c:close()
      end)
      assert.same({ 16, 4096, 65536, 1024 * 1024 }, { got[1], got[2], got[3], got[4] })
      assert.equal(compression, got.params)
      assert.is_true(got.big)
      assert.equal("nil 1000", got.close)
      local st
      for _ = 1, 40 do
        st = select(3, fetch(nginx.base .. "/probe/ws_state"))
        if st:find("^closed") then break end
        sh("sleep 0.05")
      end
      assert.equal("closed true nil\n", st)
    end)
  end

  it("A6: sleep, chan, select+after, mutex, with_timeout and retry behave as on luv", function()
    local status, _, body = fetch(nginx.base .. "/probe/sync")
    assert.equal(200, status, body)
    assert.equal("slept ok\nrecv v\nselect 2\nmutex 1,2,3\nwith_timeout 1 context deadline exceeded\nretry done nil 3\n", body)
  end)

  it("A6: 10,000 concurrent with_timeout contexts share one timer thread", function()
    local status, _, body = fetch(nginx.base .. "/probe/timeouts?n=10000")
    assert.equal(200, status, body)
    assert.equal("expired 10000 of 10000, timers added and not released 0\n", body)
    local log = read_file(nginx.tmp .. "/error.log")
    assert.falsy(log:find("too many pending timers", 1, true))
  end)

  it("A7: a read deadline of now+0.2 on a silent peer times out after 0.2 s", function()
    -- A listener that never accepts: the kernel completes the handshake, nobody speaks.
    local silent = uv.new_tcp()
    assert(silent:bind("127.0.0.1", 0))
    assert(silent:listen(8, function() end))
    local port = silent:getsockname().port
    local status, _, body = fetch(nginx.base .. "/probe/deadline?port=" .. port)
    silent:close()
    uv.run("nowait")
    assert.equal(200, status, body)
    local dt = tonumber(body:match("^read nil i/o timeout after ([%d.]+)\n$"))
    assert.truthy(dt, body)
    assert.is_true(dt >= 0.15 and dt <= 0.25, body)
  end)

  it("A8: a task still waiting when its handler returns is cancelled, then killed, and the response completes", function()
    local status, _, body = fetch(nginx.base .. "/probe/leave")
    assert.equal(200, status)
    assert.equal("leaving\n", body)
    local _, _, st = fetch(nginx.base .. "/probe/state")
    assert.matches("leave=cancelled: context canceled", st)
  end)

  it("A9: a hijacked conn reads the pipelined bytes first; close_write errs instead of raising", function()
    local lowbit = require "lowbit"
    local net = require "lowbit.net"
    local got
    support.run(function()
      local c = assert(net.dial(nil, "127.0.0.1:" .. nginx.port))
      c:write("GET /probe/raw HTTP/1.1\r\nHost: x\r\n\r\nPIPELINED")
      c:set_read_deadline(lowbit.now() + 5)
      local parts = {}
      while true do
        local s = c:read()
        if not s then break end
        parts[#parts + 1] = s
      end
      got = table.concat(parts)
      c:close()
    end)
    assert.matches("^HTTP/1.1 200 OK\r\n", got)
    assert.matches("\r\n\r\nread=PIPELINED close_write=nil lowbit.ngx: close_write is not possible", got)
  end)

  it("A9: read_full against a peer that closes early returns UNEXPECTED_EOF", function()
    local lowbit = require "lowbit"
    local net = require "lowbit.net"
    support.run(function()
      local c = assert(net.dial(nil, "127.0.0.1:" .. nginx.port))
      c:write("GET /probe/rawfull HTTP/1.1\r\nHost: x\r\n\r\n")
      c:set_read_deadline(lowbit.now() + 5)
      assert.matches("^HTTP/1.1 200 OK", c:read())
      c:write("abc")
      lowbit.sleep(0.1)
      c:close()
    end)
    local st
    for _ = 1, 40 do
      st = select(3, fetch(nginx.base .. "/probe/rawfull_state"))
      if st ~= "nil\n" then break end
      sh("sleep 0.05")
    end
    assert.equal("nil unexpected EOF\n", st)
  end)

  it("A10: under HTTP/2, w:hijack() returns nil, err (no raise)", function()
    local status, _, body = fetch(nginx.h2 .. "/probe/h2", "GET", "--http2-prior-knowledge")
    assert.equal(500, status, body)
    assert.matches("^hijack refused: lowbit.ngx: hijack is not possible over HTTP/2", body)
    -- websockets.accept answers with an error status.
    status = fetch(nginx.h2 .. "/probe/ws", "GET", "--http2-prior-knowledge -H 'Sec-WebSocket-Version: 13' "
      .. "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='")
    assert.is_true(status >= 400 and status < 500, tostring(status))
    local _, _, st = fetch(nginx.base .. "/probe/ws_state")
    assert.matches("^accept: ", st)
  end)

  it("init_worker(main) runs a background service with tasks, channels and timers outside requests", function()
    local body
    for _ = 1, 40 do
      body = select(3, fetch(nginx.base .. "/probe/background"))
      if body:find("true", 1, true) then break end
      sh("sleep 0.05")
    end
    assert.equal("from a background task, ticks>0: true\n", body)
  end)

  it("pooled writers: a response sees nothing of the previous one; HTTP/1.0 and 1.1 get whole bodies", function()
    for _ = 1, 3 do
      local status, h, body = fetch(nginx.base .. "/probe/pooled?set")
      assert.equal(418, status)
      assert.equal("yes", h["x-pooled"])
      assert.equal("first response\n", body)
      status, h, body = fetch(nginx.base .. "/probe/pooled?none")
      assert.equal(200, status)
      assert.is_nil(h["x-pooled"])
      assert.is_nil(h["set-cookie"])
      assert.equal("text/plain; charset=utf-8", h["content-type"])
      assert.equal("second\n", body)
    end
    -- A request whose handler read nothing is pooled: the next requests
    -- (which read their fields) see their own method, target and headers.
    for i = 1, 3 do
      local _, _, body = fetch(nginx.base .. "/untouched")
      assert.equal("untouched\n", body)
      local _, _, lazy = fetch(nginx.base .. "/probe/lazy?n=" .. i, "POST", "-H 'X-A: a" .. i .. "' --data-binary b" .. i)
      assert.matches("^POST|127%.0%.0%.1:%d+|/probe/lazy|n=" .. i .. "|HTTP/1%.1|1|/probe/lazy%?n=" .. i .. "|a" .. i .. "|2|127%.0%.0%.1:%d+|b" .. i .. "\n$", lazy)
    end
    -- No Content-Length from the adapter: chunked for HTTP/1.1, and an
    -- HTTP/1.0 client still reads the whole body (nginx closes after it).
    local status, h, body = fetch(nginx.base .. "/probe/pooled?set", "GET", "--http1.0")
    assert.equal(418, status)
    assert.equal("first response\n", body)
    status, h = fetch(nginx.base .. "/probe/pooled?none")
    assert.equal("chunked", h["transfer-encoding"])
  end)

  describe("clients over cosockets (conformance/scale.md C2)", function()
    local rsrv
    setup(function() rsrv = assert(support.start_redis()) end)
    teardown(function() if rsrv then rsrv.stop() end end)

    for i, cs in ipairs(require("redis_cases").cases) do
      it("lowbit.redis: " .. cs.name, function()
        local status, _, body = fetch(("%s/probe/redis?port=%d&case=%d"):format(nginx.base, rsrv.port, i))
        assert.equal(200, status, body)
        assert.equal("ok\n", body)
      end)
    end

    it("lowbit.redis: connect by address dials ngx.socket.tcp(); the pool reuses a conn within a request", function()
      for _ = 1, 2 do
        local status, _, body = fetch(("%s/probe/redis_pool?port=%d"):format(nginx.base, rsrv.port))
        assert.equal(200, status, body)
        assert.equal("v same=true idle=1\n", body)
      end
    end)

    it("connections released to the clients' pools go to nginx's keepalive pool: the next request reuses them", function()
      local ids = {}
      for i = 1, 3 do
        local status, _, body = fetch(("%s/probe/redis_keepalive?port=%d"):format(nginx.base, rsrv.port))
        assert.equal(200, status, body)
        ids[i] = body
      end
      assert.matches("^id=%d+\n$", ids[1])
      assert.equal(ids[1], ids[2])
      assert.equal(ids[1], ids[3])
      local conns = {}
      for i = 1, 3 do
        local status, _, body = fetch(nginx.base .. "/probe/http_keepalive")
        assert.equal(200, status, body)
        conns[i] = body
      end
      assert.matches("^conn=%d+\n$", conns[1])
      assert.equal(conns[1], conns[2])
      assert.equal(conns[1], conns[3])
    end)

    it("lowbit.http's client fetches from other locations of nginx", function()
      local status, _, body = fetch(nginx.base .. "/probe/httpclient")
      assert.equal(200, status, body)
      local lines = {}
      for l in body:gmatch("[^\n]+") do lines[#lines + 1] = l end
      local core = ("version=%s path=liblowbit.so verify=true nil tampered=nil\n"):format(require("lowbit").VERSION)
      assert.equal("/probe/core 200 text/plain; charset=utf-8 " .. #core, lines[1])
      assert.equal("/probe/sniff?html 200 text/html; charset=utf-8 20", lines[2])
      assert.matches("^/users/42 200 text/plain; charset=utf%-8 %d+$", lines[3])
      assert.matches("^POST 200 POST|127%.0%.0%.1:%d+|/probe/lazy|x=1|HTTP/1%.1|1|/probe/lazy%?x=1|%-|7|127%.0%.0%.1:%d+|payload$", lines[4])
    end)
  end)

  it("A11: after every request above, luv was never loaded in the worker", function()
    local status, _, body = fetch(nginx.base .. "/probe/luv")
    assert.equal(200, status)
    assert.equal("luv loaded: false\n", body)
    local log = read_file(nginx.tmp .. "/error.log")
    assert.falsy(log:find("[error]", 1, true), log)
  end)
end)
