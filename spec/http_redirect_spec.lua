-- The HTTP client follows redirects as Go's http.Client does, against
-- lowbit's server (and raw sockets) over loopback: method and body rules,
-- Location resolution, limits, check_redirect, header hygiene across
-- hosts, connection reuse, ctx over the whole chain. Also url:parse /
-- url:resolve_reference, which the client resolves Locations with.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local url = require "lowbit.url"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local client = require "lowbit.http.client"
local support = require "support"
local run = support.run

-- A server recording every request it sees (method, path, query, the
-- headers, the body, the client's address) in `seen`; handler(w, r, n)
-- answers (n: this request's number).
local function serve(handler, host)
  local seen = {}
  local srv, ln = support.http_server({ handler = function(w, r)
    local b = r.body:read_all()
    seen[#seen + 1] = { method = r.method, path = r.url.path, query = r.url.raw_query, headers = r.headers,
                        body = b, remote = r.remote_addr, content_length = r.content_length, host = r.host }
    handler(w, r, #seen)
  end }, host)
  return "http://" .. ln:addr(), srv, seen, ln:port()
end

local function redirect(w, target, status)
  w:header():set("Location", target)
  w:write_header(status)
  w:write("moved")
end

describe("url:resolve_reference", function()
  -- RFC 3986 section 5.4, base http://a/b/c/d;p?q
  local cases = {
    { "g:h", "g:h" }, { "g", "http://a/b/c/g" }, { "./g", "http://a/b/c/g" }, { "g/", "http://a/b/c/g/" },
    { "/g", "http://a/g" }, { "//g", "http://g" }, { "?y", "http://a/b/c/d;p?y" },
    { "g?y", "http://a/b/c/g?y" }, { "#s", "http://a/b/c/d;p?q#s" }, { "g#s", "http://a/b/c/g#s" },
    { "g?y#s", "http://a/b/c/g?y#s" }, { ";x", "http://a/b/c/;x" }, { "g;x", "http://a/b/c/g;x" },
    { "", "http://a/b/c/d;p?q" }, { ".", "http://a/b/c/" }, { "./", "http://a/b/c/" },
    { "..", "http://a/b/" }, { "../", "http://a/b/" }, { "../g", "http://a/b/g" },
    { "../..", "http://a/" }, { "../../", "http://a/" }, { "../../g", "http://a/g" },
    -- abnormal examples (5.4.2)
    { "../../../g", "http://a/g" }, { "../../../../g", "http://a/g" }, { "/./g", "http://a/g" },
    { "/../g", "http://a/g" }, { "g.", "http://a/b/c/g." }, { ".g", "http://a/b/c/.g" },
    { "g..", "http://a/b/c/g.." }, { "..g", "http://a/b/c/..g" }, { "./../g", "http://a/b/g" },
    { "./g/.", "http://a/b/c/g/" }, { "g/./h", "http://a/b/c/g/h" }, { "g/../h", "http://a/b/c/h" },
    { "g;x=1/./y", "http://a/b/c/g;x=1/y" }, { "g;x=1/../y", "http://a/b/c/y" },
    -- escapes survive; an absolute reference replaces everything
    { "a%2Fb/../c", "http://a/b/c/c" }, { "x%20y", "http://a/b/c/x%20y" },
    { "https://other:8443/p/../q?z", "https://other:8443/q?z" },
  }
  it("resolves RFC 3986's examples", function()
    local base = assert(url.parse("http://a/b/c/d;p?q"))
    for _, c in ipairs(cases) do
      local got = assert(base:parse(c[1]))
      assert.equal(c[2], got:string(), "reference " .. ("%q"):format(c[1]))
    end
    assert.equal("http://a/b/c/d;p?q", base:string()) -- the base is not changed
    local r = assert(url.parse("../x%20y"))
    assert.equal("/b/x y", base:resolve_reference(r).path)
    assert.equal("../x%20y", r:string())
    assert.is_nil(base:parse("%zz"))
    assert.has_error(function() base:resolve_reference("/x") end,
      "bad argument 'ref' to url:resolve_reference: URL expected, got string")
  end)
end)

describe("http client redirects", function()
  after_each(function() http.close_idle_connections() end)

  for _, status in ipairs({ 301, 302, 303 }) do
    it(status .. " turns POST into GET without the body, and keeps GET and HEAD", function()
      run(function()
        local base, srv, seen = serve(function(w, r)
          if r.url.path == "/from" then redirect(w, "/to", status) else w:write("at " .. r.method) end
        end)
        local resp = assert(http.request{ method = "POST", url = base .. "/from", body = "payload",
                                          headers = { ["Content-Type"] = "text/plain", ["X-Keep"] = "1" } })
        assert.equal(200, resp.status)
        assert.equal("at GET", resp:read_all())
        assert.equal("POST", seen[1].method)
        assert.equal("payload", seen[1].body)
        assert.same({ "GET", "/to", "", 0 }, { seen[2].method, seen[2].path, seen[2].body, seen[2].content_length })
        assert.is_nil(seen[2].headers:get("Content-Type"))
        assert.is_nil(seen[2].headers:get("Content-Length"))
        assert.equal("1", seen[2].headers:get("X-Keep"))
        assert.equal("GET", resp.request.method)
        assert.equal(base .. "/to", resp.request.url:string())
        assert.equal(status, resp.request.response.status)
        -- PUT and DELETE too (Go: anything but GET and HEAD)
        resp = assert(http.request{ method = "PUT", url = base .. "/from", body = "x" })
        assert.equal("at GET", resp:read_all())
        -- GET stays GET, HEAD stays HEAD
        resp = assert(http.get(base .. "/from"))
        assert.equal("at GET", resp:read_all())
        resp = assert(http.request{ method = "HEAD", url = base .. "/from" })
        assert.equal(200, resp.status)
        assert.equal("", resp:read_all())
        assert.same({ "HEAD", "/to" }, { seen[#seen].method, seen[#seen].path })
        assert.same({ "HEAD", "/from" }, { seen[#seen - 1].method, seen[#seen - 1].path })
        srv:close()
      end)
    end)
  end

  for _, status in ipairs({ 307, 308 }) do
    it(status .. " keeps the method, the string body and its headers", function()
      run(function()
        local base, srv, seen = serve(function(w, r, n)
          if r.url.path == "/from" then redirect(w, "/to", status) else w:write(r.method .. " " .. n) end
        end)
        local resp = assert(http.request{ method = "PUT", url = base .. "/from", body = "payload",
                                          headers = { ["Content-Type"] = "text/plain" } })
        assert.equal("PUT 2", resp:read_all())
        for i = 1, 2 do
          assert.same({ "PUT", "payload", 7, "text/plain" },
            { seen[i].method, seen[i].body, seen[i].content_length, seen[i].headers:get("Content-Type") })
        end
        assert.equal("/to", seen[2].path)
        srv:close()
      end)
    end)
  end

  it("307 with a streaming body that cannot be replayed returns the 307; get_body makes it replayable", function()
    run(function()
      local base, srv, seen = serve(function(w, r, n)
        if r.url.path == "/from" then redirect(w, "/to", 307) else w:write("got " .. n) end
      end)
      local string_body = require("lowbit.http.request").string_body
      local resp = assert(http.request{ method = "POST", url = base .. "/from", body = string_body("streamed") })
      assert.equal(307, resp.status)
      assert.equal("/to", resp.headers:get("Location"))
      assert.equal("moved", resp:read_all())
      assert.equal(1, #seen)
      assert.equal("streamed", seen[1].body)
      -- with get_body (Go's GetBody) the body is sent again
      local made = 0
      resp = assert(http.request{ method = "POST", url = base .. "/from", body = string_body("streamed"),
                                  get_body = function() made = made + 1; return string_body("streamed") end })
      assert.equal(200, resp.status)
      assert.equal("got 3", resp:read_all())
      assert.same({ "POST", "/to", "streamed" }, { seen[3].method, seen[3].path, seen[3].body })
      assert.equal(1, made)
      -- a 303 drops a streaming body: nothing to replay, so it is followed
      srv:close()
      base, srv, seen = serve(function(w, r)
        if r.url.path == "/from" then redirect(w, "/to", 303) else w:write(r.method) end
      end)
      resp = assert(http.request{ method = "POST", url = base .. "/from", body = string_body("streamed") })
      assert.equal("GET", resp:read_all())
      srv:close()
    end)
  end)

  it("resolves a relative Location against the request URL", function()
    run(function()
      local base, srv, seen = serve(function(w, r)
        if r.url.path == "/a/b/c" then redirect(w, "../d/e?x=1", 302)
        elseif r.url.path == "/a/d/e" then redirect(w, "f", 302)
        elseif r.url.path == "/a/d/f" then redirect(w, "//" .. r.host .. "/g?y=2", 302)
        elseif r.url.path == "/g" and r.url.raw_query == "y=2" then redirect(w, "?z=3", 302)
        else w:write("end " .. r.url.path .. "?" .. r.url.raw_query) end
      end)
      local resp = assert(http.get(base .. "/a/b/c?q=0"))
      assert.equal("end /g?z=3", resp:read_all())
      local paths = {}
      for i, s in ipairs(seen) do paths[i] = s.path .. "?" .. s.query end
      assert.same({ "/a/b/c?q=0", "/a/d/e?x=1", "/a/d/f?", "/g?y=2", "/g?z=3" }, paths)
      assert.equal(base .. "/g?z=3", resp.request.url:string())
      srv:close()
    end)
  end)

  it("follows a chain of 3, showing the final URL and the chain; a 3xx without Location is the answer", function()
    run(function()
      local base, srv, seen = serve(function(w, r)
        local n = tonumber(r.url.path:match("^/(%d+)$"))
        if n and n < 3 then redirect(w, "/" .. (n + 1), 302)
        elseif n == 3 then redirect(w, "/final", 301)
        elseif r.url.path == "/noloc" then w:write_header(302); w:write("no location")
        else w:write("final") end
      end)
      local vias = {}
      local resp = assert(http.get(base .. "/1", { check_redirect = function(req, via)
        local v = {}
        for i, q in ipairs(via) do v[i] = q.url.path end
        vias[#vias + 1] = req.url.path .. " via " .. table.concat(v, ",")
      end }))
      assert.equal("final", resp:read_all())
      assert.equal(4, #seen)
      assert.equal(base .. "/final", resp.request.url:string())
      assert.equal(301, resp.request.response.status)
      assert.equal(base .. "/3", resp.request.response.request.url:string())
      assert.equal(302, resp.request.response.request.response.status)
      assert.same({ "/2 via /1", "/3 via /1,/2", "/final via /1,/2,/3" }, vias)
      -- Referer names the request that was redirected
      assert.is_nil(seen[1].headers:get("Referer"))
      assert.equal(base .. "/3", seen[4].headers:get("Referer"))
      resp = assert(http.get(base .. "/noloc"))
      assert.equal(302, resp.status)
      assert.equal("no location", resp:read_all())
      srv:close()
    end)
  end)

  it("stops a loop after 10 redirects with TOO_MANY_REDIRECTS; max_redirects changes the limit, 0 turns following off", function()
    run(function()
      local base, srv, seen = serve(function(w, r)
        local n = tonumber(r.url.path:match("^/chain/(%d+)$"))
        if n then
          if n > 0 then redirect(w, "/chain/" .. (n - 1), 302) else w:write("end of chain") end
        else
          redirect(w, "/loop", 302)
        end
      end)
      local resp, err = http.get(base .. "/loop")
      assert.is_nil(resp)
      assert.is_true(errors.is(err, http.TOO_MANY_REDIRECTS), tostring(err))
      assert.equal("GET " .. base .. "/loop: stopped after 10 redirects", tostring(err))
      assert.equal(11, #seen) -- the first request and 10 redirects
      assert.equal(302, err.response.status)
      assert.is_true(err.response.body.closed)
      -- exactly 10 is fine
      resp = assert(http.get(base .. "/chain/10"))
      assert.equal("end of chain", resp:read_all())
      resp, err = http.get(base .. "/chain/11")
      assert.is_true(errors.is(err, http.TOO_MANY_REDIRECTS), tostring(err))
      -- max_redirects
      local before = #seen
      resp, err = http.get(base .. "/loop", { max_redirects = 2 })
      assert.is_nil(resp)
      assert.matches("stopped after 2 redirects", tostring(err))
      assert.equal(before + 3, #seen)
      resp = assert(http.get(base .. "/chain/2", { max_redirects = 2 }))
      assert.equal("end of chain", resp:read_all())
      resp = assert(http.get(base .. "/loop", { max_redirects = 0 }))
      assert.equal(302, resp.status)
      assert.equal("moved", resp:read_all())
      srv:close()
    end)
  end)

  it("check_redirect stops with its error (the redirect's body closed) or returns the last response with USE_LAST_RESPONSE", function()
    run(function()
      local base, srv, seen = serve(function(w, r)
        if r.url.path == "/from" then redirect(w, "/to", 302) else w:write("to") end
      end)
      local NOPE = errors.new("not following")
      local resp, err = http.get(base .. "/from", { check_redirect = function(req, via)
        assert.equal("/to", req.url.path)
        assert.equal(1, #via)
        return errors.wrap(NOPE, "policy")
      end })
      assert.is_nil(resp)
      assert.is_true(errors.is(err, NOPE), tostring(err))
      assert.equal("GET " .. base .. "/to: policy: not following", tostring(err))
      assert.equal(302, err.response.status)
      assert.is_true(err.response.body.closed)
      assert.equal(1, #seen)
      -- a plain string is an error too
      resp, err = http.get(base .. "/from", { check_redirect = function() return "no" end })
      assert.is_nil(resp)
      assert.is_true(errors.is(err, "no"))
      -- USE_LAST_RESPONSE: the 302 with its body unread
      resp = assert(http.get(base .. "/from", { check_redirect = function()
        return errors.wrap(http.USE_LAST_RESPONSE, "stay")
      end }))
      assert.equal(302, resp.status)
      assert.equal("moved", resp:read_all())
      assert.equal(base .. "/from", resp.request.url:string())
      assert.equal(3, #seen)
      -- check_redirect may change the next request's headers
      resp = assert(http.get(base .. "/from", { check_redirect = function(req)
        req.headers:set("X-Hop", "2")
      end }))
      assert.equal("to", resp:read_all())
      assert.equal("2", seen[5].headers:get("X-Hop"))
      assert.is_nil(seen[4].headers:get("X-Hop"))
      -- raising in check_redirect propagates (the redirect's body is closed first)
      assert.has_error(function()
        http.get(base .. "/from", { check_redirect = function() error("boom", 0) end })
      end, "boom")
      assert.has_error(function()
        http.get(base .. "/from", { check_redirect = function() return true end })
      end, "http.request: check_redirect returned a boolean; nil or an error expected")
      srv:close()
    end)
  end)

  it("drops credentials on a redirect to another host (hostnames compared as Go: port ignored), keeps them on the same host", function()
    run(function()
      local base, srv, seen, port = serve(function(w, r)
        local to = r.url:query():get("to")
        if to then redirect(w, to, 302) else w:write("ok") end
      end)
      local creds = { Authorization = "Bearer t", Cookie = "c=1", ["Proxy-Authorization"] = "Basic x",
                      ["WWW-Authenticate"] = "Basic", ["X-Other"] = "kept" }
      local function get(start)
        local before = #seen
        local resp = assert(http.get(start, { headers = creds }))
        assert.equal("ok", resp:read_all())
        local last = seen[#seen]
        assert.is_true(#seen > before + 1, start .. " seen " .. (#seen - before))
        return last.headers
      end
      local function has_creds(h)
        return h:get("Authorization") == "Bearer t" and h:get("Cookie") == "c=1"
          and h:get("Proxy-Authorization") == "Basic x" and h:get("WWW-Authenticate") == "Basic"
      end
      local function no_creds(h)
        return not (h:has("Authorization") or h:has("Cookie") or h:has("Proxy-Authorization")
                    or h:has("WWW-Authenticate"))
      end
      local lh = "http://localhost:" .. port
      local ip = "http://127.0.0.1:" .. port
      -- same host
      local h = get(ip .. "/?to=/x")
      assert.is_true(has_creds(h))
      -- localhost -> 127.0.0.1: another host, even on the same port
      h = get(lh .. "/?to=" .. url.query_escape(ip .. "/x"))
      assert.is_true(no_creds(h))
      assert.equal("kept", h:get("X-Other"))
      assert.equal("127.0.0.1:" .. port, seen[#seen].host)
      -- once dropped, they stay dropped when the chain comes back (Go)
      h = get(lh .. "/?to=" .. url.query_escape(ip .. "/?to=" .. url.query_escape(lh .. "/x")))
      assert.is_true(no_creds(h))
      assert.equal("localhost:" .. port, seen[#seen].host)
      -- another port on the same hostname: same host for Go's rule
      local base2, srv2, seen2 = serve(function(w) w:write("ok") end)
      assert.equal("ok", assert(http.get(ip .. "/?to=" .. url.query_escape(base2 .. "/x"), { headers = creds })):read_all())
      assert.equal(1, #seen2)
      assert.is_true(has_creds(seen2[1].headers))
      srv2:close()
      -- subdomains keep them, look-alikes do not (seen in check_redirect,
      -- without following: these names need no DNS)
      local function next_headers(to)
        local got
        local resp = assert(http.get(lh .. "/?to=" .. url.query_escape(to), { headers = creds,
          check_redirect = function(req) got = req.headers; return http.USE_LAST_RESPONSE end }))
        resp:read_all()
        return got
      end
      assert.is_true(has_creds(next_headers("http://api.localhost:" .. port .. "/")))
      assert.is_true(has_creds(next_headers("http://a.b.LOCALHOST/")))
      assert.is_true(no_creds(next_headers("http://notlocalhost/")))
      assert.is_true(no_creds(next_headers("http://localhost.evil/")))
      assert.is_true(no_creds(next_headers("http://[::1]:" .. port .. "/")))
      srv:close()
      assert.is_true(base ~= nil)
    end)
  end)

  it("keeps a caller's Host header across relative redirects only", function()
    run(function()
      local target
      local base, srv, seen = serve(function(w, r)
        if r.url.path == "/rel" then redirect(w, "/abs", 302)
        elseif r.url.path == "/abs" then redirect(w, target, 302)
        else w:write("ok") end
      end)
      target = base .. "/end"
      local resp = assert(http.get(base .. "/rel", { headers = { Host = "virtual.test" } }))
      assert.equal("ok", resp:read_all())
      assert.same({ "virtual.test", "virtual.test" }, { seen[1].host, seen[2].host })
      assert.equal(base:match("//(.*)$"), seen[3].host)
      srv:close()
    end)
  end)

  it("reuses the kept-alive connection across a redirect to the same host (the redirect's body is drained)", function()
    run(function()
      local accepted = 0
      local srv = http.server{ handler = function(w, r)
        if r.url.path == "/small" then redirect(w, "/end", 302)
        elseif r.url.path == "/chunked" then
          w:header():set("Location", "/end"); w:write_header(302); w:write("a"); w:flush(); w:write("b")
        elseif r.url.path == "/big" then
          w:header():set("Location", "/end"); w:write_header(302); w:write(string.rep("x", 100000))
        else w:write("end") end
      end }
      local ln = assert(net.listen("127.0.0.1:0"))
      -- count the connections the server accepts
      local counting = setmetatable({ accept = function(self)
        local c, err = ln:accept()
        if c then accepted = accepted + 1 end
        return c, err
      end }, { __index = function(_, k) return function(_, ...) return ln[k](ln, ...) end end })
      lowbit.go(function() srv:serve(counting) end)
      local base = "http://" .. ln:addr()
      for _, p in ipairs({ "/small", "/small", "/chunked" }) do
        local resp = assert(http.get(base .. p))
        assert.equal("end", resp:read_all())
      end
      assert.equal(1, accepted)
      assert.equal(1, client.idle_count())
      -- a redirect body past 2 KiB is not read: its connection is closed
      local resp = assert(http.get(base .. "/big"))
      assert.equal("end", resp:read_all())
      assert.equal(2, accepted)
      assert.equal(1, client.idle_count())
      srv:close()
    end)
  end)

  it("applies ctx and timeout to the whole chain", function()
    run(function()
      local base, srv, seen = serve(function(w, r)
        local n = tonumber(r.url.path:match("^/(%d+)$"))
        lowbit.sleep(0.2)
        if n < 5 then redirect(w, "/" .. (n + 1), 302) else w:write("end") end
      end)
      local t0 = lowbit.now()
      -- each hop takes 0.2 s, well within the timeout; the chain (1 s) does not
      local resp, err = http.get(base .. "/1", { timeout = 0.3 })
      assert.is_nil(resp)
      assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED), tostring(err))
      assert.is_true(lowbit.now() - t0 < 0.8, "took " .. (lowbit.now() - t0))
      assert.is_true(#seen <= 3)
      local ctx, cancel = context.with_timeout(context.background(), 0.3)
      resp, err = http.get(base .. "/1", { ctx = ctx })
      cancel()
      assert.is_nil(resp)
      assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED), tostring(err))
      -- a generous deadline lets the chain finish
      resp = assert(http.get(base .. "/1", { timeout = 5 }))
      assert.equal("end", resp:read_all())
      srv:close()
    end)
  end)

  it("follows https to http, sends no Referer then, and refuses other schemes", function()
    local dir = support.make_pki()
    run(function()
      local tls = require "lowbit.tls"
      local plain, psrv, pseen = serve(function(w) w:write("plain") end)
      local hsrv = http.server{ handler = function(w, r) redirect(w, plain .. "/x", 302) end,
                                tls = assert(tls.server_config{ cert = dir .. "/srv.pem", key = dir .. "/srv.key" }) }
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() hsrv:serve(ln) end)
      local resp = assert(http.get(("https://localhost:%d/"):format(ln:port()), { tls = { ca_file = dir .. "/ca.pem" } }))
      assert.equal("plain", resp:read_all())
      assert.equal(plain .. "/x", resp.request.url:string())
      assert.is_nil(pseen[1].headers:get("Referer"))
      hsrv:close()
      -- ftp: an error, the redirect's body closed
      local base, srv = serve(function(w) redirect(w, "ftp://127.0.0.1/file", 301) end)
      local err
      resp, err = http.get(base .. "/")
      assert.is_nil(resp)
      assert.matches('unsupported protocol scheme "ftp"', tostring(err))
      assert.matches("ftp://127.0.0.1/file", tostring(err))
      -- a Location that does not parse
      srv:close()
      base, srv = serve(function(w) redirect(w, "/bad%zz", 302) end)
      resp, err = http.get(base .. "/")
      assert.is_nil(resp)
      assert.matches("failed to parse Location header", tostring(err))
      srv:close()
      psrv:close()
    end)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("sends the redirected request as expected on the wire (raw server)", function()
    run(function()
      -- a raw server: answers the first request with 303, then records the
      -- second request's bytes exactly
      local ln = assert(net.listen("127.0.0.1:0"))
      local got = lowbit.chan(1)
      lowbit.go(function()
        local c = ln:accept()
        local buf = ""
        while not buf:find("\r\n\r\nabc") do buf = buf .. assert(c:read()) end
        c:write("HTTP/1.1 303 See Other\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n")
        buf = ""
        while not buf:find("\r\n\r\n") do buf = buf .. assert(c:read()) end
        got:send(buf)
        c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        c:close()
      end)
      local resp = assert(http.request{ method = "POST", url = "http://" .. ln:addr() .. "/first", body = "abc",
                                        headers = { ["Content-Type"] = "text/plain", Authorization = "x" } })
      assert.equal("ok", resp:read_all())
      local req = got:recv()
      assert.matches("^GET /next HTTP/1.1\r\n", req)
      assert.is_nil(req:lower():find("content-length", 1, true))
      assert.is_nil(req:lower():find("content-type", 1, true))
      assert.matches("\r\nAuthorization: x\r\n", req)
      assert.matches("\r\nReferer: http://" .. ln:addr():gsub("%p", "%%%0") .. "/first\r\n", req)
      ln:close()
    end)
  end)

  it("get_body also lets a PUT with a reader body be re-sent when a reused connection was closed", function()
    run(function()
      -- each connection answers its first request, then hangs up on the next
      local ln = assert(net.listen("127.0.0.1:0"))
      local bodies = {}
      lowbit.go(function()
        while true do
          local c = ln:accept()
          if not c then return end
          lowbit.go(function()
            local buf = ""
            while not buf:find("0\r\n\r\n", 1, true) and not buf:find("\r\n\r\n$") do
              local d = c:read(); if not d then c:close(); return end; buf = buf .. d
            end
            bodies[#bodies + 1] = buf:match("\r\n\r\n%x+\r\n(.-)\r\n") or ""
            c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            c:read()
            c:close()
          end)
        end
      end)
      local string_body = require("lowbit.http.request").string_body
      local u = "http://" .. ln:addr() .. "/"
      assert.equal("ok", assert(http.get(u)):read_all())
      local resp = assert(http.request{ method = "PUT", url = u, body = string_body("data"),
                                        get_body = function() return string_body("data") end })
      assert.equal("ok", resp:read_all())
      assert.same({ "", "data" }, bodies)
      -- without get_body the reader is not re-sent: the error comes back
      -- (the retry's connection is idle now, its server side hangs up next)
      assert.equal(1, client.idle_count())
      local err
      resp, err = http.request{ method = "PUT", url = u, body = string_body("data") }
      assert.is_nil(resp)
      assert.is_not_nil(err)
      assert.equal(2, #bodies)
      ln:close()
    end)
  end)

  it("rejects bad option types", function()
    run(function()
      local u = "http://127.0.0.1:1/"
      assert.has_error(function() http.get(u, { check_redirect = "no" }) end,
        "bad argument 'opts.check_redirect' to http.get: function expected, got string")
      assert.has_error(function() http.request{ url = u, check_redirect = true } end,
        "bad argument 'opts.check_redirect' to http.request: function expected, got boolean")
      assert.has_error(function() http.get(u, { max_redirects = "3" }) end,
        "bad argument 'opts.max_redirects' to http.get: non-negative integer expected, got string")
      assert.has_error(function() http.get(u, { max_redirects = -1 }) end,
        "bad argument 'opts.max_redirects' to http.get: non-negative integer expected, got -1")
      assert.has_error(function() http.request{ url = u, max_redirects = 1.5 } end,
        "bad argument 'opts.max_redirects' to http.request: non-negative integer expected, got 1.5")
      assert.has_error(function() http.request{ url = u, get_body = {} } end,
        "bad argument 'opts.get_body' to http.request: function expected, got table")
      assert.has_error(function() http.get(u, "opts") end,
        "bad argument 'opts' to http.get: table expected, got string")
    end)
  end)
end)
