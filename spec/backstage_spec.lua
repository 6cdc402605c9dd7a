-- lowbit.backstage, the in-memory runner: one test per numbered statement
-- of conformance/backstage.md section 7 that concerns it (the cron grammar
-- and the Redis store have their own specs), named by its number.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local retry = require "lowbit.retry"
local bs = require "lowbit.backstage"
local support = require "support"
-- Virtual time: sleeps, retry delays and schedules cost no real time and
-- their orderings are exact. The default clock follows it.
local run = lowbit.run_virtual

local bg = context.background()
local E0 = bs.VIRTUAL_EPOCH -- clock.now() - lowbit.now() under run_virtual

local function of_type(evs, ty)
  local out = {}
  for _, e in ipairs(evs) do if e.type == ty then out[#out + 1] = e end end
  return out
end

-- A supervisor recording its events (logging off unless opts.logger).
local function new_sv(opts)
  opts = opts or {}
  local evs = {}
  opts.on_event = function(e) evs[#evs + 1] = e end
  if opts.logger == nil then opts.logger = false end
  return bs.new(opts.name or "app", (function() opts.name = nil; return opts end)()), evs
end

-- Starts sv:serve(ctx) in a task; returns cancel and wait() -> serve's results.
local function start(sv, ctx)
  local cctx, cancel = context.with_cancel(ctx or bg)
  local res = lowbit.chan(1)
  lowbit.go(function() res:send({ sv:serve(cctx) }) end)
  for _ = 1, 3 do lowbit.yield() end -- serve starts its workers; they park in pop
  return cancel, function() local r = res:recv(); return r[1], r[2] end
end

local function blocker()
  local release = lowbit.chan(0)
  return function() release:recv() end, function() release:close() end
end

describe("lowbit.backstage", function()
  it("1: new(name, opts) returns a supervisor whose name is `supervisor` in every event and log record", function()
    local records = {}
    run(function()
      local sv, evs = new_sv({ name = "myapp", logger = function(level, msg, fields)
        records[#records + 1] = { level = level, msg = msg, fields = fields }
      end })
      assert.equal(bs.Supervisor, getmetatable(sv))
      sv:register_queue("q", { buffer = 10 })
      sv:dispatch("q", { id = "a", name = "ok", run = function() end })
      sv:dispatch("q", { name = "fails", retries = 1, run = function() return nil, "e" end })
      sv:dispatch("q", { name = "raises", run = function() error("bug") end })
      sv:dispatch("nope", { run = function() end })
      sv:schedule({ next = function(_, t) return t + 1 end }, { name = "tick", run = function() end })
      local cancel, wait = start(sv)
      lowbit.sleep(2.5)
      cancel()
      assert.is_nil(wait())
      local types = {}
      for _, e in ipairs(evs) do
        assert.equal("myapp", e.supervisor)
        types[e.type] = true
      end
      for _, ty in ipairs({ "job_start", "job_done", "job_retry", "job_failed", "job_panic", "job_rejected",
                            "schedule_fire", "drain_start", "drain_done" }) do
        assert.is_true(types[ty], ty)
      end
      assert.equal(#evs, #records) -- a function logger gets every level
      for _, r in ipairs(records) do
        assert.equal("myapp", r.fields.supervisor)
        assert.is_truthy(({ debug = 1, info = 1, warn = 1, error = 1 })[r.level])
      end
    end)
    assert.has_error(function() bs.new(nil) end)
    assert.has_error(function() bs.new("x", { drain_timeout = -1 }) end)
    assert.has_error(function() bs.new("x", { nope = 1 }) end)
    assert.has_error(function() bs.new("x", { clock = {} }) end)
  end)

  it("2: register_queue starts `workers` worker tasks at serve; defaults workers=1, buffer=0; misuse raises", function()
    run(function()
      local sv = new_sv()
      sv:register_queue("three", { workers = 3, buffer = 10 })
      sv:register_queue("dflt")
      local running, max = 0, 0
      local wait_, release = blocker()
      local function job() running = running + 1; if running > max then max = running end; wait_(); running = running - 1 end
      for _ = 1, 5 do assert.is_true(sv:dispatch("three", { run = job })) end
      -- default buffer 0: no worker waits before serve, so nothing is taken
      local ok, err = sv:dispatch("dflt", { run = job })
      assert.is_nil(ok); assert.equal(bs.QUEUE_FULL, err)
      lowbit.yield()
      assert.equal(0, running) -- nothing runs before serve
      local cancel, wait = start(sv)
      assert.equal(3, running)
      assert.is_true(sv:dispatch("dflt", { run = job })) -- one default worker parked in pop
      lowbit.yield()
      assert.equal(4, running)
      assert.is_nil(sv:dispatch("dflt", { run = job })) -- only one default worker
      assert.has_error(function() sv:register_queue("late") end)
      release()
      cancel()
      assert.is_nil(wait())
      assert.equal(4, max)
    end)
    local sv = new_sv()
    sv:register_queue("a")
    assert.has_error(function() sv:register_queue("a") end)
    assert.has_error(function() sv:register_queue("b", { workers = 0 }) end)
    assert.has_error(function() sv:register_queue("b", { workers = 1.5 }) end)
    assert.has_error(function() sv:register_queue("b", { buffer = -1 }) end)
    assert.has_error(function() sv:register_queue("b", { store = {} }) end)
    assert.has_error(function() sv:register_queue(42) end)
    assert.has_error(function() sv.register_queue("c") end)
  end)

  it("3: memory store = chan(buffer): buffer=2 takes exactly 2 more while the worker is busy, then QUEUE_FULL without yielding; buffer=0 only while a worker waits", function()
    run(function()
      local sv = new_sv()
      sv:register_queue("b2", { workers = 1, buffer = 2 })
      sv:register_queue("b0", { workers = 1, buffer = 0 })
      local wait_, release = blocker()
      local cancel, wait = start(sv)
      assert.is_true(sv:dispatch("b2", { run = wait_ }))
      lowbit.yield() -- the worker takes it and blocks inside
      -- dispatch never yields: run it in a bare coroutine, which would be
      -- left suspended (or raise) if it did
      local results = {}
      for i = 1, 3 do
        local co = coroutine.create(function() return sv:dispatch("b2", { run = function() end }) end)
        local ok, a, b = coroutine.resume(co)
        assert.is_true(ok)
        assert.equal("dead", coroutine.status(co))
        results[i] = { a, b }
      end
      assert.is_true(results[1][1]); assert.is_true(results[2][1])
      assert.is_nil(results[3][1])
      assert.is_true(errors.is(results[3][2], bs.QUEUE_FULL))

      local done = 0
      local function quick() done = done + 1 end
      assert.is_true(sv:dispatch("b0", { run = quick })) -- the b0 worker is parked in pop
      local ok, err = sv:dispatch("b0", { run = quick }) -- handed over, not parked again yet
      assert.is_nil(ok); assert.equal(bs.QUEUE_FULL, err)
      lowbit.yield(); lowbit.yield()
      assert.equal(1, done)
      assert.is_true(sv:dispatch("b0", { run = quick })) -- parked again
      release()
      cancel()
      assert.is_nil(wait())
    end)
  end)

  it("4: dispatch to an unregistered queue is nil, UNKNOWN_QUEUE; once serve's ctx is done, nil, STOPPED", function()
    run(function()
      local sv, evs = new_sv()
      sv:register_queue("q", { buffer = 4 })
      local ok, err = sv:dispatch("nope", { run = function() end })
      assert.is_nil(ok); assert.equal(bs.UNKNOWN_QUEUE, err)
      local cancel, wait = start(sv)
      cancel()
      ok, err = sv:dispatch("q", { run = function() end }) -- before serve has even resumed
      assert.is_nil(ok); assert.equal(bs.STOPPED, err)
      assert.is_nil(wait())
      ok, err = sv:dispatch("q", { run = function() end })
      assert.is_nil(ok); assert.equal(bs.STOPPED, err)
      local rej = of_type(evs, "job_rejected")
      assert.equal(3, #rej)
      assert.equal(bs.UNKNOWN_QUEUE, rej[1].err); assert.equal("nope", rej[1].queue)
      assert.equal(bs.STOPPED, rej[3].err)
    end)
  end)

  it("5: jobs dispatched before serve run once it starts, in dispatch order with workers=1", function()
    run(function()
      local sv = new_sv()
      sv:register_queue("q", { workers = 1, buffer = 10 })
      local order = {}
      for i = 1, 10 do
        assert.is_true(sv:dispatch("q", { run = function() order[#order + 1] = i; lowbit.sleep(0.1) end }))
      end
      lowbit.sleep(1)
      assert.same({}, order)
      local cancel, wait = start(sv)
      lowbit.sleep(5)
      cancel()
      assert.is_nil(wait())
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, order)
    end)
  end)

  it("6: at most `workers` jobs of one queue run at once (200 jobs)", function()
    run(function()
      local sv = new_sv()
      sv:register_queue("q", { workers = 4, buffer = 200 })
      local running, max, done = 0, 0, 0
      for i = 1, 200 do
        sv:dispatch("q", { run = function()
          running = running + 1
          if running > max then max = running end
          lowbit.sleep((i * 7919 % 13) / 10)
          running = running - 1
          done = done + 1
        end })
      end
      local cancel, wait = start(sv)
      while done < 200 do lowbit.sleep(1) end
      cancel()
      assert.is_nil(wait())
      assert.equal(4, max)
    end)
  end)

  it("7: a job succeeds unless run returns nil, err (or an error value) or raises; job_done once per success, with duration", function()
    run(function()
      local sv, evs = new_sv()
      sv:register_queue("q", { workers = 1, buffer = 20 })
      local successes = {
        function() end, function() return true end, function() return "x" end,
        function() return {} end, function() return 0 end, function() return false end,
      }
      for i, f in ipairs(successes) do sv:dispatch("q", { name = "s" .. i, run = f }) end
      sv:dispatch("q", { name = "slow", run = function() lowbit.sleep(2) end })
      sv:dispatch("q", { name = "f1", run = function() return nil, "e" end })
      sv:dispatch("q", { name = "f2", run = function() return nil, errors.new("e") end })
      sv:dispatch("q", { name = "f3", run = function() return errors.new("e") end })
      sv:dispatch("q", { name = "f4", run = function() return true, "warning" end })
      sv:dispatch("q", { name = "p", run = function() error("bug") end })
      local cancel, wait = start(sv)
      lowbit.sleep(10)
      cancel()
      assert.is_nil(wait())
      local done = {}
      for _, e in ipairs(of_type(evs, "job_done")) do
        assert.is_nil(done[e.name]); done[e.name] = e
      end
      for i = 1, #successes do assert.is_truthy(done["s" .. i], "s" .. i) end
      assert.equal(2, done.slow.duration)
      assert.equal(0, done.s1.duration)
      assert.equal(7, #of_type(evs, "job_done"))
      local failed = {}
      for _, e in ipairs(of_type(evs, "job_failed")) do failed[e.name] = true end
      assert.same({ f1 = true, f2 = true, f3 = true, f4 = true }, failed)
      assert.equal("p", of_type(evs, "job_panic")[1].name)
    end)
  end)

  it("8: retries=3 with a run that always fails: 4 calls, 3 job_retry, one job_failed with the last error", function()
    run(function()
      local sv, evs = new_sv()
      sv:register_queue("q", { buffer = 1 })
      local calls = 0
      sv:dispatch("q", { name = "j", retries = 3, run = function()
        calls = calls + 1
        return nil, errors.new("fail #" .. calls)
      end })
      local cancel, wait = start(sv)
      lowbit.sleep(1)
      cancel()
      assert.is_nil(wait())
      assert.equal(4, calls)
      local retries = of_type(evs, "job_retry")
      assert.equal(3, #retries)
      for k = 1, 3 do
        assert.equal(k, retries[k].attempt)
        assert.equal("fail #" .. k, tostring(retries[k].err))
      end
      local failed = of_type(evs, "job_failed")
      assert.equal(1, #failed)
      assert.equal("fail #4", tostring(failed[1].err))
      assert.equal(4, failed[1].attempt)
      assert.equal(4, #of_type(evs, "job_start"))
    end)
  end)

  it("9: retry_delay=d: attempt k+1 starts no earlier than d after attempt k ended (fake clock); retry_delay=0 retries at once", function()
    local T0 = 1800000000
    local clock = { now = function() return T0 + lowbit.now() end, sleep = lowbit.sleep_ctx }
    run(function()
      local sv, evs = new_sv({ clock = clock })
      sv:register_queue("q", { workers = 2, buffer = 2 })
      local marks = { d = {}, z = {} }
      local function job(tag, work)
        return function()
          local m = marks[tag]
          m[#m + 1] = { start = clock.now() }
          lowbit.sleep(work)
          m[#m].stop = clock.now()
          return nil, "again"
        end
      end
      sv:dispatch("q", { name = "d", retries = 3, retry_delay = 5, run = job("d", 1.5) })
      sv:dispatch("q", { name = "z", retries = 3, retry_delay = 0, run = job("z", 0) })
      local cancel, wait = start(sv)
      lowbit.sleep(60)
      cancel()
      assert.is_nil(wait())
      assert.equal(4, #marks.d)
      for k = 1, 3 do assert.is_true(marks.d[k + 1].start >= marks.d[k].stop + 5) end
      assert.equal(T0 + 1000, marks.d[1].start) -- the fake clock is the one used
      assert.equal(4, #marks.z)
      for k = 1, 4 do assert.equal(marks.z[1].start, marks.z[k].start) end
      for _, e in ipairs(of_type(evs, "job_retry")) do assert.equal(e.name == "d" and 5 or 0, e.delay) end
    end)
  end)

  it("10: a run that raises is called once whatever `retries`; job_panic carries a traceback; the worker goes on", function()
    run(function()
      local sv, evs = new_sv()
      sv:register_queue("q", { workers = 1, buffer = 2 })
      local calls, after = 0, false
      sv:dispatch("q", { id = 9, name = "bug", retries = 5, retry_delay = 1, run = function()
        calls = calls + 1
        local t = nil
        return t.field -- attempt to index a nil value
      end })
      sv:dispatch("q", { name = "next", run = function() after = true end })
      local cancel, wait = start(sv)
      lowbit.sleep(10)
      cancel()
      assert.is_nil(wait())
      assert.equal(1, calls)
      assert.is_true(after)
      local p = of_type(evs, "job_panic")
      assert.equal(1, #p)
      assert.is_true(errors.is(p[1].err, bs.JOB_PANIC))
      assert.matches("attempt to index", tostring(p[1].err))
      assert.matches("stack traceback", tostring(p[1].err))
      assert.matches("backstage_spec.lua", p[1].traceback)
      assert.equal(9, p[1].job_id)
      assert.equal(0, #of_type(evs, "job_retry"))
      assert.equal(0, #of_type(evs, "job_failed"))
    end)
  end)

  it("11: returning nil, errors.wrap(retry.DO_NOT_RETRY, ...) stops after that attempt (job_failed)", function()
    run(function()
      local sv, evs = new_sv()
      sv:register_queue("q", { buffer = 1 })
      local calls = 0
      sv:dispatch("q", { name = "j", retries = 5, run = function()
        calls = calls + 1
        return nil, errors.wrap(retry.DO_NOT_RETRY, "card declined")
      end })
      local cancel, wait = start(sv)
      lowbit.sleep(1)
      cancel()
      assert.is_nil(wait())
      assert.equal(1, calls)
      local f = of_type(evs, "job_failed")
      assert.equal(1, #f)
      assert.is_true(errors.is(f[1].err, retry.DO_NOT_RETRY))
      assert.equal(0, #of_type(evs, "job_retry"))
    end)
  end)

  it("12: cancelling serve's ctx during a retry delay ends the job at once: no more attempts, job_canceled (CANCELED), no wait for the delay", function()
    run(function()
      local sv, evs = new_sv()
      sv:register_queue("q", { buffer = 1 })
      local calls = 0
      sv:dispatch("q", { name = "j", retries = 3, retry_delay = 100, run = function()
        calls = calls + 1
        return nil, "transient"
      end })
      local cancel, wait = start(sv)
      lowbit.sleep(10)
      local t0 = lowbit.now()
      cancel()
      assert.is_nil(wait())
      assert.equal(t0, lowbit.now()) -- the drain did not wait for the delay
      assert.equal(1, calls)
      local c = of_type(evs, "job_canceled")
      assert.equal(1, #c)
      assert.is_true(errors.is(c[1].err, context.CANCELED))
      assert.equal(0, #of_type(evs, "job_failed"))
    end)
  end)

  it("13: run(ctx, job) gets serve's ctx (cancelled at shutdown) and the job table", function()
    run(function()
      local sv = new_sv()
      sv:register_queue("q", { buffer = 1 })
      local got_ctx, got_job, seen_value, end_err
      local job = { name = "j", payload = { to = "a@b" } }
      job.run = function(ctx, j)
        got_ctx, got_job = ctx, j
        seen_value = ctx:value("request")
        end_err = ctx:wait()
      end
      sv:dispatch("q", job)
      local cancel, wait = start(sv, context.with_value(bg, "request", "r-1"))
      lowbit.sleep(1)
      assert.is_true(context.is_context(got_ctx))
      assert.is_nil(got_ctx:err())
      assert.equal(job, got_job)
      assert.equal("r-1", seen_value)
      cancel()
      assert.is_nil(wait())
      assert.equal(context.CANCELED, end_err)
    end)
  end)

  it("14: with `id`, every log record of that execution has job_id = id; without, no job_id field", function()
    local records = {}
    run(function()
      local sv = new_sv({ logger = function(level, msg, fields) records[#records + 1] = { msg = msg, f = fields } end })
      sv:register_queue("q", { buffer = 3 })
      local n = 0
      local function flaky() n = n + 1; if n % 2 == 1 then return nil, "odd" end end
      sv:dispatch("q", { id = "welcome-7", name = "with", retries = 1, run = flaky })
      sv:dispatch("q", { name = "without", retries = 1, run = flaky })
      sv:dispatch("q", { id = "p-1", name = "panics", run = function() error("x") end })
      local cancel, wait = start(sv)
      lowbit.sleep(1)
      cancel()
      assert.is_nil(wait())
    end)
    local by = { with = 0, without = 0, panics = 0 }
    for _, r in ipairs(records) do
      local name = r.f.name
      if name == "with" then assert.equal("welcome-7", r.f.job_id); by.with = by.with + 1
      elseif name == "panics" then assert.equal("p-1", r.f.job_id); by.panics = by.panics + 1
      elseif name == "without" then assert.is_nil(r.f.job_id); by.without = by.without + 1
      else assert.is_nil(r.f.job_id) end
      assert.is_nil(r.f.id)
    end
    assert.same({ with = 4, without = 4, panics = 2 }, by) -- start, retry, start, done / start, panic
  end)

  it("15: serve yields until ctx is done, then stops schedules, takes no new job, and returns nil once in-flight jobs finish", function()
    run(function()
      local sv, evs = new_sv({ drain_timeout = 60 })
      sv:register_queue("q", { workers = 1, buffer = 5 })
      local fires, finished, started = 0, false, {}
      sv:schedule({ next = function(_, t) return t + 1 end }, { name = "tick", run = function() fires = fires + 1 end })
      sv:dispatch("q", { name = "long", run = function() started.long = true; lowbit.sleep(20); finished = true end })
      sv:dispatch("q", { name = "queued", run = function() started.queued = true end })
      local ctx, cancel = context.with_cancel(bg)
      local returned = false
      local res = lowbit.chan(1)
      lowbit.go(function() local r = sv:serve(ctx); returned = true; res:send(r or "nil") end)
      lowbit.sleep(5.5)
      assert.is_false(returned)
      assert.equal(5, fires)
      local t0 = lowbit.now()
      cancel()
      assert.equal("nil", res:recv())
      assert.equal(t0 + 14.5, lowbit.now()) -- exactly when the in-flight job ended
      assert.is_true(finished)
      assert.is_nil(started.queued)
      assert.equal(5, fires)
      local ds = of_type(evs, "drain_start")
      assert.equal(1, #ds); assert.equal(1, ds[1].in_flight)
      assert.equal(1, #of_type(evs, "drain_done"))
      assert.equal("drain_done", evs[#evs].type)
    end)
  end)

  it("16: a job ignoring ctx past drain_timeout: serve returns DRAIN_TIMEOUT in time, drain_timeout event with abandoned = 1; default 25 s", function()
    run(function()
      local sv, evs = new_sv({ drain_timeout = 3 })
      sv:register_queue("q", { buffer = 1 })
      local wait_, release = blocker()
      sv:dispatch("q", { name = "stubborn", run = wait_ })
      local cancel, wait = start(sv)
      lowbit.sleep(1)
      local t0 = lowbit.now()
      cancel()
      assert.equal(bs.DRAIN_TIMEOUT, wait())
      assert.is_true(lowbit.now() - t0 <= 3.5)
      local dt = of_type(evs, "drain_timeout")
      assert.equal(1, #dt); assert.equal(1, dt[1].abandoned)
      assert.equal(0, #of_type(evs, "drain_done"))
      release()
      -- default drain_timeout
      local sv2, evs2 = new_sv()
      assert.equal(25, sv2.drain_timeout)
      sv2:register_queue("q", { buffer = 1 })
      local wait2, release2 = blocker()
      sv2:dispatch("q", { run = wait2 })
      local cancel2, w2 = start(sv2)
      t0 = lowbit.now()
      cancel2()
      assert.equal(bs.DRAIN_TIMEOUT, w2())
      assert.near(25, lowbit.now() - t0, 1e-6)
      assert.equal(1, of_type(evs2, "drain_timeout")[1].abandoned)
      release2()
    end)
  end)

  it("17: memory jobs still queued at shutdown are not run; drain_done.dropped counts them", function()
    run(function()
      local sv, evs = new_sv()
      sv:register_queue("q", { workers = 1, buffer = 5 })
      sv:register_queue("idle", { workers = 1, buffer = 3 })
      local ran = 0
      sv:dispatch("q", { run = function() lowbit.sleep(5); ran = ran + 1 end })
      local cancel, wait = start(sv)
      for _ = 1, 5 do assert.is_true(sv:dispatch("q", { run = function() ran = ran + 1 end })) end
      cancel()
      assert.is_nil(wait())
      assert.equal(1, ran)
      assert.equal(5, of_type(evs, "drain_done")[1].dropped)
    end)
    run(function()
      -- unbuffered: a job handed to the waiting worker just as shutdown
      -- begins is not started either, and counts as dropped
      local sv, evs = new_sv()
      sv:register_queue("q", { workers = 1, buffer = 0 })
      local ran = false
      local cancel, wait = start(sv)
      assert.is_true(sv:dispatch("q", { run = function() ran = true end }))
      cancel() -- before the worker resumes with it
      assert.is_nil(wait())
      assert.is_false(ran)
      assert.equal(1, of_type(evs, "drain_done")[1].dropped)
    end)
  end)

  it("18: a second concurrent serve returns nil, ALREADY_SERVING; serve with no queues returns nil after cancel", function()
    run(function()
      local sv = new_sv()
      local cancel, wait = start(sv)
      local ok, err = sv:serve(bg)
      assert.is_nil(ok); assert.equal(bs.ALREADY_SERVING, err)
      lowbit.sleep(1)
      cancel()
      assert.is_nil(wait())
      ok, err = sv:serve(bg) -- served already
      assert.is_nil(ok); assert.equal(bs.STOPPED, err)
      assert.has_error(function() sv:serve("ctx") end)
    end)
  end)

  it("19 (runner): an every-style schedule fires at start+s, start+2s, ...; a fire late by more than s fires once, then resumes from the fire time", function()
    local T0 = 1800000000
    local clock
    clock = {
      now = function() return T0 + lowbit.now() end,
      sleep = function(ctx, s)
        -- the process stalls once: the wait for the tick at 40 ends at 65
        if clock.now() + s == T0 + 1040 then s = s + 25 end
        return lowbit.sleep_ctx(ctx, s)
      end,
    }
    local every = { s = 10, next = function(self, t) return t + self.s end }
    run(function()
      local sv = new_sv({ clock = clock })
      local fires = {}
      sv:schedule(every, { name = "e", run = function()
        fires[#fires + 1] = clock.now() - T0 - 1000
      end })
      local cancel, wait = start(sv)
      lowbit.sleep(80)
      cancel()
      assert.is_nil(wait())
      -- 10, 20, 30, then the wait for 40 oversleeps to 65: one fire, no
      -- burst for 40, 50, 60; the next ticks count from 65
      assert.same({ 10, 20, 30, 65, 75 }, fires)
    end)
  end)

  it("22: any table with next(self, t) is a schedule; next returning nil drops it with a log record", function()
    local records = {}
    run(function()
      local sv, evs = new_sv({ logger = function(level, msg, fields) records[#records + 1] = { level, msg, fields } end })
      local Twice = {}
      Twice.__index = Twice
      function Twice:next(t)
        self.calls = self.calls + 1
        if self.calls > 2 then return nil end
        return t + 3
      end
      local sched = setmetatable({ calls = 0 }, Twice) -- next found through a metatable
      local fires = 0
      sv:schedule(sched, { name = "twice", run = function() fires = fires + 1 end })
      local other = 0
      sv:schedule({ next = function(_, t) return t + 1 end }, { name = "other", run = function() other = other + 1 end })
      local cancel, wait = start(sv)
      lowbit.sleep(20.5)
      cancel()
      assert.is_nil(wait())
      assert.equal(2, fires)
      assert.equal(20, other) -- the other schedule goes on
      local dropped = of_type(evs, "schedule_dropped")
      assert.equal(1, #dropped); assert.equal("twice", dropped[1].name)
      local found = false
      for _, r in ipairs(records) do
        if r[2] == "schedule_dropped" then found = true; assert.equal("twice", r[3].name); assert.equal("warn", r[1]) end
      end
      assert.is_true(found)
    end)
    local sv = new_sv()
    assert.has_error(function() sv:schedule({}, { run = function() end }) end)
    assert.has_error(function() sv:schedule(42, { run = function() end }) end)
  end)

  it("23: schedule(sched, job) runs each fire in its own task (a slow fire does not delay the next), with the job's retry policy", function()
    run(function()
      local sv, evs = new_sv()
      local starts, running, max, calls = {}, 0, 0, 0
      sv:schedule({ next = function(_, t) return t + 10 end }, { name = "slow", retries = 1, run = function()
        calls = calls + 1
        starts[#starts + 1] = lowbit.now() - 1000
        running = running + 1
        if running > max then max = running end
        lowbit.sleep(25)
        running = running - 1
        return nil, "fail"
      end })
      local cancel, wait = start(sv)
      lowbit.sleep(36)
      cancel()
      assert.is_nil(wait())
      assert.same({ 10, 20, 30, 35 }, starts) -- fire 1's retry starts at 35 (no delay)
      assert.equal(3, max)
      assert.equal(1, #of_type(evs, "job_retry"))
    end)
  end)

  it("24: schedule_on_queue dispatches a fresh copy per fire; a full queue skips the tick (schedule_skip, QUEUE_FULL) and later ticks still fire", function()
    run(function()
      local sv, evs = new_sv()
      sv:register_queue("reports", { workers = 1, buffer = 0 })
      local got, at = {}, {}
      local job = { name = "nightly", payload = { n = 1 }, run = function(_, j)
        got[#got + 1] = j
        at[#at + 1] = lowbit.now() - 1000
        lowbit.sleep(15)
      end }
      sv:schedule_on_queue("reports", { next = function(_, t) return t + 10 end }, job)
      local cancel, wait = start(sv)
      lowbit.sleep(45)
      cancel()
      assert.is_nil(wait())
      -- 10 runs until 25: the tick at 20 finds the queue full; 30 runs until 45, 40 is skipped
      assert.same({ 10, 30 }, at)
      assert.equal(2, #got)
      assert.are_not.equal(job, got[1]); assert.are_not.equal(got[1], got[2])
      assert.equal("nightly", got[1].name); assert.equal(job.payload, got[2].payload)
      local skips = of_type(evs, "schedule_skip")
      assert.equal(2, #skips)
      assert.equal(bs.QUEUE_FULL, skips[1].err)
      assert.equal("queue_full", skips[1].reason)
      assert.equal("nightly", skips[1].name)
      assert.equal(2, #of_type(evs, "schedule_fire")) -- a skipped tick is not a fire
      assert.equal(0, #of_type(evs, "job_rejected"))  -- nor a dispatch refused to a caller
    end)
    local sv = new_sv()
    assert.has_error(function() sv:schedule_on_queue("nope", { next = function() end }, { run = function() end }) end)
  end)

  it("35 (runner side): with a coordinator, supervisors sharing a schedule fire each tick once in total; losers emit schedule_skip", function()
    run(function()
      local last = {}
      local coord = { calls = 0 }
      function coord:tick(sv_name, sched_name, tick, sched)
        self.calls = self.calls + 1
        assert.equal("number", type(tick))
        assert.equal("table", type(sched))
        local key = sv_name .. ":" .. sched_name
        if tick == 1700001030 then return nil, errors.new("redis went away") end
        if last[key] ~= nil and last[key] >= tick then return false end
        last[key] = tick
        return true
      end
      local fires, evs_all, cancels, waits = {}, {}, {}, {}
      local every = { next = function(_, t) return t + 10 end }
      for i = 1, 3 do
        local sv, evs = new_sv({ name = "app", coordinator = coord })
        evs_all[i] = evs
        sv:schedule(every, { name = "tick", run = function() fires[#fires + 1] = lowbit.now() - 1000 end })
        cancels[i], waits[i] = start(sv)
      end
      lowbit.sleep(45)
      for i = 1, 3 do cancels[i]() end
      for i = 1, 3 do assert.is_nil(waits[i]()) end
      assert.same({ 10, 20, 40 }, fires) -- 30: the coordinator failed, nobody fired
      assert.equal(12, coord.calls)
      local skips, reasons = 0, {}
      for i = 1, 3 do
        for _, e in ipairs(of_type(evs_all[i], "schedule_skip")) do
          skips = skips + 1
          reasons[e.reason] = (reasons[e.reason] or 0) + 1
        end
      end
      assert.equal(9, skips)
      assert.same({ claimed = 6, coordinator_error = 3 }, reasons)
    end)
    assert.has_error(function() bs.new("x", { coordinator = {} }) end)
  end)

  it("34 (runner): a durable store's jobs name their handler; run on a durable dispatch raises; a job without a handler fails with reason no_handler", function()
    run(function()
      local sv, evs = new_sv()
      local store = bs.memory_store(10)
      store.durable = true
      local failed = {}
      function store:fail(job, err, reason) failed[#failed + 1] = { job = job, err = err, reason = reason }; return true end
      sv:register_queue("durable", { store = store })
      local handled = {}
      sv:handle("charge", function(ctx, job) handled[#handled + 1] = job.payload end)
      assert.has_error(function() sv:dispatch("durable", { name = "charge", run = function() end }) end)
      assert.has_error(function() sv:dispatch("durable", { payload = 1 }) end) -- no name
      assert.is_true(sv:dispatch("durable", { name = "charge", payload = 7 }))
      assert.is_true(sv:dispatch("durable", { name = "refund", id = "r1", payload = 8 }))
      local cancel, wait = start(sv)
      lowbit.sleep(1)
      cancel()
      assert.is_nil(wait())
      assert.same({ 7 }, handled)
      assert.equal(1, #failed)
      assert.equal("no_handler", failed[1].reason)
      assert.is_true(errors.is(failed[1].err, bs.NO_HANDLER))
      local f = of_type(evs, "job_failed")
      assert.equal(1, #f); assert.equal("no_handler", f[1].reason); assert.equal("r1", f[1].job_id)
      assert.equal(0, of_type(evs, "drain_done")[1].dropped) -- durable jobs are not counted as dropped
    end)
  end)

  it("store protocol: ack on success, fail on terminal failure and panic, retry store-side, release on shutdown, extend for running jobs (during the drain too), attach", function()
    run(function()
      local sv, evs = new_sv()
      local calls = {}
      local function log(...) calls[#calls + 1] = { ... } end
      local store = bs.memory_store(10)
      store.extend_interval = 2
      function store:ack(job) log("ack", job.name); return true end
      function store:fail(job, err, reason) log("fail", job.name, reason); return true end
      function store:retry(job, delay, err) log("retry", job.name, delay, tostring(err)); return true end
      function store:release(job) log("release", job.name); return true end
      function store:extend(jobs)
        local names = {}
        for i, j in ipairs(jobs) do names[i] = j.name end
        table.sort(names)
        log("extend", table.concat(names, ","))
        return true
      end
      local info
      function store:attach(i) info = i end
      sv:register_queue("q", { workers = 2, store = store })
      assert.equal("app", info.supervisor); assert.equal("q", info.queue)
      info.emit({ type = "job_recovered", id = "x1", stalls = 1 })
      local ev = of_type(evs, "job_recovered")[1]
      assert.equal("app", ev.supervisor); assert.equal("q", ev.queue); assert.equal("x1", ev.job_id)

      local attempts = {}
      sv:dispatch("q", { name = "ok", run = function() end })
      sv:dispatch("q", { name = "bad", run = function() return nil, "nope" end })
      sv:dispatch("q", { name = "bug", run = function() error("x") end })
      sv:dispatch("q", { name = "again", retries = 2, retry_delay = 30, attempt = 2, run = function(_, j)
        attempts[#attempts + 1] = j.attempt
        return nil, "later"
      end })
      local cancel, wait = start(sv)
      lowbit.sleep(1)
      sv:dispatch("q", { name = "long", run = function(ctx) ctx:wait(); return nil, ctx:err() end })
      sv:dispatch("q", { name = "long2", run = function() lowbit.sleep(4.5) end })
      lowbit.sleep(2.5)
      cancel()
      assert.is_nil(wait())
      local text = {}
      for i, c in ipairs(calls) do
        for k = 1, #c do c[k] = tostring(c[k]) end
        text[i] = table.concat(c, " ")
      end
      assert.same({
        "ack ok", "fail bad failed", "fail bug panic",
        "retry again 30 later", -- attempt 2 of 3 (store's count): retried by the store, worker freed
        "extend long,long2",    -- at t = 2: both running
        "release long",         -- t = 3.5, interrupted by shutdown, not a failure
        "extend long2",         -- t = 4: leases are renewed while the drain waits
        "ack long2",            -- t = 5.5; no renewal after serve returned
      }, text)
      assert.same({ 2 }, attempts)
      assert.equal(1, #of_type(evs, "job_released"))
      assert.equal(0, #of_type(evs, "job_canceled"))
    end)
  end)

  it("misuse raises: bad jobs, unknown handlers, duplicate names, schedules after serve", function()
    local sv = new_sv()
    sv:register_queue("q", { buffer = 5 })
    local noop = function() end
    assert.has_error(function() sv:dispatch("q", "job") end)
    assert.has_error(function() sv:dispatch("q", {}) end) -- no run, no handler
    assert.has_error(function() sv:dispatch("q", { run = "f" }) end)
    assert.has_error(function() sv:dispatch("q", { run = noop, retries = -1 }) end)
    assert.has_error(function() sv:dispatch("q", { run = noop, retries = 1.5 }) end)
    assert.has_error(function() sv:dispatch("q", { run = noop, retry_delay = -1 }) end)
    assert.has_error(function() sv:dispatch("q", { run = noop, name = 5 }) end)
    assert.has_error(function() sv:dispatch("q", { run = noop, id = {} }) end)
    assert.has_error(function() sv:dispatch(5, { run = noop }) end)
    assert.has_error(function() sv.dispatch("q", { run = noop }) end)
    assert.has_error(function() sv:handle("h", 5) end)
    sv:handle("h", noop)
    assert.has_error(function() sv:handle("h", noop) end)
    assert.is_true(sv:dispatch("q", { name = "h" })) -- resolved through the handler
    local every = { next = function(_, t) return t + 1 end }
    sv:schedule(every, { name = "s", run = noop })
    assert.has_error(function() sv:schedule(every, { name = "s", run = noop }) end)
    assert.has_error(function() sv:schedule(every, { name = "t" }) end)
    local ok, err = pcall(function() sv:dispatch("q", { run = 1 }) end)
    assert.is_false(ok)
    assert.matches("bad argument 'job.run' to backstage.dispatch", err)
    assert.matches("backstage_spec.lua", err) -- raised at the caller
    run(function()
      local cancel, wait = start(sv)
      assert.has_error(function() sv:schedule(every, { name = "late", run = noop }) end)
      cancel()
      assert.is_nil(wait())
    end)
  end)

  it("memory jobs may name a handler; the default logger is stderr_logger('info') (logfmt); logger = false turns logging off", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    run(function()
      local sv = bs.new("app", { logger = bs.stderr_logger("info", f) })
      sv:register_queue("q", { buffer = 2 })
      local seen
      sv:handle("greet", function(_, job) seen = job.payload end)
      sv:dispatch("q", { name = "greet", payload = "hi" })
      sv:dispatch("q", { id = "x 1", name = "broken", run = function() return nil, "it broke" end })
      local cancel, wait = start(sv)
      lowbit.sleep(1)
      cancel()
      assert.is_nil(wait())
      assert.equal("hi", seen)
    end)
    f:close()
    local text = io.open(path):read("*a")
    os.remove(path)
    assert.matches('level=error msg=job_failed attempt=1 err="it broke" job_id="x 1" name=broken queue=q supervisor=app', text, 1, true)
    assert.matches("level=info msg=drain_done dropped=0 supervisor=app", text, 1, true)
    assert.is_nil(text:find("job_start", 1, true)) -- debug records are below "info"
    assert.equal("info", bs.new("x").logger.min_level)
    assert.is_nil(bs.new("x", { logger = false }).logger)
    assert.has_error(function() bs.stderr_logger("loud") end)
  end)

  it("wrong argument types: every public function and method names the bad argument (or accepts the value)", function()
    local bad = {}
    local function probe(what, fn, self)
      for _, v in ipairs({ 12345, { "a table" }, true, "s" }) do
        local res
        if self ~= nil then res = { pcall(fn, self, v, v, v) } else res = { pcall(fn, v, v, v) } end
        if not res[1] then
          local msg = tostring(res[2])
          if msg:find("attempt to ") or not msg:find("bad argument '") then
            bad[#bad + 1] = ("%s(%s): %s"):format(what, type(v), msg:sub(1, 160))
          end
        end
      end
    end
    local DELEGATES = { every = true, daily = true, cron = true, must_cron = true, redis_store = true }
    run(function()
      for k, f in pairs(bs) do
        if type(f) == "function" and not k:find("^_") and not DELEGATES[k] then probe("backstage." .. k, f) end
      end
      local sv = new_sv()
      sv:register_queue("q")
      for k, f in pairs(bs.Supervisor) do
        if type(f) == "function" and not k:find("^_") then probe("sv:" .. k, f, sv) end
      end
      local store = bs.memory_store(1)
      for k, f in pairs(bs.MemoryStore) do
        if type(f) == "function" and not k:find("^_") then probe("store:" .. k, f, store) end
      end
    end)
    assert.same({}, bad)
  end)

  it("dispatch + run of memory jobs runs compiled: no NYI aborts in backstage code (STYLE rule 14)", function()
    if not (jit and jit.status()) then return end
    local done = 0
    -- "return to lower frame": a trace that began after a task switch
    -- (inside pop) reaching the frame below it; LuaJIT picks another head.
    local bad = support.jit_aborts("backstage.lua", function() run(function()
      local sv = new_sv()
      sv:register_queue("q", { workers = 2, buffer = 256 })
      local cancel, wait = start(sv)
      local job = { name = "noop", run = function() done = done + 1 end }
      local n = 0
      while n < 100000 do
        if sv:dispatch("q", job) then n = n + 1 else lowbit.yield() end
      end
      while done < n do lowbit.yield() end
      cancel()
      assert.is_nil(wait())
    end) end, { reasons = { "NYI", "blacklisted", "disabled" }, except = { "return to lower frame" } })
    assert.equal(100000, done)
    assert.same({}, bad)
  end)

  it("every, daily, cron and must_cron are loaded from lowbit.backstage.schedule on first use", function()
    local seen = {}
    local fake = {}
    for _, n in ipairs({ "every", "daily", "cron", "must_cron" }) do
      fake[n] = function(...) seen[#seen + 1] = { n, ... }; return n end
    end
    local saved_loaded = package.loaded["lowbit.backstage.schedule"]
    local saved_preload = package.preload["lowbit.backstage.schedule"]
    package.loaded["lowbit.backstage.schedule"] = nil
    package.preload["lowbit.backstage.schedule"] = function() return fake end
    local ok, err = pcall(function()
      assert.equal("every", bs.every(900))
      assert.equal("daily", bs.daily(3, 0))
      assert.equal("cron", bs.cron("0 3 * * *", { tz = "UTC" }))
      assert.equal("must_cron", bs.must_cron("0 3 * * *"))
    end)
    package.loaded["lowbit.backstage.schedule"] = saved_loaded
    package.preload["lowbit.backstage.schedule"] = saved_preload
    assert(ok, err)
    assert.same({ { "every", 900 }, { "daily", 3, 0 }, { "cron", "0 3 * * *", { tz = "UTC" } }, { "must_cron", "0 3 * * *" } }, seen)
  end)

  it("examples/jobs.lua runs a queue and a schedule and exits", function()
    local out, rc = support.sh(("cd %s && timeout 20 %s examples/jobs.lua 2>&1"):format(support.root, support.host))
    assert.equal(0, rc, out)
    assert.matches("welcome email sent to ada", out)
    assert.matches("refresh%-cache fired", out)
    assert.matches("serve returned: ok", out)
  end)
end)
