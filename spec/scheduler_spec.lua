local lowbit = require "lowbit"
local run = require("support").run

describe("lowbit tasks", function()
  it("run returns the main task's results", function()
    local a, b, c = run(function(x) return x, nil, "z" end, 1)
    assert.equal(1, a); assert.is_nil(b); assert.equal("z", c)
  end)

  it("run raises the main task's error with its traceback", function()
    local ok, err = pcall(run, function() error("boom") end)
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.matches("stack traceback", err)
  end)

  it("keeps running until every task ends", function()
    local done = {}
    run(function()
      for i = 1, 3 do lowbit.go(function() lowbit.sleep(0.01 * i); done[#done + 1] = i end) end
    end)
    assert.same({ 1, 2, 3 }, done)
  end)

  it("passes arguments to go", function()
    local got
    run(function() lowbit.go(function(a, b) got = a + b end, 2, 3) end)
    assert.equal(5, got)
  end)

  it("a task that raises does not stop the others; on_error gets a traceback", function()
    local saved = lowbit.on_error
    local seen
    lowbit.on_error = function(err, tb) seen = { err = err, tb = tb } end
    local after = false
    run(function()
      lowbit.go(function() error("task failed") end)
      lowbit.sleep(0.01)
      after = true
    end)
    lowbit.on_error = saved
    assert.is_true(after)
    assert.matches("task failed", seen.err)
    assert.matches("stack traceback", seen.tb)
    assert.matches("task started at", seen.tb)
  end)

  it("_go_at starts a task whose failure names the site given (no debug.getinfo per task)", function()
    local saved = lowbit.on_error
    local seen, site = {}, nil
    lowbit.on_error = function(err, tb) seen[#seen + 1] = tb end
    run(function()
      site = debug.getinfo(1, "Sl")
      for i = 1, 2 do lowbit._go_at(site, function(n) error("failed " .. n) end, i) end
      lowbit._go_at(nil, function() error("no site") end)
      lowbit.sleep(0.01)
      assert.has_error(function() lowbit._go_at(site, 42) end, "bad argument 'fn' to lowbit.go: function expected, got number")
    end)
    lowbit.on_error = saved
    assert.equal(3, #seen)
    local here = "(task started at " .. site.short_src .. ":" .. site.currentline .. ")"
    for i = 1, 2 do
      assert.matches("failed " .. i, seen[i], 1, true)
      assert.matches(here, seen[i], 1, true) -- then the main task's own line
    end
    assert.matches("no site", seen[3], 1, true)
    assert.not_matches(here, seen[3], 1, true)
  end)

  it("detects a deadlock instead of hanging", function()
    local ok, err = pcall(run, function() lowbit.chan(0):recv() end)
    assert.is_false(ok)
    assert.matches("deadlock", err)
  end)

  it("refuses blocking calls outside tasks and nested run", function()
    assert.has_error(function() lowbit.sleep(0.01) end)
    assert.has_error(function() lowbit.chan(0):recv() end)
    run(function()
      assert.has_error(function() lowbit.run(function() end) end)
      -- a blocking call inside a plain coroutine is misuse, not a hang
      local co = coroutine.create(function() lowbit.sleep(0) end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("must be called from a lowbit task", err)
    end)
  end)

  it("rejects bad arguments with the argument named", function()
    assert.has_error(function() lowbit.go(42) end, "bad argument 'fn' to lowbit.go: function expected, got number")
    run(function()
      assert.has_error(function() lowbit.sleep("1") end, "bad argument 'seconds' to lowbit.sleep: number expected, got string")
    end)
    assert.has_error(function() lowbit.chan(-1) end)
    assert.has_error(function() lowbit.chan(1.5) end)
  end)

  it("sleep waits about as long as asked and now is monotonic", function()
    run(function()
      local t0 = lowbit.now()
      lowbit.sleep(0.03)
      local dt = lowbit.now() - t0
      assert.is_true(dt >= 0.029, "slept " .. dt)
    end)
  end)

  it("timers are released: none remain after a run", function()
    run(function()
      for _ = 1, 100 do lowbit.go(function() lowbit.sleep(0.001) end) end
    end)
    assert.equal(0, lowbit._timer_count())
  end)

  it("a cancelled earliest timer leaves the later ones to fire, and none left means no wait", function()
    run(function()
      local fired = {}
      local e1 = lowbit._timer_add(lowbit.now() + 0.02, function() fired[#fired + 1] = 1 end)
      lowbit._timer_add(lowbit.now() + 0.06, function() fired[#fired + 1] = 2 end)
      local e3 = lowbit._timer_add(lowbit.now() + 0.04, function() fired[#fired + 1] = 3 end)
      lowbit._timer_cancel(e1) -- (the libuv timer stays armed for it: it fires early once)
      lowbit._timer_cancel(e3)
      lowbit.sleep(0.1)
      assert.same({ 2 }, fired)
    end)
    assert.equal(0, lowbit._timer_count())
    -- The only timer cancelled, then a deadlock: found at once, not when
    -- the cancelled timer was due (an armed timer keeps the loop alive).
    local ok, err = pcall(run, function()
      local e = lowbit._timer_add(lowbit.now() + 600, function() end)
      lowbit._timer_cancel(e)
      lowbit.chan(0):recv()
    end)
    assert.is_false(ok)
    assert.matches("deadlock", err)
  end)

  it("yield lets other tasks run without starving the loop", function()
    local order = {}
    run(function()
      lowbit.go(function() order[#order + 1] = "b" end)
      lowbit.yield()
      order[#order + 1] = "a"
    end)
    assert.same({ "b", "a" }, order)
  end)
end)

describe("lowbit.chan", function()
  it("unbuffered send waits for a receiver", function()
    local log = {}
    run(function()
      local ch = lowbit.chan(0)
      lowbit.go(function() log[#log + 1] = "send"; ch:send(1); log[#log + 1] = "sent" end)
      lowbit.sleep(0.01)
      log[#log + 1] = "recv"
      assert.same({ 1, true }, { ch:recv() })
      lowbit.sleep(0)
    end)
    assert.same({ "send", "recv", "sent" }, log)
  end)

  it("buffered channels keep FIFO order and block when full", function()
    run(function()
      local ch = lowbit.chan(2)
      assert.is_true(ch:try_send(1))
      assert.is_true(ch:try_send(2))
      assert.is_false(ch:try_send(3))
      assert.equal(2, ch:len())
      lowbit.go(function() ch:send(3) end)
      assert.same({ 1, true }, { ch:recv() })
      assert.same({ 2, true }, { ch:recv() })
      assert.same({ 3, true }, { ch:recv() })
    end)
  end)

  it("recv on a closed drained channel returns nil, false; buffered values drain first", function()
    run(function()
      local ch = lowbit.chan(2)
      ch:send("a")
      ch:close()
      assert.same({ "a", true }, { ch:recv() })
      assert.same({ nil, false }, { ch:recv() })
      assert.same({ nil, false }, { ch:try_recv() })
    end)
  end)

  it("close wakes every waiting receiver", function()
    local woke = 0
    run(function()
      local ch = lowbit.chan(0)
      for _ = 1, 3 do lowbit.go(function() local v, ok = ch:recv(); if v == nil and ok == false then woke = woke + 1 end end) end
      lowbit.sleep(0.005)
      ch:close()
    end)
    assert.equal(3, woke)
  end)

  it("send on a closed channel raises, also for a waiting sender", function()
    run(function()
      local ch = lowbit.chan(0)
      local ok, err
      lowbit.go(function() ok, err = pcall(ch.send, ch, 1) end)
      lowbit.sleep(0.005)
      ch:close()
      lowbit.sleep(0.005)
      assert.is_false(ok)
      assert.matches("send on closed channel", err)
      assert.has_error(function() ch:send(2) end)
      assert.has_error(function() ch:close() end)
    end)
  end)

  it("try_recv on an empty open channel says nothing is there (nil, nil)", function()
    run(function()
      local ch = lowbit.chan(1)
      local v, ok = ch:try_recv()
      assert.is_nil(v); assert.is_nil(ok)
    end)
  end)

  it("nil and false are values like any other", function()
    run(function()
      local ch = lowbit.chan(2)
      ch:send(nil); ch:send(false)
      assert.same({ nil, true }, { ch:recv() })
      assert.same({ false, true }, { ch:recv() })
    end)
  end)
end)

describe("lowbit.select", function()
  it("takes the ready case", function()
    run(function()
      local a, b = lowbit.chan(1), lowbit.chan(1)
      b:send("x")
      local i, v, ok = lowbit.select{ a, b }
      assert.equal(2, i); assert.equal("x", v); assert.is_true(ok)
    end)
  end)

  it("waits for the first case and withdraws from the others", function()
    run(function()
      local a, b = lowbit.chan(0), lowbit.chan(0)
      lowbit.go(function() lowbit.sleep(0.01); b:send("late") end)
      local i, v = lowbit.select{ a, { recv = b } }
      assert.equal(2, i); assert.equal("late", v)
      assert.equal(0, a.recvq.n)
    end)
  end)

  it("does sends", function()
    run(function()
      local a = lowbit.chan(0)
      local got
      lowbit.go(function() got = a:recv() end)
      local i = lowbit.select{ { send = a, value = 7 } }
      assert.equal(1, i)
      lowbit.sleep(0)
      assert.equal(7, got)
    end)
  end)

  it("default never waits", function()
    run(function()
      assert.is_nil(lowbit.select{ lowbit.chan(0), default = true })
    end)
  end)

  it("sees closed channels and ctx:done()", function()
    local context = require "lowbit.context"
    run(function()
      local ctx = context.with_timeout(context.background(), 0.01)
      local i, v, ok = lowbit.select{ lowbit.chan(0), ctx:done() }
      assert.equal(2, i); assert.is_nil(v); assert.is_false(ok)
    end)
  end)

  it("after fires once", function()
    run(function()
      local i = lowbit.select{ lowbit.chan(0), lowbit.after(0.005) }
      assert.equal(2, i)
    end)
  end)

  it("repeated selects on a long-lived channel leave no waiters behind", function()
    run(function()
      local quiet, tick = lowbit.chan(0), lowbit.chan(1)
      for k = 1, 1000 do
        lowbit.go(function() tick:send(k) end)
        lowbit.select{ quiet, tick }
      end
      assert.equal(0, quiet.recvq.n)
      assert.equal(0, quiet.recvq.last)
    end)
  end)

  it("rejects bad cases", function()
    run(function()
      assert.has_error(function() lowbit.select{ 42 } end)
      assert.has_error(function() lowbit.select("x") end)
    end)
  end)
end)

describe("waitgroup and mutex", function()
  it("waitgroup waits for all", function()
    local n = 0
    run(function()
      local wg = lowbit.waitgroup()
      for i = 1, 5 do
        wg:add(1)
        lowbit.go(function() lowbit.sleep(0.001 * i); n = n + 1; wg:done() end)
      end
      wg:wait()
      assert.equal(5, n)
      assert.has_error(function() wg:done() end, "waitgroup: negative counter")
    end)
  end)

  it("mutex is exclusive and FIFO", function()
    local order, inside, max_inside = {}, 0, 0
    run(function()
      local m = lowbit.mutex()
      for i = 1, 5 do
        lowbit.go(function()
          m:lock()
          inside = inside + 1; max_inside = math.max(max_inside, inside)
          lowbit.sleep(0.001)
          order[#order + 1] = i
          inside = inside - 1
          m:unlock()
        end)
      end
    end)
    assert.same({ 1, 2, 3, 4, 5 }, order)
    assert.equal(1, max_inside)
  end)

  it("an uncontended mutex makes no wait queue; a contended one does and stays FIFO", function()
    run(function()
      local m = lowbit.mutex()
      for _ = 1, 3 do
        assert.is_true(m:try_lock())
        assert.is_false(m:try_lock())
        m:unlock()
        m:lock()
        m:unlock()
      end
      assert.is_false(m.waiters) -- (two tables less per mutex never waited on)
      local order = {}
      m:lock()
      for i = 1, 3 do lowbit.go(function() m:lock(); order[#order + 1] = i; m:unlock() end) end
      lowbit.sleep(0.001)
      assert.is_table(m.waiters)
      m:unlock()
      lowbit.sleep(0.001)
      assert.same({ 1, 2, 3 }, order)
      assert.is_true(m:try_lock())
    end)
  end)

  it("unlock of an unlocked mutex raises", function()
    assert.has_error(function() lowbit.mutex():unlock() end, "mutex: unlock of unlocked mutex")
  end)
end)

describe("lowbit.run_virtual", function()
  it("sleeps cost no real time and the clock jumps exactly", function()
    local real0 = os.clock()
    local t0, t1 = lowbit.run_virtual(function()
      local a = lowbit.now()
      lowbit.sleep(3600)
      return a, lowbit.now()
    end)
    assert.equal(3600, t1 - t0)
    assert.is_true(os.clock() - real0 < 1)
  end)

  it("orders timers deterministically across tasks", function()
    local order = {}
    lowbit.run_virtual(function()
      for _, d in ipairs({ 3, 1, 2 }) do
        lowbit.go(function() lowbit.sleep(d); order[#order + 1] = d end)
      end
    end)
    assert.same({ 1, 2, 3 }, order)
  end)

  it("drives context deadlines", function()
    local context = require "lowbit.context"
    local err, elapsed = lowbit.run_virtual(function()
      local t0 = lowbit.now()
      local ctx = context.with_timeout(context.background(), 30)
      return ctx:wait(), lowbit.now() - t0
    end)
    assert.equal(context.DEADLINE_EXCEEDED, err)
    assert.equal(30, elapsed)
  end)

  it("still detects deadlock, restores the real clock, and is not nestable", function()
    assert.has_error(function() lowbit.run_virtual(function() lowbit.chan(0):recv() end) end)
    assert.is_false(lowbit.is_virtual())
    local real = lowbit.now()
    assert.is_true(real > 0)
    run(function() assert.has_error(function() lowbit.run_virtual(function() end) end) end)
  end)
end)

describe("lowbit.detach", function()
  it("run returns without waiting for a detached task, which still runs if woken", function()
    local ch = lowbit.chan(0)
    local ran_after = false
    run(function()
      local t = lowbit.go(function() ch:recv(); ran_after = true end)
      lowbit.sleep(0)
      assert.is_true(lowbit.detach(t))
      assert.is_false(lowbit.detach(t)) -- once
    end)
    assert.is_false(ran_after) -- run returned; the task is still parked
  end)

  it("a finished task is not detached, and bad arguments raise", function()
    run(function()
      local t = lowbit.go(function() end)
      lowbit.sleep(0)
      assert.is_false(lowbit.detach(t))
      assert.has_error(function() lowbit.detach("task") end, "bad argument 't' to lowbit.detach: task expected, got string")
    end)
  end)
end)

describe("the spec watchdog (lowbit._abort)", function()
  it("ends a run that would hang, naming where each task waits, and the next run works", function()
    local support = require "support"
    local net = require "lowbit.net"
    local ok, err = support.pcall_run_within(0.2, function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() ln:accept() end) -- parked on a live handle: no deadlock to detect
    end)
    assert.is_false(ok)
    assert.matches("lowbit.run did not end within 0.2s", err, 1, true)
    assert.matches("waiting task:", err, 1, true)
    assert.matches("in function 'accept'", err, 1, true)
    assert.equal(7, support.run(function() lowbit.sleep(0.01); return 7 end))
  end)
end)

describe("the ready queue", function()
  it("keeps wake order and values past its first capacity", function()
    local order, vals = {}, {}
    run(function()
      local N = 5000 -- well past the queue's initial 1024 slots
      local ch = lowbit.chan(N)
      for i = 1, N do
        lowbit.go(function(k)
          order[#order + 1] = k
          lowbit.yield() -- woken again behind every other task
          ch:send(k)
        end, i)
      end
      for _ = 1, N do vals[#vals + 1] = ch:recv() end
    end)
    assert.equal(5000, #order)
    for i = 1, 5000 do
      if order[i] ~= i or vals[i] ~= i then
        error(("position %d: started %s, finished %s"):format(i, tostring(order[i]), tostring(vals[i])))
      end
    end
  end)
end)

describe("the loop", function()
  it("runs tasks woken by a timer that was already due when the loop was entered", function()
    -- uv.run("once") runs the timers that are due, then polls. A task those
    -- timers woke must not wait for that poll: with a listener open (an
    -- active handle) and no other timer, the poll would never return.
    local support = require "support"
    local net = require "lowbit.net"
    local ok, elapsed = support.pcall_run_within(5, function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local wg = lowbit.waitgroup()
      wg:add(1)
      lowbit.go(function() lowbit.sleep(0.001); wg:done() end)
      lowbit.go(function() -- keeps the loop from polling until the sleep is due
        local t = lowbit.now()
        while lowbit.now() - t < 0.005 do end
      end)
      local t0 = lowbit.now()
      wg:wait()
      ln:close()
      return lowbit.now() - t0
    end)
    assert.is_true(ok, tostring(elapsed))
    assert.is_true(elapsed < 1, "the woken task waited " .. tostring(elapsed) .. " s")
  end)
end)
