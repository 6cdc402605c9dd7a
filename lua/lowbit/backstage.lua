-- lowbit.backstage: named worker pools, non-blocking dispatch, retries,
-- schedules and a graceful drain (the seed's backstage package).
--
--   local bs = require "lowbit.backstage"
--   local sv = bs.new("myapp", { drain_timeout = 25, on_event = function(ev) ... end })
--   sv:register_queue("emails", { workers = 3, buffer = 100 })
--   local ok, err = sv:dispatch("emails", { id = "welcome-7", name = "send-welcome",
--     retries = 3, retry_delay = 5, run = function(ctx, job) return nil, err end })
--   if errors.is(err, bs.QUEUE_FULL) then ... end       -- never waits for room
--   sv:schedule(bs.every(900), { name = "refresh-cache", run = refresh })
--   sv:schedule_on_queue("emails", bs.must_cron("0 3 * * *"), { name = "nightly", run = gen })
--   local err = sv:serve(ctx)   -- until ctx ends, then drains: nil, or DRAIN_TIMEOUT
--
-- Jobs. A job is a table { id, name, retries, retry_delay, run, payload }.
-- run(ctx, job) (or the handler registered for job.name with sv:handle)
-- follows the callback rule of retry, topic and rungroup: it fails by
-- returning `nil, err` (err anything but nil or a boolean) or a
-- lowbit.errors value alone; anything else succeeds. A failure is retried
-- `retries` times (attempts = 1 + retries), `retry_delay` seconds apart
-- (a ctx-aware sleep: cancelling serve's ctx during it ends the job at
-- once); an error matching retry.DO_NOT_RETRY stops at once. An error
-- *raised* by run is a bug, never retried: job_panic, with the traceback.
--
-- Stores. A queue is a named pool of `workers` tasks popping jobs from its
-- store. The default store is a lowbit.chan(buffer) (Go channel semantics:
-- with buffer = 0 a dispatch succeeds only while a worker waits in pop).
-- Any table with push/pop/len methods is a store (see M.memory_store for
-- the protocol); the optional ack/retry/fail/extend/release methods let a
-- durable store be at-least-once.
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local retry = require "lowbit.retry"
local uv = require "luv"

local M = {}

local type, error, tostring, pairs, setmetatable, getmetatable, xpcall, select, next =
  type, error, tostring, pairs, setmetatable, getmetatable, xpcall, select, next
local floor = math.floor
local traceback = debug.traceback
local is, is_error, with_kind = errors.is, errors.is_error, errors.with_kind
local is_ctx = context.is_context
local DO_NOT_RETRY = retry.DO_NOT_RETRY
local try_recv, try_send, lselect, yield = lowbit.Chan.try_recv, lowbit.Chan.try_send, lowbit.select, lowbit.yield

---------------------------------------------------------------------------
-- Sentinels
---------------------------------------------------------------------------

--- dispatch: the store cannot take the job now (memory: buffer full and no
--- idle worker). Never waits for room.
M.QUEUE_FULL = errors.new("backstage: queue full")
--- dispatch / schedule_on_queue fire: no queue of that name.
M.UNKNOWN_QUEUE = errors.new("backstage: unknown queue")
--- dispatch: the store already holds (or recently finished) a job with this id.
M.DUPLICATE = errors.new("backstage: duplicate job")
--- dispatch after serve's ctx is done; serve on a supervisor that has served.
M.STOPPED = errors.new("backstage: supervisor stopped")
--- serve: in-flight jobs did not finish within drain_timeout.
M.DRAIN_TIMEOUT = errors.new("backstage: drain timeout")
--- serve while the supervisor is serving already.
M.ALREADY_SERVING = errors.new("backstage: already serving")
--- A job's run raised (the error's text holds the value and its traceback).
M.JOB_PANIC = errors.new("backstage: job raised an error")
--- A durable job whose name has no handler in the serving process.
M.NO_HANDLER = errors.new("backstage: no handler for job")

local QUEUE_FULL, STOPPED, UNKNOWN_QUEUE = M.QUEUE_FULL, M.STOPPED, M.UNKNOWN_QUEUE

M.DEFAULT_DRAIN_TIMEOUT = 25

---------------------------------------------------------------------------
-- Schedules (lowbit.backstage.schedule, loaded on first use)
---------------------------------------------------------------------------

--- every(s): fires s seconds after the previous fire.
function M.every(...) return require("lowbit.backstage.schedule").every(...) end
--- daily(h, m [, {tz=}]): every day at h:m (UTC by default).
function M.daily(...) return require("lowbit.backstage.schedule").daily(...) end
--- cron(expr [, {tz=}]) -> schedule | nil, err (5-field cron).
function M.cron(...) return require("lowbit.backstage.schedule").cron(...) end
--- must_cron(expr [, opts]): cron that raises on a bad expression.
function M.must_cron(...) return require("lowbit.backstage.schedule").must_cron(...) end
--- redis_store(opts): the durable Redis store (lowbit.backstage.redis_store).
function M.redis_store(...) return require("lowbit.backstage.redis_store").new(...) end

---------------------------------------------------------------------------
-- Clock and logging
---------------------------------------------------------------------------

-- Under lowbit.run_virtual the default clock follows the virtual one from
-- this epoch (so schedules and retry delays cost no real time in tests).
M.VIRTUAL_EPOCH = 1700000000

local lnow, is_virtual, sleep_ctx = lowbit.now, lowbit.is_virtual, lowbit.sleep_ctx
local gettimeofday = uv.gettimeofday

--- The default clock: now() is wall-clock epoch seconds (float);
--- sleep(ctx, s) is lowbit.sleep_ctx. Inside lowbit.run_virtual, now() is
--- VIRTUAL_EPOCH + lowbit.now().
M.system_clock = {
  now = function()
    if is_virtual() then return M.VIRTUAL_EPOCH + lnow() end
    local s, us = gettimeofday()
    return s + us * 1e-6
  end,
  sleep = function(ctx, s) return sleep_ctx(ctx, s) end,
}

local LEVEL_RANK = { debug = 1, info = 2, warn = 3, error = 4 }

-- The level of each event's log record.
M.EVENT_LEVEL = {
  job_start = "debug", job_done = "debug", job_retry = "warn", job_failed = "error",
  job_panic = "error", job_canceled = "warn", job_rejected = "warn",
  schedule_fire = "debug", schedule_skip = "warn", schedule_dropped = "warn",
  drain_start = "info", drain_done = "info", drain_timeout = "error",
  store_error = "error", store_warning = "warn",
  job_recovered = "warn", job_dead = "error", lease_lost = "warn", job_released = "info",
}
local EVENT_LEVEL = M.EVENT_LEVEL

local function fmt_value(v)
  local s = tostring(v)
  if s:find("[%s\"=]") or s == "" then return (("%q"):format(s):gsub("\\\n", "\\n")) end
  return s
end

--- A logger writing logfmt lines to stderr (or `out`, a file), dropping
--- records below min_level ("debug", "info" (default), "warn", "error").
--- The default logger of every supervisor is stderr_logger("info").
function M.stderr_logger(min_level, out)
  min_level = min_level or "info"
  if not LEVEL_RANK[min_level] then
    error("bad argument 'min_level' to backstage.stderr_logger: debug, info, warn or error expected, got " .. tostring(min_level), 2)
  end
  local min = LEVEL_RANK[min_level]
  return setmetatable({ min_level = min_level }, { __call = function(_, level, msg, fields)
    if (LEVEL_RANK[level] or 2) < min then return end
    local keys = {}
    for k in pairs(fields) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = { "time=" .. os.date("!%Y-%m-%dT%H:%M:%SZ"), "level=" .. level, "msg=" .. fmt_value(msg) }
    for i = 1, #keys do parts[#parts + 1] = keys[i] .. "=" .. fmt_value(fields[keys[i]]) end
    ;(out or io.stderr):write(table.concat(parts, " "), "\n")
  end })
end

local function report(err)
  local ok = pcall(lowbit.on_error, err, tostring(err))
  if not ok then io.stderr:write("backstage: ", tostring(err), "\n") end
end

-- Sends an event to on_event, then as a record to the logger (msg = the
-- event type, fields = the event without type, id and traceback (err holds
-- it); job_id is there when the job has an id). A handler or logger that
-- raises is reported, never fatal.
local function emit(sv, ev)
  ev.supervisor = sv.name
  local h = sv.on_event
  if h then
    local ok, err = xpcall(h, traceback, ev)
    if not ok then report(err) end
  end
  local lg = sv.logger
  if lg then
    local level = EVENT_LEVEL[ev.type] or "info"
    if (LEVEL_RANK[level] or 2) >= sv.log_min then
      local fields = {}
      for k, v in pairs(ev) do
        if k ~= "type" and k ~= "id" and k ~= "traceback" then fields[k] = v end
      end
      local ok, err = xpcall(lg, traceback, level, ev.type, fields)
      if not ok then report(err) end
    end
  end
end
M._emit = emit

-- Whether an event of this type goes anywhere (so the hot path builds none
-- when logging is off).
local function wanted(sv, ty)
  if sv.on_event then return true end
  if not sv.logger then return false end
  return (LEVEL_RANK[EVENT_LEVEL[ty] or "info"] or 2) >= sv.log_min
end

-- A job's event: queue, name, id (and job_id) and attempt filled in.
local function job_ev(ty, qname, job, attempt)
  local id = job.id
  return { type = ty, queue = qname, name = job.name, id = id, job_id = id, attempt = attempt }
end

---------------------------------------------------------------------------
-- Argument checks (misuse raises at the caller)
---------------------------------------------------------------------------

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

-- Raises at the caller of backstage.<fname>; depth = helpers in between.
local function bad(fname, name, msg, depth)
  error("bad argument '" .. name .. "' to backstage." .. fname .. ": " .. msg, 3 + (depth or 0))
end

local Supervisor = {}
Supervisor.__index = Supervisor
M.Supervisor = Supervisor

local function check_self(self, fname)
  if getmetatable(self) ~= Supervisor then
    error("bad self to backstage." .. fname .. ": supervisor expected, got " .. type(self) .. " (use ':')", 3)
  end
end

local function check_keys(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then bad(fname, "opts", "table expected, got " .. type(opts), 1) end
  for k in pairs(opts) do
    if not allowed[k] then bad(fname, "opts", "unknown option '" .. tostring(k) .. "'", 1) end
  end
  return opts
end

local function is_count(v) return type(v) == "number" and v == floor(v) and v >= 0 and v < 2 ^ 53 end

-- Checks a job table (raises at the caller of fname). durable: the queue's
-- store holds jobs outside this process, so the job names a handler.
local function check_job(sv, job, fname, durable)
  if type(job) ~= "table" then bad(fname, "job", "table expected, got " .. type(job), 1) end
  local run, name, id = job.run, job.name, job.id
  if name ~= nil and type(name) ~= "string" then bad(fname, "job.name", "string expected, got " .. type(name), 1) end
  if id ~= nil and type(id) ~= "string" and type(id) ~= "number" then
    bad(fname, "job.id", "string or number expected, got " .. type(id), 1)
  end
  local r = job.retries
  if r ~= nil and not is_count(r) then bad(fname, "job.retries", "non-negative integer expected, got " .. tostring(r), 1) end
  local d = job.retry_delay
  if d ~= nil and (type(d) ~= "number" or d ~= d or d < 0) then
    bad(fname, "job.retry_delay", "non-negative number (seconds) expected, got " .. tostring(d), 1)
  end
  if durable then
    if run ~= nil then
      bad(fname, "job.run", "a durable queue cannot carry a function: register a handler with sv:handle(name, fn) and leave run out", 1)
    end
    if name == nil then bad(fname, "job.name", "a durable job names its handler (string expected, got nil)", 1) end
  elseif run == nil then
    if name == nil or sv.handlers[name] == nil then
      bad(fname, "job.run", "function expected (or a handler registered with sv:handle for job.name), got nil", 1)
    end
  elseif not callable(run) then
    bad(fname, "job.run", "function expected, got " .. type(run), 1)
  end
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

---------------------------------------------------------------------------
-- The memory store
---------------------------------------------------------------------------

local Memory = {}
Memory.__index = Memory
M.MemoryStore = Memory

--- The default store: a lowbit.chan(buffer) (buffer 0: unbuffered). It is
--- also the reference of the store protocol every store follows:
---   store:push(job)  -> true | nil, QUEUE_FULL | DUPLICATE (| nil, err)
---   store:pop(ctx)   -> job  | nil, ctx:err() (waits; or nil, err on failure)
---   store:len()      -> jobs waiting (ready + delayed)
--- Optional, used when present: ack(job) (success or terminal),
--- fail(job, err, reason) (terminal, to a dead set; reason "failed", "panic"
--- or "no_handler"), retry(job, delay, err) (store-side delayed retry: frees
--- the worker; such a store sets job.attempt on pop), extend(jobs) (lease
--- renewal of all running jobs of the queue, every `extend_interval` s, or
--- visibility/3), release(job) (interrupted by shutdown: back to the front,
--- attempt not counted), attach(info) (called at register_queue with
--- { supervisor, queue, emit = function(ev) }). A store whose `durable`
--- field is true holds jobs outside the process: its jobs carry no `run`
--- but name a handler (sv:handle), and its queued jobs are not "dropped"
--- at shutdown.
function M.memory_store(buffer)
  buffer = buffer or 0
  if not is_count(buffer) then
    error("bad argument 'buffer' to backstage.memory_store: non-negative integer expected, got " .. tostring(buffer), 2)
  end
  return setmetatable({ ch = lowbit.chan(buffer), cases = false, cases_ctx = false }, Memory)
end

function Memory:push(job)
  if try_send(self.ch, job) then return true end
  return nil, QUEUE_FULL
end

function Memory:pop(ctx)
  if not is_ctx(ctx) then
    error("bad argument 'ctx' to backstage.memory_store:pop: context expected, got " .. type(ctx), 2)
  end
  local ch = self.ch
  local v, ok = try_recv(ch)
  if ok then return v end
  if ctx:err() ~= nil then return nil, ctx:err() end
  local cases = self.cases
  if self.cases_ctx ~= ctx then
    cases = { ch, ctx:done() }
    self.cases, self.cases_ctx = cases, ctx
  end
  local i, job = lselect(cases)
  if i == 1 then return job end
  return nil, ctx:err()
end

function Memory:len() return self.ch.count end

---------------------------------------------------------------------------
-- Supervisor
---------------------------------------------------------------------------

local NEW_OPTS = { drain_timeout = true, on_event = true, logger = true, clock = true, coordinator = true }

--- A supervisor named `name`. opts: drain_timeout (seconds, default 25),
--- on_event (function(ev)), logger (function(level, msg, fields), or a
--- callable table; default stderr_logger("info"); false: no logging),
--- clock ({ now = fn() -> epoch s, sleep = fn(ctx, s) -> true | nil, err };
--- default M.system_clock), coordinator (an object with
--- tick(supervisor, schedule_name, tick, sched) -> true (this process fires
--- the tick) | false (another one did) | nil, err: schedules then fire once
--- across processes).
function M.new(name, opts)
  if type(name) ~= "string" or name == "" then
    bad("new", "name", "non-empty string expected, got " .. (type(name) == "string" and '""' or type(name)))
  end
  opts = check_keys(opts, NEW_OPTS, "new")
  local dt = opts.drain_timeout
  if dt == nil then dt = M.DEFAULT_DRAIN_TIMEOUT end
  if type(dt) ~= "number" or dt ~= dt or dt < 0 then
    bad("new", "opts.drain_timeout", "non-negative number (seconds) expected, got " .. tostring(dt))
  end
  if opts.on_event ~= nil and not callable(opts.on_event) then
    bad("new", "opts.on_event", "function expected, got " .. type(opts.on_event))
  end
  local logger = opts.logger
  if logger == nil then logger = M.stderr_logger("info") end
  if logger ~= false and not callable(logger) then
    bad("new", "opts.logger", "function or false expected, got " .. type(logger))
  end
  local log_min = 1
  if logger and type(logger) == "table" and LEVEL_RANK[logger.min_level] then log_min = LEVEL_RANK[logger.min_level] end
  local clock = opts.clock or M.system_clock
  if type(clock) ~= "table" or not callable(clock.now) or not callable(clock.sleep) then
    bad("new", "opts.clock", "table with now() and sleep(ctx, s) expected")
  end
  local coord = opts.coordinator
  if coord ~= nil and (type(coord) ~= "table" or not callable(coord.tick)) then
    bad("new", "opts.coordinator", "object with a tick method expected, got " .. type(coord))
  end
  local sv = setmetatable({
    name = name, drain_timeout = dt, on_event = opts.on_event, logger = logger or nil,
    log_min = log_min, clock = clock, coordinator = coord,
    queues = {}, queue_list = {}, handlers = {}, schedules = {}, schedule_names = {},
    state = "new",  -- new -> serving -> draining -> stopped
    ctx = false, live = 0, in_flight = 0, tasks = {}, drained = false, dropped = 0,
    want = {},
  }, Supervisor)
  for ty in pairs(EVENT_LEVEL) do sv.want[ty] = wanted(sv, ty) end
  return sv
end

-- The emit function a store gets from attach: its events carry the
-- supervisor and queue (and job_id when they name a job id).
local function store_emitter(sv, qname)
  return function(ev)
    if ev.queue == nil then ev.queue = qname end
    if ev.id ~= nil and ev.job_id == nil then ev.job_id = ev.id end
    emit(sv, ev)
  end
end

local QUEUE_OPTS = { workers = true, buffer = true, store = true }

--- Registers queue `name`: cfg.workers tasks (default 1) popping from
--- cfg.store (default memory_store(cfg.buffer), buffer default 0). Raises
--- on a duplicate name, workers < 1, a bad store, or once serve has started.
function Supervisor:register_queue(name, cfg)
  check_self(self, "register_queue")
  if type(name) ~= "string" or name == "" then bad("register_queue", "name", "non-empty string expected, got " .. type(name)) end
  cfg = check_keys(cfg, QUEUE_OPTS, "register_queue")
  if self.state ~= "new" then bad("register_queue", "name", "queue '" .. name .. "' registered after serve") end
  if self.queues[name] then bad("register_queue", "name", "duplicate queue '" .. name .. "'") end
  local workers = cfg.workers
  if workers == nil then workers = 1 end
  if not is_count(workers) or workers < 1 then
    bad("register_queue", "cfg.workers", "integer >= 1 expected, got " .. tostring(workers))
  end
  local buffer = cfg.buffer
  if buffer == nil then buffer = 0 end
  if not is_count(buffer) then bad("register_queue", "cfg.buffer", "non-negative integer expected, got " .. tostring(buffer)) end
  local store = cfg.store
  if store == nil then
    store = M.memory_store(buffer)
  elseif type(store) ~= "table" or not callable(store.push) or not callable(store.pop) or not callable(store.len) then
    bad("register_queue", "cfg.store", "table with push, pop and len methods expected")
  end
  local q = {
    name = name, workers = workers, store = store, durable = store.durable == true,
    push = store.push,
    has_ack = store.ack ~= nil, has_fail = store.fail ~= nil, has_retry = store.retry ~= nil,
    has_release = store.release ~= nil, has_extend = store.extend ~= nil,
    running = false, -- jobs running now (kept for extend)
  }
  if q.has_extend then q.running = {} end
  self.queues[name] = q
  self.queue_list[#self.queue_list + 1] = q
  if callable(store.attach) then
    store:attach({ supervisor = self.name, queue = name, emit = store_emitter(self, name) })
  end
  return true
end

--- Registers fn(ctx, job) as the handler of jobs named `name` (durable
--- jobs must use one; memory jobs may, leaving run out).
function Supervisor:handle(name, fn)
  check_self(self, "handle")
  if type(name) ~= "string" or name == "" then bad("handle", "name", "non-empty string expected, got " .. type(name)) end
  if not callable(fn) then bad("handle", "fn", "function expected, got " .. type(fn)) end
  if self.handlers[name] ~= nil then bad("handle", "name", "duplicate handler '" .. name .. "'") end
  self.handlers[name] = fn
  return true
end

-- Pushes a checked job into q's store: true, or nil, STOPPED (serve's ctx
-- is done) or the store's refusal.
local function push(sv, q, job)
  local state = sv.state
  if state ~= "new" and (state ~= "serving" or sv.ctx:err() ~= nil) then return nil, STOPPED end
  local ok, err = q.push(q.store, job)
  if ok then return true end
  return nil, err or QUEUE_FULL
end

--- Hands job to queue q's store without ever waiting (for the memory
--- store). Returns true, or nil, err: QUEUE_FULL, UNKNOWN_QUEUE,
--- DUPLICATE (store dedupe), STOPPED (serve's ctx is done). A bad job
--- (not a table, run not a function without a handler, run on a durable
--- queue, negative retries) raises.
function Supervisor:dispatch(qname, job)
  check_self(self, "dispatch")
  if type(qname) ~= "string" then bad("dispatch", "q", "string expected, got " .. type(qname)) end
  local q = self.queues[qname]
  check_job(self, job, "dispatch", q and q.durable)
  local ok, err
  if q == nil then
    err = UNKNOWN_QUEUE
  else
    ok, err = push(self, q, job)
    if ok then return true end
  end
  if self.want.job_rejected then
    local ev = job_ev("job_rejected", qname, job)
    ev.err = err
    emit(self, ev)
  end
  return nil, err
end

local function check_sched(sched, fname)
  if type(sched) ~= "table" or not callable(sched.next) then
    bad(fname, "sched", "schedule expected (a table with next(self, t)), got " .. type(sched), 1)
  end
end

local function add_schedule(self, fname, qname, sched, job)
  if self.state ~= "new" then bad(fname, "sched", "schedule added after serve", 1) end
  local name = job.name
  if name == nil then name = "schedule#" .. (#self.schedules + 1) end
  if self.schedule_names[name] then bad(fname, "job.name", "duplicate schedule '" .. name .. "'", 1) end
  self.schedule_names[name] = true
  self.schedules[#self.schedules + 1] = { name = name, sched = sched, job = job, queue = qname }
  return true
end

--- Runs job at each fire of sched (any table with next(self, t) -> epoch
--- seconds or nil), each fire in its own task with the job's retry policy.
function Supervisor:schedule(sched, job)
  check_self(self, "schedule")
  check_sched(sched, "schedule")
  check_job(self, job, "schedule", false)
  return add_schedule(self, "schedule", nil, sched, job)
end

--- Dispatches a fresh copy of job onto queue q at each fire of sched; a
--- full queue skips that tick (schedule_skip).
function Supervisor:schedule_on_queue(qname, sched, job)
  check_self(self, "schedule_on_queue")
  if type(qname) ~= "string" then bad("schedule_on_queue", "q", "string expected, got " .. type(qname)) end
  local q = self.queues[qname]
  if q == nil then bad("schedule_on_queue", "q", "unknown queue '" .. qname .. "' (register it first)") end
  check_sched(sched, "schedule_on_queue")
  check_job(self, job, "schedule_on_queue", q.durable)
  return add_schedule(self, "schedule_on_queue", qname, sched, job)
end

---------------------------------------------------------------------------
-- Running jobs
---------------------------------------------------------------------------

-- Callback rule of retry/topic/rungroup: the error, or nil for a success.
local function failure(a, b)
  if b ~= nil and type(b) ~= "boolean" then return b end
  if is_error(a) then return a end
  return nil
end

local function on_raise(raised)
  local tb = traceback(tostring(raised), 2)
  -- The frames below the job's run are backstage's own: cut them.
  local cut = tb:find("\n\t%[C%]: in function 'xpcall'")
  if cut then tb = tb:sub(1, cut - 1) end
  local e
  if is_error(raised) then
    e = with_kind(M.JOB_PANIC, errors.join(raised, errors.new(tb)))
  else
    e = with_kind(M.JOB_PANIC, nil, "%s", tb)
  end
  e.value, e.traceback = raised, tb
  return e
end

local function store_call(sv, q, op, ...)
  local store = q.store
  local ok, res, err = xpcall(store[op], traceback, store, ...)
  if not ok or res == nil then
    if sv.want.store_error then
      emit(sv, { type = "store_error", queue = q.name, op = op, err = ok and err or res })
    end
    return nil
  end
  return true
end

-- Ends a failed job for good: store fail (or ack), job_failed event.
local function job_failed(sv, q, qname, job, attempt, err, reason)
  if q then
    if q.has_fail then store_call(sv, q, "fail", job, err, reason)
    elseif q.has_ack then store_call(sv, q, "ack", job) end
  end
  if sv.want.job_failed then
    local ev = job_ev("job_failed", qname, job, attempt)
    ev.err = err
    if reason ~= "failed" then ev.reason = reason end
    emit(sv, ev)
  end
end

-- Runs one job to its end (success, failure, panic, cancel). q is nil for
-- a schedule()'d job (no store). Called in a worker or fire task.
local function execute(sv, q, job, ctx)
  local qname = q and q.name
  local want, clock = sv.want, sv.clock
  local run = job.run
  if run == nil then run = sv.handlers[job.name] end
  local attempt = job.attempt
  if attempt == nil or not (q and q.has_retry) then attempt = 1 end
  if run == nil then
    return job_failed(sv, q, qname, job, attempt, errors.wrap(M.NO_HANDLER, "job %s", tostring(job.name)), "no_handler")
  end
  local attempts = 1 + (job.retries or 0)
  sv.in_flight = sv.in_flight + 1
  local running = q and q.running
  if running then running[job] = true end
  while true do
    local t0
    if want.job_start then emit(sv, job_ev("job_start", qname, job, attempt)) end
    if want.job_done then t0 = clock.now() end
    local ok, a, b = xpcall(run, on_raise, ctx, job)
    if not ok then
      if q then
        if q.has_fail then store_call(sv, q, "fail", job, a, "panic")
        elseif q.has_ack then store_call(sv, q, "ack", job) end
      end
      if want.job_panic then
        local ev = job_ev("job_panic", qname, job, attempt)
        ev.err, ev.traceback = a, a.traceback
        emit(sv, ev)
      end
      break
    end
    local err = failure(a, b)
    if err == nil then
      if q and q.has_ack then store_call(sv, q, "ack", job) end
      if want.job_done then
        local ev = job_ev("job_done", qname, job, attempt)
        ev.duration = clock.now() - t0
        emit(sv, ev)
      end
      break
    end
    local cerr = ctx:err()
    if is(err, DO_NOT_RETRY) then
      job_failed(sv, q, qname, job, attempt, err, "failed")
      break
    end
    if cerr ~= nil and q and q.has_release then
      -- Interrupted by shutdown: back to the front, attempt not counted.
      store_call(sv, q, "release", job)
      if want.job_released then emit(sv, job_ev("job_released", qname, job, attempt)) end
      break
    end
    if attempt >= attempts then
      job_failed(sv, q, qname, job, attempt, err, "failed")
      break
    end
    if cerr ~= nil then
      if want.job_canceled then
        local ev = job_ev("job_canceled", qname, job, attempt)
        ev.err = cerr
        emit(sv, ev)
      end
      break
    end
    local delay = job.retry_delay or 0
    if want.job_retry then
      local ev = job_ev("job_retry", qname, job, attempt)
      ev.err, ev.delay = err, delay
      emit(sv, ev)
    end
    if q and q.has_retry then
      -- Store-side delayed retry: the worker is free meanwhile.
      store_call(sv, q, "retry", job, delay, err)
      break
    end
    local sok, serr
    if delay > 0 then
      sok, serr = clock.sleep(ctx, delay)
    else
      yield() -- a zero delay still lets a canceller run
      sok = ctx:err() == nil
    end
    if not sok then
      if want.job_canceled then
        local ev = job_ev("job_canceled", qname, job, attempt)
        ev.err = ctx:err() or serr
        emit(sv, ev)
      end
      break
    end
    attempt = attempt + 1
  end
  if running then running[job] = nil end
  sv.in_flight = sv.in_flight - 1
end

---------------------------------------------------------------------------
-- Tasks: workers, schedules, lease renewal
---------------------------------------------------------------------------

local function task_end(sv, t)
  sv.live = sv.live - 1
  sv.tasks[t] = nil
  if sv.live == 0 and sv.drained then try_send(sv.drained, true) end
end

-- The body of every backstage task: fn(a, b, c), an error in it reported
-- (a bug in backstage or a store), then (when sv is given) the drain
-- counts it done. No closure per task: one fewer allocation, and no
-- function creation for the JIT to abort on.
local function task_main(sv, fn, a, b, c)
  local t = lowbit.current()
  local ok, err = xpcall(fn, traceback, a, b, c)
  if not ok then report(err) end
  if sv then task_end(sv, t) end
end

-- Starts fn(a, b, c) as a task the drain waits for.
local function spawn(sv, fn, a, b, c)
  sv.live = sv.live + 1
  local t = lowbit.go(task_main, sv, fn, a, b, c)
  sv.tasks[t] = true
  return t
end

local function worker(sv, q, ctx)
  local store, pop = q.store, q.store.pop
  local durable = q.durable
  while ctx:err() == nil do
    local ok, job, err = xpcall(pop, traceback, store, ctx)
    if not ok or job == nil then
      if ctx:err() ~= nil then break end
      if sv.want.store_error then
        emit(sv, { type = "store_error", queue = q.name, op = "pop", err = ok and err or job })
      end
      if not sv.clock.sleep(ctx, 1) then break end
    elseif ctx:err() ~= nil then
      -- Handed over as shutdown began: not started.
      if q.has_release then store_call(sv, q, "release", job)
      elseif not durable then sv.dropped = sv.dropped + 1 end
      break
    else
      execute(sv, q, job, ctx)
    end
  end
end

local function extender(sv, q, ctx)
  local store = q.store
  local every = store.extend_interval or (store.visibility and store.visibility / 3) or 10
  while sv.clock.sleep(ctx, every) do
    if next(q.running) ~= nil then
      local list = {}
      for job in pairs(q.running) do list[#list + 1] = job end
      store_call(sv, q, "extend", list)
    end
  end
end

local function fire_task(sv, job, ctx)
  execute(sv, nil, job, ctx)
end

local function drop_schedule(sv, s, err)
  if sv.want.schedule_dropped then
    emit(sv, { type = "schedule_dropped", name = s.name, queue = s.queue, err = err })
  end
end

local function scheduler(sv, s, ctx)
  local clock, sched = sv.clock, s.sched
  local t = clock.now()
  while ctx:err() == nil do
    local ok, nxt = xpcall(sched.next, traceback, sched, t)
    if not ok then return drop_schedule(sv, s, errors.new("next raised: " .. tostring(nxt))) end
    if nxt == nil then return drop_schedule(sv, s, nil) end
    if type(nxt) ~= "number" or nxt ~= nxt then
      return drop_schedule(sv, s, errors.new("next returned " .. tostring(nxt) .. ", number expected"))
    end
    if nxt <= t then
      return drop_schedule(sv, s, errors.new(("next(%s) returned %s, not after it"):format(tostring(t), tostring(nxt))))
    end
    while true do
      local d = nxt - clock.now()
      if d <= 0 then break end
      if not clock.sleep(ctx, d) then return end
    end
    if ctx:err() ~= nil then return end
    t = clock.now() -- the fire time: the next tick is computed from it (no catch-up)
    local fire = true
    local coord = sv.coordinator
    if coord then
      local cok, won, err = xpcall(coord.tick, traceback, coord, sv.name, s.name, nxt, sched)
      if not cok then won, err = nil, errors.new("coordinator tick raised: " .. tostring(won)) end
      if not won then
        fire = false
        if sv.want.schedule_skip then
          emit(sv, { type = "schedule_skip", name = s.name, queue = s.queue, tick = nxt,
                     reason = err == nil and "claimed" or "coordinator_error", err = err })
        end
      end
    end
    if fire then
      local job = copy(s.job) -- a fresh copy per fire
      local ok2, err = true, nil
      if s.queue then ok2, err = push(sv, sv.queues[s.queue], job) end
      if not ok2 then
        if sv.want.schedule_skip then
          emit(sv, { type = "schedule_skip", name = s.name, queue = s.queue, tick = nxt, id = job.id, job_id = job.id,
                     reason = is(err, QUEUE_FULL) and "queue_full" or "dispatch_failed", err = err })
        end
      else
        if sv.want.schedule_fire then
          emit(sv, { type = "schedule_fire", name = s.name, queue = s.queue, tick = nxt, id = job.id, job_id = job.id })
        end
        if not s.queue then spawn(sv, fire_task, sv, job, ctx) end
      end
    end
  end
end

---------------------------------------------------------------------------
-- serve
---------------------------------------------------------------------------

-- Sends false on drained once the drain timeout has passed (unless ctx
-- ends first: the drain finished).
local function drain_timer(clock, ctx, seconds, drained)
  if clock.sleep(ctx, seconds) then try_send(drained, false) end
end

--- Starts the workers and schedules, yields until ctx is done, then drains:
--- schedules stop, workers take no new job, in-flight jobs get up to
--- drain_timeout seconds (they see ctx cancelled). Returns nil after a full
--- drain, or DRAIN_TIMEOUT (the jobs still running are abandoned: their
--- tasks are detached, not killed). A call while serving returns
--- nil, ALREADY_SERVING; once served, nil, STOPPED.
function Supervisor:serve(ctx)
  check_self(self, "serve")
  if not is_ctx(ctx) then bad("serve", "ctx", "context expected, got " .. type(ctx)) end
  if self.state == "serving" or self.state == "draining" then return nil, M.ALREADY_SERVING end
  if self.state ~= "new" then return nil, STOPPED end
  self.state = "serving"
  local sctx, scancel = context.with_cancel(ctx)
  self.ctx = sctx
  for _, q in ipairs(self.queue_list) do
    for _ = 1, q.workers do spawn(self, worker, self, q, sctx) end
  end
  -- Lease renewal goes on while running jobs drain: its own ctx, ended
  -- when serve returns, and not a task the drain waits for.
  local ectx, ecancel = context.with_cancel(context.background())
  for _, q in ipairs(self.queue_list) do
    if q.has_extend then
      lowbit.go(task_main, false, extender, self, q, ectx)
    end
  end
  for _, s in ipairs(self.schedules) do spawn(self, scheduler, self, s, sctx) end

  sctx:wait()
  self.state = "draining"
  if self.want.drain_start then emit(self, { type = "drain_start", in_flight = self.in_flight }) end
  local drained = lowbit.chan(1)
  self.drained = drained
  local timed_out = false
  if self.live > 0 then
    local tctx, tcancel = context.with_cancel(context.background())
    lowbit.go(drain_timer, self.clock, tctx, self.drain_timeout, drained)
    timed_out = drained:recv() == false
    tcancel()
  end
  scancel()
  ecancel()
  self.state = "stopped"
  self.drained = false
  if timed_out then
    local abandoned = self.in_flight
    for t in pairs(self.tasks) do lowbit.detach(t) end
    self.tasks = {}
    if self.want.drain_timeout then
      emit(self, { type = "drain_timeout", abandoned = abandoned, err = M.DRAIN_TIMEOUT })
    end
    return M.DRAIN_TIMEOUT
  end
  local dropped = self.dropped
  for _, q in ipairs(self.queue_list) do
    if not q.durable then
      local ok, n = pcall(q.store.len, q.store)
      if ok and type(n) == "number" then dropped = dropped + n end
    end
  end
  if self.want.drain_done then emit(self, { type = "drain_done", dropped = dropped }) end
  return nil
end

return M
