-- A worker process for spec/backstage_redis_spec.lua (run by build/bin/lowbit):
--   lowbit spec/backstage_redis_worker.lua MODE ADDR QUEUE ARG...
-- MODE jobs: serves QUEUE (visibility, workers, total, sleep) until the hash
--   lbtest:done holds `total` ids; each run records HINCRBY lbtest:done id,
--   the stalls it saw (lbtest:stalls) and its start (SADD lbtest:started);
--   with sleep > 0 each job sleeps that long, every 50th one 30 s.
-- MODE sched: every(1) schedule with the store as coordinator for `secs`
--   seconds; each fire RPUSHes "tick pid" to lbtest:fires.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local redis = require "lowbit.redis"
local bs = require "lowbit.backstage"

local mode, addr, queue = arg[1], arg[2], arg[3]

local function rcall(...)
  local c = assert(redis.connect{ addr = addr, timeout = 10 })
  local v, err = c:call(...)
  c:release()
  return v, err
end

local ctx, cancel = context.with_cancel(context.background())
if mode == "jobs" then
  local vis, workers, total, nap = tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6]), tonumber(arg[7])
  local store = bs.redis_store{ addr = addr, queue = queue, visibility = vis }
  local sv = bs.new("w", { logger = false })
  sv:register_queue(queue, { workers = workers, store = store })
  sv:handle("rec", function(_, job)
    rcall("SADD", "lbtest:started", job.id)
    if job.stalls > 0 then rcall("HSET", "lbtest:stalls", job.id, job.stalls) end
    if nap > 0 then
      -- The first process (nap > 0) also holds every 50th job for long, so
      -- some jobs are surely mid-run when it is killed.
      local n = tonumber(tostring(job.id):match("(%d+)$"))
      lowbit.sleep((job.stalls == 0 and n and n % 50 == 0) and 30 or nap)
    end
    rcall("HINCRBY", "lbtest:done", job.id, 1)
  end)
  lowbit.go(function()
    while true do
      lowbit.sleep(0.05)
      if rcall("HLEN", "lbtest:done") >= total then break end
    end
    cancel()
  end)
  print("serving")
  io.stdout:flush()
  assert(sv:serve(ctx) == nil)
  store:close()
elseif mode == "sched" then
  local secs = tonumber(arg[4])
  local store = bs.redis_store{ addr = addr, queue = queue }
  local sv = bs.new("cluster", { logger = false, coordinator = store })
  sv:schedule(bs.every(1), { name = "beat", run = function()
    rcall("RPUSH", "lbtest:fires", ("%.3f"):format(bs.system_clock.now()))
  end })
  lowbit.go(function() lowbit.sleep(secs); cancel() end)
  assert(sv:serve(ctx) == nil)
  store:close()
end
