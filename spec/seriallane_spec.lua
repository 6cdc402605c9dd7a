local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local rungroup = require "lowbit.rungroup"
local seriallane = require "lowbit.seriallane"
local run = require("support").run

local bg = context.background()
local ns = seriallane.namespace

-- Starts fn(...) in a task and returns a channel that receives its results
-- (packed) when it ends.
local function spawn(fn, ...)
  local done = lowbit.chan(1)
  local args, nargs = { ... }, select("#", ...)
  lowbit.go(function()
    done:send((function(...) return { n = select("#", ...), ... } end)(fn(unpack(args, 1, nargs))))
  end)
  return done
end

-- Holds key's lane in a task until the returned release() is called.
local function hold(m, key)
  local gate, entered = lowbit.chan(0), lowbit.chan(1)
  local done = spawn(function()
    return m:run(bg, key, function() entered:send(true); gate:recv(); return "held" end)
  end)
  entered:recv()
  return function() gate:send(true); return done:recv() end
end

describe("lowbit.seriallane", function()
  it("runs one fn at a time per key, and passes fn's results through", function()
    local m = seriallane.new(60)
    local inside, max_inside, total = 0, 0, 0
    run(function()
      local wg = lowbit.waitgroup()
      for _ = 1, 20 do
        wg:add(1)
        lowbit.go(function()
          for _ = 1, 10 do
            local v = m:run(bg, "acct", function(ctx)
              assert.equal(bg, ctx)
              inside = inside + 1
              if inside > max_inside then max_inside = inside end
              lowbit.yield()
              if math.random() < 0.3 then lowbit.sleep(0.001) end
              total = total + 1
              inside = inside - 1
              return total
            end)
            assert.is_number(v)
          end
          wg:done()
        end)
      end
      wg:wait()
      local a, b, c, d = m:run(bg, "acct", function() return 1, nil, 3 end)
      assert.same({ 1, nil, 3, nil }, { a, b, c, d })
      assert.equal(3, select("#", m:run(bg, "acct", function() return 1, nil, 3 end)))
      local v, err = m:run(bg, "acct", function() return nil, "nope" end)
      assert.is_nil(v)
      assert.equal("nope", err)
      assert.equal(0, select("#", m:run(bg, "acct", function() end)))
    end)
    assert.equal(1, max_inside)
    assert.equal(200, total)
    assert.equal(1, m:count())
  end)

  it("serves waiters of one key in FIFO order", function()
    local m = seriallane.new(60)
    local order = {}
    run(function()
      local release = hold(m, "k")
      local dones = {}
      for i = 1, 10 do
        dones[i] = spawn(function()
          return m:run(bg, "k", function() order[#order + 1] = i; lowbit.yield() end)
        end)
        lowbit.yield() -- task i queues before task i+1 starts
      end
      assert.equal(10, m:waiting("k"))
      assert.is_true(m:busy("k"))
      assert.equal("held", release()[1])
      for i = 1, 10 do dones[i]:recv() end
      assert.equal(0, m:waiting("k"))
      assert.is_false(m:busy("k"))
    end)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, order)
  end)

  it("runs different keys in parallel", function()
    local m = seriallane.new(60)
    local inside, overlap = 0, false
    -- Virtual time: in parallel the two 0.05 s holds take exactly 0.05 s,
    -- one after the other they would take 0.10 s, whatever the machine load.
    lowbit.run_virtual(function()
      local t0 = lowbit.now()
      local a = spawn(function()
        return m:run(bg, ns("stock", 1), function()
          inside = inside + 1; lowbit.sleep(0.05); if inside == 2 then overlap = true end; inside = inside - 1
        end)
      end)
      local b = spawn(function()
        return m:run(bg, ns("stock", 2), function()
          inside = inside + 1; lowbit.sleep(0.05); if inside == 2 then overlap = true end; inside = inside - 1
        end)
      end)
      a:recv(); b:recv()
      local dt = lowbit.now() - t0
      assert.is_true(dt < 0.06, "took " .. dt)
    end)
    assert.is_true(overlap)
    assert.equal(2, m:count())
  end)

  it("a ctx cancelled while queued returns ctx:err() at once and leaves the FIFO", function()
    local m = seriallane.new(0)
    local ran = {}
    run(function()
      local release = hold(m, "k")
      local ctx, cancel = context.with_cancel(bg)
      local first = spawn(function()
        local t0 = lowbit.now()
        local v, err = m:run(ctx, "k", function() ran.cancelled = true end)
        return v, err, lowbit.now() - t0
      end)
      lowbit.yield()
      local second = spawn(function() return m:run(bg, "k", function() ran.second = true; return "2nd" end) end)
      lowbit.yield()
      assert.equal(2, m:waiting("k"))
      lowbit.go(function() lowbit.sleep(0.02); cancel() end)
      local r = first:recv()
      assert.is_nil(r[1])
      assert.equal(context.CANCELED, r[2])
      assert.is_true(r[3] < 0.2, "took " .. r[3])
      assert.equal(1, m:waiting("k"))
      assert.is_true(m:busy("k")) -- still the holder's
      release()
      assert.equal("2nd", second:recv()[1])
      -- a deadline works the same way
      local release2 = hold(m, "k")
      local tctx = context.with_timeout(bg, 0.02)
      local v, err = m:run(tctx, "k", function() ran.timed_out = true end)
      assert.is_nil(v)
      assert.equal(context.DEADLINE_EXCEEDED, err)
      assert.equal(0, m:waiting("k"))
      release2()
      -- no leak: the lane still works and is idle afterwards
      assert.equal("after", m:run(bg, "k", function() return "after" end))
      assert.is_false(m:busy("k"))
      assert.equal(0, m:waiting("k"))
      assert.equal(1, m:count())
      assert.equal(1, m:remove_idle())
      assert.equal(0, m:count())
    end)
    assert.is_nil(ran.cancelled)
    assert.is_nil(ran.timed_out)
    assert.is_true(ran.second)
  end)

  it("a waiter cancelled after the lane was handed to it passes the lane on", function()
    local m = seriallane.new(60)
    local ran = {}
    run(function()
      local actx, acancel = context.with_cancel(bg)
      local gate, entered = lowbit.chan(0), lowbit.chan(1)
      local holder = spawn(function()
        return m:run(bg, "k", function()
          entered:send(true)
          gate:recv()
          -- cancel A, then return: the release hands the lane to A, whose
          -- wake is already taken by the cancel
          acancel()
        end)
      end)
      entered:recv()
      local a = spawn(function() return m:run(actx, "k", function() ran.a = true end) end)
      lowbit.yield()
      local b = spawn(function() return m:run(bg, "k", function() ran.b = true; return "b" end) end)
      lowbit.yield()
      assert.equal(2, m:waiting("k"))
      gate:send(true)
      holder:recv()
      local ra = a:recv()
      assert.is_nil(ra[1])
      assert.equal(context.CANCELED, ra[2])
      assert.equal("b", b:recv()[1])
      assert.is_false(m:busy("k"))
      assert.equal(0, m:waiting("k"))
    end)
    assert.is_nil(ran.a)
    assert.is_true(ran.b)
  end)

  it("with ctx already cancelled, fn does not run and no lane is made", function()
    local m = seriallane.new(60)
    local ctx, cancel = context.with_cancel(bg)
    cancel()
    local called = false
    run(function()
      local v, err = m:run(ctx, "k", function() called = true end)
      assert.is_nil(v)
      assert.equal(context.CANCELED, err)
      v, err = m:run_multi(ctx, { "a", "b" }, function() called = true end)
      assert.is_nil(v)
      assert.equal(context.CANCELED, err)
    end)
    assert.is_false(called)
    assert.equal(0, m:count())
  end)

  it("releases the lane when fn raises, then re-raises the same value", function()
    local m = seriallane.new(60)
    local BOOM = errors.new("boom")
    run(function()
      local release = hold(m, "k")
      local waiter = spawn(function() return m:run(bg, "k", function() return "next" end) end)
      lowbit.yield()
      release()
      local ok, err = pcall(m.run, m, bg, "k", function() error(BOOM) end)
      assert.is_false(ok)
      assert.equal(BOOM, err) -- the value itself, not a string
      assert.equal("next", waiter:recv()[1])
      ok, err = pcall(m.run, m, bg, "k", function() lowbit.yield(); error("text raise") end)
      assert.is_false(ok)
      assert.matches("text raise", err)
      assert.is_false(m:busy("k"))
      ok, err = pcall(m.run_multi, m, bg, { "k", ns("x") }, function() error(BOOM) end)
      assert.equal(BOOM, err)
      assert.is_false(m:busy("k"))
      assert.is_false(m:busy(ns("x")))
      assert.equal("again", m:run(bg, "k", function() return "again" end))
    end)
  end)

  it("run_multi with overlapping sets in random orders never deadlocks", function()
    local m = seriallane.new(60)
    local pool = { "a", "b", "c", ns("stock", 1), ns("stock", 2), ns("stock", 1):sub("bin", 3), "d", ns("user", 1) }
    local inside = {}
    local bad, completed = false, 0
    math.randomseed(42)
    run(function()
      local ctx, cancel = context.with_timeout(bg, 10) -- a deadlock would end here, failing the runs
      local t0 = lowbit.now()
      local wg = lowbit.waitgroup()
      for _ = 1, 60 do
        wg:add(1)
        lowbit.go(function()
          for _ = 1, 15 do
            local keys = {}
            for _ = 1, math.random(1, 5) do keys[#keys + 1] = pool[math.random(#pool)] end
            local copy = { unpack(keys) }
            local ok, err = m:run_multi(ctx, keys, function()
              local seen = {}
              for _, k in ipairs(keys) do
                local id = tostring(k) .. "|" .. type(k)
                if not seen[id] then
                  seen[id] = true
                  if inside[id] then bad = true end
                  inside[id] = true
                end
              end
              lowbit.yield()
              if math.random() < 0.2 then lowbit.sleep(0) end
              for id in pairs(seen) do inside[id] = nil end
              return true
            end)
            assert(ok, tostring(err))
            for i = 1, #copy do assert(rawequal(copy[i], keys[i]), "caller's list changed") end
            assert(#copy == #keys, "caller's list changed")
            completed = completed + 1
          end
          wg:done()
        end)
      end
      wg:wait()
      cancel()
      assert.is_true(lowbit.now() - t0 < 10)
      for _, k in ipairs(pool) do
        assert.is_false(m:busy(k))
        assert.equal(0, m:waiting(k))
      end
    end)
    assert.is_false(bad)
    assert.equal(900, completed)
  end)

  it("run_multi releases what it holds when ctx ends while waiting for the rest", function()
    local m = seriallane.new(60)
    run(function()
      local release = hold(m, "b")
      local ctx = context.with_timeout(bg, 0.02)
      local keys = { "b", "a", "a" }
      local v, err = m:run_multi(ctx, keys, function() return "ran" end)
      assert.is_nil(v)
      assert.equal(context.DEADLINE_EXCEEDED, err)
      assert.same({ "b", "a", "a" }, keys)
      assert.is_false(m:busy("a")) -- taken first (canonical order), then given back
      assert.equal(0, m:waiting("b"))
      -- while "a" was held by the failed call, others could not take it;
      -- now they can, and "b" works once released
      assert.equal("a", m:run(bg, "a", function() return "a" end))
      release()
      assert.equal("both", m:run_multi(bg, { "a", "b" }, function() return "both" end))
      assert.equal("none", m:run_multi(bg, {}, function() return "none" end))
    end)
  end)

  it("keys of different namespaces and shapes never collide", function()
    local m = seriallane.new(60)
    local pairs_apart = {
      { ns("a:b", "c"), ns("a", "b:c") },
      { ns("order", 123), ns("user", 123) },
      { ns("ab"), ns("a", "b") },
      { ns("a", "1:b"), ns("a", 1, "b") },
      { ns("stock", 7), "stock:7" },
      { ns("stock"), "stock" },
      { ns("x", ""), ns("x") },
      { ns("n", 1.5), ns("n", 1) },
    }
    for _, p in ipairs(pairs_apart) do assert.are_not.equal(p[1], p[2]) end
    assert.equal(ns("stock", 7), ns("stock"):sub(7))
    assert.equal(ns("stock", 7), ns("stock", "7"))
    assert.equal(ns("s", 1, 2), ns("s"):sub(1):sub(2))
    assert.equal(ns("big", 2 ^ 40), ns("big", "1099511627776"))
    assert.equal(ns("i64", 5LL), ns("i64", 5))
    assert.equal("stock:7", tostring(ns("stock", 7)))
    assert.equal('"a:b":c', tostring(ns("a:b", "c")))
    assert.equal('a:"b:c"', tostring(ns("a", "b:c")))
    assert.equal('warehouse:3:bin:"A 1"', tostring(ns("warehouse", 3):sub("bin", "A 1")))
    local k = ns("s", 1)
    local child = k:sub("x")
    assert.same({ "s", "1" }, k:path())
    assert.same({ "s", "1", "x" }, child:path())
    assert.is_true(seriallane.is_key(k))
    assert.is_false(seriallane.is_key("s"))
    run(function()
      -- holding one side of each pair does not block the other
      for _, p in ipairs(pairs_apart) do
        local release = hold(m, p[1])
        local ctx = context.with_timeout(bg, 1)
        assert.equal("free", m:run(ctx, p[2], function() return "free" end))
        assert.is_false(m:busy(p[2]))
        release()
      end
      -- equal keys share one lane
      local release = hold(m, ns("stock"):sub(7))
      assert.is_true(m:busy(ns("stock", "7")))
      local v, err = m:run(context.with_timeout(bg, 0.01), ns("stock", 7), function() return "no" end)
      assert.is_nil(v)
      assert.equal(context.DEADLINE_EXCEEDED, err)
      release()
    end)
  end)

  it("cleanup is two-phase: idle lanes are removed, lanes busy or used since the mark are kept", function()
    local m = seriallane.new(0)
    run(function()
      for _, k in ipairs({ "a", "b", "c", "d" }) do m:run(bg, k, function() end) end
      assert.equal(4, m:count())
      local release = hold(m, "d")        -- busy: never marked
      assert.equal(3, m:mark_idle())
      m:run(bg, "a", function() end)       -- used since the mark
      local release_b = hold(m, "b")       -- busy now
      assert.equal(1, m:sweep_marked())    -- only c
      assert.equal(3, m:count())
      release_b()
      release()
      assert.equal(0, m:sweep_marked())    -- marks were cleared
      assert.equal(3, m:mark_idle())
      assert.equal(3, m:sweep_marked())
      assert.equal(0, m:count())
      -- a key works again after its lane was removed
      assert.equal("ok", m:run(bg, "c", function() return "ok" end))
      assert.equal(1, m:count())

      -- the idle threshold counts from the last release
      local m2 = seriallane.new(0.05)
      m2:run(bg, ns("k", 1), function() end)
      assert.equal(0, m2:mark_idle())
      assert.equal(0, m2:remove_idle())
      lowbit.sleep(0.06)
      assert.equal(1, m2:mark_idle())
      assert.equal(1, m2:sweep_marked())
      assert.equal(0, m2:count())
    end)
  end)

  it("cleanup_service removes idle lanes under a rungroup and keeps busy ones", function()
    local m = seriallane.new(0)
    run(function()
      for i = 1, 100 do m:run(bg, ns("k", i), function() end) end
      local release = hold(m, "busy")
      assert.equal(101, m:count())
      local g = rungroup.new()
      local svc = m:cleanup_service(0.01)
      assert.equal("seriallane cleanup", svc.name)
      g:add(svc)
      local ctx, cancel = context.with_cancel(bg)
      lowbit.go(function() lowbit.sleep(0.1); cancel() end)
      local err = g:run(ctx)
      assert.is_nil(err, tostring(err))
      assert.equal(1, m:count())
      assert.is_true(m:busy("busy"))
      release()
      -- run directly: returns ctx's error when ctx ends
      local ctx2 = context.with_timeout(bg, 0.05)
      local v, err2 = svc:run(ctx2)
      assert.is_nil(v)
      assert.equal(context.DEADLINE_EXCEEDED, err2)
      assert.equal(0, m:count())
    end)
  end)

  it("handles 1,000,000 keys: all made, then all cleaned up", function()
    local m = seriallane.new(0)
    local N = 1000000
    local t0 = os.clock()
    run(function()
      local function noop() end
      for i = 1, N do m:run(bg, "key:" .. i, noop) end
      assert.equal(N, m:count())
      -- lookups in the full table still work
      assert.equal(7, m:run(bg, "key:77", function() return 7 end))
      assert.is_false(m:busy("key:" .. N))
      assert.equal(N, m:mark_idle())
      assert.equal(N, m:sweep_marked())
      assert.equal(0, m:count())
    end)
    assert.is_true(os.clock() - t0 < 10, "took " .. (os.clock() - t0))
  end)

  it("compiles m:run into the caller's trace; no NYI trace aborts in run or run_multi", function()
    if not (jit and jit.status()) then return end
    local jutil, traceerr = require "jit.util", require("jit.vmdef").traceerr
    local m = seriallane.new(60)
    local key, keys = ns("stock", 42), { ns("stock", 2), "stock:1", ns("stock", 2) }
    local sum = 0
    local function work() sum = sum + 1 end
    local nyi, compiled, started, l1 = {}, {}, {}, nil
    local loop_src = debug.getinfo(1, "S").source
    local function on_trace(what, tr, func, pc, otr, oex)
      local info = jutil.funcinfo(func, pc)
      -- a trace's start event is at its first instruction (a loop's `for`)
      if what == "start" then started[tr] = info.source == loop_src and info.currentline or nil end
      if what == "stop" and started[tr] then compiled[started[tr]] = true end
      if what == "abort" then
        local msg = traceerr[otr] or tostring(otr)
        if msg:find("NYI", 1, true) and info.source and info.source:find("seriallane.lua", 1, true) then
          nyi[#nyi + 1] = ("%s:%s %s"):format(info.source, tostring(info.currentline), msg:format(oex))
        end
      end
    end
    run(function()
      jit.flush()
      jit.attach(on_trace, "trace")
      l1 = debug.getinfo(1, "l").currentline + 1
      for _ = 1, 20000 do m:run(bg, key, work) end
      for _ = 1, 20000 do m:run(bg, "stock:1", work) end
      for _ = 1, 50000 do m:run_multi(bg, keys, work) end
      jit.attach(on_trace)
    end)
    assert.same({}, nyi)
    assert.is_true(compiled[l1], "the loop over m:run(key object) was not compiled")
    assert.is_true(compiled[l1 + 1], "the loop over m:run(string) was not compiled")
    assert.equal(90000, sum)
  end)

  it("raises on bad arguments, naming them", function()
    local m = seriallane.new(1)
    local f = function() end
    local function raises(pat, fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      assert.matches(pat, err, 1, true)
    end
    raises("bad argument 'idle' to seriallane.new", seriallane.new)
    raises("bad argument 'idle' to seriallane.new", seriallane.new, -1)
    raises("bad argument 'idle' to seriallane.new", seriallane.new, 0 / 0)
    raises("bad argument 'idle' to seriallane.new", seriallane.new, "10")
    raises("bad argument 'name' to seriallane.namespace", seriallane.namespace)
    raises("bad argument 'name' to seriallane.namespace", seriallane.namespace, "")
    raises("bad argument 'name' to seriallane.namespace", seriallane.namespace, 5)
    raises("bad argument #3 to seriallane.namespace: string or number expected, got table", seriallane.namespace, "a", 1, {})
    raises("bad argument #2 to seriallane.namespace: finite number expected", seriallane.namespace, "a", 0 / 0)
    raises("bad argument #1 to key:sub: at least one part", ns("a").sub, ns("a"))
    raises("bad argument #2 to key:sub: string or number expected, got boolean", ns("a").sub, ns("a"), 1, true)
    raises("bad argument 'self' to key:sub", ns("a").sub, "a", 1)
    run(function()
      raises("bad argument 'ctx' to seriallane:run", m.run, m, nil, "k", f)
      raises("bad argument 'key' to seriallane:run", m.run, m, bg, 5, f)
      raises("bad argument 'key' to seriallane:run", m.run, m, bg, nil, f)
      raises("bad argument 'key' to seriallane:run", m.run, m, bg, {}, f)
      raises("bad argument 'fn' to seriallane:run", m.run, m, bg, "k", nil)
      raises("bad argument 'self' to seriallane:run", m.run, nil, bg, "k", f)
      raises("bad argument 'ctx' to seriallane:run_multi", m.run_multi, m, "x", { "k" }, f)
      raises("bad argument 'keys' to seriallane:run_multi", m.run_multi, m, bg, "k", f)
      raises("bad argument 'keys' to seriallane:run_multi", m.run_multi, m, bg, ns("k"), f)
      raises("bad argument 'keys' to seriallane:run_multi: element #2", m.run_multi, m, bg, { "a", 1 }, f)
      raises("bad argument 'fn' to seriallane:run_multi", m.run_multi, m, bg, { "a" }, 3)
      raises("bad argument 'key' to seriallane:waiting", m.waiting, m, 1)
      raises("bad argument 'key' to seriallane:busy", m.busy, m)
      raises("bad argument 'interval' to seriallane:cleanup_service", m.cleanup_service, m, 0)
      raises("bad argument 'interval' to seriallane:cleanup_service", m.cleanup_service, m, "1")
      raises("bad argument 'ctx' to cleanup_service:run", m:cleanup_service(1).run, nil, nil)
      raises("bad argument 'self' to seriallane:count", m.count, {})
      -- misuse checks happen before anything is locked
      assert.equal(0, m:count())
    end)
  end)
end)
