-- Logging never blocks serving: the `lowbit` host with a stderr pipe that
-- nobody reads keeps answering after hundreds of logged errors; what could
-- not be written is dropped, counted and reported once the sink drains;
-- one peer's errors are rate-limited; plain HTTP sent to a TLS port gets a
-- 400 and no log line.
local support = require "support"
local lowbit = require "lowbit"
local net = require "lowbit.net"
local tls = require "lowbit.tls"
local uv = require "luv"

local now = lowbit.now

-- Starts the host on `script` (args after it) with stdout read line by
-- line and stderr a pipe that is not read until p:read_stderr() is called.
local function start_host(script, args)
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local p = { lines = lowbit.chan(64), err = {}, err_done = false, exited = lowbit.chan(1) }
  local argv = { script }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local partial = ""
  local h, perr
  h, perr = uv.spawn(support.host, { args = argv, stdio = { nil, stdout, stderr } }, function(code, sig)
    uv.close(h)
    p.exited:try_send({ code = code, sig = sig })
  end)
  assert(h, perr)
  p.h = h
  uv.read_start(stdout, function(_, d)
    if not d then uv.close(stdout); p.lines:close(); return end
    partial = partial .. d
    while true do
      local line, rest = partial:match("^([^\n]*)\n(.*)$")
      if not line then break end
      partial = rest
      p.lines:try_send(line)
    end
  end)
  function p.line(timeout)
    local i, v = lowbit.select{ p.lines, lowbit.after(timeout or 20) }
    if i ~= 1 then return nil end
    return v
  end
  function p.read_stderr()
    uv.read_start(stderr, function(_, d)
      if d then p.err[#p.err + 1] = d else uv.close(stderr); p.err_done = true end
    end)
  end
  -- All stderr said, once the host has closed it (bounded wait).
  function p.stderr_text()
    for _ = 1, 200 do if p.err_done then break end; lowbit.sleep(0.01) end
    return table.concat(p.err)
  end
  function p.stop()
    if not p.code then
      uv.process_kill(h, "sigkill")
      local i, st = lowbit.select{ p.exited, lowbit.after(10) }
      if i == 1 then p.code = st.code end
    end
    if not uv.is_closing(stderr) then uv.close(stderr) end
  end
  function p.wait(timeout)
    local i, st = lowbit.select{ p.exited, lowbit.after(timeout or 20) }
    if i ~= 1 then return nil end
    p.code = st.code
    return st.code, st.sig
  end
  return p
end

-- Sends `request` on a new connection to port and returns everything read
-- until the server closes it, or nil, err when it does not within 10 s.
local function exchange(port, request)
  local c, err = net.dial(nil, "127.0.0.1:" .. port)
  if not c then return nil, err end
  c:set_deadline(now() + 10)
  if request then c:write(request) end
  local parts = {}
  while true do
    local d, rerr = c:read()
    if not d then
      c:close()
      if rerr == lowbit.errors.EOF or tostring(rerr):find("reset", 1, true) then return table.concat(parts) end
      return nil, rerr
    end
    parts[#parts + 1] = d
  end
end

local HANDLER_ERRORS = [[
local lowbit, http, net = require "lowbit", require "lowbit.http", require "lowbit.net"
local srv = http.server{ handler = function(w, r)
  error("handler broke: " .. string.rep("x", 200))
end }
local ln = assert(net.listen("127.0.0.1:0"))
io.stdout:write(ln:port(), "\n"); io.stdout:flush()
srv:serve(ln)
]]

local TLS_SERVER = [[
local lowbit, http, net, tls = require "lowbit", require "lowbit.http", require "lowbit.net", require "lowbit.tls"
local dir = ...
local srv = http.server{
  tls = assert(tls.server_config{ cert = dir .. "/srv.pem", key = dir .. "/srv.key" }),
  handler = function(w, r) w:write("fine") end }
local ln = assert(net.listen("127.0.0.1:0"))
lowbit.go(function() require("lowbit.context").root():wait(); srv:shutdown() end)
io.stdout:write(ln:port(), "\n"); io.stdout:flush()
srv:serve(ln)
]]

-- A TLS record of the handshake type holding garbage: the server logs a
-- handshake error for it.
local BOGUS_HELLO = "\22\3\1\0\8" .. "\1\0\0\4junk"

describe("logging with a stderr pipe nobody reads", function()
  local dir
  setup(function() dir = support.make_pki() end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("an HTTP server answers all of 2000 requests whose handler raises", function()
    local script = support.tmpfile(HANDLER_ERRORS, ".lua")
    support.run(function()
      local p = start_host(script)
      local port = assert(tonumber(p.line()), "server did not start")
      local answered = 0
      for i = 1, 2000 do
        local resp, err = exchange(port, "GET /" .. i .. " HTTP/1.1\r\nHost: x\r\n\r\n")
        if not resp then break end
        assert.matches("^HTTP/1%.1 500", resp)
        answered = answered + 1
      end
      p.stop()
      assert.equal(2000, answered)
    end)
    os.remove(script)
  end)

  it("an HTTPS server answers healthy clients after 1000 bogus ClientHellos", function()
    local script = support.tmpfile(TLS_SERVER, ".lua")
    support.run(function()
      local p = start_host(script, { dir })
      local port = assert(tonumber(p.line()), "server did not start")
      local closed = 0
      for _ = 1, 1000 do
        if not exchange(port, BOGUS_HELLO) then break end
        closed = closed + 1
      end
      assert.equal(1000, closed)
      local cfg = assert(tls.client_config{ ca_file = dir .. "/ca.pem", server_name = "localhost" })
      local ok = 0
      for _ = 1, 50 do
        local ctx = require("lowbit.context").with_timeout(require("lowbit.context").background(), 10)
        local c = tls.dial(ctx, "127.0.0.1:" .. port, cfg)
        if not c then break end
        c:set_deadline(now() + 10)
        c:write("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        local resp = support.read_all(c)
        c:close()
        if not resp:find("^HTTP/1%.1 200") or not resp:find("fine$") then break end
        ok = ok + 1
      end
      p.stop()
      assert.equal(50, ok)
    end)
    os.remove(script)
  end)

  it("a script whose tasks fail 3000 times goes on; the lines dropped are counted when stderr drains", function()
    local script = support.tmpfile([[
local lowbit = require "lowbit"
for i = 1, 3000 do
  lowbit.go(function() error(("task %d failed: "):format(i) .. string.rep("y", 200), 0) end)
end
lowbit.sleep(0.05)
io.stdout:write("flooded\n"); io.stdout:flush()
lowbit.sleep(1)
io.stdout:write("bye\n"); io.stdout:flush()
]], ".lua")
    support.run(function()
      local p = start_host(script)
      assert.equal("flooded", p.line())
      p.read_stderr()
      assert.equal("bye", p.line())
      assert.equal(0, p.wait())
      local text = p.stderr_text()
      local seen = select(2, text:gsub("error in task: task %d+ failed", ""))
      local dropped = tonumber(text:match("lowbit: (%d+) log lines dropped"))
      assert.is_number(dropped)
      assert.is_true(seen > 0 and dropped > 0)
      assert.equal(3000, seen + dropped)
      -- Every line is whole: the stalled writes resumed where they stopped.
      assert.equal(seen, select(2, text:gsub("task %d+ failed: " .. string.rep("y", 200) .. "\n", "")))
      p.stop()
    end)
    os.remove(script)
  end)
end)

describe("TLS server errors", function()
  local dir
  setup(function() dir = support.make_pki() end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("plain HTTP to a TLS port gets Go's 400 and no log line; one peer's handshake errors are rate-limited", function()
    local script = support.tmpfile(TLS_SERVER, ".lua")
    support.run(function()
      local p = start_host(script, { dir })
      p.read_stderr()
      local port = assert(tonumber(p.line()), "server did not start")
      for _, req in ipairs({ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD / HTTP/1.0\r\n\r\n",
                             "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "OPTIONS * HTTP/1.1\r\n\r\n",
                             "PUT /a HTTP/1.1\r\n\r\n" }) do
        local resp = assert(exchange(port, req))
        assert.equal("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n", resp)
      end
      for _ = 1, 200 do assert(exchange(port, BOGUS_HELLO)) end
      uv.process_kill(p.h, "sigterm")
      p.wait()
      local text = p.stderr_text()
      -- Only the bogus hellos were logged: nothing about the plain-HTTP
      -- requests (a port number may well contain "400", so lines are matched).
      for line in text:gmatch("[^\n]+") do
        assert.matches("TLS handshake error from 127%.0%.0%.1:%d+: tls handshake failed: length mismatch", line)
      end
      local logged = select(2, text:gsub("TLS handshake error from 127%.0%.0%.1", ""))
      assert.is_true(logged >= 1, text)
      assert.is_true(logged < 100, "not rate-limited: " .. logged .. " lines")
      p.stop()
    end)
    os.remove(script)
  end)

  it("handshakes cut by a reset are logged with the peer's address and rate-limited like any other peer's errors", function()
    local script = support.tmpfile(TLS_SERVER, ".lua")
    support.run(function()
      local p = start_host(script, { dir })
      p.read_stderr()
      local port = assert(tonumber(p.line()), "server did not start")
      -- 200 clients start a handshake record, then reset the connection.
      local done = lowbit.chan(200)
      for _ = 1, 200 do
        local t = uv.new_tcp()
        uv.tcp_connect(t, "127.0.0.1", port, function(cerr)
          if cerr then uv.close(t); done:try_send(false); return end
          uv.write(t, "\22\3\1\0\200\1\0", function()
            lowbit.go(function()
              lowbit.sleep(0.02) -- the server has read the record's first bytes
              uv.tcp_close_reset(t)
              done:try_send(true)
            end)
          end)
        end)
        assert(done:recv())
      end
      lowbit.sleep(0.3)
      uv.process_kill(p.h, "sigterm")
      p.wait()
      local text = p.stderr_text()
      local logged = 0
      for line in text:gmatch("[^\n]+") do
        if line:find("TLS handshake error", 1, true) then
          logged = logged + 1
          assert.matches("TLS handshake error from 127%.0%.0%.1:%d+: ", line) -- never "from nil"
        end
      end
      assert.is_true(logged >= 1, text)
      assert.is_true(logged < 100, "not rate-limited: " .. logged .. " lines")
      p.stop()
    end)
    os.remove(script)
  end)
end)

describe("lowbit.log", function()
  local log = require "lowbit.log"

  -- A pipe whose write end is the sink; returns a function that reads
  -- whatever the sink has written so far (waiting `s` seconds first).
  local function pipe_sink()
    local fds = assert(uv.pipe({ nonblock = true }, { nonblock = false }))
    local rfd, wfd = fds.read, fds.write
    log._set_sink(wfd)
    finally(function() log._set_sink(nil) end)
    uv.fs_close(wfd) -- the sink writes to its own dup
    local r = uv.new_pipe(false)
    assert(uv.pipe_open(r, rfd))
    local got = {}
    local reading = false
    return function(s)
      if not reading then
        reading = true
        uv.read_start(r, function(_, d) if d then got[#got + 1] = d end end)
      end
      lowbit.sleep(s or 0.05)
      return table.concat(got)
    end, function() uv.close(r) end
  end

  it("never blocks on a stalled sink: drops beyond MAX_QUEUE, then reports the count once drained", function()
    support.run(function()
      local read, close = pipe_sink()
      local line = string.rep("z", 99) -- 100 bytes with its newline
      local kept = 0
      for i = 1, 3000 do
        if log.write(("%04d"):format(i) .. line) then kept = kept + 1 end
      end
      local st = log.stats()
      assert.equal(3000 - kept, st.dropped)
      assert.is_true(st.dropped > 0)
      assert.is_true(st.queued <= log.MAX_QUEUE)
      local text = read(0.3)
      local n = select(2, text:gsub("%d%d%d%d" .. line .. "\n", ""))
      assert.equal(kept, n)
      assert.equal(3000 - kept, tonumber(text:match("\nlowbit: (%d+) log lines dropped\n$")))
      assert.equal(0, log.stats().queued)
      close()
    end)
  end)

  it("limits the lines of one peer (any port), and says how many it suppressed", function()
    finally(function() log._set_sink(nil) end)
    support.run(function()
      local let = 0
      for i = 1, 50 do
        if log.limit("10.0.0.1:" .. (1000 + i), "x") then let = let + 1 end
      end
      assert.equal(log.BURST, let)
      assert.equal("y", log.limit("[::1]:80", "y"))   -- another peer has its own budget
      lowbit.sleep(1.1 / log.RATE)
      assert.equal("x (and 40 earlier lines from 10.0.0.1 suppressed)", log.limit("10.0.0.1:9", "x"))
    end)
  end)

  it("cuts lines longer than MAX_LINE", function()
    support.run(function()
      local read, close = pipe_sink()
      log.write(string.rep("a", log.MAX_LINE + 100))
      local text = read()
      assert.equal(string.rep("a", log.MAX_LINE) .. " ... (cut)\n", text)
      close()
    end)
  end)
end)
