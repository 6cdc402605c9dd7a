local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local rungroup = require "lowbit.rungroup"
-- Virtual time: sleeps and timeouts are exact and cost no real time.
local run = require("lowbit").run_virtual

local bg = context.background()
local BOOM = errors.new("boom")

-- Runs g with a ctx cancelled after `after` seconds; returns ok, err, elapsed.
local function run_for(g, after)
  local ctx, cancel = context.with_cancel(bg)
  if after then lowbit.go(function() lowbit.sleep(after); cancel() end) end
  local t0 = lowbit.now()
  local err = g:run(ctx) -- nil, or the joined terminal errors
  cancel()
  return err == nil or nil, err, lowbit.now() - t0
end

local function recorder()
  local evs = {}
  return evs, function(e) evs[#evs + 1] = e end
end

local function of_type(evs, ty)
  local out = {}
  for _, e in ipairs(evs) do if e.type == ty then out[#out + 1] = e end end
  return out
end

describe("lowbit.rungroup", function()
  it("runs function and object services until ctx is cancelled, then returns true", function()
    local seen = {}
    run(function()
      local g = rungroup.new()
      g:add(function(ctx) seen.fn = true; ctx:wait() end)
      local obj = { name = "obj" }
      function obj:run(ctx) seen.obj = self; ctx:wait() end
      g:add(obj)
      local ok, err, dt = run_for(g, 0.02)
      assert.is_true(ok)
      assert.is_nil(err)
      assert.is_true(dt >= 0.015 and dt < 1, "took " .. dt)
    end)
    assert.is_true(seen.fn)
    assert.equal("obj", seen.obj.name)
  end)

  it("each start gets its own ctx, a child of run's ctx, cancelled at shutdown", function()
    local ctxs = {}
    run(function()
      local g = rungroup.new()
      g:add(function(ctx)
        ctxs[#ctxs + 1] = ctx
        assert.equal("v", ctx:value("k"))
        if #ctxs < 2 then return end -- exits cleanly once: ALWAYS restarts it
        ctx:wait()
      end)
      local ctx, cancel = context.with_cancel(context.with_value(bg, "k", "v"))
      lowbit.go(function() lowbit.sleep(0.1); cancel() end)
      assert.is_nil(g:run(ctx))
    end)
    assert.is_true(#ctxs >= 2)
    assert.are_not.equal(ctxs[1], ctxs[2])
    for _, c in ipairs(ctxs) do assert.equal(context.CANCELED, c:err()) end
  end)

  it("ALWAYS (the default) restarts after clean exits and failures, 50 ms apart by default", function()
    local runs = 0
    local evs, on_event = recorder()
    run(function()
      local g = rungroup.new{ on_event = on_event }
      g:add(function()
        runs = runs + 1
        if runs % 2 == 0 then return nil, BOOM end
      end, { name = "flappy" })
      local ok = run_for(g, 0.18)
      assert.is_true(ok) -- restarts are transitions, not terminal errors
    end)
    -- 0.18 s / 50 ms: about 4 runs; without the backoff it would be thousands
    assert.is_true(runs >= 3 and runs <= 5, "runs " .. runs)
    local restarting = of_type(evs, rungroup.EVENT_SERVICE_RESTARTING)
    assert.equal(0.05, restarting[1].delay)
    assert.equal("flappy", restarting[1].service)
    assert.is_nil(restarting[1].err)
    assert.equal(BOOM, restarting[2].err)
  end)

  it("ON_FAILURE restarts after failures and ends the service after a clean exit", function()
    local runs = 0
    local evs, on_event = recorder()
    run(function()
      local g = rungroup.new{ on_event = on_event }
      g:add(function()
        runs = runs + 1
        if runs < 3 then return nil, BOOM end
      end, { restart = rungroup.ON_FAILURE, backoff = function() return 0 end })
      local ok, err, dt = run_for(g, nil) -- no cancel: returns when the service is done
      assert.is_true(ok)
      assert.is_nil(err)
      assert.is_true(dt < 1)
    end)
    assert.equal(3, runs)
    local halted = of_type(evs, rungroup.EVENT_SERVICE_HALTED)
    assert.equal(1, #halted)
    assert.is_nil(halted[1].err)
  end)

  it("NEVER runs once and records its failure", function()
    local runs = 0
    run(function()
      local g = rungroup.new()
      g:add(function() runs = runs + 1; return errors.wrap(BOOM, "once") end,
        { restart = rungroup.NEVER, name = "oneshot" })
      local ok, err = run_for(g, nil)
      assert.is_nil(ok)
      assert.is_true(errors.is(err, BOOM))
      assert.equal("service oneshot: once: boom", tostring(errors.list(err)[1]))
    end)
    assert.equal(1, runs)
  end)

  it("returns when every service has ended on its own, without a cancel", function()
    run(function()
      local g = rungroup.new()
      g:add(function() end, { restart = rungroup.NEVER })
      g:add(function() lowbit.sleep(0.01) end, { restart = rungroup.ON_FAILURE })
      local ok, _, dt = run_for(g, nil)
      assert.is_true(ok)
      assert.is_true(dt < 1)
    end)
  end)

  it("an empty group returns at once", function()
    run(function() assert.is_nil(rungroup.new():run(bg)) end)
  end)

  it("backoff gets attempt 1, 2, 3...; a negative delay gives up with RESTART_LIMIT_EXCEEDED", function()
    local attempts = {}
    run(function()
      local g = rungroup.new()
      g:add(function() return nil, BOOM end, {
        name = "w",
        backoff = function(a) attempts[#attempts + 1] = a; if a > 3 then return -1 end return 0.001 end,
      })
      local ok, err = run_for(g, nil)
      assert.is_nil(ok)
      assert.is_true(errors.is(err, rungroup.RESTART_LIMIT_EXCEEDED))
      assert.is_true(errors.is(err, BOOM)) -- the last error is kept
    end)
    assert.same({ 1, 2, 3, 4 }, attempts)
  end)

  it("a run longer than stability_window resets the attempt counter", function()
    local attempts, runs = {}, 0
    run(function()
      local g = rungroup.new()
      g:add(function()
        runs = runs + 1
        if runs == 3 then lowbit.sleep(0.06) end -- a stable run
        return nil, BOOM
      end, {
        stability_window = 0.05,
        backoff = function(a) attempts[#attempts + 1] = a; if #attempts >= 5 then return -1 end return 0 end,
      })
      run_for(g, nil)
    end)
    assert.same({ 1, 2, 1, 2, 3 }, attempts)
  end)

  it("a raised error is caught with its traceback and treated as a failure", function()
    local runs = 0
    local evs, on_event = recorder()
    local line
    run(function()
      local g = rungroup.new{ on_event = on_event }
      g:add(function()
        runs = runs + 1
        if runs < 3 then line = debug.getinfo(1, "l").currentline; error("nil deref") end
      end, { restart = rungroup.ON_FAILURE, backoff = function() return 0 end })
      assert.is_true(run_for(g, nil))
    end)
    assert.equal(3, runs) -- restarted by policy like any failure
    local r = of_type(evs, rungroup.EVENT_SERVICE_RESTARTING)[1]
    assert.is_true(errors.is(r.err, rungroup.SERVICE_RAISED))
    local s = tostring(r.err)
    assert.matches("nil deref", s)
    assert.matches("stack traceback:.*rungroup_spec.lua:" .. line, s)
  end)

  it("a raised error value stays matchable, so a raised DO_NOT_RESTART halts", function()
    local runs = 0
    run(function()
      local g = rungroup.new()
      g:add(function() runs = runs + 1; error(errors.wrap(rungroup.DO_NOT_RESTART, "corrupt")) end)
      local ok, err = run_for(g, nil)
      assert.is_nil(ok)
      assert.is_true(errors.is(err, rungroup.DO_NOT_RESTART))
      assert.is_true(errors.is(err, rungroup.SERVICE_RAISED))
    end)
    assert.equal(1, runs)
  end)

  it("DO_NOT_RESTART (wrapped) halts only that service, whatever its policy", function()
    local runs, other_cancelled = 0, false
    local evs, on_event = recorder()
    run(function()
      local g = rungroup.new{ on_event = on_event }
      g:add(function()
        runs = runs + 1
        return nil, errors.wrap(rungroup.DO_NOT_RESTART, "unsupported protocol")
      end, { name = "worker", restart = rungroup.ALWAYS })
      g:add(function(ctx) ctx:wait(); other_cancelled = true end, { name = "other" })
      local ok, err, dt = run_for(g, 0.1)
      assert.is_nil(ok)
      assert.is_true(dt >= 0.09, "the other service kept the group running")
      assert.is_true(errors.is(err, rungroup.DO_NOT_RESTART))
      assert.matches("service worker: unsupported protocol", tostring(err))
    end)
    assert.equal(1, runs)
    assert.is_true(other_cancelled)
    local halted = of_type(evs, rungroup.EVENT_SERVICE_HALTED)
    assert.equal(1, #halted)
    assert.equal("worker", halted[1].service)
  end)

  it("SHUTDOWN_ALL (wrapped) shuts the whole group down", function()
    local other_err
    run(function()
      local g = rungroup.new()
      g:add(function() lowbit.sleep(0.01); return nil, errors.wrap(rungroup.SHUTDOWN_ALL, "lost lock") end)
      g:add(function(ctx) other_err = ctx:wait() end)
      local ok, err, dt = run_for(g, nil) -- nobody cancels ctx
      assert.is_nil(ok)
      assert.is_true(errors.is(err, rungroup.SHUTDOWN_ALL))
      assert.is_true(dt < 1)
    end)
    assert.equal(context.CANCELED, other_err)
  end)

  it("a group is a service: nested groups run under a parent", function()
    local inner_ran, http_stopped = false, false
    run(function()
      local inner = rungroup.new{ name = "internal" }
      inner:add(function(ctx) inner_ran = true; ctx:wait() end)
      local root = rungroup.new()
      root:add(function(ctx) ctx:wait(); http_stopped = true end, { name = "http" })
      assert.is_true(root:add(inner))
      local ok = run_for(root, 0.02)
      assert.is_true(ok)
    end)
    assert.is_true(inner_ran)
    assert.is_true(http_stopped)
  end)

  it("SHUTDOWN_ALL inside a nested group propagates to the parent by default", function()
    local http_err
    run(function()
      local inner = rungroup.new()
      inner:add(function() return nil, errors.wrap(rungroup.SHUTDOWN_ALL, "fatal") end)
      local root = rungroup.new()
      root:add(function(ctx) http_err = ctx:wait() end, { name = "http" })
      root:add(inner, { name = "internal" })
      local ok, err, dt = run_for(root, nil)
      assert.is_nil(ok)
      assert.is_true(errors.is(err, rungroup.SHUTDOWN_ALL))
      assert.is_true(dt < 1)
    end)
    assert.equal(context.CANCELED, http_err)
  end)

  it("isolate_shutdown absorbs a nested SHUTDOWN_ALL: only that group halts", function()
    local http_running_after, inner_runs = false, 0
    local evs, on_event = recorder()
    run(function()
      local inner = rungroup.new()
      inner:add(function() inner_runs = inner_runs + 1; return nil, errors.wrap(rungroup.SHUTDOWN_ALL, "fatal") end)
      local root = rungroup.new{ on_event = on_event }
      root:add(function(ctx)
        lowbit.sleep(0.05)
        http_running_after = ctx:err() == nil
        ctx:wait()
      end, { name = "http" })
      root:add(inner, { name = "internal", isolate_shutdown = true })
      local ok, err, dt = run_for(root, 0.1)
      assert.is_nil(ok)
      assert.is_true(dt >= 0.09, "root stopped early: " .. dt)
      assert.is_true(errors.is(err, rungroup.SHUTDOWN_ALL)) -- recorded as the halt's cause
    end)
    assert.is_true(http_running_after)
    assert.equal(1, inner_runs) -- halted, not restarted
    local halted = of_type(evs, rungroup.EVENT_SERVICE_HALTED)
    assert.equal(1, #halted)
    assert.equal("internal", halted[1].service)
  end)

  it("shutdown_timeout abandons a stuck service, records SHUTDOWN_TIMEOUT and emits an event", function()
    local evs, on_event = recorder()
    local release = lowbit.chan(0)
    local well_behaved_stopped = false
    run(function()
      local g = rungroup.new{ shutdown_timeout = 0.05, on_event = on_event }
      g:add(function() release:recv() end, { name = "legacy" }) -- ignores ctx
      g:add(function(ctx) ctx:wait(); well_behaved_stopped = true end, { name = "good" })
      local ok, err, dt = run_for(g, 0.02)
      assert.is_nil(ok)
      assert.is_true(dt >= 0.065 and dt < 1, "took " .. dt) -- 0.02 + 0.05, not forever
      assert.is_true(errors.is(err, rungroup.SHUTDOWN_TIMEOUT))
      assert.same({ "service legacy: shutdown timeout" }, (function()
        local t = {}
        for i, e in ipairs(errors.list(err)) do t[i] = tostring(e) end
        return t
      end)())
      release:close() -- let the abandoned task end so the loop can finish
    end)
    assert.is_true(well_behaved_stopped)
    local to = of_type(evs, rungroup.EVENT_SHUTDOWN_TIMEOUT)
    assert.equal(1, #to)
    assert.equal("legacy", to[1].service)
    -- the abandoned service returning later records and emits nothing more
    local stopped = of_type(evs, rungroup.EVENT_SERVICE_STOPPED)
    assert.equal(1, #stopped)
    assert.equal("good", stopped[1].service)
  end)

  it("the per-service and group shutdown timeouts race: the shorter wins", function()
    run(function()
      local release = lowbit.chan(0)
      local g = rungroup.new{ shutdown_timeout = 5 }
      g:add(function() release:recv() end, { shutdown_timeout = 0.03 })
      local _, err, dt = run_for(g, 0.01)
      assert.is_true(errors.is(err, rungroup.SHUTDOWN_TIMEOUT))
      assert.is_true(dt >= 0.035 and dt < 1, "service timeout: took " .. dt)

      local g2 = rungroup.new{ shutdown_timeout = 0.03 }
      g2:add(function() release:recv() end, { shutdown_timeout = 5 })
      local _, err2, dt2 = run_for(g2, 0.01)
      assert.is_true(errors.is(err2, rungroup.SHUTDOWN_TIMEOUT))
      assert.is_true(dt2 >= 0.035 and dt2 < 1, "group timeout: took " .. dt2)
      release:close()
    end)
  end)

  it("without a shutdown timeout, run waits for a slow service to finish", function()
    run(function()
      local g = rungroup.new()
      g:add(function(ctx) ctx:wait(); lowbit.sleep(0.05) end)
      local ok, err, dt = run_for(g, 0.01)
      assert.is_true(ok, tostring(err))
      assert.is_true(dt >= 0.055, "took " .. dt)
    end)
  end)

  it("events go to the service's handler first, then the group's, with their fields", function()
    local log = {}
    run(function()
      local g = rungroup.new{ on_event = function(e) log[#log + 1] = "group:" .. e.type end }
      local n = 0
      g:add(function() n = n + 1; if n == 1 then return nil, BOOM end end, {
        name = "svc",
        restart = rungroup.ON_FAILURE,
        backoff = function() return 0.001 end,
        on_event = function(e)
          log[#log + 1] = "svc:" .. e.type
          assert.equal("svc", e.service)
          if e.type == rungroup.EVENT_SERVICE_RESTARTING then
            assert.equal(1, e.attempt)
            assert.equal(0.001, e.delay)
            assert.equal(BOOM, e.err)
          end
        end,
      })
      run_for(g, nil)
    end)
    assert.same({
      "svc:service_started", "group:service_started",
      "svc:service_restarting", "group:service_restarting",
      "svc:service_started", "group:service_started",
      "svc:service_halted", "group:service_halted",
    }, log)
  end)

  it("an event handler that raises is reported and supervision goes on", function()
    local saved, reported = lowbit.on_error, nil
    lowbit.on_error = function(err) reported = err end
    local runs = 0
    run(function()
      local g = rungroup.new{ on_event = function() error("handler bug") end }
      g:add(function() runs = runs + 1; if runs < 2 then return nil, BOOM end end,
        { restart = rungroup.ON_FAILURE, backoff = function() return 0 end })
      assert.is_true(run_for(g, nil))
    end)
    lowbit.on_error = saved
    assert.equal(2, runs)
    assert.matches("handler bug", reported)
  end)

  it("a backoff returning a non-number is recorded as the service's failure, not a hang", function()
    run(function()
      local g = rungroup.new()
      g:add(function() return nil, BOOM end, { backoff = function() return "soon" end })
      local ok, err, dt = run_for(g, nil)
      assert.is_nil(ok)
      assert.matches("backoff of service service#1 returned soon", tostring(err))
      assert.is_true(dt < 1)
    end)
  end)

  it("a ctx cancelled before run starts no service and returns at once", function()
    local started = false
    run(function()
      local ctx, cancel = context.with_cancel(bg)
      cancel()
      local g = rungroup.new()
      g:add(function() started = true end)
      assert.is_nil(g:run(ctx))
    end)
    assert.is_false(started)
  end)

  it("interval_service runs fn at once, then on every tick, until ctx ends", function()
    local times = {}
    run(function()
      local g = rungroup.new()
      local t0 = lowbit.now()
      g:add(rungroup.interval_service(0.03, function(ctx)
        assert.is_nil(ctx:err())
        times[#times + 1] = lowbit.now() - t0
      end), { restart = rungroup.ON_FAILURE })
      assert.is_true(run_for(g, 0.1))
    end)
    assert.is_true(times[1] < 0.02, "first call at " .. times[1])
    assert.is_true(#times >= 3 and #times <= 5, "calls " .. #times)
    for i = 2, #times do assert.is_true(times[i] - times[i - 1] >= 0.025) end
  end)

  it("interval_service returns fn's error for the restart policy", function()
    local calls = 0
    run(function()
      local g = rungroup.new()
      g:add(rungroup.interval_service(0.01, function()
        calls = calls + 1
        if calls == 2 then return nil, BOOM end
      end), { restart = rungroup.NEVER, name = "tick" })
      local ok, err = run_for(g, nil)
      assert.is_nil(ok)
      assert.is_true(errors.is(err, BOOM))
    end)
    assert.equal(2, calls)
  end)

  it("add after run returns nil, ALREADY_RUNNING; so does a second concurrent run", function()
    run(function()
      local g = rungroup.new()
      g:add(function(ctx) ctx:wait() end)
      local ctx, cancel = context.with_cancel(bg)
      local add_res, run_res = {}, {}
      lowbit.go(function()
        add_res = { g:add(function() end) }
        run_res = { g:run(bg) }
        cancel()
      end)
      assert.is_nil(g:run(ctx))
      assert.same({ nil, rungroup.ALREADY_RUNNING }, add_res)
      assert.same({ rungroup.ALREADY_RUNNING }, run_res)
      assert.same({ nil, rungroup.ALREADY_RUNNING }, { g:add(function() end) })
    end)
  end)

  it("rejects bad arguments, naming them", function()
    local g = rungroup.new()
    assert.has_error(function() rungroup.new(5) end, "bad argument 'opts' to rungroup.new: table expected, got number")
    assert.has_error(function() rungroup.new{ shutdown_timeout = -1 } end,
      "bad argument 'opts.shutdown_timeout' to rungroup.new: non-negative number (seconds) expected, got -1")
    assert.has_error(function() rungroup.new{ on_event = "x" } end,
      "bad argument 'opts.on_event' to rungroup.new: function expected, got string")
    assert.has_error(function() g:add(42) end,
      "bad argument 'svc' to rungroup.add: function or table with run(self, ctx) expected, got number")
    assert.has_error(function() g:add({}) end,
      "bad argument 'svc' to rungroup.add: function or table with run(self, ctx) expected, got table")
    assert.has_error(function() g:add(print, { restrat = rungroup.NEVER }) end,
      "bad argument 'opts' to rungroup.add: unknown option 'restrat'")
    assert.has_error(function() g:add(print, { restart = "sometimes" }) end,
      "bad argument 'opts.restart' to rungroup.add: rungroup.ALWAYS, ON_FAILURE or NEVER expected, got sometimes")
    assert.has_error(function() g:add(print, { backoff = 1 }) end,
      "bad argument 'opts.backoff' to rungroup.add: function expected, got number")
    assert.has_error(function() g:add(print, { name = 1 }) end,
      "bad argument 'opts.name' to rungroup.add: string expected, got number")
    assert.has_error(function() g:add(print, { isolate_shutdown = "yes" }) end,
      "bad argument 'opts.isolate_shutdown' to rungroup.add: boolean expected, got string")
    assert.has_error(function() g:run(nil) end, "bad argument 'ctx' to rungroup.run: context expected, got nil")
    assert.has_error(function() rungroup.interval_service(0, print) end,
      "bad argument 'seconds' to rungroup.interval_service: positive number expected, got 0")
    assert.has_error(function() rungroup.interval_service(1, nil) end,
      "bad argument 'fn' to rungroup.interval_service: function expected, got nil")
    -- the error points at the caller's line
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() g:add(print, { restart = 1 }) end)
    assert.is_false(ok)
    assert.matches("rungroup_spec.lua:" .. line .. ":", err, 1, true)
    line = debug.getinfo(1, "l").currentline + 1
    ok, err = pcall(function() g:add(print, { backoff = 1 }) end)
    assert.matches("rungroup_spec.lua:" .. line .. ":", err, 1, true)
  end)

  it("sentinels are errors.new values; policies are distinct", function()
    for _, k in ipairs({ "DO_NOT_RESTART", "SHUTDOWN_ALL", "RESTART_LIMIT_EXCEEDED", "SHUTDOWN_TIMEOUT",
                         "ALREADY_RUNNING", "SERVICE_RAISED" }) do
      assert.is_true(errors.is_error(rungroup[k]), k)
    end
    assert.are_not.equal(rungroup.ALWAYS, rungroup.ON_FAILURE)
    assert.are_not.equal(rungroup.ON_FAILURE, rungroup.NEVER)
  end)
end)
