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
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local bs = require "lowbit.backstage"

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

  -- A Redis-backed durable queue goes here (bs.redis_store{ addr = ..., queue = "billing" }),
  -- added with the Redis store: jobs that survive a crashed worker.

  local ctx, cancel = context.with_timeout(root, 1.2)
  local err = sv:serve(ctx)
  cancel()
  log("serve returned: %s", err and tostring(err) or "ok")
end
