-- The HTTP client against hostile or unusual peers (issue 18): the pool
-- keyed by TLS settings, stray bytes never read as the next response,
-- requests that cannot smuggle anything (method, headers, framing), idle
-- connections checked before reuse, ctx/timeout over the body, bounded
-- 1xx, early responses to uploads, escaped paths, Basic auth from the URL.
-- Peers are real: lowbit's server (over lowbit.tls with certificates made
-- here), and raw TCP listeners sending exactly the bytes under test.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local tls = require "lowbit.tls"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local client = require "lowbit.http.client"
local support = require "support"
local run = support.run

-- Reads one request head (and the body its Content-Length announces)
-- from c; returns the head text and the body, or nil at EOF.
local function read_request(c, buf)
  buf = buf or ""
  while not buf:find("\r\n\r\n", 1, true) do
    local d = c:read()
    if not d then return nil end
    buf = buf .. d
  end
  local e = buf:find("\r\n\r\n", 1, true)
  local head, rest = buf:sub(1, e + 3), buf:sub(e + 4)
  local n = tonumber(head:lower():match("\r\ncontent%-length: *(%d+)")) or 0
  while #rest < n do
    local d = c:read()
    if not d then break end
    rest = rest .. d
  end
  return head, rest:sub(1, n), rest:sub(n + 1)
end

-- A raw listener (ln, or a new TCP one): answer(c, head, n, k, body)
-- handles request n (over all connections; k on this connection), false
-- closes the connection.
-- Returns the base URL, the server (close() stops the listener and every
-- connection) and the list of request heads seen (seen.conns: accepted).
local function raw_server(answer, ln)
  ln = ln or assert(net.listen("127.0.0.1:0"))
  local seen = { conns = 0 }
  local open = {}
  lowbit.go(function()
    while true do
      local c = ln:accept()
      if not c then return end
      seen.conns = seen.conns + 1
      open[c] = true
      lowbit.go(function()
        local buf, k = "", 0
        while true do
          local head, b, rest = read_request(c, buf)
          if not head then break end
          buf = rest
          seen[#seen + 1] = head
          k = k + 1
          if answer(c, head, #seen, k, b) == false then break end
        end
        c:close()
        open[c] = nil
      end)
    end
  end)
  local srv = { close = function()
    http.close_idle_connections()
    ln:close()
    for c in pairs(open) do c:close() end
  end }
  return "http://" .. ln:addr(), srv, seen
end

local OK_GENUINE = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ngenuine"
local FORGED = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"

describe("http client security", function()
  after_each(function() http.close_idle_connections() end)

  describe("the pool is keyed by what a connection proves", function()
    local dir
    setup(function() dir = support.make_pki() end)
    teardown(function() if dir then os.execute("rm -rf '" .. dir .. "'") end end)

    local function serve_tls(cert)
      local conns = {}
      local srv, ln = support.http_server{ handler = function(w, r)
        conns[r.remote_addr] = true
        w:write("hi")
      end, tls = assert(tls.server_config{ cert = dir .. "/" .. cert .. ".pem", key = dir .. "/" .. cert .. ".key" }) }
      local function count() local n = 0; for _ in pairs(conns) do n = n + 1 end; return n end
      return ("https://localhost:%d/"):format(ln:port()), srv, count
    end

    it("never lets an unverified connection serve a verifying request", function()
      run(function()
        local u, srv = serve_tls("self")
        local resp = assert(http.get(u, { tls = { insecure_skip_verify = true } }))
        assert.equal("hi", resp:read_all())
        assert.equal(1, client.idle_count())
        -- Default settings verify against the system store: the
        -- self-signed certificate fails, pooled connection or not.
        local r2, err = http.get(u)
        assert.is_nil(r2)
        assert.is_true(errors.is(err, tls.VERIFY), tostring(err))
        -- Same for a config object that verifies (against the test CA).
        r2, err = http.get(u, { tls = assert(tls.client_config{ ca_file = dir .. "/ca.pem" }) })
        assert.is_nil(r2)
        assert.is_true(errors.is(err, tls.VERIFY), tostring(err))
        srv:close()
      end)
    end)

    it("keys by CA, server name and config, and still reuses the same settings", function()
      run(function()
        local u, srv, count = serve_tls("srv")
        local ca = { ca_file = dir .. "/ca.pem" }
        assert.equal("hi", assert(http.get(u, { tls = ca })):read_all())
        assert.equal("hi", assert(http.get(u, { tls = { ca_file = dir .. "/ca.pem" } })):read_all())
        assert.equal(1, count()) -- equal options: one connection
        -- Another expected name: the certificate does not match it.
        local r, err = http.get(u, { tls = { ca_file = dir .. "/ca.pem", server_name = "other.test" } })
        assert.is_nil(r)
        assert.is_true(errors.is(err, tls.VERIFY), tostring(err))
        -- Another CA (the self-signed one): this server is not trusted.
        r, err = http.get(u, { tls = { ca_file = dir .. "/self.pem" } })
        assert.is_nil(r)
        assert.is_true(errors.is(err, tls.VERIFY), tostring(err))
        -- A config object: reused with itself, not by another one.
        local cfg = assert(tls.client_config{ ca_file = dir .. "/ca.pem" })
        assert.equal("hi", assert(http.get(u, { tls = cfg })):read_all())
        assert.equal("hi", assert(http.get(u, { tls = cfg })):read_all())
        assert.equal(2, count())
        assert.equal("hi", assert(http.get(u, { tls = assert(tls.client_config{ ca_file = dir .. "/ca.pem" }) })):read_all())
        assert.equal(3, count())
        srv:close()
      end)
    end)
    it("over TLS too: stray bytes and an idle close keep a connection out of the pool", function()
      run(function()
        local cfg = assert(tls.server_config{ cert = dir .. "/srv.pem", key = dir .. "/srv.key" })
        local closed = lowbit.chan(1)
        local ln = assert(tls.listen("127.0.0.1:0", cfg))
        local _, rs, seen = raw_server(function(c, head, n, k)
          if head:find("^GET /stray") and n == 1 then c:write("HTTP/1.1 204 No Content\r\n\r\n" .. FORGED); return end
          c:write(OK_GENUINE)
          if head:find("^GET /idle") then closed:send(true); return false end -- close_notify, then close
        end, ln)
        local base = ("https://localhost:%d"):format(ln:port())
        local o = { tls = { ca_file = dir .. "/ca.pem" } }
        local resp = assert(http.get(base .. "/stray", o))
        assert.equal(204, resp.status)
        assert.equal("genuine", assert(http.get(base .. "/2", o)):read_all())
        assert.equal(2, seen.conns)
        -- A connection the server closes once idle: a POST goes on a new one.
        assert.equal("genuine", assert(http.get(base .. "/idle", o)):read_all())
        closed:recv()
        lowbit.sleep(0.05)
        resp = assert(http.request{ method = "POST", url = base .. "/p", body = "once", tls = o.tls })
        assert.equal("genuine", resp:read_all())
        assert.equal(3, seen.conns)
        rs:close()
      end)
    end)
  end)

  describe("stray bytes after a response", function()
    -- The first request overall gets `first`; every later one "genuine".
    local function check(method, first, expect_first)
      run(function()
        local base, rs, seen = raw_server(function(c, head, n)
          c:write(n == 1 and first or OK_GENUINE)
        end)
        local resp = assert(http.request{ method = method, url = base .. "/1" })
        assert.equal(expect_first, resp:read_all())
        local r2 = assert(http.get(base .. "/2"))
        assert.equal("genuine", r2:read_all())
        assert.equal(2, #seen)
        assert.equal(2, seen.conns) -- the first connection was not reused
        rs:close()
      end)
    end

    it("a 204 with a body closes the connection", function()
      check("GET", "HTTP/1.1 204 No Content\r\n\r\n" .. FORGED, "")
    end)

    it("a 304 with a body closes the connection", function()
      check("GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\n" .. FORGED, "")
    end)

    it("bytes past the Content-Length close the connection", function()
      check("GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" .. FORGED, "ok")
    end)

    it("a HEAD response's phantom body closes the connection", function()
      check("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: " .. #FORGED .. "\r\n\r\n" .. FORGED, "")
    end)

    it("bytes arriving on an idle connection close it", function()
      run(function()
        local sent = lowbit.chan(1)
        local base, rs, seen = raw_server(function(c, head, n)
          if n == 1 then
            c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            lowbit.sleep(0.02)
            c:write(FORGED) -- unsolicited, while the connection is idle
            sent:send(true)
          else
            c:write(OK_GENUINE)
          end
        end)
        assert.equal("ok", assert(http.get(base .. "/1")):read_all())
        sent:recv()
        lowbit.sleep(0.02)
        assert.equal("genuine", assert(http.get(base .. "/2")):read_all())
        assert.equal(2, seen.conns)
        rs:close()
      end)
    end)
  end)

  it("rejects methods that are not tokens, sending nothing", function()
    run(function()
      local base, rs, seen = raw_server(function(c) c:write(OK_GENUINE) end)
      for _, m in ipairs({ "GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "GET\r\nX: y", "G ET", "GET\t", "GE\0T",
                           "", "GET(" }) do
        local resp, err = http.request{ method = m, url = base .. "/" }
        assert.is_nil(resp, ("method %q"):format(m))
        assert.is_true(errors.is(err, client.BAD_REQUEST), tostring(err))
      end
      assert.equal(0, #seen)
      -- Extension methods are tokens.
      assert.equal("genuine", assert(http.request{ method = "PROPFIND", url = base .. "/" }):read_all())
      assert.matches("^PROPFIND / ", seen[1])
      rs:close()
    end)
  end)

  describe("framing comes from the body", function()
    local function serve()
      local seen = {}
      local srv, ln = support.http_server{ handler = function(w, r)
        seen[#seen + 1] = { method = r.method, cl = r.content_length, body = r.body:read_all(),
                            te = r.headers:get("Transfer-Encoding") }
        w:write("ok")
      end }
      return "http://" .. ln:addr(), srv, seen
    end

    it("ignores a caller's Content-Length or Transfer-Encoding for a string body", function()
      run(function()
        local base, srv, seen = serve()
        local resp = assert(http.request{ method = "POST", url = base .. "/", body = "hello world",
                                          headers = { ["Content-Length"] = "3" } })
        assert.equal("ok", resp:read_all())
        resp = assert(http.request{ method = "POST", url = base .. "/", body = "abc",
                                    headers = { ["Transfer-Encoding"] = "chunked" } })
        assert.equal("ok", resp:read_all())
        assert.equal(2, #seen) -- no third request made of the leftover bytes
        assert.same({ method = "POST", cl = 11, body = "hello world" }, seen[1])
        assert.same({ method = "POST", cl = 3, body = "abc" }, seen[2])
        srv:close()
      end)
    end)

    it("sends a reader with a caller's Content-Length only when it yields exactly that", function()
      run(function()
        local base, srv, seen = serve()
        local string_body = require("lowbit.http.request").string_body
        local resp = assert(http.request{ method = "PUT", url = base .. "/", body = string_body("0123456789"),
                                          headers = { ["Content-Length"] = "10" } })
        assert.equal("ok", resp:read_all())
        assert.same({ method = "PUT", cl = 10, body = "0123456789" }, seen[1])
        local r, err = http.request{ method = "PUT", url = base .. "/", body = string_body("hello world"),
                                     headers = { ["Content-Length"] = "3" } }
        assert.is_nil(r)
        assert.is_true(errors.is(err, client.BAD_REQUEST), tostring(err))
        assert.matches("ContentLength=3 with Body length 11", tostring(err))
        r, err = http.request{ method = "PUT", url = base .. "/", body = string_body("ab"),
                               headers = { ["Content-Length"] = "3" } }
        assert.is_nil(r)
        assert.is_true(errors.is(err, client.BAD_REQUEST), tostring(err))
        r, err = http.request{ method = "PUT", url = base .. "/", body = string_body("ab"),
                               headers = { ["Content-Length"] = "2x" } }
        assert.is_nil(r)
        assert.is_true(errors.is(err, client.BAD_REQUEST), tostring(err))
        -- Without one, a reader goes chunked.
        resp = assert(http.request{ method = "PUT", url = base .. "/", body = string_body("xyz") })
        assert.equal("ok", resp:read_all())
        lowbit.sleep(0.05)
        -- The two with a wrong length reached the server as requests whose
        -- bodies ended early (nothing more); the "2x" one never left.
        assert.equal(4, #seen)
        local bodies = {}
        for i = 1, #seen do
          assert.equal("PUT", seen[i].method)
          bodies[#bodies + 1] = tostring(seen[i].body)
        end
        table.sort(bodies)
        assert.same({ "0123456789", "nil", "nil", "xyz" }, bodies)
        for i = 1, #seen do
          if seen[i].body == "xyz" then assert.same({ method = "PUT", cl = -1, body = "xyz", te = "chunked" }, seen[i]) end
        end
        srv:close()
      end)
    end)
  end)

  it("does not reuse a connection the server closed while it was idle", function()
    run(function()
      local closed = lowbit.chan(1)
      local base, rs, seen = raw_server(function(c, head, n, k)
        c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if k == 1 then closed:send(true); return false end -- keep-alive timeout: close
      end)
      assert.equal("ok", assert(http.get(base .. "/")):read_all())
      closed:recv()
      lowbit.sleep(0.02)
      -- A POST is never re-sent: it must go on a fresh connection.
      local resp = assert(http.request{ method = "POST", url = base .. "/", body = "once" })
      assert.equal("ok", resp:read_all())
      assert.equal(2, #seen)
      assert.equal(2, seen.conns)
      rs:close()
    end)
  end)

  describe("ctx and timeout cover the body", function()
    -- Sends a head and 2 of 10 body bytes, then stalls (for 1.5 s).
    local function stalling()
      return raw_server(function(c)
        c:write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        lowbit.sleep(1.5)
        return false
      end)
    end

    it("timeout ends a stalled body read", function()
      run(function()
        local base, rs = stalling()
        local resp = assert(http.get(base .. "/", { timeout = 0.2 }))
        assert.equal(200, resp.status)
        local s, err = resp:read_all()
        assert.is_nil(s)
        assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED), tostring(err))
        rs:close()
      end)
    end)

    it("cancelling ctx ends a stalled body read", function()
      run(function()
        local base, rs = stalling()
        local ctx, cancel = context.with_cancel(context.background())
        local resp = assert(http.get(base .. "/", { ctx = ctx }))
        lowbit.go(function() lowbit.sleep(0.05); cancel() end)
        local s, err = resp:read_all()
        assert.is_nil(s)
        assert.is_true(errors.is(err, context.CANCELED), tostring(err))
        rs:close()
      end)
    end)

    it("header_timeout bounds the head only", function()
      run(function()
        local base, rs = raw_server(function(c, head)
          if head:find("X-Stall", 1, true) then lowbit.sleep(1); return false end
          c:write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
          lowbit.sleep(0.3)
          c:write("cd")
        end)
        local resp = assert(http.get(base .. "/", { header_timeout = 0.1 }))
        assert.equal("abcd", resp:read_all())
        -- ... and does bound it: a head that does not come in time.
        local r2, err = http.get(base .. "/", { header_timeout = 0.1, headers = { ["X-Stall"] = "1" } })
        assert.is_nil(r2)
        assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED), tostring(err))
        rs:close()
      end)
    end)

    it("a body read to the end puts the connection back with no deadline left", function()
      run(function()
        local base, rs, seen = raw_server(function(c) c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") end)
        assert.equal("ok", assert(http.get(base .. "/", { timeout = 0.1 })):read_all())
        lowbit.sleep(0.2) -- past the first request's deadline
        assert.equal("ok", assert(http.get(base .. "/")):read_all())
        assert.equal(1, seen.conns)
        rs:close()
      end)
    end)
  end)

  it("stops after 5 informational responses, as Go", function()
    run(function()
      local EARLY = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
      local base, rs = raw_server(function(c, head)
        local n = tonumber(head:match("^GET /(%d+)"))
        c:write(EARLY:rep(n) .. OK_GENUINE)
      end)
      assert.equal("genuine", assert(http.get(base .. "/5")):read_all())
      local resp, err = http.get(base .. "/6")
      assert.is_nil(resp)
      assert.is_true(errors.is(err, client.TOO_MANY_1XX), tostring(err))
      resp, err = http.get(base .. "/1000")
      assert.is_nil(resp)
      assert.is_true(errors.is(err, client.TOO_MANY_1XX), tostring(err))
      rs:close()
    end)
  end)

  describe("an early response to an upload", function()
    -- Reads the request head only, answers 413 and closes.
    local function refusing()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function()
        while true do
          local c = ln:accept()
          if not c then return end
          local buf = ""
          while not buf:find("\r\n\r\n", 1, true) do
            local d = c:read(); if not d then break end; buf = buf .. d
          end
          c:write("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoo big")
          c:close()
        end
      end)
      return "http://" .. ln:addr(), ln
    end

    it("is returned instead of the write error (string body)", function()
      run(function()
        local base, ln = refusing()
        local resp, err = http.request{ method = "POST", url = base .. "/up", body = string.rep("x", 32 * 1024 * 1024) }
        assert.is_not_nil(resp, tostring(err))
        assert.equal(413, resp.status)
        assert.equal("too big", resp:read_all())
        assert.equal(0, client.idle_count())
        ln:close()
      end)
    end)

    it("from a Go server is returned, as Go's client returns it", function()
      local peers = require "wspeers"
      local bin = peers.go_peer("http_early_go")
      run(function()
        local proc = peers.spawn({ bin })
        assert.is_true(proc.wait_output("\n", 20), proc.output())
        local addr = proc.output():match("^(%S+)\n")
        local resp, err = http.request{ method = "POST", url = "http://" .. addr .. "/up",
                                        body = string.rep("x", 32 * 1024 * 1024) }
        assert.is_not_nil(resp, tostring(err))
        assert.equal(413, resp.status)
        assert.equal("too big", resp:read_all())
        assert.equal("ok", assert(http.get("http://" .. addr .. "/ok")):read_all())
        proc.kill()
      end)
    end)

    it("is returned instead of the write error (chunked reader)", function()
      run(function()
        local base, ln = refusing()
        local n = 0
        local reader = { read = function()
          n = n + 1
          if n > 1024 then return nil, errors.EOF end
          return string.rep("y", 65536)
        end }
        local resp, err = http.request{ method = "PUT", url = base .. "/up", body = reader }
        assert.is_not_nil(resp, tostring(err))
        assert.equal(413, resp.status)
        assert.equal("too big", resp:read_all())
        ln:close()
      end)
    end)
  end)

  it("escapes the request path as Go does", function()
    run(function()
      local base, rs, seen = raw_server(function(c) c:write(OK_GENUINE) end)
      local cases = {
        { "/a b", "/a%20b" }, { "/a%20b", "/a%20b" }, { "/caf\195\169", "/caf%C3%A9" },
        { "/a%2Fb/c", "/a%2Fb/c" }, { "/x;y=1,z:@$&+=", "/x;y=1,z:@$&+=" },
        -- What Go 1.19's client puts on the request line for the same URLs
        -- (the query goes as given):
        { "/a b?x y", "/a%20b?x y" }, { "/q\"<>{}|^`", "/q%22%3C%3E%7B%7D%7C%5E%60" }, { "/x!'()*", "/x!'()*" },
        { "/caf\195\169?q=\195\169", "/caf%C3%A9?q=\195\169" },
      }
      for i, c in ipairs(cases) do
        assert.equal("genuine", assert(http.get(base .. c[1])):read_all())
        assert.equal("GET " .. c[2] .. " HTTP/1.1", seen[i]:match("^[^\r]*"), c[1])
      end
      rs:close()
    end)
  end)

  it("rejects control bytes in header names and values with nil, err, sending nothing", function()
    run(function()
      local base, rs, seen = raw_server(function(c) c:write(OK_GENUINE) end)
      for _, v in ipairs({ "a\1b", "a\127b", "a\31", "\27[31m", "a\r\nX-Injected: 1", "a\nb", "a\0b" }) do
        local resp, err = http.get(base .. "/", { headers = { ["X-Test"] = v } })
        assert.is_nil(resp, ("value %q"):format(v))
        assert.is_true(errors.is(err, client.BAD_REQUEST), tostring(err))
      end
      for _, name in ipairs({ "X Test", "X:Test", "X\1", "" }) do
        local resp, err = http.get(base .. "/", { headers = { [name] = "v" } })
        assert.is_nil(resp, ("name %q"):format(name))
        assert.is_true(errors.is(err, client.BAD_REQUEST), tostring(err))
      end
      -- A header set (which refuses CR, LF and NUL itself) is checked too.
      local h = require("lowbit.http.headers").new():set("X-Test", "a\1b")
      local resp, err = http.get(base .. "/", { headers = h })
      assert.is_nil(resp)
      assert.is_true(errors.is(err, client.BAD_REQUEST), tostring(err))
      assert.equal(0, #seen)
      -- ... and so is what check_redirect adds to a redirected request.
      local rbase, rsrv = raw_server(function(c) c:write("HTTP/1.1 302 Found\r\nLocation: " .. base .. "/\r\nContent-Length: 0\r\n\r\n") end)
      resp, err = http.get(rbase .. "/", { check_redirect = function(req) req.headers:set("X-Test", "a\127") end })
      assert.is_nil(resp)
      assert.is_true(errors.is(err, client.BAD_REQUEST), tostring(err))
      rsrv:close()
      assert.equal(0, #seen)
      -- HTAB and bytes >= 0x80 (obs-text) pass.
      resp = assert(http.get(base .. "/", { headers = { ["X-Test"] = "a\tb \200" } }))
      assert.equal("genuine", resp:read_all())
      assert.matches("\r\nX%-Test: a\tb \200\r\n", seen[1])
      rs:close()
    end)
  end)

  it("sends user:pass@ from the URL as Basic auth, as Go, and never shows the password", function()
    run(function()
      local base, rs, seen = raw_server(function(c) c:write(OK_GENUINE) end)
      local hostport = base:match("^http://(.*)$")
      assert.equal("genuine", assert(http.get("http://alice:p%40ss%3Aw0rd@" .. hostport .. "/")):read_all())
      -- base64("alice:p@ss:w0rd")
      assert.matches("\r\nAuthorization: Basic YWxpY2U6cEBzczp3MHJk\r\n", seen[1])
      assert.equal("genuine", assert(http.get("http://bob@" .. hostport .. "/")):read_all())
      assert.matches("\r\nAuthorization: Basic Ym9iOg==\r\n", seen[2]) -- base64("bob:")
      -- The caller's Authorization wins.
      assert.equal("genuine", assert(http.get("http://alice:secret@" .. hostport .. "/",
        { headers = { Authorization = "Bearer t" } })):read_all())
      assert.matches("\r\nAuthorization: Bearer t\r\n", seen[3])
      assert.is_nil(seen[3]:find("Basic", 1, true))
      rs:close()
      local _, err = http.get("http://alice:secret@" .. hostport .. "/")
      assert.is_not_nil(err)
      assert.is_nil(tostring(err):find("secret", 1, true), tostring(err))
      assert.matches("alice:***@", tostring(err), 1, true)
    end)
  end)
end)
