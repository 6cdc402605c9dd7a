-- lowbit.redis cases that hold on any conn (conformance/scale.md C2: the
-- same spec over luv TCP, TLS, a net.pipe() fake server and nginx
-- cosockets). spec/redis_spec.lua runs them on the first three,
-- spec/ngx_clients_spec.lua inside nginx (spec/ngx/probe.lua). No busted
-- here: each case is fn(T) run inside a lowbit task, T.client(opts) makes
-- a client (and the counting conn under it), T.assert is luassert.
local lowbit = require "lowbit"
local redis = require "lowbit.redis"
local errors = require "lowbit.errors"
local context = require "lowbit.context"

local M = {}

--- A conn that forwards the generic conn interface and counts writes.
function M.counting(conn)
  local w = { writes = 0 }
  function w:read(n) return conn:read(n) end
  function w:write(d) self.writes = self.writes + 1; return conn:write(d) end
  function w:close() return conn:close() end
  function w:set_deadline(t) return conn:set_deadline(t) end
  function w:set_read_deadline(t) return conn:set_read_deadline(t) end
  function w:set_write_deadline(t) return conn:set_write_deadline(t) end
  return w
end

local cases = {}
M.cases = cases
local function case(name, fn) cases[#cases + 1] = { name = name, fn = fn } end

case("sets and gets binary-safe values; a missing key is redis.null", function(T)
  local assert = T.assert
  local c = T.client()
  local v = "a\r\nb\0c$*"
  assert.equal("OK", c:call("SET", "bin", v))
  assert.equal(v, c:call("GET", "bin"))
  assert.equal(redis.null, c:call("GET", "no-such-key"))
  assert.equal(1, c:call("DEL", "bin"))
  assert.equal("PONG", c:call("PING"))
  c:close()
end)

case("sends numbers as decimal text and returns integers as numbers", function(T)
  local assert = T.assert
  local c = T.client()
  c:call("DEL", "n")
  assert.equal(1, c:call("INCR", "n"))
  assert.equal("OK", c:call("SET", "f", 12345))
  assert.equal("12345", c:call("GET", "f"))
  assert.equal("OK", c:call("SET", "f", 0.5))
  assert.equal("0.5", c:call("GET", "f"))
  c:close()
end)

case("returns a server error as nil, err matching redis.SERVER_ERROR; the client stays usable", function(T)
  local assert = T.assert
  local c = T.client()
  local v, err = c:call("NOSUCHCOMMAND", "x")
  assert.is_nil(v)
  assert.is_true(errors.is(err, redis.SERVER_ERROR))
  assert.is_true(redis.is_server_error(err))
  assert.equal("ERR", err.code)
  assert.matches("^ERR unknown command", tostring(err))
  assert.equal("PONG", c:call("PING"))
  c:close()
end)

case("sends a 1,000-command pipeline in one write and gets 1,000 replies in order", function(T)
  local assert = T.assert
  local c, conn = T.client()
  conn.writes = 0
  local res, n = c:pipeline(function(p)
    for i = 1, 1000 do p:call("SET", "k" .. i, i * 3) end
  end)
  assert.equal(1000, n)
  assert.equal(1, conn.writes)
  for i = 1, 1000 do assert.equal("OK", res[i]) end
  conn.writes = 0
  res, n = c:pipeline(function(p)
    for i = 1, 1000 do p:call("GET", "k" .. i) end
  end)
  assert.equal(1, conn.writes)
  assert.equal(1000, n)
  for i = 1, 1000 do assert.equal(tostring(i * 3), res[i]) end
  c:close()
end)

case("keeps server errors and nulls in place in pipeline results and arrays", function(T)
  local assert = T.assert
  local c = T.client()
  c:call("DEL", "l")
  local res, n = c:pipeline({ { "SET", "a", "1" }, { "BADCMD" }, { "GET", "missing" }, { "GET", "a" } })
  assert.equal(4, n)
  assert.equal("OK", res[1])
  assert.is_true(redis.is_server_error(res[2]))
  assert.equal(redis.null, res[3])
  assert.equal("1", res[4])
  c:close()
end)

case("a server that closes the connection mid-pipeline (QUIT) gives a clear nil, err; the client is closed", function(T)
  local assert = T.assert
  local c = T.client()
  local res, err = c:pipeline(function(p)
    for i = 1, 10 do p:call("SET", "q" .. i, i) end
    p:call("QUIT") -- the server answers +OK and closes: 10 GETs get no reply
    for i = 1, 10 do p:call("GET", "q" .. i) end
  end)
  assert.is_nil(res)
  assert.is_true(errors.is(err, errors.EOF) or errors.is(err, errors.UNEXPECTED_EOF), tostring(err))
  assert.matches("^redis ", tostring(err))
  local v, e2 = c:call("PING")
  assert.is_nil(v)
  assert.is_true(errors.is(e2, errors.CLOSED), tostring(e2))
end)

case("bounds a call by ctx: a deadline or a cancel ends a blocked call and closes the client", function(T)
  local assert = T.assert
  local c = T.client()
  local ctx = context.with_timeout(context.background(), 0.2)
  local v, err = c:call_ctx(ctx, "BLPOP", "never-pushed", 0)
  assert.is_nil(v)
  assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED))
  local v2, err2 = c:call("PING")
  assert.is_nil(v2)
  assert.is_true(errors.is(err2, errors.CLOSED))
  local c2 = T.client()
  local cctx, cancel = context.with_cancel(context.background())
  lowbit.go(function() lowbit.sleep(0.1); cancel() end)
  v, err = c2:call_ctx(cctx, "BLPOP", "never-pushed", 0)
  assert.is_nil(v)
  assert.is_true(errors.is(err, context.CANCELED))
end)

case("applies each ctx to the calls made with it: a new ctx brings its own deadline, a reused one its cancel", function(T)
  local assert = T.assert
  local c = T.client()
  local ctx1 = context.with_timeout(context.background(), 30)
  assert.equal("PONG", c:call_ctx(ctx1, "PING"))
  assert.equal("PONG", c:call_ctx(ctx1, "PING"))
  local ctx2 = context.with_timeout(context.background(), 0.2)
  local v, err = c:call_ctx(ctx2, "BLPOP", "never-pushed", 0)
  assert.is_nil(v)
  assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED), tostring(err))
  -- cancelled between two calls: the client stays usable without it
  local c2 = T.client()
  local cctx, cancel = context.with_cancel(context.background())
  assert.equal("PONG", c2:call_ctx(cctx, "PING"))
  cancel()
  assert.equal("PONG", c2:call("PING"))
  c2:close()
  -- the same ctx again, cancelled during the call
  local c3 = T.client()
  local cctx3, cancel3 = context.with_cancel(context.background())
  assert.equal("PONG", c3:call_ctx(cctx3, "PING"))
  lowbit.go(function() lowbit.sleep(0.1); cancel3() end)
  v, err = c3:call_ctx(cctx3, "BLPOP", "never-pushed", 0)
  assert.is_nil(v)
  assert.is_true(errors.is(err, context.CANCELED), tostring(err))
end)

case("raises when used after close, or by a second task during a call", function(T)
  local assert = T.assert
  local c = T.client()
  local started = lowbit.chan(1)
  local done = lowbit.chan(1)
  lowbit.go(function()
    started:send(true)
    done:send({ c:call_ctx(context.with_timeout(context.background(), 0.3), "BLPOP", "never-pushed", 0) })
  end)
  started:recv()
  lowbit.sleep(0.05)
  assert.has_error(function() c:call("PING") end, "client:call: client is in use by another task (use one client per task, or a pool)")
  local r = done:recv()
  assert.is_nil(r[1])
  local c2 = T.client()
  c2:close()
  assert.has_error(function() c2:call("PING") end, "client:call: client is closed")
end)

case("bounds each call by opts.timeout", function(T)
  local assert = T.assert
  local c = T.client{ timeout = 0.2 }
  assert.equal("PONG", c:call("PING"))
  local v, err = c:call("BLPOP", "never-pushed", 0)
  assert.is_nil(v)
  assert.is_true(errors.is(err, errors.TIMEOUT), tostring(err))
  assert.is_true(c.closed)
end)

case("raises on wrong argument types", function(T)
  local assert = T.assert
  local c = T.client()
  assert.has_error(function() c:call("SET", "k", {}) end)
  assert.has_error(function() c:call() end)
  assert.has_error(function() c:call_ctx("not a ctx", "PING") end)
  assert.has_error(function() c:pipeline(42) end)
  assert.has_error(function() c:eval_script(1) end)
  assert.equal("PONG", c:call("PING"))
  c:close()
end)

return M
