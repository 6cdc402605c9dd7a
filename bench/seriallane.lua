-- Cost of lowbit.seriallane:
--   * m:run on a free lane (uncontended), with a key object and a plain string
--   * m:run on a free lane again with 1,000,000 other lanes in the table
--   * cleanup (mark + sweep) of those 1,000,000 lanes
--   * m:run_multi with 2 keys
--   * N tasks taking turns on one key (each fn yields once), against the
--     same tasks on distinct keys: the difference is the hand-off
--   build/bin/lowbit bench/seriallane.lua [N]
-- (The Redis-backed lanes, lowbit.seriallane.redis, are measured by
-- bench/topic_redis.lua: acquire/release round trips and hand-offs.)
local lowbit = require "lowbit"
local context = require "lowbit.context"
local seriallane = require "lowbit.seriallane"
local R = dofile("bench/report.lua").suite("seriallane")

local N = tonumber(arg and arg[1]) or 5000000
local bg = context.background()
local sink = { 0 }
local function work() sink[1] = sink[1] + 1 end

-- Each case has its own copy of the loop (compiled from a string), so each
-- call site stays monomorphic, as a Go benchmark is its own function.
local LOOP_RUN = [[
local m, ctx, key, fn, n = ...
for i = 1, n do m:run(ctx, key, fn) end
]]
local LOOP_MULTI = [[
local m, ctx, keys, fn, n = ...
for i = 1, n do m:run_multi(ctx, keys, fn) end
]]

-- Times loop(n) after a warm-up run that lets the JIT settle.
local function timed(label, loop, n)
  loop(100000)
  collectgarbage()
  local t0 = lowbit.now()
  loop(n)
  local dt = lowbit.now() - t0
  print(("%-52s %7.1f ns/op  (%d in %.3f s)"):format(label, dt / n * 1e9, n, dt))
  R:line{ case = label, metric = "ns_per_op", value = dt / n * 1e9, unit = "ns", better = "lower" }
end

local function loop_of(src, label) return assert(load(src, "=bench/seriallane.lua:" .. label)) end

local function bench_run(label, m, key, n)
  local loop = loop_of(LOOP_RUN, label)
  timed(label, function(nn) return loop(m, bg, key, work, nn) end, n)
end

local function bench_multi(label, m, keys, n)
  local loop = loop_of(LOOP_MULTI, label)
  timed(label, function(nn) return loop(m, bg, keys, work, nn) end, n)
end

-- `tasks` tasks each call m:run `per` times; fn yields once inside, so the
-- other tasks queue on the lane and every release is a hand-off (release,
-- wake of the next waiter, its resume). With distinct keys nobody waits:
-- the difference is the cost of the hand-off.
local function bench_tasks(label, m, tasks, same_key, total)
  local per = math.floor(total / tasks)
  local wg = lowbit.waitgroup()
  local yield = lowbit.yield
  local function fn() yield() end
  local t0 = lowbit.now()
  for i = 1, tasks do
    local key = seriallane.namespace("hot", same_key and 0 or i)
    wg:add(1)
    lowbit.go(function()
      for _ = 1, per do m:run(bg, key, fn) end
      wg:done()
    end)
  end
  wg:wait()
  local dt = lowbit.now() - t0
  local ops = per * tasks
  print(("%-52s %7.1f ns/run  (%d in %.3f s)"):format(label, dt / ops * 1e9, ops, dt))
  R:line{ case = label, metric = "ns_per_op", value = dt / ops * 1e9, unit = "ns", better = "lower" }
end

do -- the host runs this file as the main task
  -- Cases that measure the hot path come first: later cases (parking,
  -- polymorphic keys) add side traces to the same code.
  local m = seriallane.new(600)
  bench_run("run, uncontended, key object", m, seriallane.namespace("stock", 42), N)
  bench_run("run, uncontended, plain string", m, "stock:42", N)

  -- A million lanes in the table.
  local big = seriallane.new(0)
  local t0 = lowbit.now()
  for i = 1, 1000000 do big:run(bg, "k" .. i, work) end
  local dt = lowbit.now() - t0
  print(("%-52s %7.1f ns/op  (count %d)"):format("run, 1,000,000 new keys (string concat included)", dt / 1e6 * 1e9, big:count()))
  R:line{ case = "run, 1,000,000 new keys (string concat included)", metric = "ns_per_op", value = dt / 1e6 * 1e9,
    unit = "ns", better = "lower" }
  bench_run("run, uncontended, key object, 1M lanes in table", big, seriallane.namespace("stock", 42), N)
  bench_run("run, uncontended, plain string, 1M lanes in table", big, "k500000", N)
  t0 = lowbit.now()
  local marked = big:mark_idle()
  local t1 = lowbit.now()
  local removed = big:sweep_marked()
  local t2 = lowbit.now()
  print(("%-52s %7.1f ms mark (%d), %.1f ms sweep (%d), count %d"):format(
    "cleanup of 1,000,001 idle lanes", (t1 - t0) * 1e3, marked, (t2 - t1) * 1e3, removed, big:count()))
  R:line{ case = "cleanup of 1,000,001 idle lanes", metric = "mark_ms", value = (t1 - t0) * 1e3, unit = "ms", better = "lower" }
  R:line{ case = "cleanup of 1,000,001 idle lanes", metric = "sweep_ms", value = (t2 - t1) * 1e3, unit = "ms", better = "lower" }

  bench_multi("run_multi, 2 keys, uncontended", m,
    { seriallane.namespace("stock", 1), seriallane.namespace("stock", 2) }, N / 5)

  local total = math.floor(N / 5)
  for _, tasks in ipairs({ 2, 100 }) do
    bench_tasks(("run, %d tasks, distinct keys (fn yields)"):format(tasks), m, tasks, false, total)
    bench_tasks(("run, contended: %d tasks on one key (fn yields)"):format(tasks), m, tasks, true, total)
  end
end
assert(sink[1] ~= 0)
