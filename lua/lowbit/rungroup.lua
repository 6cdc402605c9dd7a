-- lowbit.rungroup: supervise long-lived services, run them all with one
-- blocking call.
--
--   local g = rungroup.new{ shutdown_timeout = 15, on_event = function(e)
--     print(e.type, e.service, e.attempt, e.err)
--   end }
--   g:add(function(ctx) return server:serve(ctx) end, { name = "http" })
--   g:add(worker, { restart = rungroup.ON_FAILURE, backoff = retry.exponential(0.1, 30) })
--   g:add(rungroup.interval_service(30, refresh_cache), { name = "cache-refresh" })
--   local err = g:run(ctx)       -- until ctx ends (or every service is done)
--
-- A service is a function(ctx) or a table with run(self, ctx) (and an
-- optional `name`). It blocks until its work is done or ctx is cancelled,
-- then returns: `nil, err` (err anything but nil or a boolean) or an error
-- value (lowbit.errors) alone is a failure; anything else (nothing, a
-- boolean, any other value) is a clean exit, the same rule as retry.run's
-- fn and topic's handlers. An error it raises is caught, with its
-- traceback, and treated as a failure (SERVICE_RAISED, also matching the
-- raised value when that was an error value).
--
-- Each service runs in its own task (lowbit.go) with its own ctx, a child
-- of the group's (context.with_cancel). After every exit the service's
-- restart policy decides:
--   ALWAYS (default)  restart, whatever the exit
--   ON_FAILURE        restart after a failure; a clean exit ends the service
--   NEVER             run once; a failure is recorded
-- Restarts wait backoff(attempt) seconds (default 0.05); a negative delay
-- gives up and records RESTART_LIMIT_EXCEEDED (wrapping the last error). A
-- run that lasted at least stability_window seconds resets attempt to 0
-- first. Whatever the policy, an error matching DO_NOT_RESTART ends the
-- service (recorded), and one matching SHUTDOWN_ALL ends it and shuts the
-- whole group down (recorded; it propagates to a parent group, unless the
-- group was added there with isolate_shutdown, where it only ends this one).
--
-- g:run(ctx) returns when ctx is cancelled (or SHUTDOWN_ALL fired) and every
-- service has returned, or when every service has ended on its own. It
-- returns nil, or the joined terminal errors. During shutdown, a service
-- gets min(group shutdown_timeout, its own shutdown_timeout) seconds; past
-- that it is abandoned: SHUTDOWN_TIMEOUT is recorded, a shutdown_timeout
-- event emitted, and run stops waiting for it. Its task is not killed (like
-- an abandoned goroutine it runs on if woken) but detached: lowbit.run and
-- the host no longer wait for it, so the process can exit.
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"

local M = {}

local type, error, getmetatable, setmetatable, tostring, pairs, ipairs, xpcall =
  type, error, getmetatable, setmetatable, tostring, pairs, ipairs, xpcall
local traceback = debug.traceback
local unpack = unpack or table.unpack
local now = lowbit.now

M.ALWAYS = "always"
M.ON_FAILURE = "on_failure"
M.NEVER = "never"

--- Returned by a service (wrapped or not): end this service for good.
M.DO_NOT_RESTART = errors.new("do not restart")
--- Returned by a service: shut the whole group down.
M.SHUTDOWN_ALL = errors.new("shutdown all")
--- Recorded when backoff returns a negative delay.
M.RESTART_LIMIT_EXCEEDED = errors.new("restart limit exceeded")
--- Recorded for a service abandoned after its shutdown timeout.
M.SHUTDOWN_TIMEOUT = errors.new("shutdown timeout")
--- g:add after g:run, or g:run while it runs.
M.ALREADY_RUNNING = errors.new("group already running")
--- A service raised an error (the error's text has the traceback).
M.SERVICE_RAISED = errors.new("service raised an error")

-- Event types (e.type). Events are tables { type, service (name), attempt,
-- delay, err }.
M.EVENT_SERVICE_STARTED = "service_started"       -- attempt (0 first run)
M.EVENT_SERVICE_RESTARTING = "service_restarting" -- attempt, delay, err
M.EVENT_SERVICE_HALTED = "service_halted"         -- ended for good while the group runs; err
M.EVENT_SERVICE_STOPPED = "service_stopped"       -- returned during shutdown; err
M.EVENT_SHUTDOWN_TIMEOUT = "shutdown_timeout"     -- abandoned during shutdown

local DEFAULT_BACKOFF_DELAY = 0.05
local function default_backoff() return DEFAULT_BACKOFF_DELAY end

local Group = {}
Group.__index = Group
M.Group = Group

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

-- Raises a misuse error at the caller of rungroup.<fname>; `depth` is how
-- many rungroup functions lie between (0: called by fname itself).
local function bad(fname, name, msg, depth)
  error("bad argument '" .. name .. "' to rungroup." .. fname .. ": " .. msg, 3 + (depth or 1))
end

local function opt_duration(opts, key, fname)
  local v = opts[key]
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
    bad(fname, "opts." .. key, "non-negative number (seconds) expected, got " .. tostring(v))
  end
  return v
end

local function opt_func(opts, key, fname)
  local v = opts[key]
  if v ~= nil and not callable(v) then bad(fname, "opts." .. key, "function expected, got " .. type(v)) end
  return v
end

local function check_keys(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then bad(fname, "opts", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then bad(fname, "opts", "unknown option '" .. tostring(k) .. "'") end
  end
  return opts
end

local NEW_OPTS = { name = true, shutdown_timeout = true, on_event = true }

--- A new group. opts: `shutdown_timeout` (seconds to wait for services
--- after shutdown starts; default: no limit), `on_event` (function(event),
--- called for every service event after the service's own handler), `name`
--- (the name a parent group uses for it).
function M.new(opts)
  opts = check_keys(opts, NEW_OPTS, "new")
  local name = opts.name
  if name ~= nil and type(name) ~= "string" then bad("new", "opts.name", "string expected, got " .. type(name), 0) end
  return setmetatable({
    name = name,
    shutdown_timeout = opt_duration(opts, "shutdown_timeout", "new"),
    on_event = opt_func(opts, "on_event", "new"),
    services = {},
    started = false,
    running = false,
  }, Group)
end

local ADD_OPTS = { name = true, restart = true, backoff = true, stability_window = true,
                   shutdown_timeout = true, on_event = true, isolate_shutdown = true }
local POLICIES = { [M.ALWAYS] = true, [M.ON_FAILURE] = true, [M.NEVER] = true }

--- Registers a service. opts: `name`, `restart` (ALWAYS, ON_FAILURE,
--- NEVER), `backoff` (function(attempt) -> seconds, negative gives up; a
--- retry policy fits), `stability_window` (seconds), `shutdown_timeout`
--- (seconds), `on_event` (function(event), before the group's),
--- `isolate_shutdown` (SHUTDOWN_ALL from this service ends only it).
--- Returns true, or nil, ALREADY_RUNNING once the group has been run.
function Group:add(svc, opts)
  if getmetatable(self) ~= Group then
    error("bad self to rungroup:add: group expected, got " .. type(self) .. " (use ':')", 2)
  end
  local run_fn
  if type(svc) == "table" and callable(svc.run) then
    run_fn = function(ctx) return svc:run(ctx) end
  elseif callable(svc) then
    run_fn = svc
  else
    error("bad argument 'svc' to rungroup.add: function or table with run(self, ctx) expected, got " .. type(svc), 2)
  end
  opts = check_keys(opts, ADD_OPTS, "add")
  local name = opts.name
  if name == nil and type(svc) == "table" and type(svc.name) == "string" then name = svc.name end
  if name ~= nil and type(name) ~= "string" then bad("add", "opts.name", "string expected, got " .. type(name), 0) end
  local policy = opts.restart or M.ALWAYS
  if not POLICIES[policy] then
    bad("add", "opts.restart", "rungroup.ALWAYS, ON_FAILURE or NEVER expected, got " .. tostring(policy), 0)
  end
  local iso = opts.isolate_shutdown
  if iso ~= nil and type(iso) ~= "boolean" then
    bad("add", "opts.isolate_shutdown", "boolean expected, got " .. type(iso), 0)
  end
  local rec = {
    run = run_fn,
    name = name or ("service#" .. (#self.services + 1)),
    policy = policy,
    backoff = opt_func(opts, "backoff", "add") or default_backoff,
    stability_window = opt_duration(opts, "stability_window", "add"),
    shutdown_timeout = opt_duration(opts, "shutdown_timeout", "add"),
    on_event = opt_func(opts, "on_event", "add"),
    isolate_shutdown = iso or false,
  }
  if self.started then return nil, M.ALREADY_RUNNING end
  self.services[#self.services + 1] = rec
  return true
end

---------------------------------------------------------------------------
-- Supervision
---------------------------------------------------------------------------

local function report(err)
  local ok = pcall(lowbit.on_error, err, traceback(tostring(err), 2))
  if not ok then require("lowbit.log").write("rungroup: " .. tostring(err)) end
end

-- Calls the service's handler, then the group's. A handler that raises is
-- reported through lowbit.on_error; supervision goes on.
local function emit(group, rec, ev)
  ev.service = rec.name
  local h = rec.on_event
  if h then
    local ok, err = xpcall(h, traceback, ev)
    if not ok then report(err) end
  end
  h = group.on_event
  if h then
    local ok, err = xpcall(h, traceback, ev)
    if not ok then report(err) end
  end
end

local function on_raise(raised)
  local tb = traceback("", 2):gsub("^\n", "")
  local e
  if errors.is_error(raised) then
    e = errors.with_kind(M.SERVICE_RAISED, errors.join(raised, errors.new(tb)))
  else
    e = errors.with_kind(M.SERVICE_RAISED, nil, "%s\n%s", tostring(raised), tb)
  end
  e.value, e.traceback = raised, tb
  return e
end

-- A service's result as an error or nil (see the top of the file).
local function outcome(ok, a, b)
  if not ok then return a end
  if b ~= nil and type(b) ~= "boolean" then return b end
  if errors.is_error(a) then return a end
  return nil
end

local function is_ctx_err(err)
  return errors.is(err, context.CANCELED) or errors.is(err, context.DEADLINE_EXCEEDED)
end

-- The restart loop of one service; runs in its own task. st is the state of
-- one g:run; once st.closed (run returned) nothing more is recorded.
local function supervise(group, st, rec, idx)
  local gctx = st.ctx
  local attempt = 0
  local function record(err)
    if not st.closed and err ~= nil then
      st.errs[#st.errs + 1] = errors.wrap(err, "service %s", rec.name)
    end
  end
  while true do
    if gctx:err() ~= nil then break end
    local sctx, scancel = context.with_cancel(gctx)
    local started = now()
    emit(group, rec, { type = M.EVENT_SERVICE_STARTED, attempt = attempt })
    local err = outcome(xpcall(rec.run, on_raise, sctx))
    scancel()
    if st.closed then return end -- abandoned: run has already returned
    if gctx:err() ~= nil then
      -- Shutting down: a service reporting the cancellation is a clean stop.
      if err ~= nil and not is_ctx_err(err) then record(err) end
      emit(group, rec, { type = M.EVENT_SERVICE_STOPPED, err = err })
      break
    end
    local shutdown_all = err ~= nil and errors.is(err, M.SHUTDOWN_ALL)
    if shutdown_all and not rec.isolate_shutdown then
      record(err)
      emit(group, rec, { type = M.EVENT_SERVICE_HALTED, err = err })
      st.cancel()
      break
    end
    if shutdown_all or (err ~= nil and errors.is(err, M.DO_NOT_RESTART)) then
      record(err)
      emit(group, rec, { type = M.EVENT_SERVICE_HALTED, err = err })
      break
    end
    if rec.policy == M.NEVER or (rec.policy == M.ON_FAILURE and err == nil) then
      record(err)
      emit(group, rec, { type = M.EVENT_SERVICE_HALTED, err = err })
      break
    end
    local window = rec.stability_window
    if window ~= nil and now() - started >= window then attempt = 0 end
    attempt = attempt + 1
    local delay = rec.backoff(attempt)
    if type(delay) ~= "number" or delay ~= delay then
      error("rungroup: backoff of service " .. rec.name .. " returned " .. tostring(delay) .. ", number expected", 0)
    end
    if delay < 0 then
      local e = errors.with_kind(M.RESTART_LIMIT_EXCEEDED, err)
      record(e)
      emit(group, rec, { type = M.EVENT_SERVICE_HALTED, err = e, attempt = attempt })
      break
    end
    emit(group, rec, { type = M.EVENT_SERVICE_RESTARTING, attempt = attempt, delay = delay, err = err })
    if not lowbit.sleep_ctx(gctx, delay) then
      emit(group, rec, { type = M.EVENT_SERVICE_STOPPED })
      break
    end
  end
end

local function supervisor_task(group, st, rec, idx)
  -- Anything raised here is a bug in a backoff or in rungroup itself: record
  -- it as the service's failure rather than leave run waiting forever.
  local ok, err = xpcall(supervise, traceback, group, st, rec, idx)
  if not ok and not st.closed then
    st.errs[#st.errs + 1] = errors.wrap(errors.new(tostring(err)), "service %s: supervisor failed", rec.name)
  end
  st.done:try_send(idx)
end

-- Waits for the next supervisor to finish, or until `deadline` (nil: no
-- limit), or (when watch_ctx) until the group ctx ends. Returns its index,
-- or nil, "timeout" / "ctx".
local function next_done(st, deadline, watch_ctx)
  local wctx, wcancel
  local cases = { st.done }
  if deadline then
    wctx, wcancel = context.with_deadline(context.background(), deadline)
    cases[#cases + 1] = wctx:done()
  end
  if watch_ctx then cases[#cases + 1] = st.ctx:done() end
  local i, v = lowbit.select(cases)
  if wcancel then wcancel() end
  if i == 1 then return v end
  if cases[i] == st.ctx:done() then return nil, "ctx" end
  return nil, "timeout"
end

--- Runs every service until ctx is cancelled (then shuts them down) or all
--- have ended. Returns nil, or the joined terminal errors (errors.list
--- gives them one by one), as Go's Run returns its error; ALREADY_RUNNING
--- when the group is running already. A group is a service: a parent
--- treats that returned error as this service's failure.
function Group:run(ctx)
  if getmetatable(self) ~= Group then
    error("bad self to rungroup:run: group expected, got " .. type(self) .. " (use ':')", 2)
  end
  if not context.is_context(ctx) then
    error("bad argument 'ctx' to rungroup.run: context expected, got " .. type(ctx), 2)
  end
  if self.running then return M.ALREADY_RUNNING end
  self.started, self.running = true, true
  local services = self.services
  local n = #services
  local gctx, gcancel = context.with_cancel(ctx)
  local st = { ctx = gctx, cancel = gcancel, errs = {}, closed = false, done = lowbit.chan(n) }
  local tasks = {}
  for i = 1, n do tasks[i] = lowbit.go(supervisor_task, self, st, services[i], i) end

  local finished, left = {}, n
  while left > 0 do
    local i = next_done(st, nil, true)
    if i == nil then break end
    finished[i] = true
    left = left - 1
  end

  if left > 0 then
    -- Shutdown: every service has its deadline, counted from now.
    local t0 = now()
    local deadlines = {}
    for i = 1, n do
      local a, b = self.shutdown_timeout, services[i].shutdown_timeout
      local d = a
      if b ~= nil and (d == nil or b < d) then d = b end
      deadlines[i] = d and (t0 + d) or nil
    end
    while left > 0 do
      local soonest
      for i = 1, n do
        local d = deadlines[i]
        if not finished[i] and d and (soonest == nil or d < soonest) then soonest = d end
      end
      local i = next_done(st, soonest, false)
      if i ~= nil then
        if not finished[i] then finished[i] = true; left = left - 1 end
      else
        local t = now()
        for k = 1, n do
          local d = deadlines[k]
          if not finished[k] and d and d <= t then
            finished[k] = true
            left = left - 1
            local rec = services[k]
            st.errs[#st.errs + 1] = errors.wrap(M.SHUTDOWN_TIMEOUT, "service %s", rec.name)
            lowbit.detach(tasks[k])
            emit(self, rec, { type = M.EVENT_SHUTDOWN_TIMEOUT, err = M.SHUTDOWN_TIMEOUT })
          end
        end
      end
    end
  end
  gcancel()
  st.closed = true
  self.running = false
  if #st.errs == 0 then return nil end
  return errors.join(unpack(st.errs))
end

---------------------------------------------------------------------------
-- Interval services
---------------------------------------------------------------------------

--- A service that calls fn(ctx) at once, then every `seconds` (ticks that
--- fall while fn runs are skipped). A failure of fn (`nil, err`, an error
--- value alone, or a raise) ends the service with it, for the restart policy to
--- handle; cancellation of ctx ends it cleanly.
function M.interval_service(seconds, fn)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds <= 0 then
    error("bad argument 'seconds' to rungroup.interval_service: positive number expected, got " .. tostring(seconds), 2)
  end
  if not callable(fn) then
    error("bad argument 'fn' to rungroup.interval_service: function expected, got " .. type(fn), 2)
  end
  return {
    run = function(_, ctx)
      local next_tick = now()
      while true do
        if ctx:err() ~= nil then return end
        local err = outcome(true, fn(ctx))
        if err ~= nil then return nil, err end
        next_tick = next_tick + seconds
        local t = now()
        if next_tick <= t then -- fn overran: skip to the next tick to come
          next_tick = next_tick + (math.floor((t - next_tick) / seconds) + 1) * seconds
        end
        if not lowbit.sleep_ctx(ctx, next_tick - t) then return end
      end
    end,
  }
end

return M
