-- lowbit.backstage's Redis store: N no-op jobs, one process.
--   dispatch: sv:dispatch with 200 in flight (200 tasks);
--   drain:    serve the queue with workers = W until all N are acked.
-- Medians of RUNS runs, next to BullMQ 6 measured by bench/backstage_bullmq.sh
-- on the same redis-server (when node and npm exist; BullMQ is installed
-- into a mktemp -d folder, never committed).
--   build/bin/lowbit bench/backstage_redis.lua [N] [W] [PORT] [RUNS]
-- Without PORT it starts a redis-server of its own (--save '' --appendonly
-- no) and stops it by pid; prints "skipped" when redis-server is missing.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local redis = require "lowbit.redis"
local bs = require "lowbit.backstage"
local rstore = require "lowbit.backstage.redis_store"
local R = dofile("bench/report.lua").suite("backstage_redis")

local N = tonumber(arg and arg[1]) or 50000
local W = tonumber(arg and arg[2]) or 100
local PORT = tonumber(arg and arg[3])
local RUNS = tonumber(arg and arg[4]) or 3
local INFLIGHT = 200

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return out
end

local srv
if not PORT then
  srv = dofile("bench/redis_server.lua")("backstage_redis")
  if not srv then return end
  PORT = srv.port
end
local addr = "127.0.0.1:" .. PORT

local function flush()
  local c = assert(redis.connect(addr))
  assert(c:call("FLUSHALL"))
  c:close()
end

local function one_run()
  flush()
  local store = rstore.new{ addr = addr, queue = "bench" }
  local sv = bs.new("bench", { logger = false })
  sv:register_queue("bench", { workers = W, store = store })
  sv:handle("noop", function() end)
  -- dispatch: 200 tasks, each dispatching its share back to back.
  local t0 = lowbit.now()
  local wg = lowbit.waitgroup()
  for k = 1, INFLIGHT do
    wg:add(1)
    lowbit.go(function()
      for i = k, N, INFLIGHT do
        local ok, err = sv:dispatch("bench", { name = "noop", payload = i })
        if not ok then error("dispatch: " .. tostring(err)) end
      end
      wg:done()
    end)
  end
  wg:wait()
  local tdisp = lowbit.now() - t0
  -- drain: count acks.
  local acked, done = 0, lowbit.chan(1)
  local ack = store.ack
  store.ack = function(s, job)
    local ok, err = ack(s, job)
    acked = acked + 1
    if acked == N then done:try_send(true) end
    return ok, err
  end
  local ctx, cancel = context.with_cancel(context.background())
  local served = lowbit.chan(1)
  t0 = lowbit.now()
  lowbit.go(function() served:send(sv:serve(ctx) or true) end)
  done:recv()
  local tdrain = lowbit.now() - t0
  cancel()
  served:recv()
  store:close()
  return N / tdisp, N / tdrain
end

local d, r = {}, {}
for i = 1, RUNS do
  d[i], r[i] = one_run()
end
table.sort(d); table.sort(r)
local dm, rm = d[math.ceil(RUNS / 2)], r[math.ceil(RUNS / 2)]
print(("lowbit redis store  N=%d  dispatch (%d in flight): %6.0f jobs/s   drain (workers=%d): %6.0f jobs/s   (medians of %d; runs: %s | %s)")
  :format(N, INFLIGHT, dm, W, rm, RUNS,
    table.concat((function() local o = {} for i, v in ipairs(d) do o[i] = ("%.0f"):format(v) end return o end)(), " "),
    table.concat((function() local o = {} for i, v in ipairs(r) do o[i] = ("%.0f"):format(v) end return o end)(), " ")))
R:line{ case = ("dispatch, %d in flight"):format(INFLIGHT), metric = "jobs_per_s", value = dm, unit = "jobs/s", better = "higher" }
R:line{ case = ("drain, concurrency %d"):format(W), metric = "jobs_per_s", value = rm, unit = "jobs/s", better = "higher" }
io.stdout:flush()

if os.getenv("LOWBIT_NO_BULLMQ") ~= "1" and arg and arg[5] ~= "nobullmq" then
  local here = (arg[0] or "bench/backstage_redis.lua"):match("^(.*)/[^/]*$") or "bench"
  if RUNS >= 1 and not sh("command -v node npm"):match("^%s*$") and N >= 10000 then
    io.write(sh(("sh %s/backstage_bullmq.sh %d %d %d %d 2>&1"):format(here, N, W, PORT, RUNS)))
  elseif N >= 10000 then
    print("bullmq: skipped (node/npm not installed)")
  end
end

if srv then srv.stop() end
