local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local retry = require "lowbit.retry"
-- Virtual time: sleeps and timeouts are exact and cost no real time.
local run = require("lowbit").run_virtual

local bg = context.background()
local TRANSIENT = errors.new("transient")

-- fn that fails `fails` times with TRANSIENT, then returns `value`.
local function flaky(fails, value, log)
  return function(ctx, attempt)
    log[#log + 1] = attempt
    if attempt <= fails then return nil, errors.wrap(TRANSIENT, "attempt %d", attempt) end
    return value
  end
end

describe("lowbit.retry.run", function()
  it("returns fn's result at the first success, calling fn once", function()
    local log = {}
    run(function()
      local v, err = retry.run(bg, retry.always(), flaky(0, "ok", log))
      assert.equal("ok", v)
      assert.is_nil(err)
    end)
    assert.same({ 1 }, log)
  end)

  it("returns true when fn succeeds without a value", function()
    run(function()
      assert.same({ true }, { retry.run(bg, retry.never(), function() end) })
    end)
  end)

  it("retries failures, numbering attempts 1, 2, 3 and passing ctx", function()
    local log, seen_ctx = {}, {}
    run(function()
      local ctx = context.with_value(bg, "k", "v")
      local f = flaky(2, 42, log)
      local v = retry.run(ctx, retry.constant(0.001), function(c, a)
        seen_ctx[#seen_ctx + 1] = c:value("k")
        return f(c, a)
      end)
      assert.equal(42, v)
    end)
    assert.same({ 1, 2, 3 }, log)
    assert.same({ "v", "v", "v" }, seen_ctx)
  end)

  it("calls the policy with the number of attempts made and sleeps what it says", function()
    local asked = {}
    run(function()
      local policy = function(a) asked[#asked + 1] = a; return 0.02 end
      local t0 = lowbit.now()
      assert.equal("x", retry.run(bg, policy, flaky(2, "x", {})))
      local dt = lowbit.now() - t0
      assert.is_true(dt >= 0.039, "slept only " .. dt)
      assert.is_true(dt < 1, "slept " .. dt)
    end)
    assert.same({ 1, 2 }, asked)
  end)

  it("a negative delay stops with RETRY_LIMIT_EXCEEDED wrapping the last error", function()
    local log = {}
    run(function()
      local v, err = retry.run(bg, retry.max_attempts(3, retry.always()), flaky(10, "never", log))
      assert.is_nil(v)
      assert.is_true(errors.is(err, retry.RETRY_LIMIT_EXCEEDED))
      assert.is_true(errors.is(err, TRANSIENT))
      assert.is_false(errors.is(err, retry.DO_NOT_RETRY))
      assert.matches("retry limit exceeded", tostring(err))
      assert.matches("attempt 3: transient", tostring(err)) -- the last error, not the first
    end)
    assert.same({ 1, 2, 3 }, log)
  end)

  it("DO_NOT_RETRY stops at once and keeps the error chain", function()
    local NOT_FOUND = errors.new("not found")
    local calls = 0
    run(function()
      local v, err = retry.run(bg, retry.max_attempts(10, retry.always()), function()
        calls = calls + 1
        return nil, errors.wrap(errors.with_kind(retry.DO_NOT_RETRY, NOT_FOUND), "user %d", 7)
      end)
      assert.is_nil(v)
      assert.is_true(errors.is(err, retry.DO_NOT_RETRY))
      assert.is_true(errors.is(err, NOT_FOUND))
      assert.is_false(errors.is(err, retry.RETRY_LIMIT_EXCEEDED))
      assert.matches("^user 7: ", tostring(err))
    end)
    assert.equal(1, calls)
  end)

  it("DO_NOT_RETRY wrapped directly also stops (Go's fmt.Errorf %w style)", function()
    local calls = 0
    run(function()
      local _, err = retry.run(bg, retry.always(), function()
        calls = calls + 1
        return nil, errors.wrap(retry.DO_NOT_RETRY, "bad input")
      end)
      assert.equal("bad input: do not retry", tostring(err))
    end)
    assert.equal(1, calls)
  end)

  it("an error value returned alone is a failure: retried, and DO_NOT_RETRY alone stops", function()
    local log = {}
    run(function()
      local v, err = retry.run(bg, retry.always(), function(_, attempt)
        log[#log + 1] = attempt
        if attempt < 3 then return errors.wrap(TRANSIENT, "attempt %d", attempt) end
        return "done"
      end)
      assert.equal("done", v); assert.is_nil(err)
      local calls = 0
      v, err = retry.run(bg, retry.always(), function()
        calls = calls + 1
        return errors.wrap(retry.DO_NOT_RETRY, "bad input")
      end)
      assert.is_nil(v)
      assert.equal("bad input: do not retry", tostring(err))
      assert.equal(1, calls)
    end)
    assert.same({ 1, 2, 3 }, log)
  end)

  it("a ctx cancelled before the start returns its error without calling fn", function()
    local calls = 0
    run(function()
      local ctx, cancel = context.with_cancel(bg)
      cancel()
      local v, err = retry.run(ctx, retry.always(), function() calls = calls + 1; return 1 end)
      assert.is_nil(v)
      assert.equal(context.CANCELED, err)
    end)
    assert.equal(0, calls)
  end)

  it("a cancel during a sleep returns at once with ctx's error", function()
    local calls = 0
    run(function()
      local ctx, cancel = context.with_cancel(bg)
      lowbit.go(function() lowbit.sleep(0.02); cancel() end)
      local t0 = lowbit.now()
      local v, err = retry.run(ctx, retry.constant(30), function()
        calls = calls + 1
        return nil, TRANSIENT
      end)
      local dt = lowbit.now() - t0
      assert.is_nil(v)
      assert.equal(context.CANCELED, err)
      assert.is_true(dt < 1, "returned after " .. dt .. " s")
    end)
    assert.equal(1, calls)
    assert.equal(0, lowbit._timer_count())
  end)

  it("a ctx deadline bounds the whole loop whatever the policy", function()
    run(function()
      local ctx = context.with_timeout(bg, 0.05)
      local t0 = lowbit.now()
      local _, err = retry.run(ctx, retry.constant(0.01), function() return nil, TRANSIENT end)
      local dt = lowbit.now() - t0
      assert.equal(context.DEADLINE_EXCEEDED, err)
      assert.is_true(dt >= 0.045 and dt < 1, "took " .. dt)
    end)
  end)

  it("checks ctx before every attempt, also with a zero delay", function()
    local calls = 0
    run(function()
      local ctx, cancel = context.with_cancel(bg)
      local _, err = retry.run(ctx, retry.always(), function()
        calls = calls + 1
        if calls == 2 then cancel() end
        return nil, TRANSIENT
      end)
      assert.equal(context.CANCELED, err)
    end)
    assert.equal(2, calls)
  end)

  it("a zero delay lets other tasks run between attempts", function()
    local calls = 0
    run(function()
      local ctx, cancel = context.with_cancel(bg)
      lowbit.go(cancel) -- runs only if retry.run yields
      local _, err = retry.run(ctx, retry.always(), function()
        calls = calls + 1
        return nil, TRANSIENT
      end)
      assert.equal(context.CANCELED, err)
    end)
    assert.equal(1, calls)
  end)

  it("does not catch errors raised by fn", function()
    local calls = 0
    run(function()
      local ok, err = pcall(retry.run, bg, retry.always(), function()
        calls = calls + 1
        error("bug in fn")
      end)
      assert.is_false(ok)
      assert.matches("bug in fn", err)
    end)
    assert.equal(1, calls)
  end)

  it("works outside a task when no sleep is needed", function()
    assert.equal(5, retry.run(bg, retry.never(), function() return 5 end))
    local _, err = retry.run(bg, retry.never(), function() return nil, TRANSIENT end)
    assert.is_true(errors.is(err, retry.RETRY_LIMIT_EXCEEDED))
  end)

  it("rejects bad arguments, naming them", function()
    local f = function() end
    assert.has_error(function() retry.run(nil, retry.never(), f) end,
      "bad argument 'ctx' to retry.run: context expected, got nil")
    assert.has_error(function() retry.run(bg, 5, f) end,
      "bad argument 'policy' to retry.run: function expected, got number")
    assert.has_error(function() retry.run(bg, retry.never(), "f") end,
      "bad argument 'fn' to retry.run: function expected, got string")
  end)

  it("raises when a policy returns something other than a number", function()
    local ok, err = pcall(retry.run, bg, function() return "soon" end, function() return nil, TRANSIENT end)
    assert.is_false(ok)
    assert.matches("policy returned soon for attempt 1, number expected", err)
  end)
end)

describe("lowbit.retry policies", function()
  it("constant returns the same delay every time", function()
    local p = retry.constant(0.25)
    for a = 1, 5 do assert.equal(0.25, p(a)) end
  end)

  it("linear grows by step and stops growing at cap", function()
    local p = retry.linear(0.1, 0.35)
    assert.near(0.1, p(1), 1e-12)
    assert.near(0.2, p(2), 1e-12)
    assert.near(0.3, p(3), 1e-12)
    assert.equal(0.35, p(4))
    assert.equal(0.35, p(100))
    assert.equal(50, retry.linear(0.5)(100)) -- no cap
  end)

  it("always retries at once and never stops; never stops at once", function()
    assert.equal(0, retry.always()(1))
    assert.equal(0, retry.always()(1e6))
    assert.is_true(retry.never()(1) < 0)
  end)

  it("exponential has full jitter inside [0, min(cap, base*2^(attempt-1))]", function()
    local p = retry.exponential(0.1, 1)
    for a = 1, 12 do
      local hi = math.min(1, 0.1 * 2 ^ (a - 1))
      local distinct, seen = 0, {}
      for _ = 1, 200 do
        local d = p(a)
        assert.is_true(d >= 0 and d <= hi, ("attempt %d: %g not in [0, %g]"):format(a, d, hi))
        if not seen[d] then seen[d] = true; distinct = distinct + 1 end
      end
      assert.is_true(distinct > 100, "no jitter at attempt " .. a)
    end
    -- huge attempt numbers stay finite and capped
    local d = retry.exponential(1, 30)(1e9)
    assert.is_true(d >= 0 and d <= 30)
  end)

  it("exponential spreads over the whole range (mean near half the bound)", function()
    local p, sum, n = retry.exponential(1, 1000), 0, 4000
    for _ = 1, n do sum = sum + p(4) end -- bound 8
    local mean = sum / n
    assert.is_true(mean > 3.4 and mean < 4.6, "mean " .. mean)
  end)

  it("max_attempts allows exactly n attempts and defers delays to the inner policy", function()
    local p = retry.max_attempts(3, retry.constant(0.5))
    assert.equal(0.5, p(1))
    assert.equal(0.5, p(2))
    assert.is_true(p(3) < 0)
    assert.is_true(retry.max_attempts(1, retry.always())(1) < 0)
    local inner_stops = retry.max_attempts(10, retry.never())
    assert.is_true(inner_stops(1) < 0)
  end)

  it("rejects bad policy arguments", function()
    assert.has_error(function() retry.constant("1") end,
      "bad argument 'd' to retry.constant: number expected, got string")
    assert.has_error(function() retry.constant(-1) end,
      "bad argument 'd' to retry.constant: must be >= 0, got -1")
    assert.has_error(function() retry.linear(nil) end,
      "bad argument 'step' to retry.linear: number expected, got nil")
    assert.has_error(function() retry.linear(1, "x") end,
      "bad argument 'cap' to retry.linear: number expected, got string")
    assert.has_error(function() retry.exponential(0 / 0) end,
      "bad argument 'base' to retry.exponential: number expected, got number")
    assert.has_error(function() retry.max_attempts(0, retry.always()) end,
      "bad argument 'n' to retry.max_attempts: positive integer expected, got 0")
    assert.has_error(function() retry.max_attempts(1.5, retry.always()) end,
      "bad argument 'n' to retry.max_attempts: positive integer expected, got 1.5")
    assert.has_error(function() retry.max_attempts(2, nil) end,
      "bad argument 'policy' to retry.max_attempts: function expected, got nil")
  end)

  it("sentinels are distinct errors.new values", function()
    assert.is_true(errors.is_error(retry.DO_NOT_RETRY))
    assert.is_true(errors.is_error(retry.RETRY_LIMIT_EXCEEDED))
    assert.is_false(errors.is(retry.DO_NOT_RETRY, retry.RETRY_LIMIT_EXCEEDED))
  end)
end)

-- One rule for the family (retry.run's fn, topic handlers, rungroup services
-- and interval_service fns): `nil, err` (err anything but nil or a boolean)
-- and an errors value returned alone fail; everything else succeeds.
describe("the callback rule shared by retry, topic and rungroup", function()
  local topic = require "lowbit.topic"
  local rungroup = require "lowbit.rungroup"
  local E = errors.new("e")
  local WRAPPED = errors.wrap(E, "ctx")
  local JOINED = errors.join(E, errors.new("f"))
  local PLAIN = {}
  -- { name, results, failure (the error it reports) or nil }
  local shapes = {
    { "nothing", {}, nil },
    { "true", { true }, nil },
    { "false", { false }, nil },
    { "a string", { "ok" }, nil },
    { "a number", { 42 }, nil },
    { "a plain table", { PLAIN }, nil },
    { "nil, false", { nil, false }, nil },
    { "value, true", { "v", true }, nil },
    { "an error value alone", { E }, E },
    { "a wrapped error alone", { WRAPPED }, WRAPPED },
    { "a joined error alone", { JOINED }, JOINED },
    { "nil, err", { nil, E }, E },
    { "nil, a string", { nil, "msg" }, "msg" },
    { "value, err", { "partial", E }, E },
  }
  local function returning(res) return function() return unpack(res, 1, 2) end end

  for _, s in ipairs(shapes) do
    local name, res, want = s[1], s[2], s[3]
    local verdict = want ~= nil and "fails" or "succeeds"

    it(("retry.run: %s %s"):format(name, verdict), function()
      run(function()
        local calls = 0
        local ret = returning(res)
        local v, err = retry.run(bg, retry.max_attempts(2, retry.always()), function()
          calls = calls + 1
          return ret()
        end)
        if want ~= nil then
          assert.equal(2, calls)
          assert.is_nil(v)
          assert.is_true(errors.is(err, retry.RETRY_LIMIT_EXCEEDED))
          assert.is_true(rawequal(want, errors.unwrap(err)) or errors.is(err, want))
        else
          assert.equal(1, calls)
          assert.is_nil(err)
          if res[1] == nil then assert.is_true(v) else assert.equal(res[1], v) end
        end
      end)
    end)

    it(("topic handler: %s %s (also under with_retry)"):format(name, verdict), function()
      run(function()
        local t = topic.new()
        local calls = 0
        local ret = returning(res)
        t:subscribe(function() calls = calls + 1; return ret() end)
        local err = t:publish(bg, "ev")
        if want ~= nil then
          assert.is_true(rawequal(want, errors.list(err)[1]))
        else
          assert.is_nil(err)
        end
        local u = topic.new()
        local retried = 0
        u:subscribe(function() retried = retried + 1; return ret() end, u:with_retry(1))
        err = u:publish(bg, "ev")
        assert.equal(want ~= nil and 2 or 1, retried)
        assert.equal(want ~= nil, err ~= nil)
      end)
    end)

    it(("rungroup service and interval_service fn: %s %s"):format(name, verdict), function()
      run(function()
        local g = rungroup.new()
        local ret = returning(res)
        g:add(function() return ret() end, { restart = rungroup.NEVER, name = "svc" })
        local err = g:run(bg) -- the service ends on its own
        if want ~= nil then
          assert.is_true(rawequal(want, errors.unwrap(errors.list(err)[1])))
        else
          assert.is_nil(err)
        end
        local g2 = rungroup.new()
        local ticks = 0
        g2:add(rungroup.interval_service(1, function() ticks = ticks + 1; return ret() end),
          { restart = rungroup.NEVER, name = "tick" })
        local ctx, cancel = context.with_timeout(bg, 2.5)
        err = g2:run(ctx)
        cancel()
        if want ~= nil then
          assert.equal(1, ticks)
          assert.is_true(rawequal(want, errors.unwrap(errors.list(err)[1])))
        else
          assert.equal(3, ticks) -- at 0, 1 and 2 s, then ctx ended
          assert.is_nil(err)
        end
      end)
    end)
  end
end)
