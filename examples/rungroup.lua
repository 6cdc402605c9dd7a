-- rungroup: three services under one supervisor; the example stops itself
-- after 1 s (or at Ctrl-C, which cancels the root context).
--
--   build/bin/lowbit examples/rungroup.lua
--
-- "ticker" runs every 0.2 s; "flaky" fails twice and is restarted with
-- backoff; "legacy" ignores cancellation and is abandoned after its
-- shutdown timeout. Events are printed as they happen.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local retry = require "lowbit.retry"
local rungroup = require "lowbit.rungroup"

return function(root)
  local t0 = lowbit.now()
  local function log(fmt, ...) print(("[%4.2f] " .. fmt):format(lowbit.now() - t0, ...)) end

  local g = rungroup.new{
    shutdown_timeout = 0.5,
    on_event = function(e)
      if e.type == rungroup.EVENT_SERVICE_STARTED then return end
      log("event %-18s %-7s attempt=%s delay=%s err=%s", e.type, e.service, tostring(e.attempt),
        e.delay and ("%.3f"):format(e.delay) or "-", e.err and tostring(e.err):match("^[^\n]*") or "-")
    end,
  }

  g:add(rungroup.interval_service(0.2, function(ctx) log("tick") end), { name = "ticker" })

  local runs = 0
  g:add(function(ctx)
    runs = runs + 1
    if runs <= 2 then return nil, errors.new("connection refused") end
    log("flaky: connected on run %d", runs)
    ctx:wait()
  end, { name = "flaky", restart = rungroup.ON_FAILURE, backoff = retry.exponential(0.1, 1) })

  local release = lowbit.chan(0)
  g:add(function() release:recv() end, { name = "legacy", shutdown_timeout = 0.1 })

  local ctx, cancel = context.with_timeout(root, 1)
  local err = g:run(ctx)
  cancel()
  log("run returned: %s", err and tostring(err) or "ok")
  release:close() -- let the abandoned task end (the process would exit anyway: it is detached)
end
