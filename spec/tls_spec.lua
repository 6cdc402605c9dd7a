-- lowbit.tls against itself, curl, openssl s_client and openssl s_server,
-- over loopback. The certificates are made here with the openssl command
-- line into a temporary directory: a test CA, a server certificate for
-- localhost / 127.0.0.1 and one for other.test signed by it, and a
-- self-signed localhost certificate nobody trusts.
local uv = require "luv"
local lowbit = require "lowbit"
local net = require "lowbit.net"
local tls = require "lowbit.tls"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local support = require "support"
local run = support.run

local bg = context.background()
local dir

local function sh(cmd)
  local out, rc = support.sh(cmd .. " 2>&1")
  assert(rc == 0, cmd .. " failed:\n" .. tostring(out))
  return out
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

setup(function() dir = support.make_pki() end)

teardown(function()
  -- Let the loop run the close callbacks of handles closed at the end of
  -- the last run: left pending, luv runs them inside lua_close, where they
  -- may crash (lowbit.run returns without one more loop pass).
  run(function() lowbit.sleep(0.01) end)
  if dir then os.execute("rm -rf '" .. dir .. "'") end
end)

local function server_cfg(extra)
  local o = { cert = dir .. "/srv.pem", key = dir .. "/srv.key" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(tls.server_config(o))
end

local function client_cfg(extra)
  local o = { ca_file = dir .. "/ca.pem" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(tls.client_config(o))
end

-- A TLS echo server; every accepted conn is handled by fn (default: echo).
local function serve(cfg, fn)
  local ln = assert(tls.listen("127.0.0.1:0", cfg))
  lowbit.go(function()
    while true do
      local c = ln:accept()
      if not c then return end
      lowbit.go(fn or function()
        while true do
          local d = c:read()
          if not d or not c:write(d) then break end
        end
        c:close()
      end, c)
    end
  end)
  return ln
end

-- Runs a program inside a task: returns exit code, stdout, stderr. Handles
-- are closed in their callbacks: a close left pending when lowbit.run
-- returns would run during lua_close (luv then crashes).
local function spawn(cmd, args, input, timeout)
  local out, errout = {}, {}
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local sel = lowbit._sel("spawn")
  local left, code = 3, nil
  local function one() left = left - 1; if left == 0 then lowbit._fire(sel) end end
  local h, perr
  h, perr = uv.spawn(cmd, { args = args, stdio = { stdin, stdout, stderr } },
    function(c) code = c; uv.close(h); one() end)
  assert(h, perr)
  local function reader(pipe, acc)
    uv.read_start(pipe, function(err, d)
      if d then acc[#acc + 1] = d else uv.close(pipe); one() end
    end)
  end
  reader(stdout, out)
  reader(stderr, errout)
  if input then uv.write(stdin, input) end
  uv.shutdown(stdin, function() uv.close(stdin) end)
  local why = lowbit._block(sel, nil, lowbit.now() + (timeout or 20))
  if why == "timeout" then
    uv.process_kill(h, "sigkill")
    lowbit.sleep(0.1)
  end
  assert(why == "ok", cmd .. " timed out")
  return code, table.concat(out), table.concat(errout)
end

local function free_port()
  local ln = assert(net.listen("127.0.0.1:0"))
  local port = ln:port()
  ln:close()
  return port
end

-- Starts `openssl s_server -www` with dir/NAME.pem; returns port, stop().
local function s_server(name)
  local port = free_port()
  local stdin = uv.new_pipe(false)
  local exited = lowbit.chan(1)
  local h
  h = assert(uv.spawn("openssl", {
    args = { "s_server", "-accept", tostring(port), "-cert", dir .. "/" .. name .. ".pem",
             "-key", dir .. "/" .. name .. ".key", "-www", "-quiet" },
    stdio = { stdin, nil, nil } }, function()
      uv.close(h)
      uv.close(stdin)
      exited:try_send(true)
    end))
  local deadline = lowbit.now() + 10
  while true do
    local c = net.dial(bg, "127.0.0.1:" .. port)
    if c then c:close(); break end
    assert(lowbit.now() < deadline, "s_server did not start")
    lowbit.sleep(0.05)
  end
  return port, function()
    uv.process_kill(h, "sigterm")
    exited:recv()
  end
end

-- Adler-32 of a list of chunks.
local function adler(a, b, s)
  local byte = string.byte
  for i = 1, #s do
    a = (a + byte(s, i)) % 65521
    b = (b + a) % 65521
  end
  return a, b
end

describe("lowbit.tls", function()
  it("connects a lowbit client to a lowbit server over TCP", function()
    run(function()
      local ln = serve(server_cfg({ alpn = { "h2", "http/1.1" } }))
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg({ alpn = { "http/1.1" } })))
      assert.equal("TLSv1.3", c:version())
      assert.equal("http/1.1", c:alpn())
      assert.equal("CN=localhost", c:peer_subject())
      assert.equal("localhost", c:server_name())
      assert.equal(5, c:write("hello"))
      assert.equal("hello", c:read_full(5))
      assert.equal(6, c:write({ "wor", "ld", "!" }))
      assert.equal("world!", c:read_full(6))
      assert.matches("^127%.0%.0%.1:%d+$", c:local_addr())
      assert.equal(ln:addr(), c:remote_addr())
      assert.matches("^tls client conn", tostring(c))
      c:close()
      -- an IP literal is verified against the certificate's IP addresses
      c = assert(tls.dial(bg, ln:addr(), client_cfg()))
      assert.equal(3, c:write("abc"))
      assert.equal("abc", c:read_full(3))
      c:close()
      ln:close()
    end)
  end)

  it("works over an in-memory pipe, with unread and buffered", function()
    run(function()
      local a, b = net.pipe()
      local s = tls.server(a, server_cfg())
      local c = tls.client(b, client_cfg({ server_name = "localhost" }))
      lowbit.go(function()
        assert(s:handshake())
        s:write("one two")
        assert.equal("bye", s:read_full(3))
        s:close()
      end)
      assert(c:handshake(bg))
      assert.equal("one", c:read_full(3))
      assert.equal(4, c:buffered()) -- " two", decrypted with "one"
      c:unread("ONE")
      assert.equal(7, c:buffered())
      assert.equal("ONE", c:read(3))
      assert.equal(" two", c:read_full(4))
      c:write("bye")
      assert.same({ nil, errors.EOF }, { c:read() })
      c:close()
    end)
  end)

  it("serves curl with a minimal HTTP/1.1 response", function()
    run(function()
      local seen_alpn
      local ln = serve(server_cfg({ alpn = { "http/1.1" } }), function(c)
        local head = ""
        while not head:find("\r\n\r\n", 1, true) do
          local d = c:read()
          if not d then c:close(); return end
          head = head .. d
        end
        seen_alpn = c:alpn()
        local body = "hello from lowbit tls\n"
        c:write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #body ..
                "\r\nConnection: close\r\n\r\n" .. body)
        c:close()
      end)
      local port = ln:port()
      local code, out, err = spawn("curl", { "-sS", "--cacert", dir .. "/ca.pem", "--resolve",
        "localhost:" .. port .. ":127.0.0.1", "-w", "|%{http_code}|%{http_version}",
        "https://localhost:" .. port .. "/" })
      assert.equal(0, code, err)
      assert.equal("hello from lowbit tls\n|200|1.1", out)
      assert.equal("http/1.1", seen_alpn)
      -- without the CA, curl refuses the certificate
      code = spawn("curl", { "-sS", "--resolve", "localhost:" .. port .. ":127.0.0.1",
        "https://localhost:" .. port .. "/" })
      assert.equal(60, code) -- CURLE_PEER_FAILED_VERIFICATION
      ln:close()
    end)
  end)

  it("picks ALPN and the SNI context for openssl s_client", function()
    run(function()
      local names = {}
      local ln = serve(server_cfg({ alpn = { "http/1.1" },
        sni = { ["other.test"] = { cert = dir .. "/other.pem", key = dir .. "/other.key" } } }),
        function(c)
          local d = c:read()
          names[#names + 1] = tostring(c:server_name())
          c:close()
          return d
        end)
      local function s_client(servername)
        local code, out, err = spawn("openssl", { "s_client", "-connect", ln:addr(), "-servername", servername,
          "-alpn", "http/1.1", "-CAfile", dir .. "/ca.pem", "-verify_return_error",
          "-verify_hostname", servername }, "ping\n")
        assert.equal(0, code, err)
        return out
      end
      local out = s_client("other.test")
      assert.matches("subject=CN = other.test", out, 1, true)
      assert.matches("ALPN protocol: http/1.1", out, 1, true)
      assert.matches("Verify return code: 0 (ok)", out, 1, true)
      out = s_client("localhost")
      assert.matches("subject=CN = localhost", out, 1, true)
      lowbit.sleep(0.05)
      table.sort(names)
      assert.same({ "localhost", "other.test" }, names)
      ln:close()
    end)
  end)

  it("verifies openssl s_server: the test CA, a wrong name, the system store", function()
    run(function()
      local port, stop = s_server("srv")
      local c = assert(tls.dial(bg, "localhost:" .. port, client_cfg()))
      c:write("GET / HTTP/1.0\r\n\r\n")
      local page = support.read_all(c)
      c:close()
      assert.matches("^HTTP/1.0 200 ok", page)
      assert.matches("s_server", page, 1, true)

      local _, err = tls.dial(bg, "127.0.0.1:" .. port, client_cfg({ server_name = "wrong.test" }))
      assert.is_true(errors.is(err, tls.HANDSHAKE))
      assert.is_true(errors.is(err, tls.VERIFY))
      assert.equal("tls handshake failed: certificate verify failed: hostname mismatch", tostring(err))

      _, err = tls.dial(bg, "localhost:" .. port) -- system CAs do not know the test CA
      assert.is_true(errors.is(err, tls.VERIFY))
      assert.matches("unable to get local issuer certificate", tostring(err), 1, true)
      stop()

      port, stop = s_server("self")
      _, err = tls.dial(bg, "localhost:" .. port, tls.client_config())
      assert.is_true(errors.is(err, tls.VERIFY))
      assert.matches("self%-signed certificate", tostring(err))
      -- unless told not to verify
      c = assert(tls.dial(bg, "localhost:" .. port, { insecure_skip_verify = true }))
      c:close()
      stop()
    end)
  end)

  it("moves several MB both ways at once, intact", function()
    run(function()
      local ln = serve(server_cfg())
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg()))
      local N, CHUNK = 8 * 1024 * 1024, 100 * 1000 + 7
      local sa, sb = 1, 0
      local wg = lowbit.waitgroup()
      wg:add(1)
      lowbit.go(function()
        local sent, i = 0, 0
        while sent < N do
          i = i + 1
          local n = math.min(CHUNK, N - sent)
          local s = string.rep(string.char(i % 251, (i * 7) % 256, 65 + i % 26), math.ceil(n / 3)):sub(1, n)
          sa, sb = adler(sa, sb, s)
          assert(c:write(s))
          sent = sent + n
        end
        wg:done()
      end)
      local ra, rb, got = 1, 0, 0
      while got < N do
        local d = assert(c:read())
        ra, rb = adler(ra, rb, d)
        got = got + #d
      end
      wg:wait()
      assert.equal(N, got)
      assert.same({ sa, sb }, { ra, rb })
      c:close()
      ln:close()
    end)
  end)

  it("runs one handshake for a reader, a writer and handshake() started at once; close ends a stalled one", function()
    run(function()
      local ln = serve(server_cfg())
      local raw = assert(net.dial(nil, "127.0.0.1:" .. ln:port()))
      local c = assert(tls.client(raw, client_cfg(), "localhost"))
      local res = lowbit.chan(3)
      lowbit.go(function() res:send({ "read", c:read() }) end)
      lowbit.go(function() res:send({ "write", c:write("both") }) end)
      lowbit.go(function() res:send({ "handshake", c:handshake(bg) }) end)
      local got = {}
      for _ = 1, 3 do local r = res:recv(); got[r[1]] = r[2] end
      assert.same({ read = "both", write = 4, handshake = true }, got)
      assert.equal(2, c:write("ok"))
      assert.equal("ok", c:read())
      c:close()
      ln:close()
      -- A peer that never answers: the handshake waits until close.
      local silent = assert(net.listen("127.0.0.1:0"))
      local held = {}
      lowbit.go(function() held[1] = silent:accept() end)
      local c2 = assert(tls.client(assert(net.dial(nil, silent:addr())), client_cfg(), "localhost"))
      local res2 = lowbit.chan(2)
      lowbit.go(function() res2:send({ c2:handshake() }) end)
      lowbit.go(function() res2:send({ c2:write("x") }) end)
      lowbit.sleep(0.02)
      c2:close()
      for _ = 1, 2 do
        local r = res2:recv()
        assert.is_nil(r[1])
        assert.equal(errors.CLOSED, r[2])
      end
      if held[1] then held[1]:close() end
      silent:close()
    end)
  end)

  it("names its side, refuses writes after close_write, and a second close returns CLOSED", function()
    run(function()
      local sconn = lowbit.chan(1)
      local ln = serve(server_cfg(), function(c) assert(c:handshake()); sconn:send(c) end)
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg()))
      local s = sconn:recv()
      assert.matches("^tls client conn ", tostring(c))
      assert.matches("^tls server conn ", tostring(s))
      assert.equal(4, s:write("ping"))
      assert.equal("ping", c:read())
      assert.is_true(c:close_write())
      local n, err = c:write("x")
      assert.is_nil(n)
      assert.matches("EPIPE", tostring(err))
      assert.same({ nil, errors.EOF }, { s:read() })
      assert.is_true(s:close())
      assert.same({ nil, errors.CLOSED }, { s:close() })
      assert.is_true(c:close())
      assert.same({ nil, errors.CLOSED }, { c:close() })
      ln:close()
    end)
  end)

  it("keeps a waiting read from blocking a write in another task", function()
    run(function()
      local ln = serve(server_cfg())
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg()))
      local got
      local done = lowbit.chan(1)
      lowbit.go(function() got = c:read(); done:send(true) end)
      lowbit.sleep(0.02) -- the reader is parked now
      assert.equal(4, c:write("ping"))
      done:recv()
      assert.equal("ping", got)
      assert.has_error(function()
        lowbit.go(function() c:read() end)
        lowbit.yield()
        c:read()
      end, "conn:read: another task is already reading this conn")
      c:close()
      ln:close()
    end)
  end)

  it("runs writes of several tasks one after another, each whole, under backpressure", function()
    -- The write lock is a flag until a second writer has to wait: then it
    -- becomes a mutex (FIFO), which it stays.
    run(function()
      local received = lowbit.chan(1)
      local ln = serve(server_cfg(), function(c)
        lowbit.sleep(0.05) -- the writers fill the socket and wait
        received:send(support.read_all(c))
        c:close()
      end)
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg()))
      local N = 4 * 1024 * 1024
      local wg = lowbit.waitgroup()
      for _, ch in ipairs({ "a", "b", "c" }) do
        wg:add(1)
        lowbit.go(function()
          assert.equal(N, c:write(string.rep(ch, N)))
          wg:done()
        end)
      end
      wg:wait()
      assert.equal("table", type(c.wlock)) -- (writers did wait for the lock)
      assert.equal(1, c:write("z"))
      assert.is_true(c:close_write())
      local got = received:recv()
      assert.equal(3 * N + 1, #got)
      -- Three runs of N bytes (in the order the tasks got the lock), then z.
      local seen = {}
      for i = 0, 2 do
        local ch = got:sub(i * N + 1, i * N + 1)
        assert.is_nil(seen[ch])
        seen[ch] = true
        assert.equal(string.rep(ch, N), got:sub(i * N + 1, (i + 1) * N))
      end
      assert.equal("z", got:sub(-1))
      c:close()
      ln:close()
    end)
  end)

  it("honours deadlines and handshake contexts", function()
    run(function()
      local ln = serve(server_cfg(), function(c)
        c:read() -- handshake, then silence until the client goes
        c:read()
        c:close()
      end)
      local c = assert(tls.dial(bg, ln:addr(), client_cfg()))
      c:set_read_deadline(lowbit.now() + 0.1)
      local t0 = lowbit.now()
      assert.same({ nil, errors.TIMEOUT }, { c:read() })
      assert.is_true(lowbit.now() - t0 < 1)
      c:set_deadline(nil)
      assert.equal(1, c:write("x"))
      c:close()
      ln:close()

      -- a TCP server that accepts and says nothing
      local raw = assert(net.listen("127.0.0.1:0"))
      local held = {}
      lowbit.go(function()
        while true do
          local rc = raw:accept()
          if not rc then return end
          held[#held + 1] = rc
        end
      end)
      local ctx, cancel = context.with_timeout(bg, 0.15)
      t0 = lowbit.now()
      local _, err = tls.dial(ctx, raw:addr(), client_cfg())
      cancel()
      assert.is_true(errors.is(err, tls.HANDSHAKE))
      assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED))
      assert.is_true(lowbit.now() - t0 < 1)
      -- explicit cancellation
      ctx, cancel = context.with_cancel(bg)
      lowbit.go(function() lowbit.sleep(0.05); cancel() end)
      local tc = tls.client(assert(net.dial(bg, raw:addr())), client_cfg({ server_name = "localhost" }))
      _, err = tc:handshake(ctx)
      assert.is_true(errors.is(err, context.CANCELED))
      tc:close()
      -- handshake_timeout bounds lazy handshakes
      tc = tls.client(assert(net.dial(bg, raw:addr())),
        client_cfg({ server_name = "localhost", handshake_timeout = 0.05 }))
      _, err = tc:write("x")
      assert.is_true(errors.is(err, tls.HANDSHAKE))
      assert.is_true(errors.is(err, errors.TIMEOUT))
      tc:close()
      -- the server side: a silent plain client, bounded by the read deadline
      local sln = assert(tls.listen("127.0.0.1:0", server_cfg()))
      local plain = assert(net.dial(bg, sln:addr()))
      local sc = assert(sln:accept())
      sc:set_deadline(lowbit.now() + 0.05)
      _, err = sc:read()
      assert.is_true(errors.is(err, tls.HANDSHAKE))
      assert.is_true(errors.is(err, errors.TIMEOUT))
      sc:close(); plain:close(); sln:close()
      for _, h in ipairs(held) do h:close() end
      raw:close()
    end)
  end)

  it("ends reads with EOF after close_notify, and allows half close", function()
    run(function()
      local ln = serve(server_cfg(), function(c)
        local all = {}
        while true do
          local d, err = c:read()
          if not d then assert.equal(errors.EOF, err); break end
          all[#all + 1] = d
        end
        -- the client closed its side; we can still answer
        c:write("got " .. table.concat(all))
        c:close()
      end)
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg()))
      c:write("abc")
      assert(c:close_write())
      assert.is_true(c:close_write())
      local _, werr = c:write("more")
      assert.is_true(errors.is(werr, errors.sys("EPIPE")))
      assert.equal("got abc", c:read_full(7))
      assert.same({ nil, errors.EOF }, { c:read() })
      assert.same({ nil, errors.EOF }, { c:read() })
      c:close()
      assert.same({ nil, errors.CLOSED }, { c:read() })
      assert.same({ nil, errors.CLOSED }, { c:write("x") })
      assert.same({ nil, errors.CLOSED }, { c:close() })
      ln:close()
    end)
  end)

  it("write_buffer_close sends the data and close_notify in one write; reading goes on", function()
    run(function()
      local got = lowbit.chan(1)
      local ln = serve(server_cfg(), function(c)
        assert.equal("ping", c:read_full(4))
        local inner, writes = c:inner(), 0
        local wb = inner.write_buffer
        inner.write_buffer = function(self, b) writes = writes + 1; return wb(self, b) end
        local buf = require("string.buffer").new():put("pong")
        assert.equal(4, c:write_buffer_close(buf))
        assert.equal(0, #buf)
        assert.equal(1, writes)
        assert.is_true(c:close_write())
        assert.is_true(errors.is(select(2, c:write("x")), errors.sys("EPIPE")))
        assert.is_true(errors.is(select(2, c:write_buffer_close(buf:put("y"))), errors.sys("EPIPE")))
        got:send(c:read_full(5)) -- the peer may still send
        c:close()
      end)
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg()))
      c:write("ping")
      assert.equal("pong", c:read_full(4))
      assert.same({ nil, errors.EOF }, { c:read() }) -- close_notify
      c:write("after")
      assert.equal("after", got:recv())
      c:close()
      -- openssl s_client reads the data, then the close_notify
      local code, out = spawn("openssl", { "s_client", "-connect", ln:addr(), "-CAfile", dir .. "/ca.pem",
        "-verify_return_error", "-ign_eof" }, "ping")
      assert.equal(0, code)
      assert.matches("pong", out, 1, true)
      assert.matches("closed", out, 1, true)
      ln:close()
    end)
  end)

  it("fails a server conn fed garbage by a plain TCP client, without hanging", function()
    run(function()
      local results = lowbit.chan(2)
      local ln = serve(server_cfg(), function(c)
        c:set_deadline(lowbit.now() + 5)
        local d, err = c:read()
        results:send({ d, err })
        c:close()
      end)
      local plain = assert(net.dial(bg, ln:addr()))
      plain:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      local r = results:recv()
      assert.is_nil(r[1])
      assert.is_true(errors.is(r[2], tls.HANDSHAKE))
      assert.matches("^tls handshake failed: ", tostring(r[2]))
      plain:set_deadline(lowbit.now() + 5)
      while plain:read() do end -- an alert, then EOF: the server let go
      plain:close()
      -- random bytes in a handshake-looking record
      plain = assert(net.dial(bg, ln:addr()))
      local junk = { "\22\3\1\0\200" }
      for i = 1, 200 do junk[#junk + 1] = string.char((i * 37) % 256) end
      plain:write(junk)
      r = results:recv()
      assert.is_true(errors.is(r[2], tls.HANDSHAKE))
      plain:close()
      ln:close()
    end)
  end)

  it("asks for and checks client certificates", function()
    run(function()
      local subject = lowbit.chan(4)
      local ln = serve(server_cfg({ client_auth = "require", client_ca_file = dir .. "/ca.pem" }), function(c)
        local d, err = c:read()
        subject:send(d and c:peer_subject() or tostring(err))
        c:close()
      end)
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg({
        cert = dir .. "/other.pem", key = dir .. "/other.key" })))
      c:write("hi")
      assert.equal("CN=other.test", subject:recv())
      c:close()
      c = tls.dial(bg, "localhost:" .. ln:port(), client_cfg())
      if c then -- TLS 1.3: the client finishes first, then reads the alert
        local _, err = c:read()
        assert.is_true(errors.is(err, tls.PROTOCOL))
        c:close()
      end
      assert.matches("tls handshake failed", subject:recv(), 1, true)
      ln:close()
    end)
  end)

  it("loads the system CA store once per process, honouring SSL_CERT_FILE", function()
    local ffi = require "ffi"
    local C = require("lowbit.core").C
    pcall(ffi.cdef, "int setenv(const char *, const char *, int); int unsetenv(const char *);")
    local old_file = os.getenv("SSL_CERT_FILE")
    local function restore()
      if old_file then ffi.C.setenv("SSL_CERT_FILE", old_file, 1) else ffi.C.unsetenv("SSL_CERT_FILE") end
    end
    local ok, err = pcall(run, function()
      local ln = serve(server_cfg())
      local addr = "localhost:" .. ln:port()
      -- The test CA as "the system store": default configs trust it.
      ffi.C.setenv("SSL_CERT_FILE", dir .. "/ca.pem", 1)
      local before = tonumber(C.lb_tls_system_store_loads())
      for _ = 1, 3 do -- a new default config (and context) per dial, as clients make them
        local c = assert(tls.dial(bg, addr, tls.client_config()))
        c:write("x")
        assert.equal("x", c:read())
        c:close()
      end
      local c = assert(tls.dial(bg, addr)) -- no config at all
      c:close()
      assert.equal(before + 1, tonumber(C.lb_tls_system_store_loads()))
      -- Another bundle: loaded again, and it does not know the test CA.
      ffi.C.setenv("SSL_CERT_FILE", dir .. "/self.pem", 1)
      local _, derr = tls.dial(bg, addr, tls.client_config())
      assert.is_true(errors.is(derr, tls.VERIFY))
      assert.matches("unable to get local issuer certificate", tostring(derr), 1, true)
      assert.equal(before + 2, tonumber(C.lb_tls_system_store_loads()))
      -- A config with a CA of its own plus the system store does not
      -- touch the shared store: the shared one still refuses the test CA.
      c = assert(tls.dial(bg, addr, tls.client_config({ ca_file = dir .. "/ca.pem", system_ca = true })))
      c:close()
      _, derr = tls.dial(bg, addr, tls.client_config())
      assert.is_true(errors.is(derr, tls.VERIFY))
      ln:close()
    end)
    restore()
    assert(ok, err)
  end)

  it("makes TLS 1.2 clients use ECDHE with AEAD, by the server's preference", function()
    run(function()
      local ln = serve(server_cfg())
      local function s_client(ciphers)
        return spawn("openssl", { "s_client", "-connect", ln:addr(), "-tls1_2", "-cipher", ciphers,
          "-CAfile", dir .. "/ca.pem" }, "ping\n")
      end
      -- The client prefers a suite without forward secrecy: the server picks.
      local code, out = s_client("AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256")
      assert.equal(0, code)
      assert.matches("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256", out, 1, true)
      code, out = s_client("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-CHACHA20-POLY1305")
      assert.equal(0, code)
      assert.matches("Cipher is ECDHE-ECDSA-CHACHA20-POLY1305", out, 1, true)
      -- Only suites without forward secrecy or AEAD: no handshake at all.
      for _, weak in ipairs({ "AES128-SHA:AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA" }) do
        code, out = s_client(weak)
        assert.are_not.equal(0, code)
        assert.matches("Cipher is (NONE)", out, 1, true)
      end
      ln:close()
    end)
  end)

  it("refuses a certificate that names the host only in its Common Name", function()
    -- A CA-signed certificate for CN=localhost without subjectAltName.
    local cnf = dir .. "/cnonly.cnf"
    local f = assert(io.open(cnf, "w"))
    f:write("[req]\ndistinguished_name = dn\nx509_extensions = ext\n[dn]\n[ext]\n",
            "basicConstraints = critical,CA:FALSE\n")
    f:close()
    sh(("openssl req -x509 -config %s -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
        "-subj /CN=localhost -keyout %s/cnonly.key -out %s/cnonly.pem -CA %s/ca.pem -CAkey %s/ca.key")
        :format(cnf, dir, dir, dir, dir))
    assert.not_matches("Subject Alternative Name", sh("openssl x509 -noout -text -in " .. dir .. "/cnonly.pem"))
    run(function()
      local ln = serve(server_cfg({ cert = dir .. "/cnonly.pem", key = dir .. "/cnonly.key" }))
      local _, err = tls.dial(bg, "localhost:" .. ln:port(), client_cfg())
      assert.is_true(errors.is(err, tls.VERIFY))
      assert.equal("tls handshake failed: certificate verify failed: hostname mismatch", tostring(err))
      ln:close()
    end)
  end)

  it("sends TLS 1.3 session tickets with the first write, and resumes with them", function()
    run(function()
      local ln = serve(server_cfg(), function(c)
        local d = c:read()
        if d then c:write("got " .. d) end
        c:close()
      end)
      local sess = dir .. "/sess.pem"
      local function s_client(extra)
        local args = { "s_client", "-connect", ln:addr(), "-tls1_3", "-CAfile", dir .. "/ca.pem", "-ign_eof" }
        for _, a in ipairs(extra) do args[#args + 1] = a end
        return spawn("openssl", args, "ping\n")
      end
      local code, out = s_client({ "-sess_out", sess })
      assert.equal(0, code)
      assert.matches("got ping", out, 1, true)
      assert.matches("New, TLSv1.3", out, 1, true)
      code, out = s_client({ "-sess_in", sess })
      assert.equal(0, code)
      assert.matches("got ping", out, 1, true)
      assert.matches("Reused, TLSv1.3", out, 1, true)
      ln:close()
    end)
  end)

  it("serves a TCP conn whose first bytes were read and put back (protocol sniffing)", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local cfg = server_cfg()
      lowbit.go(function()
        local raw = ln:accept()
        if not raw then return end
        local first = raw:read()
        raw:unread(first) -- a TLS ClientHello: hand it to TLS
        local c = assert(tls.server(raw, cfg))
        local d = c:read()
        if d then c:write(d) end
        c:close()
      end)
      local c = assert(tls.dial(bg, "localhost:" .. ln:port(), client_cfg()))
      c:write("sniffed")
      assert.equal("sniffed", c:read())
      c:close()
      ln:close()
    end)
  end)

  it("reports unusable certificates and raises on bad arguments", function()
    local _, err = tls.server_config({ cert = "/nonexistent.pem", key = "/nonexistent.key" })
    assert.is_true(errors.is(err, tls.CONFIG))
    assert.matches("/nonexistent.pem", tostring(err), 1, true)
    _, err = tls.server_config({ cert_pem = "junk", key_pem = "junk" })
    assert.is_true(errors.is(err, tls.CONFIG))
    _, err = tls.server_config({ cert = dir .. "/srv.pem", key = dir .. "/other.key" })
    assert.matches("mismatch", tostring(err), 1, true)
    _, err = tls.client_config({ ca_file = "/nonexistent-ca.pem" })
    assert.is_true(errors.is(err, tls.CONFIG))

    assert.has_error(function() tls.server_config(nil) end,
      "bad argument 'opts' to tls.server_config: table expected, got nil")
    assert.has_error(function() tls.server_config({ cert = 1, key = "k" }) end,
      "bad argument 'opts.cert' to tls.server_config: string expected, got number")
    assert.has_error(function() tls.server_config({ cert = "c" }) end,
      "bad argument 'opts' to tls.server_config: cert and key go together")
    assert.has_error(function() tls.server_config({ alpn = { "h2" } }) end,
      "bad argument 'opts' to tls.server_config: cert and key (or cert_pem and key_pem) required")
    assert.has_error(function() tls.client_config({ alpm = {} }) end,
      "bad argument 'opts' to tls.client_config: unknown option 'alpm'")
    assert.has_error(function() tls.client_config({ alpn = { "" } }) end,
      "bad argument 'opts.alpn' to tls.client_config: element 1 must be a string of 1..255 bytes")
    assert.has_error(function() tls.client_config({ min_version = "1.1" }) end,
      "bad argument 'opts.min_version' to tls.client_config: \"1.2\" or \"1.3\" expected")
    assert.has_error(function()
      tls.server_config({ cert = dir .. "/srv.pem", key = dir .. "/srv.key", sni = { ["bad name"] = { cert = dir .. "/other.pem",
        key = dir .. "/other.key" } } })
    end, "bad argument 'opts.sni' to tls.server_config: invalid name \"bad name\"")
    assert.has_error(function() tls.client("conn", {}) end,
      "bad argument 'conn' to tls.client: conn expected, got string")
    assert.has_error(function() tls.server(42) end,
      "bad argument 'conn' to tls.server: conn expected, got number")
    local a = net.pipe()
    assert.has_error(function() tls.client(a, {}) end,
      "bad argument 'config' to tls.client: server_name is required unless insecure_skip_verify is set")
    assert.has_error(function() tls.client(a, server_cfg()) end,
      "bad argument 'config' to tls.client: client config expected")
    assert.has_error(function() tls.server(a, 5) end,
      "bad argument 'config' to tls.server: tls config or options table expected, got number")
    assert.has_error(function() tls.dial(nil, 42) end, "bad argument 'addr' to tls.dial: string expected, got number")
    assert.has_error(function() tls.dial("ctx", "x:1") end, "bad argument 'ctx' to tls.dial: context expected, got string")
    assert.has_error(function() tls.listen(8443, {}) end, "bad argument 'addr' to tls.listen: string expected, got number")
    local c = tls.client(a, { insecure_skip_verify = true })
    assert.has_error(function() c:read("x") end, "bad argument 'max' to conn:read: positive number or nil expected, got string")
    assert.has_error(function() c:write(42) end, "bad argument 'data' to conn:write: string or array of strings expected, got number")
    assert.has_error(function() c:write({ "a", 1 }) end, "bad argument 'data' to conn:write: element 2 is number, string expected")
    assert.has_error(function() c:set_deadline("soon") end, "bad argument 't' to conn:set_deadline: number or nil expected, got string")
    assert.has_error(function() c:unread(1) end, "bad argument 's' to conn:unread: string expected, got number")
    assert.has_error(function() c:handshake("ctx") end, "bad argument 'ctx' to conn:handshake: context expected, got string")
  end)
end)
