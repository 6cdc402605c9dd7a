-- lowbit.redis against real redis-servers started here (Debian's 7.0, on
-- free loopback ports with --save '' --appendonly no, stopped by pid): the
-- same client spec runs over TCP, TLS and a net.pipe() fake server; then
-- what only a real server (or only a fake one) can show: pub/sub, scripts
-- with the NOSCRIPT fallback, RESP3, AUTH/SELECT, pooling, a server killed
-- mid-pipeline, replies that break RESP.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local redis = require "lowbit.redis"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local support = require "support"
local run = support.run

local srv, tls_srv, pki

setup(function()
  srv = assert(support.start_redis())
  pki = support.make_pki()
  tls_srv = assert(support.start_redis{ tls = pki })
end)

teardown(function()
  run(function() redis.close_idle(); lowbit.sleep(0.01) end)
  if srv then srv.stop() end
  if tls_srv then tls_srv.stop() end
  if pki then os.execute("rm -rf '" .. pki .. "'") end
end)

local redis_cases = require "redis_cases"
local counting = redis_cases.counting

-- One command of the RESP request stream at the front of s: argv, rest.
local function parse_command(s)
  local n, p = s:match("^%*(%d+)\r\n()")
  if not n then return nil end
  local argv = {}
  for i = 1, tonumber(n) do
    local len, q = s:match("^%$(%d+)\r\n()", p)
    if not len then return nil end
    len = tonumber(len)
    if #s < q + len + 1 then return nil end
    argv[i] = s:sub(q, q + len - 1)
    p = q + len + 2
  end
  return argv, s:sub(p)
end

local function bulk(v) return "$" .. #v .. "\r\n" .. v .. "\r\n" end

-- A fake Redis on the server end of a pipe: handler(argv) returns the raw
-- reply bytes (nil: no reply). It reads until the conn ends.
local function fake_server(conn, handler)
  lowbit.go(function()
    local buf = ""
    while true do
      local d = conn:read()
      if not d then conn:close(); return end
      buf = buf .. d
      while true do
        local argv, rest = parse_command(buf)
        if not argv then break end
        buf = rest
        local out, close = handler(argv)
        if out then conn:write(out) end
        if close then conn:close(); return end
      end
    end
  end)
end

-- The commands the shared spec uses, on a table.
local function fake_redis()
  local data = {}
  return function(argv)
    local cmd = argv[1]:upper()
    if cmd == "PING" then return "+PONG\r\n"
    elseif cmd == "QUIT" then return "+OK\r\n", true
    elseif cmd == "SET" then data[argv[2]] = argv[3]; return "+OK\r\n"
    elseif cmd == "GET" then
      local v = data[argv[2]]
      return v and bulk(v) or "$-1\r\n"
    elseif cmd == "DEL" then
      local had = data[argv[2]] ~= nil
      data[argv[2]] = nil
      return had and ":1\r\n" or ":0\r\n"
    elseif cmd == "INCR" then
      local v = (tonumber(data[argv[2]]) or 0) + 1
      data[argv[2]] = tostring(v)
      return ":" .. v .. "\r\n"
    elseif cmd == "RPUSH" then
      return ":" .. (#argv - 2) .. "\r\n"
    elseif cmd == "LRANGE" then
      return "*3\r\n$1\r\na\r\n$-1\r\n:7\r\n"
    elseif cmd == "BLPOP" then
      return nil -- blocks forever
    end
    return "-ERR unknown command '" .. argv[1] .. "'\r\n"
  end
end

local transports = {
  { name = "TCP", client = function(opts)
      local conn = counting(assert(net.dial(nil, srv.addr)))
      opts = opts or {}
      opts.conn = conn
      return assert(redis.connect(opts)), conn
    end },
  { name = "TLS", client = function(opts)
      local tls = require "lowbit.tls"
      local raw = assert(tls.dial(nil, tls_srv.addr, { ca_file = pki .. "/ca.pem" }))
      local conn = counting(raw)
      opts = opts or {}
      opts.conn = conn
      return assert(redis.connect(opts)), conn
    end },
  { name = "net.pipe() fake server", client = function(opts)
      local a, b = net.pipe()
      fake_server(b, fake_redis())
      local conn = counting(a)
      opts = opts or {}
      opts.conn = conn
      return assert(redis.connect(opts)), conn
    end },
}

for _, tr in ipairs(transports) do
  describe("lowbit.redis over " .. tr.name, function()
    -- The shared cases (spec/redis_cases.lua; nginx runs them too).
    for _, cs in ipairs(redis_cases.cases) do
      it(cs.name, function()
        run(function() cs.fn({ client = tr.client, assert = assert }) end)
      end)
    end
  end)
end

describe("lowbit.redis on a real server", function()
  it("connects by address over TCP and over TLS (opts.tls)", function()
    run(function()
      local c = assert(redis.connect(srv.addr))
      assert.equal("PONG", c:call("PING"))
      c:close()
      local t = assert(redis.connect{ addr = tls_srv.addr, tls = { ca_file = pki .. "/ca.pem" } })
      assert.equal("PONG", t:call("PING"))
      t:close()
      local bad, err = redis.connect{ addr = tls_srv.addr, tls = true }
      assert.is_nil(bad)
      assert.truthy(err)
    end)
  end)

  it("delivers pub/sub messages in subscriber mode and refuses other commands there", function()
    for _, addr in ipairs({ "tcp", "tls", "resp3" }) do
      run(function()
        local function conn()
          if addr == "tcp" then return assert(redis.connect(srv.addr)) end
          if addr == "resp3" then return assert(redis.connect{ addr = srv.addr, resp = 3 }) end
          return assert(redis.connect{ addr = tls_srv.addr, tls = { ca_file = pki .. "/ca.pem" } })
        end
        local sub, pub = conn(), conn()
        assert.is_true(sub:subscribe("news", "sport"))
        assert.is_true(sub:psubscribe("log.*"))
        assert.has_error(function() sub:call("GET", "x") end)
        assert.has_error(function() sub:pipeline(function() end) end)
        assert.equal(1, pub:call("PUBLISH", "news", "hello"))
        assert.equal(1, pub:call("PUBLISH", "log.err", "disk"))
        local m = assert(sub:read_message())
        assert.same({ kind = "message", channel = "news", payload = "hello" }, m)
        m = assert(sub:read_message())
        assert.same({ kind = "pmessage", pattern = "log.*", channel = "log.err", payload = "disk" }, m)
        -- PING answers in subscriber mode; a message published before it
        -- waits in the queue
        assert.equal(1, pub:call("PUBLISH", "sport", "goal"))
        assert.equal("PONG", sub:call("PING"))
        assert.equal("hi", sub:call("PING", "hi"))
        m = assert(sub:read_message())
        assert.same({ kind = "message", channel = "sport", payload = "goal" }, m)
        -- SUBSCRIBE through call works too
        assert.is_true(sub:call("SUBSCRIBE", "more"))
        assert.equal(1, pub:call("PUBLISH", "more", "x"))
        assert.equal("x", assert(sub:read_message()).payload)
        -- a bounded wait for a message that does not come
        local ctx = context.with_timeout(context.background(), 0.1)
        local none, err = sub:read_message(ctx)
        assert.is_nil(none)
        assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED))
        -- SUBSCRIBE through call enters subscriber mode too
        local sub3 = conn()
        assert.is_true(sub3:call("subscribe", "late"))
        assert.is_true(sub3.subscribed)
        assert.equal(1, pub:call("PUBLISH", "late", "y"))
        assert.equal("y", assert(sub3:read_message()).payload)
        sub3:close()
        -- unsubscribing from everything leaves subscriber mode
        local sub2 = conn()
        assert.is_true(sub2:subscribe("a"))
        assert.is_true(sub2:psubscribe("b*"))
        assert.is_true(sub2:unsubscribe())
        assert.is_true(sub2.subscribed)
        assert.is_true(sub2:punsubscribe())
        assert.is_false(sub2.subscribed)
        assert.equal("PONG", sub2:call("PING"))
        sub2:close(); pub:close()
      end)
    end
  end)

  it("runs scripts with EVALSHA and falls back to EVAL on NOSCRIPT", function()
    run(function()
      local c = assert(redis.connect(srv.addr))
      local script = "return {KEYS[1], ARGV[1], ARGV[2]}"
      local sha = redis.sha1_hex(script)
      assert.equal("OK", c:call("SCRIPT", "FLUSH"))
      assert.same({ 0 }, c:call("SCRIPT", "EXISTS", sha))
      assert.same({ "k", "a", "2" }, c:eval_script(script, { "k" }, { "a", 2 }))
      -- the fallback loaded it: the next call is an EVALSHA hit
      assert.same({ 1 }, c:call("SCRIPT", "EXISTS", sha))
      assert.same({ "x", "y", "z" }, c:eval_script(script, { "x" }, { "y", "z" }))
      -- a script error is a server error value
      local v, err = c:eval_script("return redis.call('INCR', KEYS[1])", { "l" })
      c:call("DEL", "l")
      c:call("RPUSH", "l", "1")
      v, err = c:eval_script("return redis.call('INCR', KEYS[1])", { "l" })
      assert.is_nil(v)
      assert.is_true(errors.is(err, redis.SERVER_ERROR))
      assert.matches("WRONGTYPE", tostring(err))
      c:close()
    end)
  end)

  it("speaks RESP3 after HELLO 3: maps, doubles, sets, null", function()
    run(function()
      local c = assert(redis.connect{ addr = srv.addr, resp = 3 })
      c:call("DEL", "h", "z", "s")
      c:call("HSET", "h", "f", "1", "g", "two")
      assert.same({ f = "1", g = "two" }, c:call("HGETALL", "h"))
      c:call("ZADD", "z", "1.5", "m")
      assert.equal(1.5, c:call("ZSCORE", "z", "m"))
      c:call("SADD", "s", "x")
      assert.same({ "x" }, c:call("SMEMBERS", "s"))
      assert.equal(redis.null, c:call("GET", "nothing"))
      assert.equal(3, c:call("HELLO").proto)
      c:close()
    end)
  end)

  it("queues RESP3 pushes that arrive between replies (client tracking) for read_message", function()
    run(function()
      local c = assert(redis.connect{ addr = srv.addr, resp = 3 })
      local other = assert(redis.connect(srv.addr))
      assert.equal("OK", c:call("CLIENT", "TRACKING", "ON"))
      other:call("SET", "tracked", "1")
      assert.equal("1", c:call("GET", "tracked"))
      other:call("SET", "tracked", "2")
      -- the invalidation push comes before this reply; the reply is PONG
      assert.equal("PONG", c:call("PING"))
      local m = assert(c:read_message())
      assert.equal("invalidate", m.kind)
      assert.same({ "tracked" }, m.data[2])
      c:close(); other:close()
    end)
  end)

  it("authenticates and selects a database from opts", function()
    run(function()
      local admin = assert(redis.connect(srv.addr))
      assert.equal("OK", admin:call("CONFIG", "SET", "requirepass", "s3cret"))
      local ok, perr = pcall(function()
        local anon = assert(redis.connect(srv.addr))
        local v, err = anon:call("GET", "x")
        assert.is_nil(v)
        assert.equal("NOAUTH", err.code)
        anon:close()
        local none, cerr = redis.connect{ addr = srv.addr, password = "wrong" }
        assert.is_nil(none)
        assert.is_true(errors.is(cerr, redis.SERVER_ERROR))
        local c = assert(redis.connect{ addr = srv.addr, password = "s3cret", db = 3 })
        local c3 = assert(redis.connect{ addr = srv.addr, password = "s3cret", db = 3, resp = 3 })
        c:call("SET", "in-db-3", "yes")
        assert.equal("yes", c3:call("GET", "in-db-3"))
        local c0 = assert(redis.connect{ addr = srv.addr, password = "s3cret" })
        assert.equal(redis.null, c0:call("GET", "in-db-3"))
        c:close(); c3:close(); c0:close()
      end)
      admin:call("CONFIG", "SET", "requirepass", "")
      admin:close()
      assert(ok, perr)
    end)
  end)

  it("never hands out a pooled connection the server closed while it was idle, over TCP and TLS", function()
    run(function()
      redis.close_idle()
      for _, opts in ipairs({ { addr = srv.addr }, { addr = tls_srv.addr, tls = { ca_file = pki .. "/ca.pem" } } }) do
        local c = assert(redis.connect(opts))
        local id = assert(c:call("CLIENT", "ID"))
        c:release()
        -- another pool (db 1) kills the idle one from the server's side
        local k = assert(redis.connect{ addr = opts.addr, tls = opts.tls, db = 1 })
        assert.equal(1, k:call("CLIENT", "KILL", "ID", id))
        k:close()
        lowbit.sleep(0.1) -- the FIN (or close_notify) reaches the idle conn
        local again = assert(redis.connect(opts))
        assert.not_equal(c, again)
        assert.equal("PONG", again:call("PING"))
        again:close()
      end
    end)
  end)

  it("pools released connections per address and options", function()
    run(function()
      redis.close_idle()
      local c = assert(redis.connect(srv.addr))
      c:call("CLIENT", "SETNAME", "pooled")
      c:release()
      assert.equal(1, redis.pool_idle(srv.addr))
      assert.has_error(function() c:call("PING") end)
      local again = assert(redis.connect(srv.addr))
      assert.equal(c, again)
      assert.equal("pooled", again:call("CLIENT", "GETNAME"))
      assert.equal(0, redis.pool_idle(srv.addr))
      -- other options: another connection
      local db1 = assert(redis.connect{ addr = srv.addr, db = 1 })
      assert.not_equal(again, db1)
      again:release(); db1:release()
      assert.equal(2, redis.pool_idle(srv.addr))
      -- TLS with the same options (a new table each time) shares a pool
      local tlsopts = function() return { addr = tls_srv.addr, tls = { ca_file = pki .. "/ca.pem" } } end
      local t1 = assert(redis.connect(tlsopts()))
      t1:release()
      assert.equal(t1, assert(redis.connect(tlsopts())))
      t1:close()
      -- a subscribed client is closed, not pooled
      local s = assert(redis.connect(srv.addr))
      s:subscribe("x")
      s:release()
      assert.equal(1, redis.pool_idle(srv.addr)) -- s was one of the two idle

      assert.is_true(s.closed)
      -- pool_size bounds the idle connections kept
      redis.close_idle()
      local cs = {}
      for i = 1, 3 do cs[i] = assert(redis.connect{ addr = srv.addr, pool_size = 2 }) end
      for i = 1, 3 do cs[i]:release() end
      assert.equal(2, redis.pool_idle(srv.addr))
      redis.close_idle()
      assert.equal(0, redis.pool_idle(srv.addr))
    end)
  end)

  it("returns a clear nil, err without hanging when Redis is killed mid-pipeline", function()
    local own = assert(support.start_redis())
    local ok, perr = pcall(run, function()
      local c = assert(redis.connect(own.addr))
      lowbit.go(function()
        lowbit.sleep(0.2)
        os.execute("kill -9 " .. own.pid)
      end)
      local res, err = c:pipeline(function(p)
        for i = 1, 100 do p:call("SET", "k" .. i, i) end
        p:call("BLPOP", "never", 0) -- Redis is killed while this blocks
        for i = 1, 100 do p:call("GET", "k" .. i) end
      end)
      assert.is_nil(res)
      assert.is_true(errors.is(err, errors.EOF) or errors.is(err, errors.UNEXPECTED_EOF)
        or tostring(err):find("ECONNRESET") ~= nil, tostring(err))
      assert.matches("^redis 127%.0%.0%.1:%d+", tostring(err))
      local v, e2 = c:call("PING")
      assert.is_nil(v)
      assert.is_true(errors.is(e2, errors.CLOSED))
      -- reconnecting is the caller's policy: it fails while Redis is down
      local none, cerr = redis.connect{ addr = own.addr, connect_timeout = 2 }
      assert.is_nil(none)
      assert.truthy(cerr)
    end)
    own.stop()
    assert(ok, perr)
  end)
end)

describe("lowbit.redis hot path", function()
  it("pipelines, calls and subscriber reads run compiled: no NYI, blacklisted or loop abort in redis.lua (STYLE rule 14)", function()
    if not (jit and jit.status()) then return end
    run(function()
      local c = assert(redis.connect(srv.addr))
      local cmds = {}
      for i = 1, 100 do cmds[i] = { "GET", "hot:" .. (i % 10) } end
      assert(c:call("SET", "hot:1", "x"))
      local sub = assert(redis.connect(srv.addr))
      assert(sub:subscribe("hot:ch"))
      -- A loop inside redis.lua on the usual path aborts the trace of the
      -- caller's loop ("inner loop in root trace", "leaving loop in root
      -- trace" at redis.lua:N): the whole call, or the building of every
      -- array reply, then runs in the interpreter.
      local bad = support.jit_aborts("redis.lua", function()
        for _ = 1, 300 do
          local res, n = c:pipeline(cmds)
          assert(n == 100 and res[1] == "x" and res[2] == redis.null)
        end
        for _ = 1, 3000 do assert(c:call("GET", "hot:1")) end
        -- A subscriber's read loop (messages are arrays built by the
        -- client) and MGET's array reply.
        for _ = 1, 10 do
          assert(c:pipeline(function(p) for i = 1, 100 do p:call("PUBLISH", "hot:ch", "m" .. i) end end))
          for i = 1, 100 do
            local m = assert(sub:read_message())
            assert(m.kind == "message" and m.payload == "m" .. i)
          end
        end
        for _ = 1, 1000 do assert(#c:call("MGET", "hot:1", "hot:2", "hot:3") == 3) end
      end, { reasons = { "NYI", "blacklisted", "inner loop", "leaving loop" } })
      sub:close()
      c:close()
      assert.same({}, bad)
    end)
  end)
end)

describe("examples/redis.lua", function()
  it("runs against a server, and says clearly when none is running", function()
    local out, rc = support.sh(("cd %s && timeout 20 %s examples/redis.lua %s 2>&1"):format(support.root, support.host, srv.addr))
    assert.equal(0, rc, out)
    assert.matches("GET example:greeting %->\thello", out)
    assert.matches("eval_script +%->\t%d+", out)
    assert.matches("message on example:news +%->\tlowbit speaks RESP", out)
    -- a port nobody listens on: the last server's, once stopped
    local gone = assert(support.start_redis())
    gone.stop()
    out, rc = support.sh(("cd %s && timeout 20 %s examples/redis.lua %s 2>&1"):format(support.root, support.host, gone.addr))
    assert.equal(1, rc, out)
    assert.matches("redis%-server is not running at " .. gone.addr:gsub("%.", "%%."), out)
  end)
end)

describe("lowbit.redis arguments", function()
  it("every public function and method names a bad argument (or accepts it)", function()
    run(function()
      local bad = {}
      local function probe(what, fn, self)
        for _, v in ipairs({ 12345, { "a table" }, true }) do
          local res = { pcall(function()
            if self then return fn(self, v, v, v) end
            return fn(v, v, v)
          end) }
          if not res[1] then
            local msg = tostring(res[2])
            if msg:find("attempt to ") or not msg:find("bad argument ") then
              bad[#bad + 1] = what .. ": " .. msg
            end
          end
        end
      end
      for k, f in pairs(redis) do
        if type(f) == "function" and k ~= "connect" then probe("redis." .. k, f) end
      end
      probe("redis.connect", redis.connect)
      for k, f in pairs(redis.Client) do
        if type(f) == "function" and not k:find("^_") and k ~= "close" and k ~= "release" then
          local a, b = net.pipe()
          fake_server(b, fake_redis())
          local c = assert(redis.connect{ conn = a })
          probe("client:" .. k, f, c)
          c:close()
        end
      end
      assert.same({}, bad)
    end)
  end)
end)

describe("lowbit.redis with a fake server", function()
  local function client_with(handler, opts)
    local a, b = net.pipe()
    fake_server(b, handler)
    opts = opts or {}
    opts.conn = a
    return assert(redis.connect(opts)), b
  end

  it("returns nil, err matching redis.PROTOCOL for a reply that breaks RESP, and closes", function()
    run(function()
      local replies = { "hello\r\n", ":12x\r\n", "$3\r\nabcd\r\n", "*1\r\n#q\r\n", "+OK\n" }
      for _, r in ipairs(replies) do
        local c = client_with(function() return r end)
        local v, err = c:call("PING")
        assert.is_nil(v)
        assert.is_true(errors.is(err, redis.PROTOCOL), r)
        assert.matches("protocol", tostring(err))
        assert.is_true(c.closed)
        local v2, err2 = c:call("PING")
        assert.is_nil(v2)
        assert.is_true(errors.is(err2, errors.CLOSED))
      end
    end)
  end)

  it("enforces the parser limits from opts (bulk length, depth, count)", function()
    run(function()
      local c = client_with(function() return "$100\r\n" end, { max_bulk = 10 })
      local v, err = c:call("GET", "x")
      assert.is_nil(v)
      assert.is_true(errors.is(err, redis.PROTOCOL))
      assert.matches("too large", tostring(err))
      c = client_with(function() return ("*1\r\n"):rep(5) .. ":1\r\n" end, { max_depth = 4 })
      v, err = c:call("X")
      assert.is_nil(v)
      assert.matches("nesting", tostring(err))
      c = client_with(function() return "*5\r\n" end, { max_count = 4 })
      v, err = c:call("X")
      assert.is_nil(v)
      assert.matches("too many", tostring(err))
    end)
  end)

  it("returns nil, err for a reply cut by the server closing", function()
    run(function()
      local c, b = client_with(function() return nil end)
      lowbit.go(function() lowbit.sleep(0.05); b:write("$10\r\nabc"); b:close() end)
      local v, err = c:call("GET", "x")
      assert.is_nil(v)
      assert.is_true(errors.is(err, errors.UNEXPECTED_EOF))
    end)
  end)

  it("builds every RESP3 type and skips attributes; pushes go to read_message", function()
    run(function()
      local reply = "*9\r\n#t\r\n,-inf\r\n(123456789012345678901234567890\r\n=8\r\ntxt:abcd\r\n" ..
        "~2\r\n:1\r\n:2\r\n%1\r\n+k\r\n_\r\n|1\r\n+ttl\r\n:5\r\n+after-attr\r\n!5\r\nERR x\r\n,nan\r\n"
      local c = client_with(function(argv)
        if argv[1] == "A" then return ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n" .. reply end
      end)
      local v = assert(c:call("A"))
      assert.equal(9, #v)
      assert.equal(true, v[1])
      assert.equal(-math.huge, v[2])
      assert.equal("123456789012345678901234567890", v[3])
      assert.equal("abcd", v[4])
      assert.same({ 1, 2 }, v[5])
      assert.equal(redis.null, v[6].k)
      assert.equal("after-attr", v[7])
      assert.is_true(redis.is_server_error(v[8]))
      assert.equal("ERR x", tostring(v[8]))
      assert.is_true(v[9] ~= v[9])
      local m = assert(c:read_message())
      assert.same({ kind = "message", channel = "ch", payload = "hi" }, m)
      c:close()
    end)
  end)

  it("grows its node array for replies with many elements", function()
    run(function()
      local parts = { "*5000\r\n" }
      for i = 1, 5000 do parts[#parts + 1] = ":" .. i .. "\r\n" end
      local c = client_with(function() return table.concat(parts) end)
      local v = assert(c:call("BIG"))
      assert.equal(5000, #v)
      assert.equal(4321, v[4321])
      c:close()
    end)
  end)
end)
