-- lowbit: tasks, channels and the scheduler that drives them on the luv loop.
--
--   local lowbit = require "lowbit"
--   lowbit.run(function()
--     local ch = lowbit.chan(0)
--     lowbit.go(function() ch:send("hi") end)
--     print(ch:recv())                       --> hi  true
--   end)
--
-- A task is a coroutine. Every call that looks blocking (sleep, channel
-- send/recv, lock, socket read) parks the task and returns to the loop; the
-- loop resumes it when it can go on. Wakes go through one ready queue that
-- runs between loop iterations, so no callback ever resumes a task inside
-- another task.
-- string.buffer (LuaJIT 2.1, 2021 on) carries every byte path: without it
-- nothing would work, so say so once, here.
if not pcall(require, "string.buffer") then
  error("lowbit needs LuaJIT 2.1 with string.buffer (this is "
    .. (jit and jit.version or _VERSION) .. "); PUC Lua and older LuaJIT builds are not supported", 0)
end
local uv = require "luv"
local errors = require "lowbit.errors"
local log = require "lowbit.log"

local M = {}

local co_create, co_resume, co_status, co_running, co_yield =
  coroutine.create, coroutine.resume, coroutine.status, coroutine.running, coroutine.yield
local type, select, error, tostring, pcall, setmetatable = type, select, error, tostring, pcall, setmetatable
local unpack = unpack or table.unpack
local traceback, getinfo = debug.traceback, debug.getinfo
local hrtime = uv.hrtime
local ceil, random = math.ceil, math.random

M.VERSION = "0.1.0"
M.errors = errors

---------------------------------------------------------------------------
-- Time
---------------------------------------------------------------------------

-- Virtual time (lowbit.run_virtual): the clock stands still while tasks
-- run and jumps to the next timer when every task is waiting.
local virtual, vnow = false, 0

-- libuv's uv_hrtime through the FFI when its symbol can be found: calling
-- luv's uv.hrtime (a Lua/C function) ends a JIT trace, and lowbit.now()
-- runs on every hot path that keeps a deadline.
do
  local ffi = require "ffi"
  pcall(ffi.cdef, "uint64_t uv_hrtime(void);")
  local libs = { function() return ffi.C end, function() return ffi.load("uv") end,
                 function() return ffi.load("libuv.so.1") end }
  for i = 1, #libs do
    local ok, fn = pcall(function() return libs[i]().uv_hrtime end)
    if ok and fn ~= nil then
      local tonumber = tonumber
      hrtime = function() return tonumber(fn()) end
      break
    end
  end
end

--- Monotonic time in seconds (float, nanosecond source), or the virtual
--- clock inside lowbit.run_virtual.
local function now()
  if virtual then return vnow end
  return hrtime() * 1e-9
end
M.now = now

---------------------------------------------------------------------------
-- Ready queue and tasks
---------------------------------------------------------------------------

-- A task is a record { co = coroutine, gen = run generation, site =
-- debug info of where it was started, parent = the task that started it }.
-- Wakes name tasks, not coroutines, so a wake left over from an aborted run
-- (gen differs) is ignored.
-- The queue is a ring over three arrays (task, two wake values) made with
-- their array part: positions only grow while it is not empty, and a slot
-- is ((position - 1) % capacity) + 1, so no store ever lands in a hash part
-- (a plain table used as a queue keeps being rehashed by LuaJIT).
local band = require("bit").band
local new_tab = require "table.new"
local rq_cap = 1024
local rq_mask = rq_cap - 1
local rq_t, rq_a, rq_b = new_tab(rq_cap, 0), new_tab(rq_cap, 0), new_tab(rq_cap, 0)
local rq_head, rq_tail = 1, 0

-- Doubles the ring, keeping every queued entry at its position.
local function rq_grow()
  local cap = rq_cap * 2
  local mask = cap - 1
  local t, a, b = new_tab(cap, 0), new_tab(cap, 0), new_tab(cap, 0)
  for i = rq_head, rq_tail do
    local from, to = band(i - 1, rq_mask) + 1, band(i - 1, mask) + 1
    t[to], a[to], b[to] = rq_t[from], rq_a[from], rq_b[from]
  end
  rq_t, rq_a, rq_b, rq_cap, rq_mask = t, a, b, cap, mask
end

local current            -- the task running now, or nil
local live = 0           -- tasks started and not finished
local gen = 0            -- run generation
local running = false
local main_task, main_failed, main_err

--- Called with (err, traceback) when a task other than the main one raises.
--- Replace it to route task errors elsewhere; the default writes to stderr
--- without ever blocking the loop (lines a stalled stderr cannot take are
--- dropped and counted; see lowbit.log).
function M.on_error(err, tb)
  log.write("lowbit: error in task: " .. tostring(tb or err))
end

-- True while uv.run runs (its callbacks wake tasks). The first wake in a
-- run stops the loop: uv.run("once") runs the timers that are due before
-- it polls, and would then block in the poll with those tasks ready (until
-- some other event came, maybe never). uv.stop makes that poll return at
-- once.
local in_uv_run, uv_stopped = false, false
local uv_stop = uv.stop

local function wake(t, a, b)
  if in_uv_run and not uv_stopped then uv_stopped = true; uv_stop() end
  local n = rq_tail + 1
  if n - rq_head >= rq_cap then rq_grow() end
  rq_tail = n
  local i = band(n - 1, rq_mask) + 1
  rq_t[i] = t
  -- Wake values are mostly nil: a slot is written only when it changes.
  if a ~= nil or rq_a[i] ~= nil then rq_a[i] = a end
  if b ~= nil or rq_b[i] ~= nil then rq_b[i] = b end
end
M._wake = wake

local function task_traceback(t, err)
  local msg = type(err) == "string" and err or tostring(err)
  local parts = { traceback(t.co, msg) }
  while t do
    local site = t.site
    if site then
      parts[#parts + 1] = "\n(task started at " .. site.short_src .. ":" .. (site.currentline or 0) .. ")"
    end
    t = t.parent
  end
  return table.concat(parts)
end

-- Live tasks, kept only while a watchdog asks for them (M._track_tasks).
local registry

local function finish(t, ok, err)
  if not t.detached then live = live - 1 end
  if registry then registry[t] = nil end
  if not ok then
    local tb = task_traceback(t, err)
    if t == main_task then
      main_failed, main_err = true, { err = err, tb = tb }
    else
      local rep_ok, rep_err = pcall(M.on_error, err, tb)
      if not rep_ok then log.write("lowbit: on_error failed: " .. tostring(rep_err) .. "\n" .. tb) end
    end
  end
end

-- Finished tasks leave their coroutine in a pool for the next spawn:
-- creating coroutines (and collecting them) is most of a spawn's cost.
local FINISHED = {}
local pool, pool_n, POOL_MAX = {}, 0, 256

local function worker(t)
  while true do
    local fn, n = t.fn, t.nargs
    t.fn = nil
    if n == 0 then fn() else fn(unpack(t.args, 1, n)) end
    t = co_yield(FINISHED)
  end
end

-- No coroutine.status on the usual path (it is a C function the JIT
-- cannot record: each call ended the trace, twice per step): a task not
-- done is suspended here (drain runs outside every task), and a task's
-- coroutine runs worker, which never returns, so a resume that fails is
-- the only way it dies.
local function step(t, a, b)
  local co = t.co
  if t.gen ~= gen or (t.done and co_status(co) ~= "suspended") then return end
  local prev = current
  current = t
  local ok, r = co_resume(co, a, b)
  current = prev
  if r == FINISHED and ok then
    t.done = true
    finish(t, true)
    if pool_n < POOL_MAX then pool_n = pool_n + 1; pool[pool_n] = co end
  elseif not ok then
    t.done = true
    finish(t, ok, r)
  end
end

-- Runs ready tasks, including those they make ready, up to a budget of
-- steps past what was queued at the start: enough to keep channel
-- ping-pong off the loop, bounded so a task that keeps yielding cannot
-- starve I/O. Returns true if tasks are still ready.
local DRAIN_BUDGET = 1024
local function drain()
  local stop = rq_tail + DRAIN_BUDGET
  while rq_head <= rq_tail and rq_head <= stop do
    local n = rq_head
    local h = band(n - 1, rq_mask) + 1
    local t, a, b = rq_t[h], rq_a[h], rq_b[h]
    rq_t[h] = nil
    if a ~= nil then rq_a[h] = nil end
    if b ~= nil then rq_b[h] = nil end
    rq_head = n + 1
    step(t, a, b)
    if main_failed then return false end
  end
  if rq_head > rq_tail then rq_head, rq_tail = 1, 0; return false end
  return true
end

local function check_fn(fn, name)
  if type(fn) ~= "function" then
    local mt = getmetatable(fn)
    if not (mt and mt.__call) then
      error("bad argument 'fn' to " .. name .. ": function expected, got " .. type(fn), 3)
    end
  end
end

--- Record where tasks are started, for tracebacks (costs ~0.2 us a spawn).
M.trace_spawn_sites = true

-- Starts a task; site: where it was started (debug info) or nil.
local function spawn_at(site, fn, ...)
  local n = select("#", ...)
  local co
  if pool_n > 0 then
    co = pool[pool_n]
    pool[pool_n] = nil
    pool_n = pool_n - 1
  else
    co = co_create(worker)
  end
  local t = { co = co, gen = gen, fn = fn, nargs = n, args = n > 0 and { ... } or nil,
              parent = current, site = site }
  live = live + 1
  if registry then registry[t] = true end
  wake(t, t) -- the first resume hands the coroutine its task
  return t
end

-- Starts a task, noting where: the caller of spawn's caller.
local function spawn(fn, ...)
  return spawn_at(M.trace_spawn_sites and getinfo(3, "Sl") or nil, fn, ...)
end

--- Starts fn(...) as a new task. It runs once the current task yields.
--- Returns the task (an opaque value lowbit.detach takes).
function M.go(fn, ...)
  check_fn(fn, "lowbit.go")
  if not running then error("lowbit.go: no scheduler is running (start one with lowbit.run)", 2) end
  return spawn(fn, ...)
end

--- lowbit.go for a loop that starts many tasks from one place (a server's
--- accept loop): site (debug.getinfo(level, "Sl"), taken once, or nil) is
--- shown as where the task started when it fails, instead of a
--- debug.getinfo per task (a table, and a C call that compiled code must
--- stitch around).
function M._go_at(site, fn, ...)
  check_fn(fn, "lowbit.go")
  if not running then error("lowbit.go: no scheduler is running (start one with lowbit.run)", 2) end
  return spawn_at(site, fn, ...)
end

--- Stops waiting for task t: lowbit.run (and so the host) may return while
--- t has not finished. For supervisors that abandon a task that ignores its
--- shutdown (a task cannot be killed; if woken it still runs, and its end
--- or error is still reported). Returns true when t was being waited for.
function M.detach(t)
  if type(t) ~= "table" or t.co == nil then
    error("bad argument 't' to lowbit.detach: task expected, got " .. type(t), 2)
  end
  if t.done or t.detached or t.gen ~= gen then return false end
  t.detached = true
  live = live - 1
  return true
end

--- The running task (an opaque record), or nil outside tasks.
function M.current()
  local t = current
  if t ~= nil and co_running() == t.co then return t end
  return nil
end

-- Returns the current task or raises: blocking calls are only valid in tasks.
local function need_task(what)
  local t = current
  if t == nil or co_running() ~= t.co then
    error(what .. ": must be called from a lowbit task (lowbit.run / lowbit.go)", 3)
  end
  return t
end
M._need_task = need_task

--- Parks the current task until wake(task, a, b); returns a, b. Internal.
M._park = co_yield

--- Lets the other ready tasks run, then continues.
function M.yield()
  local co = need_task("lowbit.yield")
  wake(co)
  co_yield()
end

---------------------------------------------------------------------------
-- Timers: one min-heap of deadlines behind one libuv timer.
---------------------------------------------------------------------------

local H = require("lowbit.timerheap").new()
local heap_push, heap_pop, heap_first, heap_remove, heap_count = H.push, H.pop, H.first, H.remove, H.count
local uv_timer
local armed_at = nil

local on_timer
local function rearm()
  local first = heap_first()
  if first == nil then
    if armed_at then uv.timer_stop(uv_timer); armed_at = nil end
    return
  end
  local at = first.at
  if armed_at == at then return end
  armed_at = at
  local ms = ceil((at - now()) * 1000)
  if ms < 0 then ms = 0 end
  uv.timer_start(uv_timer, ms, 0, on_timer)
end

local rearm_real = rearm
rearm = function()
  if virtual then armed_at = nil; return end
  return rearm_real()
end

on_timer = function()
  armed_at = nil
  local t = now() + 0.0005 -- libuv timers have millisecond resolution
  local due, nd = nil, 0
  local e = heap_first()
  while e ~= nil and e.at <= t do
    heap_pop()
    due = due or {}
    nd = nd + 1
    due[nd] = e
    e = heap_first()
  end
  for i = 1, nd do
    local e = due[i]
    local ok, err = pcall(e.fn, e)
    if not ok then log.write("lowbit: timer callback failed: " .. tostring(err)) end
  end
  rearm()
end

--- Schedules fn(entry) at monotonic time `at`; returns the entry, which
--- timer_cancel takes. fn runs on the loop, outside any task. Internal.
local function timer_add(at, fn, data)
  local e = { at = at, fn = fn, data = data, idx = false }
  if heap_push(e) then rearm() end
  return e
end
M._timer_add = timer_add

-- Removing the earliest entry leaves the libuv timer armed for its time:
-- it then fires early once, finds nothing due and re-arms for the new
-- first (on_timer), where re-arming at once cost a uv.timer_start (~900
-- instructions, and a trace stitch) per cancelled deadline, which servers
-- cancel on every connection. Timers still fire on time: the armed time is
-- never later than the first entry's. An emptied heap stops the timer at
-- once (an armed timer keeps the loop alive, and the DEADLOCK check would
-- wait for it).
local function timer_cancel(e)
  local removed, was_first = heap_remove(e)
  if was_first and heap_first() == nil then rearm() end
  return removed
end
M._timer_cancel = timer_cancel

--- Number of pending timers (for tests and leak checks).
function M._timer_count() return heap_count() end

local function wake_entry(e) wake(e.data) end

local function check_seconds(s, name)
  if type(s) ~= "number" or s ~= s then
    error("bad argument 'seconds' to " .. name .. ": number expected, got " .. type(s), 3)
  end
end

--- Parks the current task for s seconds (s <= 0 just yields).
function M.sleep(s)
  check_seconds(s, "lowbit.sleep")
  local co = need_task("lowbit.sleep")
  if s <= 0 then wake(co); co_yield(); return end
  timer_add(now() + s, wake_entry, co)
  co_yield()
end

---------------------------------------------------------------------------
-- Everything above the ready queue (wait queues, channels, select, the
-- blocking helpers, waitgroups, mutexes) parks and wakes through one small
-- backend interface: lowbit/sched.lua. This is the luv backend.
---------------------------------------------------------------------------

require("lowbit.sched")(M, {
  need_task = need_task, park = co_yield, wake = wake,
  timer_add = timer_add, timer_cancel = timer_cancel, now = now,
})

---------------------------------------------------------------------------
-- The loop
---------------------------------------------------------------------------

M.DEADLOCK = errors.new("all tasks are asleep: deadlock")

local function reset()
  gen = gen + 1
  for n = rq_head, rq_tail do
    local i = band(n - 1, rq_mask) + 1
    rq_t[i], rq_a[i], rq_b[i] = nil, nil, nil
  end
  rq_head, rq_tail = 1, 0
  H.clear()
  for i = 1, pool_n do pool[i] = nil end
  pool_n = 0
  if uv_timer and armed_at then uv.timer_stop(uv_timer) end
  armed_at = nil
  live = 0
  current = nil
end

-- Called after each loop pass (lowbit.net collects the reads that C
-- buffered during it).
local after_poll = nil
function M._set_after_poll(fn) after_poll = fn end

local function run_uv(mode)
  in_uv_run, uv_stopped = true, false
  local alive = uv.run(mode)
  in_uv_run = false
  if after_poll then after_poll() end
  return alive
end

local function loop()
  while live > 0 do
    local more = drain()
    if main_failed then return end
    if live == 0 then break end
    if virtual and not more then
      -- Pick up finished I/O first; time moves only when nothing else can.
      local alive = run_uv("nowait")
      if rq_head > rq_tail then
        local first = heap_first()
        if first ~= nil then
          if first.at > vnow then vnow = first.at end
          on_timer()
        elseif alive then
          run_uv("once")
        else
          return M.DEADLOCK
        end
      end
    else
      local alive = run_uv(more and "nowait" or "once")
      if not alive and rq_head > rq_tail and live > 0 then
        return M.DEADLOCK
      end
    end
  end
end

--- Runs fn(...) as the main task and drives the loop until every task has
--- finished. Returns fn's results; if fn raises, raises its error (with the
--- task's traceback appended when it is a string).
function M.run(fn, ...)
  check_fn(fn, "lowbit.run")
  if running then error("lowbit.run: already running (use lowbit.go inside a task)", 2) end
  if not uv_timer then
    uv_timer = uv.new_timer()
    uv.unref(uv_timer)
    M._ignore_sigpipe()
  end
  running = true
  main_failed, main_err = false, nil
  local results, nres
  main_task = spawn(function(...)
    local function keep(...) nres = select("#", ...); results = { ... } end
    keep(fn(...))
  end, ...)
  uv.ref(uv_timer)
  local ok, lerr = pcall(loop)
  uv.unref(uv_timer)
  -- Let libuv finish closing the handles closed during the run: a close
  -- callback left pending would otherwise fire while Lua shuts down.
  uv.run("nowait")
  running = false
  local failed, merr = main_failed, main_err
  main_task, main_failed, main_err = nil, false, nil
  reset()
  if not ok then error(lerr, 0) end
  if failed then
    if type(merr.err) == "string" then error(merr.tb, 0) end
    M.last_traceback = merr.tb
    error(merr.err, 0)
  end
  if lerr then error(tostring(lerr), 0) end
  return unpack(results or {}, 1, nres or 0)
end

--- Internal (test watchdogs): keep a set of live tasks so that _abort can
--- show where each one waits.
function M._track_tasks(on)
  registry = on and setmetatable({}, { __mode = "k" }) or nil
end

--- Internal (test watchdogs, from a libuv callback): makes the running
--- lowbit.run raise msg, followed by the traceback of every task still
--- waiting when tasks are tracked.
function M._abort(msg)
  if not running then return end
  local parts = { msg }
  if registry then
    for t in pairs(registry) do
      if not t.done and t.gen == gen then parts[#parts + 1] = task_traceback(t, "waiting task:") end
    end
  end
  -- Called while a task runs (a loop run from inside it): where that task
  -- is stuck is the answer.
  if current then parts[#parts + 1] = debug.traceback("running task (the loop was run from inside it):", 2) end
  -- The timer state: a hang with timers pending but none armed is a
  -- scheduler fault, not a test's.
  parts[#parts + 1] = ("timers: %d pending, next in %s s, armed for %s s, libuv timer %s"):format(
    heap_count(), heap_count() > 0 and ("%.3f"):format(heap_first().at - now()) or "-",
    armed_at and ("%.3f"):format(armed_at - now()) or "nothing",
    uv_timer and (uv.is_active(uv_timer) and ("active, due in %d ms"):format(uv.timer_get_due_in(uv_timer)) or "inactive") or "absent")
  local text = table.concat(parts, "\n")
  main_failed, main_err = true, { err = text, tb = text }
end

--- lowbit.run on a virtual clock, for tests of timing logic: lowbit.now()
--- starts at `start` (default 1000) and stands still while tasks run;
--- whenever every task is waiting, it jumps to the next timer (sleep,
--- deadline, context timeout) and fires it. Sleeps cost no real time and
--- orderings that depend on time are deterministic. Real I/O still works,
--- but its deadlines are virtual too.
function M.run_virtual(fn, ...)
  check_fn(fn, "lowbit.run_virtual")
  if running then error("lowbit.run_virtual: already running", 2) end
  virtual, vnow = true, 1000
  local res = { pcall(M.run, fn, ...) }
  virtual = false
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

--- True inside lowbit.run_virtual.
function M.is_virtual() return virtual end

--- True while lowbit.run drives the loop.
function M.is_running() return running end

-- SIGPIPE would kill the process on a write to a vanished peer; ignore it.
function M._ignore_sigpipe()
  local ok, core = pcall(require, "lowbit.core")
  if ok and core then core.C.lb_ignore_sigpipe() end
end

return M
