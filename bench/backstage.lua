-- backstage, memory store: dispatch + run of no-op jobs, logging off.
--   build/bin/lowbit bench/backstage.lua [N]
-- A producer task dispatches until the queue is full (QUEUE_FULL, never
-- waiting), yields to let the workers drain the buffer, and repeats; the
-- figure is jobs dispatched and run per second, end to end.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local bs = require "lowbit.backstage"
local R = dofile("bench/report.lua").suite("backstage_memory")

local N = tonumber(arg and arg[1]) or 4000000

local function bench(label, workers, buffer, n, on_event)
  local done = 0
  local function noop() done = done + 1 end
  local sv = bs.new("bench", { logger = false, on_event = on_event })
  sv:register_queue("q", { workers = workers, buffer = buffer })
  local ctx, cancel = context.with_cancel(context.background())
  local served = lowbit.chan(1)
  lowbit.go(function() served:send(sv:serve(ctx) or "ok") end)
  lowbit.yield() -- let the workers park in pop
  local job = { name = "noop", run = noop }
  local t0 = lowbit.now()
  local sent = 0
  while sent < n do
    if sv:dispatch("q", job) then sent = sent + 1 else lowbit.yield() end
  end
  while done < n do lowbit.yield() end
  local dt = lowbit.now() - t0
  cancel()
  assert(served:recv() == "ok")
  print(("%-44s %6.2f M jobs/s  (%.0f ns/job, %d in %.3f s)"):format(label, n / dt / 1e6, dt / n * 1e9, n, dt))
  if label ~= "warm-up" then
    R:line{ case = label, metric = "jobs_per_s", value = n / dt, unit = "jobs/s", better = "higher" }
  end
end

bench("warm-up", 1, 1024, 200000)
collectgarbage()
bench("workers=1 buffer=1024", 1, 1024, N)
collectgarbage()
bench("workers=8 buffer=1024", 8, 1024, N)
collectgarbage()
bench("workers=4 buffer=0 (handoff per job)", 4, 0, math.floor(N / 4))
collectgarbage()
local events = 0
bench("workers=1 buffer=1024, on_event set", 1, 1024, math.floor(N / 4), function() events = events + 1 end)
