-- The HTTP/1.1 server against real clients: raw sockets for every framing
-- and limit rule of conformance/http1.md, curl for the ordinary paths.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local support = require "support"
local run = support.run

-- Starts a server with handler (and opts) in the current task; returns
-- its address and the server.
local function serve(handler, opts)
  opts = opts or {}
  opts.handler = handler
  local srv, ln = support.http_server(opts)
  return ln:addr(), srv
end

-- Sends raw bytes on a new connection, returns everything read until the
-- server closes (or `until_pat` is seen, or 2 s pass).
local function raw(addr, bytes, until_pat)
  local c = assert(net.dial(nil, addr))
  c:set_deadline(lowbit.now() + 2)
  if bytes then c:write(bytes) end
  local parts = {}
  while true do
    local d = c:read()
    if not d then break end
    parts[#parts + 1] = d
    if until_pat and table.concat(parts):find(until_pat) then break end
  end
  c:close()
  return table.concat(parts)
end

local function hello(w, r) w:write("hello " .. r.url.path) end

local function status_of(resp) return tonumber(resp:match("^HTTP/1%.%d (%d%d%d)")) end

describe("http server basics", function()
  it("answers with Content-Length, Date and a sniffed Content-Type", function()
    run(function()
      local addr, srv = serve(hello)
      local resp = raw(addr, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal(200, status_of(resp))
      assert.matches("\r\nContent%-Length: 8\r\n", resp)
      assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", resp)
      assert.matches("\r\nContent%-Type: text/plain; charset=utf%-8\r\n", resp)
      assert.matches("\r\n\r\nhello /x$", resp)
      srv:close()
    end)
  end)

  it("keeps the connection alive and answers pipelined requests in order", function()
    run(function()
      local addr, srv = serve(hello)
      local reqs = {}
      for i = 1, 5 do reqs[i] = "GET /p" .. i .. " HTTP/1.1\r\nHost: a\r\n\r\n" end
      local resp = raw(addr, table.concat(reqs), "hello /p5$")
      local order = {}
      for p in resp:gmatch("hello /p(%d)") do order[#order + 1] = tonumber(p) end
      assert.same({ 1, 2, 3, 4, 5 }, order)
      srv:close()
    end)
  end)

  it("a connection's parser state is reused by later ones with nothing of an earlier head left", function()
    run(function()
      local seen = {}
      local addr, srv = serve(function(w, r)
        seen[#seen + 1] = r.method .. " " .. r.request_uri .. " " .. tostring(r.headers:get("X-Old")) .. " " .. r.host
        w:write("ok")
      end)
      -- Heads cut off mid-way (the parser stopped inside them), then closed;
      -- and one whole request whose connection closes with bytes unread.
      for i = 1, 4 do
        local c = assert(net.dial(nil, addr))
        c:write("PUT /old" .. i .. " HTTP/1.1\r\nHost: old\r\nX-Old: " .. i .. "\r\nX-Cut: abc")
        lowbit.sleep(0.02)
        c:close()
      end
      assert.equal(200, status_of(raw(addr, "POST /old HTTP/1.1\r\nHost: old\r\nX-Old: 1\r\nConnection: close\r\n\r\nGET /")))
      for i = 1, 3 do
        local resp = raw(addr, "GET /new" .. i .. " HTTP/1.1\r\nHost: new\r\nConnection: close\r\n\r\n")
        assert.equal(200, status_of(resp))
      end
      assert.same({ "POST /old 1 old", "GET /new1 nil new", "GET /new2 nil new", "GET /new3 nil new" }, seen)
      srv:close()
    end)
  end)

  it("streams large and flushed responses chunked on HTTP/1.1, close-delimited on 1.0", function()
    run(function()
      local addr, srv = serve(function(w)
        w:write("first;")
        w:flush()
        w:write(string.rep("z", 10000))
      end)
      local resp = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.matches("\r\nTransfer%-Encoding: chunked\r\n", resp)
      assert.matches("\r\n6\r\nfirst;\r\n", resp)
      assert.matches("0\r\n\r\n$", resp)
      local resp10 = raw(addr, "GET / HTTP/1.0\r\n\r\n")
      assert.is_nil(resp10:find("Transfer-Encoding", 1, true))
      assert.matches("first;" .. string.rep("z", 10000) .. "$", resp10)
      srv:close()
    end)
  end)

  it("HEAD swallows the body but keeps the length; 204 and 304 have no body", function()
    run(function()
      local addr, srv = serve(function(w, r)
        if r.url.path == "/204" then w:write_header(204); return end
        if r.url.path == "/304" then w:write_header(304); return end
        w:write("twelve bytes")
      end)
      local resp = raw(addr, "HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.matches("Content%-Length: 12\r\n", resp)
      assert.matches("\r\n\r\n$", resp)
      resp = raw(addr, "GET /204 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal(204, status_of(resp))
      assert.is_nil(resp:find("Content-Length", 1, true))
      assert.matches("\r\n\r\n$", resp)
      resp = raw(addr, "GET /304 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal(304, status_of(resp))
      srv:close()
    end)
  end)

  it("a handler that raises gets a 500, the error is reported, the server keeps serving", function()
    run(function()
      local logged
      local addr, srv = serve(function(w, r)
        if r.url.path == "/boom" then error("handler exploded") end
        w:write("fine")
      end, { error_log = function(msg) logged = msg end })
      local resp = raw(addr, "GET /boom HTTP/1.1\r\nHost: a\r\n\r\n")
      assert.equal(500, status_of(resp))
      assert.matches("handler exploded", logged)
      assert.matches("stack traceback", logged)
      resp = raw(addr, "GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.matches("fine$", resp)
      srv:close()
    end)
  end)

  it("a handler that raises after the head was sent: logged through lowbit.log with the request line, the connection closed", function()
    local log, uv = require "lowbit.log", require "luv"
    finally(function() log._set_sink(nil) end)
    run(function()
      -- The default error path (no error_log): lowbit.on_error writes to
      -- lowbit.log, whose sink is a pipe read here.
      local fds = assert(uv.pipe({ nonblock = true }, { nonblock = false }))
      log._set_sink(fds.write)
      uv.fs_close(fds.write)
      local p = uv.new_pipe(false)
      assert(uv.pipe_open(p, fds.read))
      local got = {}
      uv.read_start(p, function(_, d) if d then got[#got + 1] = d end end)
      local addr, srv = serve(function(w, r)
        if r.url.path == "/big" then w:write(string.rep("x", 10000)) -- past the buffer: head sent
        elseif r.url.path == "/cl" then
          w:header():set("Content-Length", "100")
          w:write("short"); w:flush()
        else w:write("part"); w:flush() end
        error("late boom " .. r.url.path)
      end)
      for _, path in ipairs({ "/big", "/flush", "/cl" }) do
        -- keep-alive: the server, not the client, must end the connection
        local resp = raw(addr, "GET " .. path .. "?q=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert.equal(200, status_of(resp))
        local _, nstatus = resp:gsub("HTTP/1%.1 %d%d%d", "")
        assert.equal(1, nstatus) -- no second response (no 500 after the 200)
        assert.is_nil(resp:find("0\r\n\r\n$")) -- a chunked body is not ended as if complete
      end
      lowbit.sleep(0.2)
      local text = table.concat(got)
      for _, path in ipairs({ "/big", "/flush", "/cl" }) do
        assert.matches("http: panic serving 127%.0%.0%.1:%d+ %(GET " .. path .. "%?q=1 HTTP/1%.1%): [^\n]*late boom " .. path, text)
      end
      srv:close()
      uv.close(p)
    end)
  end)
  it("a panic whose message carries client bytes cannot forge log lines: control bytes are escaped", function()
    run(function()
      local logged
      local addr, srv = serve(function(_, r) error("no such page: " .. r.url.path) end,
        { error_log = function(msg) logged = msg end })
      -- %0A decodes to a newline: unescaped, the log would get a line of the client's making.
      local resp = raw(addr, "GET /x%0Ahttp:%20panic%20serving%20forged%0D%1B[31m HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal(500, status_of(resp))
      local first = logged:match("^[^\n]*")
      assert.matches("no such page: /x\\x0ahttp: panic serving forged\\x0d\\x1b[31m", first, 1, true)
      assert.is_nil(logged:find("\n[^\n]*http: panic serving forged"))
      assert.is_nil(logged:find("\27", 1, true))
      assert.matches("stack traceback", logged) -- the traceback keeps its own lines
      srv:close()
    end)
  end)

  it("writes every response header in order, however many, and none is left over for the next response", function()
    run(function()
      local addr, srv = serve(function(w, r)
        local n = tonumber(r.url.path:match("%d+"))
        local h = w:header()
        for i = 1, n do h:set("X-F" .. i, "v" .. i) end
        if n >= 3 then h:add("X-F3", "again") end
        w:write("n=" .. n)
      end)
      local reqs = {}
      for i, n in ipairs({ 12, 1, 9, 0, 8, 3 }) do
        reqs[i] = "GET /" .. n .. " HTTP/1.1\r\nHost: a\r\n" .. (i == 6 and "Connection: close\r\n" or "") .. "\r\n"
      end
      local resp = raw(addr, table.concat(reqs))
      local heads = {}
      for head in resp:gmatch("HTTP/1%.1 200 OK\r\n(.-)\r\n\r\n") do heads[#heads + 1] = head end
      assert.equal(6, #heads)
      for i, n in ipairs({ 12, 1, 9, 0, 8, 3 }) do
        local got = {}
        for name, v in heads[i]:gmatch("(X%-F%d+): ([^\r]*)") do got[#got + 1] = name .. "=" .. v end
        local want = {}
        for k = 1, n do
          want[#want + 1] = "X-F" .. k .. "=v" .. k
          if k == 3 then want[#want + 1] = "X-F3=again" end
        end
        assert.same(want, got)
      end
      srv:close()
    end)
  end)

  it("reads request bodies of both framings and enforces read_all limits", function()
    run(function()
      local addr, srv = serve(function(w, r)
        local b, err = r.body:read_all(r.url.path == "/small" and 4 or nil)
        if not b then w:write_header(413); w:write(tostring(err)); return end
        w:write("got " .. #b .. ":" .. b)
      end)
      local resp = raw(addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
      assert.matches("got 5:hello$", resp)
      resp = raw(addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" ..
        "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
      assert.matches("got 5:abcde$", resp)
      resp = raw(addr, "POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
      assert.equal(413, status_of(resp))
      assert.matches("too large", resp)
      srv:close()
    end)
  end)

  it("sends 100 Continue on the first body read, not before", function()
    run(function()
      local addr, srv = serve(function(w, r) w:write("got " .. r.body:read_all()) end)
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 2)
      c:write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
      local first = c:read()
      assert.matches("^HTTP/1.1 100 Continue\r\n\r\n", first)
      c:write("body")
      local all = first
      while not all:find("got body") do all = all .. assert(c:read()) end
      c:close(); srv:close()
    end)
  end)

  it("does not wait for a 100-continue body the handler never reads", function()
    run(function()
      local addr, srv = serve(function(w) w:write_header(401); w:write("no") end)
      local resp = raw(addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
      assert.equal(401, status_of(resp))
      assert.is_nil(resp:find("100 Continue", 1, true))
      srv:close()
    end)
  end)

  it("hijack hands over the conn with the bytes read past the head", function()
    run(function()
      local addr, srv = serve(function(w, r)
        local conn = assert(w:hijack())
        assert.same({ nil, http.HIJACKED }, { w:hijack() })
        assert.same({ nil, http.HIJACKED }, { w:write("x") })
        conn:write("HTTP/1.1 101 Switching Protocols\r\n\r\n")
        local early = conn:read_full(5)
        conn:write("echo:" .. early)
        conn:close()
      end)
      local resp = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nEARLY")
      assert.equal("HTTP/1.1 101 Switching Protocols\r\n\r\necho:EARLY", resp)
      srv:close()
    end)
  end)

  it("cancels the request ctx when the client goes away", function()
    run(function()
      local seen = lowbit.chan(1)
      local addr, srv = serve(function(w, r)
        w:flush()
        seen:send(r.ctx:wait())
      end)
      local c = assert(net.dial(nil, addr))
      c:write("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
      c:read()
      c:close()
      local i, err = lowbit.select{ seen, lowbit.after(2) }
      assert.equal(1, i)
      assert.equal(context.CANCELED, err)
      srv:close()
    end)
  end)

  it("write_header outside 100..999 raises; superfluous calls are ignored", function()
    run(function()
      local addr, srv = serve(function(w)
        assert.has_error(function() w:write_header(99) end)
        assert.has_error(function() w:write_header(1000) end)
        w:write_header(201)
        w:write_header(500)
        w:write("ok")
      end)
      local resp = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal(201, status_of(resp))
      srv:close()
    end)
  end)

  it("takes a table with serve_http or a callable table as its handler", function()
    run(function()
      local obj = { greeting = "obj" }
      function obj:serve_http(w, r) w:write(self.greeting .. " " .. r.url.path) end
      local callable = setmetatable({}, { __call = function(_, w, r) w:write("call " .. r.url.path) end })
      for _, case in ipairs({ { obj, "obj /t" }, { callable, "call /t" } }) do
        local addr, srv = serve(case[1])
        local resp = raw(addr, "GET /t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert.equal(200, status_of(resp))
        assert.matches("\r\n\r\n" .. case[2] .. "$", resp)
        srv:close()
      end
    end)
  end)

  it("refuses bad server options and handlers with the argument named", function()
    assert.has_error(function() http.server({}) end,
      "bad argument 'handler' to http.server: function or table with serve_http expected, got nil")
    assert.has_error(function() http.server({ handler = hello, read_timeout = "1" }) end,
      "bad argument 'opts.read_timeout' to http.server: number expected, got string")
    assert.has_error(function() http.server(nil) end)
  end)
end)

describe("http1.md: malformed and hostile requests", function()
  local function expect_status(req, status, handler_must_not_run)
    run(function()
      local ran = false
      local addr, srv = serve(function(w) ran = true; w:write("handled") end)
      local resp = raw(addr, req)
      assert.equal(status, status_of(resp), resp)
      if status >= 400 then
        assert.matches("\r\nConnection: close\r\n", resp)
        assert.matches("\r\nContent%-Type: text/plain; charset=utf%-8\r\n", resp)
      end
      if handler_must_not_run then assert.is_false(ran) end
      srv:close()
    end)
  end

  it("HTTP/1.1 without Host -> 400", function() expect_status("GET / HTTP/1.1\r\n\r\n", 400, true) end)
  it("several Host -> 400", function() expect_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, true) end)
  it("bad Host -> 400", function() expect_status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, true) end)
  it("bad header name -> 400", function() expect_status("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400, true) end)
  it("control character in header value -> 400", function() expect_status("GET / HTTP/1.1\r\nHost: a\r\nX: a\1b\r\n\r\n", 400, true) end)
  it("obs-fold -> 400", function() expect_status("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, true) end)
  it("protocol not 1.x -> 505", function() expect_status("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, true) end)
  it("Transfer-Encoding other than chunked -> 501", function()
    expect_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, true)
  end)
  it("two Transfer-Encoding fields -> 501", function()
    expect_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, true)
  end)
  it("different Content-Length values -> 400", function()
    expect_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, true)
  end)
  it("empty Content-Length -> 400", function() expect_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, true) end)
  it("Content-Length over 63 bits -> 400", function()
    expect_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 400, true)
  end)
  it("Expect other than 100-continue -> 417", function()
    expect_status("POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 0\r\n\r\n", 417, true)
  end)
  it("head over max_header_bytes -> 431", function()
    run(function()
      local addr, srv = serve(hello, { max_header_bytes = 1024 })
      local resp = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " .. string.rep("b", 4096) .. "\r\n\r\n")
      assert.equal(431, status_of(resp))
      srv:close()
    end)
  end)

  it("same Content-Length twice collapses to one", function()
    run(function()
      local addr, srv = serve(function(w, r) w:write("body=" .. r.body:read_all()) end)
      local resp = raw(addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
      assert.matches("body=ok$", resp)
      srv:close()
    end)
  end)

  it("TE chunked + CL: chunked wins, CL is never used", function()
    run(function()
      local addr, srv = serve(function(w, r) w:write("body=" .. r.body:read_all()) end)
      local resp = raw(addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n" ..
        "Connection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n")
      assert.matches("body=ok$", resp)
      srv:close()
    end)
  end)

  it("TE on HTTP/1.0 is ignored (no body)", function()
    run(function()
      local addr, srv = serve(function(w, r) w:write("body=[" .. r.body:read_all() .. "]") end)
      local resp = raw(addr, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
      assert.matches("body=%[%]$", resp)
      srv:close()
    end)
  end)

  it("neither TE nor CL: the body is empty and the next bytes are a new request", function()
    run(function()
      local addr, srv = serve(function(w, r) w:write("[" .. r.body:read_all() .. "]" .. r.url.path) end)
      local resp = raw(addr, "POST /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.matches("%[%]/one", resp)
      assert.matches("%[%]/two$", resp)
      srv:close()
    end)
  end)

  local chunk_cases = {
    { "bare LF after the chunk size", "3\nabc\r\n0\r\n\r\n" },
    { "stray CR in the chunk size line", "3\rx\r\nabc\r\n0\r\n\r\n" },
    { "chunk data not followed by CRLF", "3\r\nabcX\r\n0\r\n\r\n" },
    { "hex size over 16 digits", "00000000000000003\r\nabc\r\n0\r\n\r\n" },
    { "chunk size line of 4096 bytes", "3;" .. string.rep("e", 4100) .. "\r\nabc\r\n0\r\n\r\n" },
    { "trailer declaring Content-Length", "3\r\nabc\r\n0\r\nContent-Length: 3\r\n\r\n" },
    { "trailer declaring Transfer-Encoding", "3\r\nabc\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n" },
    { "trailer declaring Trailer", "3\r\nabc\r\n0\r\nTrailer: x\r\n\r\n" },
    { "non-hex chunk size", "zz\r\nabc\r\n0\r\n\r\n" },
  }
  for _, case in ipairs(chunk_cases) do
    it("chunked body with " .. case[1] .. " -> the body read fails and the connection closes", function()
      run(function()
        local read_err
        local addr, srv = serve(function(w, r)
          local b, err = r.body:read_all()
          read_err = err
          if not b then w:write_header(400); w:write("bad body") return end
          w:write("ok " .. b)
        end)
        local resp = raw(addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" .. case[2] ..
          "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        assert.equal(400, status_of(resp))
        assert.is_true(errors.is(read_err, require("lowbit.http.body").BAD_CHUNKED), tostring(read_err))
        assert.is_nil(resp:find("smuggled", 1, true))
        local _, count = resp:gsub("HTTP/1.1 ", "")
        assert.equal(1, count)
        srv:close()
      end)
    end)
  end
end)

describe("http server timeouts, keep-alive rules and shutdown", function()
  it("read_header_timeout closes a connection that never finishes its head", function()
    run(function()
      local addr, srv = serve(hello, { read_header_timeout = 0.05 })
      local t0 = lowbit.now()
      local resp = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\n")
      assert.equal("", resp)
      assert.is_true(lowbit.now() - t0 < 1.5)
      srv:close()
    end)
  end)

  it("idle_timeout closes an idle keep-alive connection", function()
    run(function()
      local addr, srv = serve(hello, { idle_timeout = 0.05 })
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 2)
      c:write("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
      local got = c:read()
      assert.matches("hello /$", got)
      assert.same({ nil, errors.EOF }, { c:read() })
      c:close(); srv:close()
    end)
  end)

  it("Connection: close from the client ends the connection after the response", function()
    run(function()
      local addr, srv = serve(hello)
      local resp = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n")
      assert.matches("\r\nConnection: close\r\n", resp)
      assert.is_nil(resp:find("never", 1, true))
      srv:close()
    end)
  end)

  it("HTTP/1.0 persists only when it asked for keep-alive and the length is known", function()
    run(function()
      local addr, srv = serve(hello)
      local resp = raw(addr, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
      assert.matches("\r\nConnection: keep%-alive\r\n", resp)
      assert.matches("hello /a", resp)
      assert.matches("hello /b$", resp)
      srv:close()
    end)
  end)

  it("a handler that writes fewer bytes than its Content-Length closes the connection", function()
    run(function()
      local addr, srv = serve(function(w)
        w:header():set("Content-Length", "10")
        w:write("short")
      end)
      local resp = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
      local _, count = resp:gsub("HTTP/1.1 200", "")
      assert.equal(1, count)
      srv:close()
    end)
  end)

  it("more than 256 KiB of unread body ends keep-alive", function()
    run(function()
      local addr, srv = serve(function(w) w:write("ignored body") end)
      local big = string.rep("b", 300 * 1024)
      local resp = raw(addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " .. #big .. "\r\n\r\n" .. big ..
        "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
      local _, count = resp:gsub("HTTP/1.1 200", "")
      assert.equal(1, count)
      srv:close()
    end)
  end)

  it("shutdown closes listeners, lets in-flight requests finish with Connection: close", function()
    run(function()
      local release = lowbit.chan(0)
      local addr, srv = serve(function(w) release:recv(); w:write("finished") end)
      local got
      lowbit.go(function() got = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n") end)
      lowbit.sleep(0.02)
      local done
      lowbit.go(function() done = { srv:shutdown(context.with_timeout(context.background(), 2)) } end)
      lowbit.sleep(0.02)
      local c = net.dial(nil, addr)
      assert.is_nil(c) -- the listener is closed
      release:send(true)
      lowbit.sleep(0.05)
      assert.same({ true }, done)
      assert.matches("\r\nConnection: close\r\n", got)
      assert.matches("finished$", got)
    end)
  end)

  it("shutdown returns ctx's error when requests outlive it", function()
    run(function()
      local addr, srv = serve(function(w) lowbit.sleep(0.5); w:write("late") end)
      lowbit.go(function() raw(addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n") end)
      lowbit.sleep(0.02)
      local ok, err = srv:shutdown(context.with_timeout(context.background(), 0.05))
      assert.is_nil(ok)
      assert.equal(context.DEADLINE_EXCEEDED, err)
    end)
  end)

  it("serve returns SERVER_CLOSED after shutdown", function()
    run(function()
      local srv = http.server({ handler = hello })
      local ln = assert(net.listen("127.0.0.1:0"))
      local res
      lowbit.go(function() res = { srv:serve(ln) } end)
      lowbit.sleep(0.01)
      srv:shutdown()
      lowbit.sleep(0.01)
      assert.same({ nil, http.SERVER_CLOSED }, res)
    end)
  end)

  it("http.listen_and_serve on a port in use returns the error and leaves no task behind", function()
    local ln, started = nil, nil
    -- lowbit.run returns only when every task has ended: a ctx watcher left
    -- waiting would hang it (the spec's watchdog would then fail the test).
    local ok, err = run(function()
      ln = assert(net.listen("127.0.0.1:0"))
      local ctx = context.with_cancel(context.background()) -- never cancelled
      started = lowbit.now()
      return http.listen_and_serve(ln:addr(), hello, ctx)
    end)
    ln:close()
    assert.is_nil(ok)
    assert.is_true(errors.is(err, errors.sys("EADDRINUSE")), tostring(err))
    assert.matches("address already in use", tostring(err))
    assert.is_true(lowbit.now() - started < 5)
  end)

  it("http.listen_and_serve with a ctx shuts down when ctx is cancelled", function()
    local ok, err = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      lowbit.go(function() lowbit.sleep(0.05); cancel() end)
      return http.listen_and_serve("127.0.0.1:0", hello, ctx)
    end)
    assert.is_nil(ok)
    assert.equal(http.SERVER_CLOSED, err)
  end)
end)

describe("issue 10: unread bodies, framing conflicts, OPTIONS *, stalled writes", function()
  local server_mod = require "lowbit.http.server"

  -- Reads from c until the head is whole; returns the head and what
  -- followed it.
  local function read_head(c)
    local acc = ""
    while not acc:find("\r\n\r\n", 1, true) do
      local d = c:read()
      if not d then break end
      acc = acc .. d
    end
    local head, rest = acc:match("^(.-\r\n\r\n)(.*)$")
    return head or acc, rest or ""
  end

  it("a Content-Length body left unread by 256 KiB or more: Connection: close, closed at once", function()
    run(function()
      local called = 0
      local addr, srv = serve(function(w) called = called + 1; w:write("not reading that") end)
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 3)
      -- 1 MiB announced, 300 KiB sent, and the rest never comes.
      c:write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n" .. string.rep("b", 300 * 1024))
      local head, rest = read_head(c)
      assert.matches("^HTTP/1.1 200", head)
      assert.matches("\r\nConnection: close\r\n", head)
      local tail, err = support.read_all(c), nil
      assert.equal("not reading that", rest .. tail)
      -- The server closed (EOF) instead of waiting for the body: the
      -- read deadline did not end the read.
      local d
      d, err = c:read()
      assert.is_nil(d)
      assert.are_not.equal(errors.TIMEOUT, err)
      assert.equal(1, called)
      c:close(); srv:close()
    end)
  end)

  it("a small unread body is drained under a deadline, not for as long as the client likes", function()
    run(function()
      local saved = server_mod.DISCARD_TIMEOUT
      server_mod.DISCARD_TIMEOUT = 0.1
      local addr, srv = serve(function(w) w:write("ok") end)
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 3)
      c:write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" .. string.rep("b", 1000))
      local head = read_head(c)
      assert.matches("^HTTP/1.1 200", head)
      assert.is_nil(head:find("Connection: close", 1, true)) -- small enough to drain for keep-alive
      local d, err = c:read()
      server_mod.DISCARD_TIMEOUT = saved
      assert.is_nil(d)
      assert.are_not.equal(errors.TIMEOUT, err) -- the server gave up the drain and closed
      c:close(); srv:close()
    end)
  end)

  it("shutdown does not wait for the drain of an unread body", function()
    run(function()
      local addr, srv = serve(function(w) w:write("ok") end)
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 5)
      c:write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" .. string.rep("b", 1000))
      read_head(c)
      local ok, err = srv:shutdown(context.with_timeout(context.background(), 2))
      assert.is_true(ok, tostring(err))
      c:close()
    end)
  end)

  it("Content-Length with Transfer-Encoding: chunked is read as chunked, the length dropped, then closed", function()
    run(function()
      local seen
      local addr, srv = serve(function(w, r)
        seen = { cl = r.headers:get("Content-Length"), te = r.headers:get("Transfer-Encoding"),
                 body = r.body:read_all(), length = r.content_length }
        w:write("got " .. seen.body)
      end)
      local resp = raw(addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
      assert.same({ body = "abc", te = "chunked", length = -1 }, seen)
      assert.matches("^HTTP/1.1 200", resp)
      assert.matches("\r\nConnection: close\r\n", resp)
      assert.matches("got abc$", resp)
      local _, count = resp:gsub("HTTP/1.1 ", "")
      assert.equal(1, count) -- the connection ended after the response
      srv:close()
    end)
  end)

  it("an HTTP/1.0 request with Transfer-Encoding is closed after its response", function()
    run(function()
      local addr, srv = serve(hello)
      local resp = raw(addr, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      assert.matches("hello /a$", resp)
      assert.is_nil(resp:find("keep-alive", 1, true))
      srv:close()
    end)
  end)

  it("OPTIONS * is answered by the server (200, empty), not the handler; CONNECT reaches the handler", function()
    run(function()
      local calls = {}
      local addr, srv = serve(function(w, r) calls[#calls + 1] = r.method .. " " .. r.request_uri; w:write("h") end)
      local resp = raw(addr, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n", "\r\n\r\nh$")
      assert.matches("^HTTP/1.1 200 OK\r\n", resp)
      local first = resp:match("^(.-\r\n\r\n)")
      assert.matches("\r\nContent%-Length: 0\r\n", first)
      assert.is_nil(first:find("Connection: close", 1, true)) -- keep-alive goes on
      assert.same({ "GET /next" }, calls)
      raw(addr, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "\r\n\r\nh$")
      assert.same({ "GET /next", "CONNECT example.com:443" }, calls)
      srv:close()
    end)
  end)

  it("shutdown ends a response write blocked on a client that does not read", function()
    run(function()
      local saved = server_mod.WRITE_STALL
      server_mod.WRITE_STALL = 0.05
      local chunk = string.rep("e", 64 * 1024)
      local blocked, result = lowbit.chan(1), lowbit.chan(1)
      local addr, srv = serve(function(w)
        -- Streams without looking at r.ctx, as a naive event stream would.
        for _ = 1, 100000 do
          blocked:try_send(true)
          local ok, err = w:write(chunk)
          if not ok then result:send(err); return end
        end
        result:send("never blocked")
      end)
      local c = assert(net.dial(nil, addr))
      c:write("GET /events HTTP/1.1\r\nHost: a\r\n\r\n") -- and never reads
      blocked:recv()
      lowbit.sleep(0.3) -- the socket buffers fill up
      local ok, err = srv:shutdown(context.with_timeout(context.background(), 3))
      server_mod.WRITE_STALL = saved
      assert.is_true(ok, tostring(err))
      assert.equal(context.CANCELED, result:recv())
      c:close()
    end)
  end)
end)

describe("issue 12: a head and a mid-size body sent together", function()
  -- A body between the 4 KiB buffer and BIG_WRITE, with its Content-Length,
  -- goes out with the head in one writev from the handler's string; when
  -- the socket takes only part of it (the client reads late), the rest
  -- follows in order, byte for byte.
  it("delivers every pipelined response whole when the socket fills up", function()
    run(function()
      local N, SIZE = 200, 60000
      local addr, srv = serve(function(w, r)
        local i = tonumber(r.url.path:match("%d+"))
        local body = string.char(65 + i % 26):rep(SIZE - 6) .. string.format("%06d", i)
        w:header():set("Content-Type", "text/plain")
        w:header():set("Content-Length", tostring(#body))
        w:write(body)
      end)
      local reqs = {}
      for i = 1, N do
        reqs[i] = "GET /r" .. i .. " HTTP/1.1\r\nHost: a\r\n" .. (i == N and "Connection: close\r\n" or "") .. "\r\n"
      end
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 10)
      assert(c:write(table.concat(reqs)))
      lowbit.sleep(0.3) -- the server's writes meet a full socket
      local all = support.read_all(c)
      c:close()
      local pos = 1
      for i = 1, N do
        local hs, he = all:find("\r\n\r\n", pos, true)
        assert.truthy(hs, "response " .. i .. " is missing")
        local head = all:sub(pos, he)
        assert.equal(200, status_of(head))
        assert.matches("\r\nContent%-Length: " .. SIZE .. "\r\n", head)
        local b = all:sub(he + 1, he + SIZE)
        assert.equal(string.char(65 + i % 26):rep(SIZE - 6) .. string.format("%06d", i), b)
        pos = he + SIZE + 1
      end
      assert.equal(#all + 1, pos)
      srv:close()
    end)
  end)
end)

describe("r.host", function()
  it("is the Host field's value (trimmed), or the host the target names, or empty", function()
    run(function()
      local seen = {}
      local addr, srv = serve(function(w, r)
        seen[#seen + 1] = { r.host, r.headers:get("Host") }
        w:write("ok")
      end)
      raw(addr, "GET / HTTP/1.1\r\nHost:   example.com:8080  \r\nX: example.com:8080\r\nConnection: close\r\n\r\n")
      raw(addr, "GET / HTTP/1.1\r\nX-Before: a\r\nHost: b.example\r\nConnection: close\r\n\r\n")
      raw(addr, "GET http://target.example:81/p HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
      raw(addr, "GET / HTTP/1.0\r\n\r\n")
      raw(addr, "GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n")
      assert.same({ { "example.com:8080", "example.com:8080" }, { "b.example", "b.example" },
                    { "target.example:81", "other.example" }, { "" }, { "", "" } }, seen)
      srv:close()
    end)
  end)
end)

describe("w:write_prebuilt (a whole response from header fields built once)", function()
  local FIELDS = "Last-Modified: Tue, 02 Jan 2024 03:04:05 GMT\r\nETag: \"abc\"\r\nContent-Type: text/css; charset=utf-8\r\n"
  -- The same response twice: through write_prebuilt, and through
  -- w:header() and w:write (the fields set one by one).
  local function both(body)
    local fields = FIELDS .. "Content-Length: " .. #body .. "\r\n"
    local pre_calls = 0
    local function pre(w)
      local ok = w:write_prebuilt(200, fields, body)
      assert(ok == true, "write_prebuilt did not send")
      pre_calls = pre_calls + 1
    end
    local function normal(w)
      local h = w:header()
      for name, value in fields:gmatch("([^:\r\n]+): ([^\r\n]*)\r\n") do h:set(name, value) end
      w:write_header(200)
      w:write(body)
    end
    return pre, normal, function() return pre_calls end
  end
  local function mask_date(resp) return (resp:gsub("\r\nDate: [^\r\n]*\r\n", "\r\nDate: -\r\n")) end

  it("sends the bytes the normal path sends: GET, HEAD, HTTP/1.0 with and without keep-alive, small and large bodies", function()
    run(function()
      for _, size in ipairs({ 0, 100, 6138, 200 * 1024 }) do
        local body = ("0123456789abcdef"):rep(math.floor(size / 16) + 1):sub(1, size)
        local pre, normal, calls = both(body)
        local a_pre, srv1 = serve(pre)
        local a_normal, srv2 = serve(normal)
        local reqs = {
          "GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
          "HEAD /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
          "GET /f HTTP/1.0\r\n\r\n",
          "GET /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
          "HEAD /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        }
        for i, req in ipairs(reqs) do
          local until_pat = i >= 4 and "\r\n\r\n" .. (i == 4 and body:sub(-16) or "") .. "$" or nil
          local got = mask_date(raw(a_pre, req, until_pat))
          local want = mask_date(raw(a_normal, req, until_pat))
          assert.equal(want, got)
          assert.equal(200, status_of(got))
          if i == 1 then assert.equal(body, got:match("\r\n\r\n(.*)$")) end
          if i == 2 or i == 5 then assert.matches("\r\n\r\n$", got) end
          if i == 3 then assert.is_nil(got:find("Connection", 1, true)) end -- (1.0 closes by default)
          if i >= 4 then assert.matches("\r\nConnection: keep%-alive\r\n", got) end
        end
        assert.equal(#reqs, calls())
        srv1:close(); srv2:close()
      end
    end)
  end)

  it("keeps the connection for the next request; the client's Connection: close still closes it", function()
    run(function()
      local body = ("x"):rep(5000)
      local pre = both(body)
      local addr, srv = serve(pre)
      local one = "GET /f HTTP/1.1\r\nHost: a\r\n\r\n"
      local resp = raw(addr, one .. one .. "GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      -- a HEAD (no body sent) keeps the connection too
      local hresp = raw(addr, "HEAD /f HTTP/1.1\r\nHost: a\r\n\r\n" .. one .. "HEAD /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      local heads = {}
      for head in hresp:gmatch("HTTP/1%.1 200 OK\r\n.-\r\n\r\n") do heads[#heads + 1] = head end
      assert.equal(3, #heads)
      assert.equal(#heads[1] + #heads[2] + 5000 + #heads[3], #hresp)
      assert.matches("Content%-Length: 5000\r\n", heads[1])
      assert.matches("Connection: close\r\n", heads[3])
      local n = 0
      for head in resp:gmatch("HTTP/1%.1 200 OK\r\n(.-)\r\n\r\n") do
        n = n + 1
        assert.matches("Content%-Length: 5000", head)
        if n < 3 then assert.is_nil(head:find("Connection", 1, true)) else assert.matches("Connection: close", head) end
      end
      assert.equal(3, n)
      assert.equal(3 * (5000 + #resp:match("^(.-\r\n\r\n)")) + #"Connection: close\r\n", #resp)
      srv:close()
    end)
  end)

  it("does nothing and returns false once a header field or a status was set: the normal path answers, the field included", function()
    run(function()
      local results = {}
      local addr, srv = serve(function(w, r)
        local body = "body"
        local fields = "Content-Type: text/plain\r\nContent-Length: 4\r\n"
        if r.url.path == "/mw" then w:header():set("X-Frame-Options", "DENY") end
        if r.url.path == "/status" then w:write_header(203) end
        local ok = w:write_prebuilt(200, fields, body)
        results[#results + 1] = ok
        if ok == false then
          w:header():set("Content-Type", "text/plain")
          w:write(body)
        end
      end)
      local resp = raw(addr, "GET /mw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal(200, status_of(resp))
      assert.matches("\r\nX%-Frame%-Options: DENY\r\n", resp)
      assert.matches("\r\n\r\nbody$", resp)
      resp = raw(addr, "GET /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal(203, status_of(resp))
      assert.matches("\r\n\r\nbody$", resp)
      resp = raw(addr, "GET /plain HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal(200, status_of(resp))
      assert.is_nil(resp:find("X-Frame-Options", 1, true))
      assert.same({ false, false, true }, results)
      srv:close()
    end)
  end)

  it("raises bad argument on misuse", function()
    run(function()
      local errs = {}
      local addr, srv = serve(function(w)
        for _, args in ipairs({ { 304, "", "" }, { 204, "", "" }, { 100, "", "" }, { 200, nil, "" }, { 200, "", 5 } }) do
          local ok, err = pcall(w.write_prebuilt, w, args[1], args[2], args[3])
          errs[#errs + 1] = not ok and tostring(err) or "no error"
        end
        w:write("ok")
      end)
      local resp = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.matches("\r\n\r\nok$", resp)
      for _, e in ipairs(errs) do assert.matches("bad argument '%a+' to w:write_prebuilt", e) end
      srv:close()
    end)
  end)
end)
