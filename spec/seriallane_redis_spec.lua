-- lowbit.seriallane.redis against real redis-servers started here
-- (loopback, --save '' --appendonly no, stopped by pid), with child lowbit
-- processes: scale.md list C, statement 5 (locks), one test per part.
local lowbit = require "lowbit"
local redis = require "lowbit.redis"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local seriallane = require "lowbit.seriallane"
local lanes = require "lowbit.seriallane.redis"
local support = require "support"
local procs = require "redis_procs"
local run = support.run

-- The protected resource: accepts a write only with a fence higher than
-- every fence it has seen (the check a lease needs to be safe).
local WRITE = [[
local last = tonumber(redis.call('GET', KEYS[1] .. ':fence') or '0')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('SET', KEYS[1] .. ':fence', ARGV[1])
redis.call('RPUSH', KEYS[1] .. ':log', ARGV[2])
return 1
]]

-- A process doing n increments of a shared counter under lane "K",
-- read-modify-write with a pause in between; it counts overlaps (another
-- holder inside at the same time) and fences that did not increase.
local COUNTER = [[
local lowbit = require "lowbit"
local context = require "lowbit.context"
local redis = require "lowbit.redis"
local lanes = require "lowbit.seriallane.redis"
local addr, n = arg[1], tonumber(arg[2])
local m = lanes.new{ redis = addr, ttl = 5, poll = 0.05 }
local c = assert(redis.connect(addr))
for _ = 1, n do
  assert(m:run(context.root(), "K", function(ctx, fence)
    if c:call("INCR", "inside") ~= 1 then c:call("INCR", "overlaps") end
    local last = tonumber(c:call("GET", "lastfence")) or 0
    if fence <= last then c:call("INCR", "badfence") end
    c:call("SET", "lastfence", fence)
    local v = tonumber(c:call("GET", "counter")) or 0
    lowbit.sleep(0.002)
    c:call("SET", "counter", v + 1)
    c:call("DECR", "inside")
    return true
  end))
end
io.write("done\n")
]]

-- A holder that gets paused (SIGSTOP) inside fn, then writes to the
-- resource with its (stale) fence once resumed.
local STALE = [[
local lowbit = require "lowbit"
local context = require "lowbit.context"
local redis = require "lowbit.redis"
local lanes = require "lowbit.seriallane.redis"
local addr, write = arg[1], arg[2]
local m = lanes.new{ redis = addr, ttl = 0.5, poll = 0.05 }
local c = assert(redis.connect(addr))
local a, b = m:run(context.root(), "R", function(ctx, fence)
  c:call("SET", "child_fence", fence)
  lowbit.sleep(1.5) -- SIGSTOPped here
  local ok = c:eval_script(write, { "res:{r}" }, { fence, "child" })
  io.write("write=", tostring(ok), "\n")
  return "ran"
end)
io.write("run=", tostring(a), " ", tostring(b), "\n")
]]

describe("seriallane.redis (scale.md C5)", function()
  local srv = support.use_redis()

  it("C5.1: two processes on the same key never overlap (shared counter); C5.4: fences strictly increase", function()
    local res = run(function()
      local a = procs.child(COUNTER, srv.addr, "25")
      local b = procs.child(COUNTER, srv.addr, "25")
      local ca, oa = a.wait(60)
      local cb, ob = b.wait(60)
      local c = assert(redis.connect(srv.addr))
      local r = {
        codes = { ca, cb }, outs = { oa, ob },
        counter = c:call("GET", "counter"), overlaps = c:call("GET", "overlaps"),
        badfence = c:call("GET", "badfence"), fence = c:call("GET", "lane:{sK}:fence"),
        lease = c:call("EXISTS", "lane:{sK}"),
      }
      c:close()
      return r
    end)
    assert.same({ 0, 0 }, res.codes)
    assert.same({ "done\n", "done\n" }, res.outs)
    assert.equal("50", res.counter)
    assert.equal(redis.null, res.overlaps)
    assert.equal(redis.null, res.badfence)
    assert.equal("50", res.fence)
    assert.equal(0, res.lease)
  end)

  it("C5.2: a paused holder whose lease expired releases nothing on resume, and the resource sees the higher fence", function()
    local res = run(function()
      local child = procs.child(STALE, srv.addr, WRITE)
      local c = assert(redis.connect(srv.addr))
      local child_fence
      for _ = 1, 500 do
        child_fence = c:call("GET", "child_fence")
        if child_fence ~= redis.null then break end
        lowbit.sleep(0.01)
      end
      child_fence = tonumber(child_fence)
      assert(child_fence, "the child never took the lane")
      os.execute("kill -STOP " .. child.pid)
      -- The lease expires (ttl 0.5 s, renewals frozen); this process takes the key.
      local m = lanes.new{ redis = srv.addr, ttl = 5, poll = 0.05 }
      local r = {}
      local ctx = context.with_timeout(context.background(), 10)
      r.run = { m:run(ctx, "R", function(_, fence)
        r.fence = fence
        r.wrote = c:eval_script(WRITE, { "res:{r}" }, { fence, "parent" })
        os.execute("kill -CONT " .. child.pid)
        r.code, r.out = child.wait(20)
        -- The stale holder's release deleted nothing: the lease is still ours.
        r.lease = c:call("GET", "lane:{sR}")
        return "parent"
      end) }
      r.child_fence = child_fence
      r.log = c:call("LRANGE", "res:{r}:log", 0, -1)
      r.res_fence = c:call("GET", "res:{r}:fence")
      r.after = c:call("EXISTS", "lane:{sR}")
      c:close()
      return r
    end)
    assert.equal("parent", res.run[1])
    assert.is_true(res.fence > res.child_fence)
    assert.equal(1, res.wrote)
    assert.equal(0, res.code)
    assert.truthy(res.out:find("write=0", 1, true), res.out)  -- the stale write was rejected
    assert.truthy(res.lease:match(":" .. res.fence .. "$"), res.lease)
    assert.same({ "parent" }, res.log)
    assert.equal(tostring(res.fence), res.res_fence)
    assert.equal(0, res.after)                               -- our own release worked
  end)

  it("C5.2: a foreign token's release deletes nothing (compare-and-delete)", function()
    local res = run(function()
      local c = assert(redis.connect(srv.addr))
      local m = lanes.new{ redis = srv.addr, ttl = 5 }
      local r = {}
      r.out = { m:run(context.background(), "X", function(_, fence)
        -- Someone else's lease replaces ours (as after an expiry).
        assert(c:call("SET", "lane:{sX}", "other:99", "PX", 5000))
        r.fence = fence
        return "x"
      end) }
      r.lease = c:call("GET", "lane:{sX}")
      c:close()
      return r
    end)
    assert.equal("other:99", res.lease)
    assert.equal(1, res.fence)
  end)

  it("C5.3: a failed renewal cancels fn's ctx and run returns LEASE_LOST", function()
    local res = run(function()
      local c = assert(redis.connect(srv.addr))
      local m = lanes.new{ redis = srv.addr, ttl = 0.3 }
      local r = {}
      local a, b = m:run(context.background(), "L", function(ctx)
        assert(c:call("DEL", "lane:{sL}")) -- the lease is gone (expired, or taken)
        local i = lowbit.select{ ctx:done(), lowbit.after(5) }
        r.cancelled = i == 1
        r.err = ctx:err()
        return "done"
      end)
      r.a, r.b = a, b
      c:close()
      return r
    end)
    assert.is_true(res.cancelled)
    assert.is_true(errors.is(res.err, context.CANCELED))
    assert.is_nil(res.a)
    assert.is_true(errors.is(res.b, lanes.LEASE_LOST))
  end)

  it("C5.1: run_multi takes every key or none, waits, and passes the fences in the order of keys", function()
    local res = run(function()
      local c = assert(redis.connect(srv.addr))
      local m1 = lanes.new{ redis = srv.addr, ttl = 5, poll = 0.05 }
      local m2 = lanes.new{ redis = srv.addr, ttl = 5, poll = 0.05 }
      local k = seriallane.namespace("stock", 7)
      local r = { order = {} }
      local held, go_on = lowbit.chan(1), lowbit.chan(1)
      lowbit.go(function()
        m1:run(context.background(), "b", function() held:send(true); go_on:recv(); r.order[#r.order + 1] = "b-holder" end)
      end)
      held:recv()
      local done = lowbit.chan(1)
      lowbit.go(function()
        done:send({ m2:run_multi(context.background(), { "b", k, "a", "b" }, function(_, fences)
          r.order[#r.order + 1] = "multi"
          r.fences = fences
          return "both"
        end) })
      end)
      lowbit.sleep(0.1)
      -- While b is held, nothing of the set is taken.
      r.a_taken = c:call("EXISTS", "lane:{sa}")
      r.k_taken = c:call("EXISTS", lanes._base(m2, k))
      -- A ctx that ends while waiting returns its error.
      local ctx = context.with_timeout(context.background(), 0.1)
      r.timeout = { m2:run_multi(ctx, { "a", "b" }, function() return "never" end) }
      go_on:send(true)
      r.result = done:recv()
      c:close()
      return r
    end)
    assert.equal(0, res.a_taken)
    assert.equal(0, res.k_taken)
    assert.is_nil(res.timeout[1])
    assert.is_true(errors.is(res.timeout[2], context.DEADLINE_EXCEEDED))
    assert.same({ "both" }, res.result)
    assert.same({ "b-holder", "multi" }, res.order)
    -- b was taken twice before (holder: 1, multi: 2); a and k once.
    assert.same({ 2, 1, 1, 2 }, res.fences)
  end)

  it("rejects misuse", function()
    assert.has_error(function() lanes.new{ nope = 1 } end)
    assert.has_error(function() lanes.new{ ttl = 0 } end)
    assert.has_error(function() lanes.new{ tag = "{x}" } end)
    local m = lanes.new{}
    assert.has_error(function() m:run(nil, "k", function() end) end)
    assert.has_error(function() m:run(context.background(), 5, function() end) end)
    assert.has_error(function() m:run_multi(context.background(), "k", function() end) end)
    assert.has_error(function() m.run(nil, context.background(), "k", function() end) end)
  end)
end)
