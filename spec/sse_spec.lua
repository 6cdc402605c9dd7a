-- lowbit.sse against real peers over loopback: every rule of
-- conformance/sse.md through the reader (fed whole and one byte per read
-- over net.pipe()), the emitter through lowbit's HTTP server read by
-- `curl -N` and by the reader, heartbeats, the reconnecting client against
-- a lowbit server that drops connections, and headless Chromium's
-- EventSource against a page served by lowbit.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local sse = require "lowbit.sse"
local uv = require "luv"
local support = require "support"
local run = support.run

local bg = context.background()
local root = support.root
local lib = os.getenv("LOWBIT_LIB") or ""
local host = (lib:match("^(.*)/lib/liblowbit%.so$") or (root .. "/build")) .. "/bin/lowbit"

-- A lowbit HTTP server on a free loopback port; routes: path -> handler.
local function serve(routes)
  local srv = http.server{ handler = function(w, r)
    local h = routes[r.url.path]
    if not h then return http.not_found(w, r) end
    return h(w, r)
  end }
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function() srv:serve(ln) end)
  return "http://" .. ln:addr(), srv
end

-- Runs a program inside a task without blocking the loop: returns exit
-- code, stdout, stderr. Handles are closed in their callbacks (a close
-- left pending at the end of lowbit.run would run in lua_close).
local spawn = support.spawn

---------------------------------------------------------------------------
-- Reader conformance
---------------------------------------------------------------------------

-- Reads every event of `stream` through a reader over a net.pipe(). mode
-- "whole": one write, big reads; "bytes": one write per byte and reads of
-- one byte (every split point is exercised). chunks (array) instead of
-- stream: one write per chunk with a pause between (a CR at the end of a
-- read must wait). Returns the events, the final error, the last event id
-- and the reconnection time.
local function read_all(stream, mode, opts)
  local a, b = net.pipe()
  lowbit.go(function()
    if type(stream) == "table" then
      for _, s in ipairs(stream) do a:write(s); lowbit.sleep(0.005) end
    elseif mode == "bytes" then
      for i = 1, #stream do a:write(stream:sub(i, i)) end
    else
      a:write(stream)
    end
    a:close()
  end)
  local o = { max_event = opts and opts.max_event }
  if mode == "bytes" then o.chunk = 1 end
  local rd = sse.new_reader(b, o)
  local evs = {}
  local err
  while true do
    local ev, e = rd:read()
    if not ev then err = e; break end
    evs[#evs + 1] = ev
  end
  local id, retry = rd:last_event_id(), rd:retry()
  rd:close()
  b:close()
  return evs, err, id, retry
end

-- Plain tables (drop the metatable) for assert.same.
local function plain(evs)
  local t = {}
  for i, ev in ipairs(evs) do
    t[i] = { name = ev.name, id = ev.id, data = ev.data, retry = ev.retry, extensions = ev.extensions }
  end
  return t
end

-- The events of stream, checked to be the same fed whole and byte by byte.
local function parse(stream, opts)
  local whole, err1, id1, r1 = read_all(stream, "whole", opts)
  local bytes, err2, id2, r2 = read_all(stream, "bytes", opts)
  assert.same(plain(whole), plain(bytes))
  assert.equal(err1, err2)
  assert.equal(id1, id2)
  assert.equal(r1, r2)
  return plain(whole), err1, id1, r1
end

local function ev(name, data, id, extra)
  local t = { name = name, data = data, id = id or "" }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

describe("sse reader (conformance/sse.md, whole and byte by byte over a pipe)", function()
  it("strips one leading BOM, not a second one", function()
    run(function()
      local BOM = "\239\187\191"
      assert.same({ ev("message", "a") }, parse(BOM .. "data: a\n\n"))
      -- A second BOM is part of the first field name: an unknown field.
      local evs = parse(BOM .. BOM .. "data: a\n\ndata: b\n\n")
      assert.same({ ev("message", "b") }, evs)
    end)
  end)

  it("turns invalid UTF-8 into U+FFFD", function()
    run(function()
      assert.same({ ev("message", "a\239\191\189b") }, parse("data: a\255b\n\n"))
      assert.same({ ev("message", "\239\191\189x") }, parse("data: \195x\n\n"))
    end)
  end)

  it("ends lines at CRLF, LF and a lone CR", function()
    run(function()
      assert.same({ ev("message", "a\nb\nc") }, parse("data: a\r\ndata: b\rdata: c\n\r\n"))
      assert.same({ ev("message", "x"), ev("message", "y") }, parse("data: x\r\rdata: y\n\n"))
    end)
  end)

  it("waits after a CR at the end of a read for a possible LF", function()
    run(function()
      -- Were the CR taken as a line end and the LF as an empty line, "a"
      -- would be dispatched alone.
      local evs = parse({ "data: a\r", "\ndata: b\r", "\n\r", "\n" })
      assert.same({ ev("message", "a\nb") }, evs)
    end)
  end)

  it("dispatches at an empty line and ignores comment lines", function()
    run(function()
      assert.same({ ev("message", "x"), ev("message", "y") },
        parse(": hello\ndata: x\n: between\n\n:\ndata: y\n\n"))
      assert.same({}, parse(": only a comment\n\n"))
    end)
  end)

  it("splits at the first colon and drops one leading space of the value", function()
    run(function()
      assert.same({ ev("message", " two") }, parse("data:  two\n\n"))
      assert.same({ ev("message", "none") }, parse("data:none\n\n"))
      assert.same({ ev("message", "a: b:c") }, parse("data: a: b:c\n\n"))
    end)
  end)

  it("takes a line without a colon as a field name with an empty value", function()
    run(function()
      assert.same({ ev("message", "") }, parse("data\n\n"))
      assert.same({ ev("message", "\n") }, parse("data\ndata\n\n"))
      assert.same({ ev("message", "x") }, parse("event\ndata: x\n\n"))
    end)
  end)

  it("matches field names case-sensitively", function()
    run(function()
      local evs = parse("Data: x\nEVENT: y\n\ndata: z\nEvent: q\n\n")
      assert.equal(1, #evs)
      assert.equal("message", evs[1].name)
      assert.equal("z", evs[1].data)
      assert.same({ { name = "Event", value = "q" } }, evs[1].extensions)
    end)
  end)

  it("event sets the type, reset after each dispatch", function()
    run(function()
      assert.same({ ev("add", "1"), ev("message", "2") }, parse("event: add\ndata: 1\n\ndata: 2\n\n"))
    end)
  end)

  it("data appends value + LF; one trailing LF is removed at dispatch", function()
    run(function()
      assert.same({ ev("message", "a\nb\n\nc") }, parse("data: a\ndata: b\ndata\ndata: c\n\n"))
      assert.same({ ev("message", "a\n") }, parse("data: a\ndata:\n\n"))
    end)
  end)

  it("id sets the last event id, persists, ignores values with NUL, resets on empty", function()
    run(function()
      local evs, _, last = parse("id: 1\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\nid: 9\ndata: e\n\n")
      assert.same({ ev("message", "a", "1"), ev("message", "b", "1"), ev("message", "c", "1"),
                    ev("message", "d", ""), ev("message", "e", "9") }, evs)
      assert.equal("9", last)
      local _, _, l2 = parse("id: 5\ndata: x\n\nid:\n\n")
      assert.equal("", l2)
    end)
  end)

  it("retry: only all-digit values set the reconnection time", function()
    run(function()
      local evs, _, _, retry = parse("retry: 03000\ndata: a\n\nretry: 1000x\ndata: b\n\nretry: -5\ndata: c\n\n")
      assert.same({ ev("message", "a", "", { retry = 3000 }), ev("message", "b"), ev("message", "c") }, evs)
      assert.equal(3000, retry)
      local _, _, _, r2 = parse("retry: 250\n\n") -- nothing dispatched, the time is still set
      assert.equal(250, r2)
    end)
  end)

  it("keeps other fields in extensions, in order, repeats kept", function()
    run(function()
      local evs = parse("foo: bar\ndata: x\nfoo: baz\nx-trace:  1\n\n")
      assert.same({ { name = "foo", value = "bar" }, { name = "foo", value = "baz" },
                    { name = "x-trace", value = " 1" } }, evs[1].extensions)
      local rd_ev = read_all("foo: bar\nfoo: baz\ndata: x\n\n")[1]
      assert.equal("baz", rd_ev:extension("foo"))
      assert.is_nil(rd_ev:extension("nope"))
      assert.is_nil(parse("data: plain\n\n")[1].extensions)
    end)
  end)

  it("an empty data buffer dispatches nothing but resets the type and sets the id", function()
    run(function()
      local evs = parse("event: x\nid: 5\n\ndata: y\n\n")
      assert.same({ ev("message", "y", "5") }, evs)
    end)
  end)

  it("discards data after the last blank line at the end of the stream", function()
    run(function()
      local evs, err = parse("data: a\n\ndata: b\n")
      assert.same({ ev("message", "a") }, evs)
      assert.equal(errors.EOF, err)
      evs = parse("data: a\n\ndata: b")
      assert.same({ ev("message", "a") }, evs)
    end)
  end)

  it("stops with sse.EVENT_TOO_LARGE past max_event", function()
    run(function()
      local evs, err = parse("data: ok\n\ndata: " .. string.rep("x", 5000) .. "\n\n", { max_event = 1024 })
      assert.same({ ev("message", "ok") }, evs)
      assert.is_true(errors.is(err, sse.EVENT_TOO_LARGE))
    end)
  end)

  it("reads a conn over TCP and returns the conn's errors", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function()
        local c = ln:accept()
        c:write("data: over tcp\n\n")
        lowbit.sleep(0.3)
        c:close()
      end)
      local c = assert(net.dial(bg, ln:addr()))
      local rd = sse.new_reader(c)
      assert.equal("over tcp", assert(rd:read()).data)
      c:set_read_deadline(lowbit.now() + 0.05)
      local e1, err = rd:read()
      assert.is_nil(e1)
      assert.equal(errors.TIMEOUT, err) -- a timeout is not sticky
      c:set_read_deadline(nil)
      assert.same({ nil, errors.EOF }, { rd:read() })
      c:close()
      ln:close()
    end)
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() sse.new_reader("x") end,
      "bad argument 'src' to sse.new_reader: reader (table with read(n)) expected, got string")
    assert.has_error(function() sse.new_reader({ read = function() end }, { max_event = "big" }) end)
    local rd = sse.new_reader({ read = function() return nil, errors.EOF end })
    rd:close()
    assert.has_error(function() rd:read() end, "sse reader: read after close")
  end)
end)

---------------------------------------------------------------------------
-- Events
---------------------------------------------------------------------------

describe("sse.event", function()
  it("encodes data with CR, LF and CRLF as several data: lines", function()
    local s = sse.encode(sse.event{ name = "up", id = "7", retry = 1500, data = "a\r\nb\nc\rd",
                                    extensions = { { "x-a", "1" }, { name = "x-b", value = "2" } } })
    assert.equal("event: up\nid: 7\nretry: 1500\nx-a: 1\nx-b: 2\ndata: a\ndata: b\ndata: c\ndata: d\n\n", s)
    assert.equal("data:\n\n", sse.encode{ data = "" })
    assert.equal("id:\n\n", sse.encode{ id = "" })
    assert.equal("a: 2\nz: 1\ndata: m\n\n", sse.encode{ data = "m", extensions = { z = "1", a = "2" } })
    assert.equal(":\n\n", sse.encode_comment(""))
    assert.equal(": one\n: two\n\n", sse.encode_comment("one\ntwo"))
  end)

  it("rejects id with CR/LF/NUL and name with CR/LF, raising with the field's name", function()
    assert.has_error(function() sse.event{ id = "a\nb" } end, "bad argument 'ev.id' to sse.event: must not contain CR, LF or NUL")
    assert.has_error(function() sse.event{ id = "a\rb" } end, "bad argument 'ev.id' to sse.event: must not contain CR, LF or NUL")
    assert.has_error(function() sse.event{ id = "a\0b" } end, "bad argument 'ev.id' to sse.event: must not contain CR, LF or NUL")
    assert.has_error(function() sse.event{ name = "a\r\nb" } end, "bad argument 'ev.name' to sse.event: must not contain CR or LF")
    assert.has_error(function() sse.event{ data = 5 } end, "bad argument 'ev.data' to sse.event: string expected, got number")
    assert.has_error(function() sse.event{ retry = -1 } end)
    assert.has_error(function() sse.event{ retry = 1.5 } end)
    assert.has_error(function() sse.event{ extensions = { { "data", "x" } } } end,
      'bad argument \'ev.extensions[1].name\' to sse.event: "data" is a standard field')
    assert.has_error(function() sse.event{ extensions = { { "a:b", "x" } } } end)
    assert.has_error(function() sse.event{ extensions = { { "a", "x\ny" } } } end)
    assert.has_error(function() sse.event("x") end, "bad argument 'ev' to sse.event: table expected, got string")
    -- A NUL in a name or in data is fine (the reader keeps it).
    assert.equal("event: a\0b\ndata: c\0d\n\n", sse.encode{ name = "a\0b", data = "c\0d" })
  end)

  it("round-trips through the reader", function()
    run(function()
      local src = { sse.event{ name = "n", id = "i", retry = 10, data = "l1\nl2", extensions = { { "k", "v" } } },
                    sse.event{ data = "" }, sse.event{ id = "", data = "after reset" } }
      local wire = {}
      for i, e in ipairs(src) do wire[i] = sse.encode(e) end
      local evs = parse(table.concat(wire))
      assert.same({ ev("n", "l1\nl2", "i", { retry = 10, extensions = { { name = "k", value = "v" } } }),
                    ev("message", "", "i"), ev("message", "after reset", "") }, evs)
    end)
  end)
end)

---------------------------------------------------------------------------
-- Emitter
---------------------------------------------------------------------------

describe("sse emitter through lowbit's HTTP server", function()
  after_each(function() http.close_idle_connections() end)

  local function stream_handler(w)
    local e = sse.new_emitter(w)
    assert(e:comment("welcome"))
    assert(e:send{ name = "greet", id = "1", retry = 2000, data = "hello\nworld" })
    assert(e:send(sse.event{ data = "two", extensions = { { "x-k", "v" } } }))
    assert(e:send{ id = "3", data = "a\r\nb" })
  end
  local WIRE = ": welcome\n\nevent: greet\nid: 1\nretry: 2000\ndata: hello\ndata: world\n\n"
    .. "x-k: v\ndata: two\n\nid: 3\ndata: a\ndata: b\n\n"

  it("is read by curl -N: headers and the exact wire form", function()
    run(function()
      local base, srv = serve({ ["/events"] = stream_handler })
      local code, out, errout = spawn("curl", { "-N", "-s", "-S", "-i", "--max-time", "10", base .. "/events" })
      assert.equal(0, code, errout)
      local head, body = out:match("^(.-)\r\n\r\n(.*)$")
      assert.matches("^HTTP/1%.1 200 OK\r\n", head)
      assert.matches("\r\nContent%-Type: text/event%-stream\r\n", head .. "\r\n")
      assert.matches("\r\nCache%-Control: no%-cache\r\n", head .. "\r\n")
      assert.matches("\r\nX%-Accel%-Buffering: no\r\n", head .. "\r\n")
      assert.matches("\r\nTransfer%-Encoding: chunked\r\n", head .. "\r\n")
      assert.equal(WIRE, body)
      srv:close()
    end)
  end)

  it("is read by lowbit's reader over the response body", function()
    run(function()
      local base, srv = serve({ ["/events"] = stream_handler })
      local resp = assert(http.request{ url = base .. "/events", headers = { Accept = "text/event-stream" } })
      assert.equal("text/event-stream", resp.headers:get("Content-Type"))
      local rd = sse.new_reader(resp.body)
      local evs = {}
      while true do
        local e, err = rd:read()
        if not e then assert.equal(errors.EOF, err); break end
        evs[#evs + 1] = e
      end
      assert.same({ ev("greet", "hello\nworld", "1", { retry = 2000 }),
                    ev("message", "two", "1", { extensions = { { name = "x-k", value = "v" } } }),
                    ev("message", "a\nb", "3") }, plain(evs))
      srv:close()
    end)
  end)

  it("flushes the head and each event at once", function()
    run(function()
      local go_on = lowbit.chan(0)
      local base, srv = serve({ ["/events"] = function(w)
        local e = sse.new_emitter(w)
        go_on:recv()              -- the client has the head
        e:send{ data = "first" }
        go_on:recv()              -- the client has the first event
        e:send{ data = "second" }
      end })
      local resp = assert(http.request{ url = base .. "/events", timeout = 5 })
      assert.equal(200, resp.status)
      go_on:send(true)
      local rd = sse.new_reader(resp.body)
      assert.equal("first", assert(rd:read()).data)
      go_on:send(true)
      assert.equal("second", assert(rd:read()).data)
      assert.same({ nil, errors.EOF }, { rd:read() })
      srv:close()
    end)
  end)

  it("send returns an error (never hangs) once the client closed the connection", function()
    run(function()
      local result = lowbit.chan(1)
      local base, srv = serve({ ["/events"] = function(w)
        local e = sse.new_emitter(w)
        local t0 = lowbit.now()
        local n = 0
        while lowbit.now() - t0 < 5 do
          local ok, err = e:send{ data = ("tick %d"):format(n) }
          if not ok then
            result:send({ err = err, again = select(2, e:send{ data = "x" }) })
            return
          end
          n = n + 1
          lowbit.sleep(0.005)
        end
        result:send({})
      end })
      local c = assert(net.dial(bg, base:match("//(.*)$")))
      c:write("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.matches("text/event%-stream", c:read())
      c:close()
      local r = result:recv()
      assert.is_not_nil(r.err, "send kept succeeding after the client left")
      assert.equal(r.err, r.again) -- the error sticks
      srv:close()
    end)
  end)

  it("opts.ctx (r.ctx) ends send once the client is gone", function()
    run(function()
      local result = lowbit.chan(1)
      local base, srv = serve({ ["/events"] = function(w, r)
        local e = sse.new_emitter(w, { ctx = r.ctx })
        r.ctx:wait()
        result:send({ e:send{ data = "late" } })
      end })
      local c = assert(net.dial(bg, base:match("//(.*)$")))
      c:write("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.matches("text/event%-stream", c:read())
      c:close()
      local r = result:recv()
      assert.is_nil(r[1])
      assert.equal(context.CANCELED, r[2])
      srv:close()
    end)
  end)

  it("raises on a malformed event or wrong argument types, naming the argument", function()
    local w = require("lowbit.httptest").new_recorder()
    local e = sse.new_emitter(w)
    assert.equal("text/event-stream", w:header():get("Content-Type"))
    assert.is_true(w.flushed)
    assert.has_error(function() e:send{ id = "a\nb" } end, "bad argument 'ev.id' to e:send: must not contain CR, LF or NUL")
    assert.has_error(function() e:send{ name = "x\ry" } end, "bad argument 'ev.name' to e:send: must not contain CR or LF")
    assert.has_error(function() e:send("data") end, "bad argument 'ev' to e:send: table expected, got string")
    assert.has_error(function() e:comment(42) end, "bad argument 'text' to e:comment: string expected, got number")
    assert.has_error(function() sse.new_emitter(nil) end, "bad argument 'w' to sse.new_emitter: ResponseWriter expected, got nil")
    assert.has_error(function() e:serve_heartbeats(nil, 1) end, "bad argument 'ctx' to e:serve_heartbeats: context expected, got nil")
    assert.has_error(function() e:serve_heartbeats(bg, 0) end)
    assert.equal("", w.body) -- nothing half-written
    assert.is_true(e:send{ data = string.rep("z", 200000) }) -- bigger than the scratch buffer
    assert.equal(200000 + 8, #w.body)
  end)
end)

describe("sse heartbeats", function()
  after_each(function() http.close_idle_connections() end)

  it("sends ':' comments until ctx is cancelled, then returns ctx:err()", function()
    run(function()
      local hctx, stop = context.with_cancel(bg)
      local result = lowbit.chan(1)
      local base, srv = serve({ ["/hb"] = function(w)
        local e = sse.new_emitter(w)
        result:send({ e:serve_heartbeats(hctx, 0.02) })
      end })
      local resp = assert(http.request{ url = base .. "/hb" })
      local got = ""
      while select(2, got:gsub(":\n\n", "")) < 3 do got = got .. assert(resp.body:read()) end
      stop()
      local r = result:recv()
      assert.is_nil(r[1])
      assert.equal(context.CANCELED, r[2])
      got = got .. assert(resp.body:read_all()) -- the response ends
      assert.matches("^:\n\n:\n\n:\n\n[:\n]*$", got)
      assert.equal(0, #got % 3)
      srv:close()
    end)
  end)

  it("returns when the client disconnects: r.ctx's error, or the write error", function()
    run(function()
      local result = lowbit.chan(2)
      local base, srv = serve({
        ["/ctx"] = function(w, r)
          local e = sse.new_emitter(w)
          result:send({ "ctx", e:serve_heartbeats(r.ctx, 0.01) })
        end,
        ["/write"] = function(w)
          local e = sse.new_emitter(w)
          result:send({ "write", e:serve_heartbeats(bg, 0.01) })
        end,
      })
      for _, path in ipairs({ "/ctx", "/write" }) do
        local c = assert(net.dial(bg, base:match("//(.*)$")))
        c:write("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.matches("text/event%-stream", c:read())
        c:close()
        local r = result:recv()
        assert.equal(path:sub(2), r[1])
        assert.is_nil(r[2])
        assert.is_not_nil(r[3])
        if path == "/ctx" then assert.equal(context.CANCELED, r[3]) end
      end
      srv:close()
    end)
  end)
end)

---------------------------------------------------------------------------
-- Reconnecting client
---------------------------------------------------------------------------

describe("sse.connect (EventSource behaviour) against a lowbit server", function()
  after_each(function() http.close_idle_connections() end)

  it("reconnects after a drop with Last-Event-ID, honours retry, stops on 204", function()
    run(function()
      local seen = {}
      local n = 0
      local base, srv = serve({ ["/events"] = function(w, r)
        n = n + 1
        seen[n] = { last = r.headers:get("Last-Event-ID"), accept = r.headers:get("Accept"),
                    x = r.headers:get("X-Token"), at = lowbit.now() }
        if n == 3 then w:write_header(204); return end
        local e = sse.new_emitter(w)
        if n == 1 then
          e:send{ retry = 300 }                 -- no data: sets the time only
          e:send{ id = "1", data = "one" }
          e:send{ id = "2", name = "two", data = "2" }
          w:write("data: half an event, lost with the connection")
        else
          e:send{ id = "3", data = "three" }
        end
        seen[n].ended = lowbit.now()
      end })
      local c = sse.connect(base .. "/events", { headers = { ["X-Token"] = "t" } })
      local got = {}
      while true do
        local e, err = c:read()
        if not e then
          assert.equal(sse.NO_CONTENT, err)
          break
        end
        got[#got + 1] = e.id .. ":" .. e.name .. ":" .. e.data
      end
      assert.same({ "1:message:one", "2:two:2", "3:message:three" }, got)
      assert.equal(3, n)
      assert.is_nil(seen[1].last)
      assert.equal("2", seen[2].last)
      assert.equal("3", seen[3].last)
      for i = 1, 3 do
        assert.equal("text/event-stream", seen[i].accept)
        assert.equal("t", seen[i].x)
      end
      -- retry: 300 ms (not the default 3 s) between the end of a stream
      -- and the next request.
      for i = 2, 3 do
        local gap = seen[i].at - seen[i - 1].ended
        assert.is_true(gap >= 0.25 and gap < 2.5, ("gap %d: %.3f s"):format(i, gap))
      end
      assert.equal(300, c.retry)
      assert.same({ nil, sse.NO_CONTENT }, { c:read() }) -- the end sticks
      c:close()
      srv:close()
    end)
  end)

  it("opts.retry sets the initial reconnection time; opts.last_event_id the first request's header", function()
    run(function()
      local at, last = {}, {}
      local base, srv = serve({ ["/events"] = function(w, r)
        at[#at + 1] = lowbit.now()
        last[#last + 1] = r.headers:get("Last-Event-ID") or "-"
        if #at > 2 then w:write_header(204); return end
        sse.new_emitter(w):send{ data = "x" }
      end })
      local c = sse.connect(base .. "/events", { retry = 100, last_event_id = "41" })
      assert.equal("x", assert(c:read()).data)
      assert.equal("x", assert(c:read()).data)
      assert.same({ nil, sse.NO_CONTENT }, { c:read() })
      -- Each stream starts with an empty id buffer (WHATWG): a stream
      -- without id: lines resets the last event id at its first event.
      assert.same({ "41", "-", "-" }, last)
      assert.equal("", c.last_event_id)
      assert.is_true(at[2] - at[1] >= 0.09 and at[2] - at[1] < 2, "gap " .. (at[2] - at[1]))
      c:close()
      srv:close()
    end)
  end)

  it("fails on a non-200 status and on a Content-Type other than text/event-stream", function()
    run(function()
      local base, srv = serve({
        ["/500"] = function(w) http.error(w, "boom", 500) end,
        ["/text"] = function(w) w:header():set("Content-Type", "text/plain"); w:write("data: x\n\n") end,
        ["/params"] = function(w)
          w:header():set("Content-Type", "Text/Event-Stream; charset=utf-8")
          w:write("data: ok\n\n")
        end,
      })
      local c = sse.connect(base .. "/500", { retry = 10 })
      local e, err = c:read()
      assert.is_nil(e)
      assert.is_true(errors.is(err, sse.BAD_STATUS))
      assert.matches("500", tostring(err))
      c:close()
      c = sse.connect(base .. "/text", { retry = 10 })
      e, err = c:read()
      assert.is_nil(e)
      assert.is_true(errors.is(err, sse.BAD_CONTENT_TYPE))
      c:close()
      c = sse.connect(base .. "/params", { retry = 10 })
      assert.equal("ok", assert(c:read()).data)
      c:close()
      srv:close()
    end)
  end)

  it("honours opts.ctx: cancel ends a blocked read, a retry wait and connecting", function()
    run(function()
      local base, srv = serve({
        ["/quiet"] = function(w, r) sse.new_emitter(w); r.ctx:wait() end,
        ["/drop"] = function(w) sse.new_emitter(w):send{ data = "d" } end,
      })
      -- blocked reading a quiet stream
      local ctx, cancel = context.with_cancel(bg)
      local c = sse.connect(base .. "/quiet", { ctx = ctx })
      lowbit.go(function() lowbit.sleep(0.05); cancel() end)
      local t0 = lowbit.now()
      assert.same({ nil, context.CANCELED }, { c:read() })
      assert.is_true(lowbit.now() - t0 < 1)
      c:close()
      -- waiting out the default 3 s retry
      ctx, cancel = context.with_cancel(bg)
      c = sse.connect(base .. "/drop", { ctx = ctx })
      assert.equal("d", assert(c:read()).data)
      lowbit.go(function() lowbit.sleep(0.05); cancel() end)
      t0 = lowbit.now()
      assert.same({ nil, context.CANCELED }, { c:read() })
      assert.is_true(lowbit.now() - t0 < 1)
      c:close()
      -- a deadline
      ctx = context.with_timeout(bg, 0.05)
      c = sse.connect(base .. "/quiet", { ctx = ctx })
      assert.same({ nil, context.DEADLINE_EXCEEDED }, { c:read() })
      c:close()
      srv:close()
    end)
  end)

  it("close() from another task ends a blocked read with sse.CLOSED", function()
    run(function()
      local base, srv = serve({ ["/quiet"] = function(w, r) sse.new_emitter(w); r.ctx:wait() end })
      local c = sse.connect(base .. "/quiet")
      lowbit.go(function() lowbit.sleep(0.05); c:close() end)
      assert.same({ nil, sse.CLOSED }, { c:read() })
      assert.same({ nil, sse.CLOSED }, { c:read() })
      srv:close()
    end)
  end)

  it("retries refused connections, giving up after max_retries", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local addr = ln:addr()
      ln:close()
      local c = sse.connect("http://" .. addr .. "/events", { retry = 20, max_retries = 2 })
      local t0 = lowbit.now()
      local e, err = c:read()
      assert.is_nil(e)
      assert.is_true(errors.is(err, errors.sys("ECONNREFUSED")), tostring(err))
      assert.equal(3, c.connects)
      assert.is_true(lowbit.now() - t0 >= 0.035)
      c:close()
    end)
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() sse.connect(5) end, "bad argument 'url' to sse.connect: string expected, got number")
    assert.has_error(function() sse.connect("http://x/", { ctx = 1 }) end,
      "bad argument 'opts.ctx' to sse.connect: context expected, got number")
    assert.has_error(function() sse.connect("http://x/", { retry = "soon" }) end)
    assert.has_error(function() sse.connect("http://x/", { headers = 3 }) end)
  end)
end)

---------------------------------------------------------------------------
-- Headless Chromium
---------------------------------------------------------------------------

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>sse</title></head><body><pre id="log"></pre>
<script>
var got = [];
var log = document.getElementById("log");
var es = new EventSource("/events");
function note(kind, e) {
  got.push(kind + "|" + e.type + "|" + e.lastEventId + "|" + e.data);
  log.textContent = got.join("\n");
}
es.onmessage = function (e) { note("m", e); };
es.addEventListener("tick", function (e) { note("t", e); });
es.addEventListener("done", function (e) {
  note("d", e);
  es.close();
  fetch("/report", { method: "POST", body: got.join("\n") }).then(function () {
    log.setAttribute("data-reported", "yes");
  });
});
</script></body></html>
]]

describe("sse with headless Chromium's EventSource", function()
  after_each(function() require("support.cdp").cleanup() end) -- a run cut short leaves no Chromium

  it("receives events across a reconnection with Last-Event-ID, and reports them", function()
    run(function()
      local report = lowbit.chan(1)
      local conns = {}
      local base, srv = serve({
        ["/"] = function(w)
          w:header():set("Content-Type", "text/html; charset=utf-8")
          w:write(PAGE)
        end,
        ["/events"] = function(w, r)
          conns[#conns + 1] = r.headers:get("Last-Event-ID") or "-"
          local e = sse.new_emitter(w)
          if #conns == 1 then
            e:send{ retry = 100 }
            e:comment("hello browser")
            e:send{ id = "1", data = "first\nline" }
            e:send{ id = "2", name = "tick", data = "x \195\169 \226\156\147", extensions = { { "x-ignored", "1" } } }
            -- the handler returns: the stream ends, the browser reconnects
          else
            e:send{ id = "3", data = "after " .. tostring(r.headers:get("Last-Event-ID")) }
            e:send{ id = "", name = "done", data = "bye" }
          end
        end,
        ["/report"] = function(w, r)
          report:try_send(r.body:read_all())
          w:write("ok")
        end,
      })
      local want = "m|message|1|first\nline\nt|tick|2|x \195\169 \226\156\147\nm|message|3|after 2\nd|done||bye"
      local got, shown
      require("support.cdp").with_browser({ timeout = 60 }, function(b)
        local tab = b:new_tab(base .. "/")
        got = tab:receive(report, "the page's report")
        -- The page shows the same events once its report is answered.
        tab:wait_for("document.getElementById('log').getAttribute('data-reported') === 'yes'", "the page's reported mark")
        shown = tab:evaluate("document.getElementById('log').textContent")
      end)
      assert.equal(want, got)
      assert.same({ "-", "2" }, conns)
      assert.equal(want, shown)
      srv:close()
    end)
  end)
end)

---------------------------------------------------------------------------
-- The example, run by the host
---------------------------------------------------------------------------

describe("examples/sse.lua", function()
  it("serves a ticker at /events and a page at /", function()
    local addr = "127.0.0.1:" .. support.free_port()
    local proc = require "support.proc"
    proc.with({ host, root .. "/examples/sse.lua", addr, "0.05" },
      { ready = function() return proc.answers("http://" .. addr .. "/") end, timeout = 10 }, function(p)
      run(function()
        local code, page = spawn("curl", { "-s", "--max-time", "5", "http://" .. addr .. "/" })
        assert.equal(0, code)
        assert.matches("EventSource", page)
        local c = sse.connect("http://" .. addr .. "/events")
        local a = assert(c:read())
        local b = assert(c:read())
        assert.equal("tick", a.name)
        assert.equal(tonumber(a.id) + 1, tonumber(b.id))
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d", a.data)
        c:close()
      end)
      assert.truthy(p.stop("TERM", 5), "the example did not stop on SIGTERM")
    end)
  end)
end)

---------------------------------------------------------------------------
-- STYLE rule 14
---------------------------------------------------------------------------

describe("sse hot loops", function()
  it("encode and parse loops run compiled (no NYI aborts in sse code)", function()
    if not (jit and jit.status()) then return end
    local n = 0
    local bad = support.jit_aborts("sse.lua", function()
      local w = { write = function(_, s) return #s end, flush = function() return true end,
                  header = function() return { set = function() end } end, write_header = function() end }
      local e = sse.new_emitter(w)
      local evt = sse.event{ name = "tick", id = "42", data = "some data\nmore" }
      for _ = 1, 20000 do e:send(evt) end
      local wire = string.rep(sse.encode(evt), 200)
      local src = { n = 0, read = function(self)
        self.n = self.n + 1
        if self.n > 100 then return nil, errors.EOF end
        return wire
      end }
      local rd = sse.new_reader(src)
      while rd:read() do n = n + 1 end
    end)
    assert.equal(20000, n)
    assert.same({}, bad)
  end)
end)
