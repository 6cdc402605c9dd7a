-- Background jobs: a "count" job of N steps (one every STEP seconds) run by
-- lowbit.backstage, its progress published on the feed. Jobs live in memory,
-- or in Redis (bs.redis_store: any process may run them) when opts.redis
-- is set. What every job is doing is learnt from the feed, so any process
-- can answer GET /api/jobs/{id}.
--
--   local jobs = require("showcase.jobs").new{ feed = feed, redis = nil }
--   local id, err = jobs.start(ctx, 5, limit.client(r))  -- after check.steps
--   jobs.get(id)  --> { id, steps, step, progress = 0..100, state = "waiting" | "active" | "completed" | "failed" }
--   group:add(jobs.serve, { name = "jobs" })
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local bs = require "lowbit.backstage"
local limit = require "showcase.limit"

local STEP = tonumber(os.getenv("SHOWCASE_STEP_SECONDS")) or 0.3
local KEEP = 100 -- jobs remembered for the page and the API
-- Jobs one client (one address) may start: a burst, then one a second.
-- Every start is an event on everyone's screen and an entry in the job
-- list: one client must not fill them (nor the queue) alone.
local START_RATE, START_BURST = 1, 10

-- Job ids: random per process, then a counter.
local function id_maker()
  local f = assert(io.open("/dev/urandom", "rb"))
  local prefix = f:read(4):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  f:close()
  local n = 0
  return function() n = n + 1; return prefix .. "-" .. n end
end

local M = {}

M.TOO_FAST = errors.new("showcase: too many jobs from this client; wait a moment")

--- opts: feed, redis ("host:port" or nil).
function M.new(opts)
  local feed = opts.feed
  local new_id = id_maker()
  local known, order = {}, {} -- id -> job state; ids oldest first

  local function remember(st)
    if not known[st.id] then
      order[#order + 1] = st.id
      if #order > KEEP then known[table.remove(order, 1)] = nil end
    end
    known[st.id] = st
  end
  feed:subscribe(function(ev)
    if ev.name:find("^job%.") and type(ev.value.id) == "string" then remember(ev.value) end
  end)

  local function report(ctx, name, id, steps, step, state, err)
    return feed:publish(ctx, name, { id = id, steps = steps, step = step, state = state,
      progress = math.floor(step * 100 / steps), error = err })
  end

  local sv = bs.new("showcase", {
    drain_timeout = 10,
    on_event = function(ev) -- a job that failed or was cut by shutdown
      if ev.type == "job_failed" or ev.type == "job_panic" or ev.type == "job_canceled" then
        local st = known[ev.id] or { steps = 1, step = 0 }
        lowbit.go(report, context.background(), "job.failed", ev.id, st.steps, st.step, "failed",
          tostring(ev.err or ev.type))
      end
    end,
  })
  local store = opts.redis and bs.redis_store{ addr = opts.redis, queue = "showcase-jobs" }
  sv:register_queue("jobs", store and { workers = 4, store = store } or { workers = 4, buffer = 100 })

  sv:handle("count", function(ctx, job)
    local id, steps = job.id, job.payload.steps
    report(ctx, "job.progress", id, steps, 0, "active")
    for step = 1, steps do
      if not lowbit.sleep_ctx(ctx, STEP) then return nil, ctx:err() end -- shutdown
      if step < steps then report(ctx, "job.progress", id, steps, step, "active") end
    end
    report(ctx, "job.completed", id, steps, steps, "completed")
  end)

  local jobs = {}
  local starts_per_client = limit.new{ rate = START_RATE, burst = START_BURST }

  --- Queues a job of `steps` steps for `client` (limit.client(r)): its id,
  --- or nil, err (M.TOO_FAST, bs.QUEUE_FULL, Redis unreachable).
  function jobs.start(ctx, steps, client)
    if not starts_per_client:allow(client) then return nil, M.TOO_FAST end
    local id = new_id()
    remember{ id = id, steps = steps, step = 0, progress = 0, state = "waiting" }
    report(ctx, "job.queued", id, steps, 0, "waiting") -- before any progress it makes
    local ok, err = sv:dispatch("jobs", { id = id, name = "count", payload = { steps = steps } })
    if not ok then
      report(ctx, "job.failed", id, steps, 0, "failed", tostring(err))
      return nil, err
    end
    return id
  end

  function jobs.get(id) return known[id] end

  --- The jobs remembered, newest first.
  function jobs.list()
    local list = {}
    for i = #order, 1, -1 do list[#list + 1] = known[order[i]] end
    return list
  end

  --- The service: runs jobs until ctx ends, then lets running ones finish
  --- (they see ctx cancelled) for up to drain_timeout.
  function jobs.serve(ctx)
    local err = sv:serve(ctx)
    if store then store:close() end
    if err then return nil, err end
  end

  return jobs
end

return M
