-- lowbit.cooper: the 101 handshake on both ends, over loopback TCP and an
-- in-memory pipe; nothing read past a head may be lost.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local cooper = require "lowbit.cooper"
local support = require "support"
local run = support.run

local function serve(handler)
  local srv, ln = support.http_server{ handler = handler }
  return ln:addr(), srv
end

local function read_until(c, pat)
  local got = ""
  while not got:find(pat) do
    local d = c:read()
    if not d then break end
    got = got .. d
  end
  return got
end

local read_all = require("support").read_all

-- fn for hijack: echoes lines back, prefixed, until EOF.
local function echo_fn(conn, proto)
  conn:write("proto=" .. proto .. "\n")
  while true do
    local d = conn:read()
    if not d then break end
    conn:write("echo:" .. d)
  end
  conn:close()
end

local UPGRADE = "GET /s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: myproto/1\r\n\r\n"

describe("cooper.hijack (server)", function()
  it("writes the 101 with extra headers and keeps bytes sent right after the head", function()
    run(function()
      local seen = lowbit.chan(1)
      local addr, srv = serve(cooper.hijack(function(conn, proto, r)
        seen:send({ proto, r.url.path })
        echo_fn(conn, proto)
      end, { protocols = { "other/2", "MyProto/1" },
             response_headers = function(r, proto) return { ["X-Proto"] = proto, ["X-Path"] = r.url.path } end }))
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 5)
      c:write(UPGRADE .. "EARLY")
      local got = read_until(c, "echo:EARLY")
      assert.matches("^HTTP/1.1 101 Switching Protocols\r\n", got)
      assert.matches("\r\nUpgrade: MyProto/1\r\n", got)
      assert.matches("\r\nConnection: Upgrade\r\n", got)
      assert.matches("\r\nX%-Proto: MyProto/1\r\n", got)
      assert.matches("\r\nX%-Path: /s\r\n", got)
      assert.matches("\r\n\r\nproto=MyProto/1\necho:EARLY$", got)
      assert.same({ "MyProto/1", "/s" }, seen:recv())
      c:write("more")
      assert.equal("echo:more", read_until(c, "more"))
      c:close()
      srv:close()
    end)
  end)

  it("refuses with 400/426 and a clear text body; 426 names the protocols", function()
    run(function()
      local addr, srv = serve(cooper.hijack(echo_fn, { protocols = { "myproto/1", "myproto/2" } }))
      local cases = {
        { "POST /s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: myproto/1\r\nContent-Length: 0\r\n", 400, "GET" },
        { "GET /s HTTP/1.1\r\nHost: x\r\nUpgrade: myproto/1\r\n", 400, "Connection: upgrade" },
        { "GET /s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n", 426, "missing Upgrade" },
        { "GET /s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", 426, "myproto/1, myproto/2" },
        { "GET /s HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: myproto/1\r\n", 400, "HTTP/1.1" },
      }
      for _, case in ipairs(cases) do
        local c = assert(net.dial(nil, addr))
        c:set_deadline(lowbit.now() + 5)
        c:write(case[1] .. "Connection: close\r\n\r\n")
        local resp = read_all(c)
        c:close()
        assert.equal(case[2], tonumber(resp:match("^HTTP/1.%d (%d+)")), case[1])
        assert.matches("Content%-Type: text/plain", resp)
        assert.matches(case[3], resp:match("\r\n\r\n(.*)$"), 1, true)
        if case[2] == 426 then assert.matches("\r\nUpgrade: myproto/1, myproto/2\r\n", resp) end
      end
      srv:close()
    end)
  end)

  it("response_headers may refuse with a status", function()
    run(function()
      local addr, srv = serve(cooper.hijack(echo_fn, { protocols = { "myproto/1" },
        response_headers = function() return nil, 403, "403 Forbidden: not you" end }))
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 5)
      c:write(UPGRADE:gsub("\r\n\r\n$", "\r\nConnection: close\r\n\r\n"))
      local resp = read_all(c)
      assert.matches("^HTTP/1.1 403 ", resp)
      assert.matches("not you", resp)
      c:close()
      srv:close()
    end)
  end)

  it("a raising fn gets its conn closed", function()
    run(function()
      local logged = {}
      local srv = http.server{ handler = cooper.hijack(function() error("boom") end, { protocols = { "myproto/1" } }),
                               error_log = function(m) logged[#logged + 1] = m end }
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() srv:serve(ln) end)
      local c = assert(net.dial(nil, ln:addr()))
      c:set_deadline(lowbit.now() + 5)
      c:write(UPGRADE)
      local got = read_all(c)
      assert.matches("^HTTP/1.1 101 ", got)
      assert.matches("boom", table.concat(logged))
      srv:close()
    end)
  end)
end)

describe("cooper.dial / cooper.upgrade (client)", function()
  it("dials a hijack server: full duplex over the switched conn", function()
    run(function()
      local addr, srv = serve(cooper.hijack(echo_fn, { protocols = { "myproto/1" } }))
      local conn, resp = cooper.dial({ url = "http://" .. addr .. "/s", headers = { Upgrade = "myproto/1" } })
      assert.is_truthy(conn, tostring(resp))
      assert.equal(101, resp.status)
      assert.equal("myproto/1", resp.protocol)
      assert.equal("proto=myproto/1\n", read_until(conn, "\n"))
      conn:write("ping")
      assert.equal("echo:ping", read_until(conn, "ping"))
      conn:close()
      -- ws:// works the same; opts.protocols fills in Upgrade
      conn = assert(cooper.dial({ url = "ws://" .. addr .. "/s" }, { protocols = { "myproto/1" } }))
      assert.equal("proto=myproto/1\n", read_until(conn, "\n"))
      conn:close()
      srv:close()
    end)
  end)

  it("bytes the server sent right after the 101 are read first", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function()
        local c = ln:accept()
        read_until(c, "\r\n\r\n")
        c:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: myproto/1\r\nConnection: Upgrade\r\n\r\nEXTRA")
        lowbit.sleep(0.05)
        c:write("-later")
        c:close()
      end)
      local conn = assert(cooper.dial({ url = "http://" .. ln:addr() .. "/", headers = { Upgrade = "myproto/1" } }))
      assert.equal("EXTRA-later", read_all(conn))
      ln:close()
    end)
  end)

  it("upgrade works over any conn (a pipe) and keeps early bytes there too", function()
    run(function()
      local a, b = net.pipe()
      lowbit.go(function()
        local req = read_until(b, "\r\n\r\n")
        assert(req:find("^GET /p HTTP/1.1\r\n"))
        assert(req:find("\r\nHost: example.test\r\n", 1, true))
        assert(req:find("\r\nX-Mine: 1\r\n", 1, true))
        b:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: myproto/1\r\nConnection: upgrade\r\nX-Back: 2\r\n\r\nhi")
        b:write(" there")
        b:close()
      end)
      local conn, resp = cooper.upgrade(a, { url = "http://example.test/p",
        headers = { Upgrade = "myproto/1", ["X-Mine"] = "1" } })
      assert.is_truthy(conn, tostring(resp))
      assert.equal("2", resp.headers:get("X-Back"))
      assert.equal("hi there", read_all(conn))
    end)
  end)

  it("refusals: not 101, validator says no, wrong protocol", function()
    run(function()
      local function server(answer)
        local ln = assert(net.listen("127.0.0.1:0"))
        lowbit.go(function()
          local c = ln:accept()
          if not c then return end
          read_until(c, "\r\n\r\n")
          c:write(answer)
          lowbit.sleep(0.1)
          c:close()
        end)
        return ln
      end
      local ok101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: myproto/1\r\nConnection: Upgrade\r\nX-Sig: bad\r\n\r\n"
      local ln = server("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
      local conn, err = cooper.dial({ url = "http://" .. ln:addr() .. "/", headers = { Upgrade = "myproto/1" } })
      assert.is_nil(conn)
      assert.is_true(errors.is(err, cooper.BAD_HANDSHAKE))
      assert.equal(404, err.status)
      assert.equal(404, err.response.status)
      ln:close()

      ln = server(ok101)
      local seen
      conn, err = cooper.dial({ url = "http://" .. ln:addr() .. "/", headers = { Upgrade = "myproto/1" } },
        { response_validator = function(req, resp)
            seen = req.url
            if resp.headers:get("X-Sig") ~= "good" then return nil, "signature mismatch" end
            return true
          end })
      assert.is_nil(conn)
      assert.is_true(errors.is(err, cooper.BAD_HANDSHAKE))
      assert.matches("signature mismatch", tostring(err))
      assert.equal("http://" .. ln:addr() .. "/", seen)
      ln:close()

      ln = server(ok101)
      conn, err = cooper.dial({ url = "http://" .. ln:addr() .. "/", headers = { Upgrade = "other/9" } })
      assert.is_nil(conn)
      assert.matches("not offered", tostring(err))
      ln:close()
    end)
  end)

  it("ctx bounds the handshake; bad URLs are errors", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local ctx = context.with_timeout(context.background(), 0.2)
      local t0 = lowbit.now()
      local conn, err = cooper.dial({ url = "http://" .. ln:addr() .. "/", headers = { Upgrade = "p" } }, { ctx = ctx })
      assert.is_nil(conn)
      assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED), tostring(err))
      assert.is_true(lowbit.now() - t0 < 2)
      ln:close()
      local _, uerr = cooper.dial({ url = "gopher://x/", headers = { Upgrade = "p" } })
      assert.is_true(errors.is(uerr, cooper.BAD_URL))
      _, uerr = cooper.dial({ url = "http:///nohost", headers = { Upgrade = "p" } })
      assert.is_true(errors.is(uerr, cooper.BAD_URL))
    end)
  end)

  it("wrong argument types raise, naming the argument", function()
    run(function()
      local function raises(pat, fn, ...)
        local ok, err = pcall(fn, ...)
        assert.is_false(ok)
        assert.matches(pat, tostring(err), 1, true)
      end
      raises("'fn'", cooper.hijack, nil)
      raises("'opts.protocols'", cooper.hijack, function() end, { protocols = 5 })
      raises("'opts.response_headers'", cooper.hijack, function() end, { response_headers = "x" })
      raises("'req'", cooper.dial, nil)
      raises("'req.url'", cooper.dial, {})
      raises("'opts.ctx'", cooper.dial, { url = "http://x/" }, { ctx = 5 })
      raises("'conn'", cooper.upgrade, nil, { url = "http://x/" })
      local a = net.pipe()
      raises("Upgrade header", cooper.upgrade, a, { url = "http://x/" })
      raises("'opts.response_validator'", cooper.upgrade, a, { url = "http://x/", headers = { Upgrade = "p" } },
        { response_validator = 1 })
    end)
  end)
end)
