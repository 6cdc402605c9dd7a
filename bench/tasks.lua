-- Task spawn + finish cost, and channel ping-pong cost.
--   build/bin/lowbit bench/tasks.lua [N]
local lowbit = require "lowbit"
local N = tonumber(arg and arg[1]) or 200000
local R = dofile("bench/report.lua").suite("tasks")

local function timeit(label, n, unit, fn)
  collectgarbage()
  local t0 = lowbit.now()
  fn()
  local dt = lowbit.now() - t0
  print(("%-40s %8.0f ns/%s  (%d in %.3f s)"):format(label, dt / n * 1e9, unit, n, dt))
  R:line{ case = label:gsub("^%s+", ""), metric = "ns_per_" .. unit:gsub(" ", "_"), value = dt / n * 1e9, unit = "ns",
    better = "lower" }
end

local function spawn_batches(batch)
  return function()
    local wg = lowbit.waitgroup()
    local done = function() wg:done() end
    for _ = 1, N / batch do
      wg:add(batch)
      for _ = 1, batch do lowbit.go(done) end
      wg:wait()
    end
  end
end

timeit("task spawn+finish (batches of 100)", N, "task", spawn_batches(100))
timeit("task spawn+finish (all live at once)", N, "task", spawn_batches(N))
lowbit.trace_spawn_sites = false
timeit("  same, batches of 100, no spawn sites", N, "task", spawn_batches(100))
lowbit.trace_spawn_sites = true

timeit("unbuffered chan ping-pong", N, "round trip", function()
  local ping, pong = lowbit.chan(0), lowbit.chan(0)
  lowbit.go(function()
    for _ = 1, N do pong:send(ping:recv()) end
  end)
  for i = 1, N do ping:send(i); pong:recv() end
end)

timeit("buffered chan send+recv", N, "value", function()
  local ch = lowbit.chan(128)
  lowbit.go(function() for i = 1, N do ch:send(i) end end)
  for _ = 1, N do ch:recv() end
end)

timeit("sleep(0) yield round trip", N, "yield", function()
  for _ = 1, N do lowbit.sleep(0) end
end)

-- The timer heap (every deadline): add + cancel among 10,000 live timers
-- (a with_timeout context made and cancelled), and timers that fire.
local context = require "lowbit.context"
local live = {}
for i = 1, 10000 do
  local _, cancel = context.with_timeout(context.background(), 10 + (i * 7919 % 10000) / 1000)
  live[i] = cancel
end
timeit("with_timeout+cancel, 10,000 timers live", N, "context", function()
  local bg = context.background()
  for i = 1, N do
    local _, cancel = context.with_timeout(bg, 5 + (i * 104729 % 10000) / 1000)
    cancel()
  end
end)
for i = 1, #live do live[i]() end
timeit("timers fired (1,000 tasks x 20 sleeps)", 20000, "timer", function()
  local wg = lowbit.waitgroup()
  for i = 1, 1000 do
    wg:add(1)
    lowbit.go(function()
      for _ = 1, 20 do lowbit.sleep(0.0001 * (i % 7)) end
      wg:done()
    end)
  end
  wg:wait()
end)
