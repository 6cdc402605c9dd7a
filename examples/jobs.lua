-- backstage: a queue, a schedule and a graceful drain. Stops itself after
-- 1.2 s (or at Ctrl-C, which cancels the root context).
--
--   build/bin/lowbit examples/jobs.lua
--
-- "emails" is a memory queue of 2 workers: three welcome emails, one of
-- which fails twice before it goes through (retries = 3, retry_delay =
-- 0.1). "refresh-cache" fires every 0.3 s in its own task; "report" is
-- dispatched onto the "reports" queue at each fire, so that queue's single
-- worker bounds how many run at once.
--
-- "billing" is a durable queue on Redis (bs.redis_store): its jobs name a
-- handler (sv:handle) and survive a crashed worker (at-least-once). Redis is
-- at `build/bin/lowbit examples/jobs.lua host:port` (or $LOWBIT_REDIS, or
-- 127.0.0.1:6379); when nothing answers there and redis-server is installed,
-- the example starts a private one (--save '' --appendonly no) and stops it
-- at the end; without redis-server it says so and runs the rest.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local bs = require "lowbit.backstage"

-- The Redis address: arg[1], $LOWBIT_REDIS, 127.0.0.1:6379, or a private
-- redis-server on a free port. Returns addr, stop (or nil, reason).
local function find_redis()
  local redis = require "lowbit.redis"
  local addr = (arg and arg[1]) or os.getenv("LOWBIT_REDIS") or "127.0.0.1:6379"
  local c = redis.connect{ addr = addr, connect_timeout = 1 }
  if c then c:close(); return addr, nil end
  local p = io.popen("command -v redis-server")
  local found = p:read("*a"):match("%S")
  p:close()
  if not found then
    return nil, ("no redis at %s and redis-server is not installed (apt-get install redis-server)"):format(addr)
  end
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  math.randomseed(os.time())
  for _ = 1, 5 do
    local port = math.random(20000, 32000)
    p = io.popen(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s >/dev/null 2>&1 & echo $!")
      :format(port, dir))
    local pid = tonumber(p:read("*a"))
    p:close()
    for _ = 1, 50 do
      lowbit.sleep(0.02)
      c = redis.connect{ addr = "127.0.0.1:" .. port, connect_timeout = 1 }
      if c then
        c:close()
        return "127.0.0.1:" .. port, function() os.execute("kill " .. pid .. " 2>/dev/null; rm -rf " .. dir) end
      end
    end
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
  end
  return nil, "could not start redis-server"
end

return function(root)
  local t0 = lowbit.now()
  local function log(fmt, ...) print(("[%4.2f] " .. fmt):format(lowbit.now() - t0, ...)) end

  local sv = bs.new("example", {
    drain_timeout = 2,
    logger = false, -- events are printed below; the default logs info and up to stderr
    on_event = function(ev)
      if ev.type == "job_retry" or ev.type == "job_failed" or ev.type:find("^drain") then
        local detail = ev.attempt and ("attempt=%d err=%s"):format(ev.attempt, tostring(ev.err)) or ""
        log("event %-12s %s %s", ev.type, ev.name or "", detail)
      end
    end,
  })
  sv:register_queue("emails", { workers = 2, buffer = 10 })
  sv:register_queue("reports", { workers = 1, buffer = 0 })

  local tries = {}
  local function send_welcome(ctx, job)
    local to = job.payload.to
    tries[to] = (tries[to] or 0) + 1
    if to == "grace" and tries[to] <= 2 then
      return nil, errors.new("smtp: 421 try again later")
    end
    lowbit.sleep(0.05) -- talking to the mail server
    log("welcome email sent to %s (attempt %d)", to, tries[to])
  end
  for _, to in ipairs({ "ada", "grace", "linus" }) do
    local ok, err = sv:dispatch("emails", { id = "welcome-" .. to, name = "send-welcome",
      retries = 3, retry_delay = 0.1, payload = { to = to }, run = send_welcome })
    if not ok then log("dispatch failed: %s", tostring(err)) end -- e.g. bs.QUEUE_FULL
  end

  -- Schedules: bs.every(s), bs.daily(h, m), bs.cron("*/5 * * * *", { tz = "Europe/Berlin" });
  -- any table with next(self, t) -> epoch seconds is a schedule too.
  sv:schedule(bs.every(0.3), { name = "refresh-cache", run = function() log("refresh-cache fired") end })
  sv:schedule_on_queue("reports", { next = function(_, t) return t + 0.5 end },
    { name = "report", run = function() log("report generated") end })
  sv:schedule(bs.must_cron("0 3 * * *"), { name = "nightly-cleanup", run = function() log("cleanup") end })

  -- A Redis-backed durable queue: jobs live in Redis, name their handler,
  -- and run at least once even if this process dies mid-job.
  local addr, stop_redis = find_redis()
  local billing
  if addr then
    billing = bs.redis_store{ addr = addr, queue = "example-billing-" .. tostring(os.time()),
                              visibility = 5, dedupe_ttl = 60 }
    sv:register_queue("billing", { workers = 2, store = billing })
    local charged = {}
    sv:handle("charge", function(ctx, job)
      charged[job.id] = (charged[job.id] or 0) + 1
      if job.id == "invoice-2" and charged[job.id] == 1 then
        return nil, errors.new("card network timeout") -- retried store-side after retry_delay
      end
      log("charged %s %d cents (attempt %d)", job.payload.customer, job.payload.cents, job.attempt)
    end)
    for i, cents in ipairs({ 1200, 4500 }) do
      assert(sv:dispatch("billing", { id = "invoice-" .. i, name = "charge", retries = 2, retry_delay = 0.2,
                                      payload = { customer = "cust-" .. i, cents = cents } }))
    end
    local ok, err = sv:dispatch("billing", { id = "invoice-1", name = "charge", payload = { customer = "cust-1", cents = 1200 } })
    log("dispatch invoice-1 again: %s", ok and "accepted" or tostring(err)) -- bs.DUPLICATE: dedupe by id
  else
    log("redis: skipped the durable queue (%s)", tostring(stop_redis))
  end

  local ctx, cancel = context.with_timeout(root, 1.2)
  local err = sv:serve(ctx)
  cancel()
  log("serve returned: %s", err and tostring(err) or "ok")
  if billing then billing:close() end
  if addr and stop_redis then stop_redis() end
end
