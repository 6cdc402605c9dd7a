-- lowbit.ngx: lowbit handlers and tasks inside nginx's Lua module.
--
--   init_worker_by_lua_block { require("lowbit.ngx").init_worker() }
--   location / { content_by_lua_block { require("lowbit.ngx").serve(require("app")) } }
--
-- Not a second runtime: loading this module installs, as the "lowbit"
-- module, a backend under the same channels, select, mutexes, waitgroups,
-- contexts and timers (lowbit/sched.lua) that park on ngx.semaphore and run
-- tasks as ngx light threads. It never loads luv. Handlers function(w, r)
-- run unchanged: r is lowbit's request (raw target, raw headers, a context
-- cancelled on client abort and when the handler returns), w the response
-- writer over ngx.print/ngx.flush, and w:hijack() the raw request socket.
--
-- Tasks started in a request are ngx light threads of that request; when
-- its handler returns, r.ctx is cancelled, they get GRACE seconds to end,
-- and the rest are killed. Outside requests (init_worker) a task is a
-- 0-delay ngx.timer. Timers (lowbit.after, sleeps with a context,
-- deadlines) share one scheduler thread per worker.
local ngx = ngx
if type(ngx) ~= "table" or not ngx.thread then
  error("lowbit.ngx: runs inside nginx's Lua module (content_by_lua, init_worker_by_lua)", 2)
end

local ffi = require "ffi"
local semaphore = require "ngx.semaphore"
local errors = require "lowbit.errors"

local type, error, tostring, select, pcall, xpcall, setmetatable, next =
  type, error, tostring, select, pcall, xpcall, setmetatable, next
local co_running = coroutine.running
local traceback = debug.traceback
local ceil, max, min = math.ceil, math.max, math.min
local unpack = unpack
local ngx_log, ngx_ERR = ngx.log, ngx.ERR

local M = {}

--- Seconds a request's tasks get, after its handler returns and its ctx is
--- cancelled, before they are killed.
M.GRACE = 0.2

--- Cancel r.ctx when the client goes away (ngx.on_abort: costs a
--- coroutine per request; needs lua_check_client_abort on).
M.WATCH_ABORT = true

---------------------------------------------------------------------------
-- lowbit.log, without luv: lines go to nginx's error log.
---------------------------------------------------------------------------

if package.loaded["lowbit.log"] == nil then
  local dropped = 0
  local function write(msg) ngx_log(ngx_ERR, tostring(msg)); return true end
  package.loaded["lowbit.log"] = {
    write = write, write_always = write, flush = function() return true end,
    limit = function(_, msg) return write(msg) end,
    stats = function() return { written = 0, dropped = dropped } end,
    _set_sink = function() end,
  }
end

---------------------------------------------------------------------------
-- The clock: CLOCK_MONOTONIC through the FFI (never ngx.now(), which is
-- epoch time cached per event loop pass). Conn deadlines use it too.
---------------------------------------------------------------------------

pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } lb_ngx_timespec;
int clock_gettime(int clk, lb_ngx_timespec *ts);
]])
local ts = ffi.new("lb_ngx_timespec")
local CLOCK_MONOTONIC = 1
local clock_gettime = ffi.C.clock_gettime
local function now()
  clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

---------------------------------------------------------------------------
-- The backend: the "lowbit" module inside nginx.
---------------------------------------------------------------------------

local L = { VERSION = "0.1.0", errors = errors, now = now, backend = "ngx" }

function L.on_error(err, tb)
  ngx_log(ngx_ERR, "lowbit: error in task: ", tostring(tb or err))
end

-- A unit is what parks: one per light thread (or timer, or the request's
-- entry thread), with its own semaphore, made on first need.
local units = setmetatable({}, { __mode = "k" })

local PHASE_OK = { rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
                   ssl_session_fetch = true, preread = true }

local function need_task(what)
  local co = co_running()
  local u = co and units[co]
  if u then return u end
  if not co or not PHASE_OK[ngx.get_phase()] then
    error(what .. ": must be called from a lowbit task (a request handler, lowbit.go, or ngx.ngx.timer)", 3)
  end
  u = { sema = semaphore.new(0), a = nil, b = nil, co = co }
  units[co] = u
  return u
end
L._need_task = need_task

-- A wake before the park is kept by the semaphore's count.
local PARK_SLICE = 3600
local function park()
  local u = units[co_running()]
  local sema = u.sema
  while true do
    local ok, err = sema:wait(PARK_SLICE)
    if ok then break end
    if err ~= "timeout" then error("lowbit: parking failed: " .. tostring(err)) end
  end
  local a, b = u.a, u.b
  u.a, u.b = nil, nil
  return a, b
end
L._park = park

local function wake(u, a, b)
  u.a, u.b = a, b
  u.sema:post(1)
end
L._wake = wake

---------------------------------------------------------------------------
-- Timers: one min-heap, one scheduler thread per worker.
---------------------------------------------------------------------------

local H = require("lowbit.timerheap").new()
local heap_push, heap_pop, heap_first, heap_remove, heap_count = H.push, H.pop, H.first, H.remove, H.count
local sched_sema = semaphore.new(0)
local sched_running, sched_until = false, nil

local root_cancel -- set by init_worker

local function sched_loop(premature)
  if premature then sched_running = false; return end
  while true do
    local t = now()
    local e = heap_first()
    while e ~= nil and e.at <= t + 0.0005 do
      heap_pop()
      local ok, err = pcall(e.fn, e)
      if not ok then ngx_log(ngx_ERR, "lowbit: timer callback failed: ", tostring(err)) end
      e = heap_first()
    end
    if ngx.worker.exiting() then
      if root_cancel then root_cancel() end
      break
    end
    local wait = 1
    local first = heap_first()
    if first ~= nil then wait = min(max(first.at - now(), 0.001), 1) end
    sched_until = now() + wait
    sched_sema:wait(wait)
    sched_until = nil
  end
  sched_running = false
end

local function sched_start()
  if sched_running then return end
  local ok, err = ngx.timer.at(0, sched_loop)
  if ok then sched_running = true
  else ngx_log(ngx_ERR, "lowbit: cannot start the timer thread: ", tostring(err)) end
end

local function timer_add(at, fn, data)
  local e = { at = at, fn = fn, data = data, idx = false }
  local is_first = heap_push(e)
  if not sched_running then sched_start()
  elseif is_first and (sched_until == nil or at < sched_until) then sched_sema:post(1) end
  return e
end
L._timer_add = timer_add

local function timer_cancel(e)
  return (heap_remove(e))
end
L._timer_cancel = timer_cancel
function L._timer_count() return heap_count() end

require("lowbit.sched")(L, {
  need_task = need_task, park = park, wake = wake,
  timer_add = timer_add, timer_cancel = timer_cancel, now = now,
})

---------------------------------------------------------------------------
-- Tasks
---------------------------------------------------------------------------

local function check_fn(fn, name)
  if type(fn) ~= "function" then
    local mt = getmetatable(fn)
    if not (mt and mt.__call) then
      error("bad argument 'fn' to " .. name .. ": function expected, got " .. type(fn), 3)
    end
  end
end

-- Per request (or per timer): the tasks started there and a waitgroup,
-- found from the running coroutine (the request's entry thread, or a task
-- it started): no ngx.ctx table per request.
local states = setmetatable({}, { __mode = "k" })
local function req_state()
  local co = co_running()
  local st = states[co]
  if not st then
    st = { threads = {}, n = 0, wg = L.waitgroup() }
    states[co] = st
  end
  return st
end

local function report(err)
  local tb = traceback(tostring(err), 2)
  local ok, rerr = pcall(L.on_error, err, tb)
  if not ok then ngx_log(ngx_ERR, "lowbit: on_error failed: ", tostring(rerr), "\n", tb) end
  return err
end

local function run_task(st, fn, ...)
  if st then states[co_running()] = st end
  xpcall(fn, report, ...)
  if st then st.wg:done() end
end

-- Bumped by every task started in a request: serve() looks its request's
-- state up (coroutine.running is not compiled: the trace would stitch)
-- only when this moved while its handler ran.
local spawned = 0

function L.go(fn, ...)
  check_fn(fn, "lowbit.go")
  local phase = ngx.get_phase()
  if PHASE_OK[phase] then
    spawned = spawned + 1
    local st = req_state()
    st.wg:add(1)
    -- A light thread runs at once until it first yields.
    local th, err = ngx.thread.spawn(run_task, st, fn, ...)
    if not th then st.wg:done(); error("lowbit.go: " .. tostring(err), 2) end
    st.n = st.n + 1
    st.threads[st.n] = th
    return th
  end
  local n, args = select("#", ...), { ... }
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then return end
    run_task(nil, fn, unpack(args, 1, n))
  end)
  if not ok then error("lowbit.go: " .. tostring(err), 2) end
  return true
end

function L.detach() return false end
function L.current()
  local co = co_running()
  return co and units[co] or nil
end

local function check_seconds(s, name)
  if type(s) ~= "number" or s ~= s then
    error("bad argument 'seconds' to " .. name .. ": number expected, got " .. type(s), 3)
  end
end

function L.sleep(s)
  check_seconds(s, "lowbit.sleep")
  need_task("lowbit.sleep")
  ngx.sleep(s > 0 and s or 0)
end

function L.yield()
  need_task("lowbit.yield")
  ngx.sleep(0)
end

--- Runs fn(...) in the current light thread, then waits for the tasks it
--- started. No deadlock detection: a timer can always wake a light thread.
function L.run(fn, ...)
  check_fn(fn, "lowbit.run")
  need_task("lowbit.run")
  local res = { n = select("#", ...) }
  local function keep(...) res = { n = select("#", ...), ... } end
  keep(fn(...))
  req_state().wg:wait()
  return unpack(res, 1, res.n)
end
L.run_virtual = L.run
function L.is_virtual() return false end
function L.is_running() return true end
function L._set_after_poll() end
function L._ignore_sigpipe() end
function L._track_tasks() end
function L._abort() end
L.trace_spawn_sites = false
L.DEADLOCK = errors.new("all tasks are asleep: deadlock")

-- Installed before any module that requires "lowbit" loads.
local prev = package.loaded.lowbit
if prev ~= nil and prev.backend ~= "ngx" then
  error("lowbit.ngx: the luv runtime is already loaded in this nginx worker; require lowbit.ngx first", 2)
end
if prev == nil then package.loaded.lowbit = L else L = prev end
M.lowbit = L

local context = require "lowbit.context"
local headers = require "lowbit.http.headers"
-- Canonical spellings of lower-case names (headers.canonical lowers its
-- argument again: a string.lower per header per response).
local canon_of, canon_n = {}, 0
local function canonical(ln)
  local c = canon_of[ln]
  if c then return c end
  c = headers.canonical(ln)
  if canon_n < 4096 then canon_n = canon_n + 1; canon_of[ln] = c end
  return c
end
local request = require "lowbit.http.request"

-- The worker's root context: cancelled when the worker exits.
local root_ctx
root_ctx, root_cancel = context.with_cancel(context.background())
M.root = root_ctx

---------------------------------------------------------------------------
-- The conn over cosockets (w:hijack(), outbound ngx.socket.tcp()).
---------------------------------------------------------------------------

local EOF, UNEXPECTED_EOF, TIMEOUT, CLOSED = errors.EOF, errors.UNEXPECTED_EOF, errors.TIMEOUT, errors.new("use of closed network connection")
M.CLOSED = CLOSED
local NOT_RAW = errors.new("lowbit.ngx: close_write is not possible on an nginx cosocket")
local FAR_MS = 24 * 3600 * 1000

local Conn = {}
Conn.__index = Conn
M.Conn = Conn

local function ms_until(dl, t)
  if not dl then return FAR_MS end
  return max(1, ceil((dl - t) * 1000))
end

local function apply_timeouts(c)
  local t = now()
  c.sock:settimeouts(FAR_MS, ms_until(c.wdl, t), ms_until(c.rdl, t))
end

local function map_err(err, partial)
  -- With lua_check_client_abort on, a raw request socket whose peer left
  -- reports "client aborted": the same end of stream as "closed".
  if err == "closed" or err == "client aborted" then
    if partial and partial ~= "" then return UNEXPECTED_EOF end
    return EOF
  end
  if err == "timeout" then return TIMEOUT end
  return errors.new("ngx: " .. tostring(err))
end

--- A conn (lowbit's conn interface) over a cosocket. opts.raw: the raw
--- request socket (close only marks it closed; no half-close).
function M.conn(sock, opts)
  if sock == nil or type(sock.receive) ~= "function" then
    error("bad argument 'sock' to lowbit.ngx.conn: cosocket expected, got " .. type(sock), 2)
  end
  opts = opts or {}
  return setmetatable({ sock = sock, raw = opts.raw and true or false, closed = false,
                        rdl = false, wdl = false, rerr = nil, peer = opts.peer, prefix = nil }, Conn)
end

--- Puts s back in front of the unread bytes (protocol switches).
function Conn:unread(s)
  if type(s) ~= "string" then error("bad argument 's' to conn:unread: string expected, got " .. type(s), 2) end
  if #s > 0 then self.prefix = s .. (self.prefix or "") end
end
function Conn:buffered() return self.prefix and #self.prefix or 0 end

-- A read of an outbound cosocket waits in slices of READ_SLICE seconds:
-- a cosocket that another light thread reads cannot be closed ("socket
-- busy reading"), so close() from another task (a cancelled ctx's
-- watcher) only marks the conn, and the reader closes it at the end of
-- its slice. (A slice that times out is not an error for nginx; with
-- lua_socket_log_errors on it is logged.) The raw request socket is never
-- closed by close() (the handler's end does), so its reads do not slice:
-- idle WebSockets cost no wakeups.
M.READ_SLICE = 0.25
local NO_SLICE = FAR_MS / 1000
local function receive(c, n, full)
  local acc
  while true do
    local t = now()
    local dl = c.rdl
    if dl and dl <= t then return nil, "timeout", acc end
    local slice = c.raw and NO_SLICE or M.READ_SLICE
    if dl and dl - t < slice then slice = dl - t end
    local sock = c.sock
    sock:settimeouts(FAR_MS, ms_until(c.wdl, t), max(1, ceil(slice * 1000)))
    local data, err, partial
    if full then data, err, partial = sock:receive(n) else data, err = sock:receiveany(n) end
    if data then
      if acc then return acc .. data end
      return data
    end
    if partial and partial ~= "" then
      acc = acc and acc .. partial or partial
      n = n - #partial
    end
    if err ~= "timeout" then return nil, err, acc end
    if c.closed then
      if c.close_pending then c.close_pending = false; if not c.raw then sock:close() end end
      return nil, CLOSED, acc
    end
  end
end

function Conn:read(maxn)
  if self.closed then return nil, CLOSED end
  local pre = self.prefix
  if pre then
    maxn = maxn or 65536
    if #pre <= maxn then self.prefix = nil; return pre end
    self.prefix = pre:sub(maxn + 1)
    return pre:sub(1, maxn)
  end
  if self.rerr then return nil, self.rerr end
  local data, err = receive(self, maxn or 65536, false)
  if data then return data end
  local e = err == CLOSED and CLOSED or map_err(err)
  if e ~= TIMEOUT then self.rerr = e end
  return nil, e
end

function Conn:read_full(n)
  if self.closed then return nil, CLOSED end
  if self.rerr then return nil, self.rerr end
  if self.rdl and self.rdl <= now() then return nil, TIMEOUT end
  local pre = self.prefix
  if pre then
    if #pre >= n then
      self.prefix = #pre > n and pre:sub(n + 1) or nil
      return pre:sub(1, n)
    end
    self.prefix = nil
    n = n - #pre
  end
  local data, err, partial = receive(self, n, true)
  if data then return pre and pre .. data or data end
  local got = (pre or "") .. (partial or "")
  local e = err == CLOSED and CLOSED or map_err(err, got)
  if e == TIMEOUT and got ~= "" then self.prefix = got end -- kept for the next read
  if e ~= TIMEOUT then self.rerr = e end
  return nil, e
end

function Conn:write(s)
  if self.closed then return nil, CLOSED end
  if self.wdl and self.wdl <= now() then return nil, TIMEOUT end
  apply_timeouts(self)
  local n, err = self.sock:send(s)
  if not n then return nil, map_err(err) end
  return n
end

function Conn:close()
  if self.closed then return nil, CLOSED end
  self.closed = true
  if not self.raw then
    local ok, err = self.sock:close()
    -- Another light thread is reading it: that reader closes it.
    if not ok and err == "socket busy reading" then self.close_pending = true end
  end
  return true
end

function Conn:close_write()
  if self.closed then return nil, CLOSED end
  return nil, NOT_RAW
end

local function check_deadline(t, fname)
  if t ~= nil and (type(t) ~= "number" or t ~= t) then
    error("bad argument 't' to conn:" .. fname .. ": number or nil expected, got " .. type(t), 3)
  end
end
function Conn:set_read_deadline(t) check_deadline(t, "set_read_deadline"); self.rdl = t or false; return true end
function Conn:set_write_deadline(t) check_deadline(t, "set_write_deadline"); self.wdl = t or false; return true end
function Conn:set_deadline(t)
  check_deadline(t, "set_deadline")
  self.rdl, self.wdl = t or false, t or false
  return true
end
function Conn:remote_addr() return self.peer end
function Conn:local_addr() return nil end

--- Dials host:port with ngx.socket.tcp() (names need a `resolver`).
-- Conns dialed per request (or timer), by its ngx.ctx: at the end of a
-- request, those a client pool holds idle go to nginx's keepalive pool.
local dialed = setmetatable({}, { __mode = "k" })
local dials = 0 -- bumped by every dial: serve looks only when it moved

--- Dials host:port with ngx.socket.tcp() (names need a `resolver`).
--- opts.pool: the nginx keepalive pool to take the connection from and,
--- once a client pool marked it idle (conn:pooled()), to give it back to
--- when the request ends (the HTTP and Redis clients name one per key).
function M.dial(ctx, addr, opts)
  if type(addr) ~= "string" then error("bad argument 'addr' to lowbit.ngx.dial: string expected", 2) end
  local host, port = addr:match("^%[?(.-)%]?:(%d+)$")
  if not host then return nil, errors.new("lowbit.ngx.dial: address host:port expected: " .. addr) end
  local sock = ngx.socket.tcp()
  local t = ctx and ctx.deadline and ctx:deadline()
  sock:settimeouts(t and ms_until(t, now()) or 60000, FAR_MS, FAR_MS)
  local pool = opts and opts.pool
  local ok, err
  if pool then ok, err = sock:connect(host, tonumber(port), { pool = pool })
  else ok, err = sock:connect(host, tonumber(port)) end
  if not ok then return nil, map_err(err) end
  local c = M.conn(sock, { peer = addr })
  -- A cosocket lives as long as its request (or timer): pools of the
  -- clients (HTTP, Redis) must not hand it to another one.
  local owner = ngx.ctx
  c.owner = owner
  -- Only in requests (a background timer lives on: its list would grow).
  if pool and ngx.get_phase() ~= "timer" then
    c.keepalive, c.idle = true, false
    local list = dialed[owner]
    if not list then list = {}; dialed[owner] = list end
    list[#list + 1] = c
    dials = dials + 1
  end
  return c
end

--- A client pool took this conn back, clean and idle (no exchange half
--- done): it may go to nginx's keepalive pool when the request ends.
function Conn:pooled() self.idle = true end

-- The end of a request: idle pooled conns it dialed go to nginx's
-- keepalive pool (the next request's dial with the same pool name gets
-- them); nginx closes the others.
local function keep_idle(owner)
  local list = dialed[owner]
  if not list then return end
  dialed[owner] = nil
  for i = 1, #list do
    local c = list[i]
    if c.idle and not c.closed and not c.rerr and not c.prefix then
      c.closed = true
      c.sock:setkeepalive()
    end
  end
end

--- Whether an idle conn may carry a new exchange: not closed, nothing
--- unread, no read error, and made in this request (or timer). A peer
--- that closed it meanwhile shows on first use (no peek on a cosocket).
function M.idle_usable(c)
  if type(c) ~= "table" or type(c.read) ~= "function" then
    error("bad argument 'c' to net.idle_usable: conn expected, got " .. type(c), 2)
  end
  if c.closed or c.rerr or c.prefix then return false end
  local owner = rawget(c, "owner")
  if owner ~= nil and owner ~= ngx.ctx then return false end
  c.idle = false -- taken out of the client pool: in use again
  return true
end

-- lowbit.net without luv: what the protocol modules (cooper, websockets,
-- the HTTP client) take from it, over cosockets. Installed only when the
-- real one is not loaded (it never is in a worker that loaded this first).
if package.loaded["lowbit.net"] == nil then
  package.loaded["lowbit.net"] = {
    EOF = EOF, CLOSED = CLOSED, TIMEOUT = TIMEOUT, backend = "ngx",
    dial = M.dial,
    idle_usable = M.idle_usable,
    prefixed = function(conn, prefix)
      if prefix == nil or prefix == "" then return conn end
      conn:unread(prefix)
      return conn
    end,
    join_host_port = function(host, port)
      if host:find(":", 1, true) then return "[" .. host .. "]:" .. tostring(port) end
      return host .. ":" .. tostring(port)
    end,
  }
end

-- "addr:port" of the client (two ngx.var lookups: only when asked).
local function peer_addr()
  local var = ngx.var
  return (var.remote_addr or "") .. ":" .. (var.remote_port or "")
end

---------------------------------------------------------------------------
-- The response writer.
---------------------------------------------------------------------------

local W = {}
W.__index = W
M.ResponseWriter = W

local HIJACKED = errors.new("http: connection has been hijacked")
M.HIJACKED = HIJACKED

-- What lowbit's own server sniffs when the handler sets no Content-Type.
-- Byte tests and plain finds: a pattern find is not compiled (each one
-- stitches the trace), and this runs on every such response.
local lower, concat, byte, sub, find = string.lower, table.concat, string.byte, string.sub, string.find
local HTML_TAGS = { "<!doctype html", "<html", "<head", "<body", "<script", "<title", "<div", "<h1",
                    "<table", "<br" }
local function sniff(s)
  local head = #s > 512 and sub(s, 1, 512) or s
  local i, c = 1, byte(head, 1)
  while c == 32 or c == 9 or c == 10 or c == 12 or c == 13 do i = i + 1; c = byte(head, i) end
  if c == 60 then -- "<"
    local l = lower(sub(head, i, i + 13))
    for k = 1, #HTML_TAGS do
      local tag = HTML_TAGS[k]
      if sub(l, 1, #tag) == tag then return "text/html; charset=utf-8" end
    end
    local c2, c3 = byte(l, 2), byte(l, 3)
    if (c2 == 112 or c2 == 97) and (c3 == 32 or c3 == 62) then return "text/html; charset=utf-8" end -- "<p ", "<a>"
    if sub(head, i, i + 4) == "<?xml" then return "text/xml; charset=utf-8" end
  end
  if sub(head, 1, 5) == "%PDF-" then return "application/pdf" end
  if sub(head, 1, 8) == "\137PNG\r\n\26\n" then return "image/png" end
  if sub(head, 1, 3) == "\255\216\255" then return "image/jpeg" end
  local g = sub(head, 1, 6)
  if g == "GIF87a" or g == "GIF89a" then return "image/gif" end
  -- Binary when a control byte but TAB, LF, FF, CR and ESC shows. A byte
  -- loop for short bodies (compiled), a pattern find (not) for longer ones.
  local n = #head
  if n <= 128 then
    for k = 1, n do
      local b = byte(head, k)
      if b < 32 and not (b == 9 or b == 10 or b == 12 or b == 13 or b == 27) then
        return "application/octet-stream"
      end
    end
  elseif find(head, "[%z\1-\8\11\14-\26\28-\31]") then
    return "application/octet-stream"
  end
  return "text/plain; charset=utf-8"
end

local BUFFER_MAX = 64 * 1024
local SKIP = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

-- A pooled writer keeps its header set (hset) from one request to the
-- next: emptied when first asked for, not made again. Every key of _v is
-- one of the names in the array part, so no table.clear (a C call).
local function empty_set(h)
  local vals = h._v
  for i = 1, h.n do vals[h[i]] = nil; h[i] = nil end
  h.n = 0
  if h._n ~= nil then h._n = nil end
  if h._raw ~= nil then h._raw = nil end
end

function W:header()
  local h = self.hdr
  if not h then
    h = self.hset
    if h then empty_set(h) else h = headers.new(); self.hset = h end
    self.hdr = h
  end
  return h
end

function W:write_header(status)
  if type(status) ~= "number" or status < 100 or status > 999 or status % 1 ~= 0 then
    error("invalid WriteHeader code " .. tostring(status), 2)
  end
  if self.hijacked then return nil, HIJACKED end
  if self.status then return end
  if status >= 100 and status < 200 and status ~= 101 then return true end -- nginx sends its own 100
  self.status = status
end

-- Copies status and headers into ngx; sample: the body's first bytes.
-- With a non-empty sample, the caller prints it next: ngx.print sends the
-- head itself (one C call less per response than ngx.send_headers first).
local function send_head(w, sample, length)
  w.head_sent = true
  local st = w.status or 200
  if st ~= 200 then ngx.status = st end -- nginx's default: one FFI call less
  local ngx_header = ngx.header
  local h = w.hdr
  local has_ct = false
  if h then
    -- The set's own fields, not h:each(): a closure per response keeps
    -- LuaJIT from compiling this path (FNEW is not compiled).
    local vals, names, nh = h._v, h._n, h.n
    for i = 1, nh do
      local ln = h[i]
      local v = vals[ln]
      if v ~= nil and not SKIP[ln] then
        if ln == "content-type" then has_ct = true end
        ngx_header[names and names[ln] or canonical(ln)] = v -- a table sends each value
      end
    end
  end
  local bodyless = (st >= 100 and st < 200) or st == 204 or st == 304
  if not has_ct and not bodyless then
    if sample and sample ~= "" then ngx_header["Content-Type"] = sniff(sample)
    elseif length ~= 0 then ngx_header["Content-Type"] = "text/plain; charset=utf-8" end
  end
  -- No Content-Length: nginx chunks the body (HTTP/1.1), which costs less
  -- than setting the header (and ngx.req.http_version(), a C function,
  -- would stitch the trace). HTTP/1.0 gets one from lua_http10_buffering.
  if sample and sample ~= "" then return end
  local ok, err = ngx.send_headers()
  if not ok and err then w.werr = errors.new("ngx: " .. tostring(err)) end
end

-- The body written before the head went: one string in b1 (the usual
-- case: no table per response), more in buf, made on the second write.
local function pending(w)
  local n = w.nbuf
  if n == 0 then return "" end
  local s
  if n == 1 then
    s = w.b1
  else
    local b = w.buf
    s = concat(b, "", 1, n)
    for i = 1, n do b[i] = nil end
  end
  w.b1, w.nbuf, w.blen = false, 0, 0
  return s
end

function W:write(s)
  if type(s) ~= "string" then
    if type(s) == "number" then s = tostring(s)
    else error("bad argument 's' to w:write: string expected, got " .. type(s), 2) end
  end
  if self.hijacked then return nil, HIJACKED end
  if self.werr then return nil, self.werr end
  if not self.status then self.status = 200 end
  if #s == 0 then return 0 end
  if not self.head_sent then
    local n = self.nbuf + 1
    self.nbuf = n
    if n == 1 then
      self.b1 = s
    else
      local b = self.buf
      if not b then b = {}; self.buf = b end
      if n == 2 then b[1] = self.b1 end
      b[n] = s
    end
    self.blen = self.blen + #s
    if self.blen < BUFFER_MAX then return #s end
    local body = pending(self)
    send_head(self, body)
    s = body
  end
  local ok, err = ngx.print(s)
  if not ok then self.werr = errors.new("ngx: " .. tostring(err)); return nil, self.werr end
  return #s
end

function W:flush()
  if self.hijacked then return nil, HIJACKED end
  if self.werr then return nil, self.werr end
  if not self.status then self.status = 200 end
  if not self.head_sent then
    local body = pending(self)
    send_head(self, body)
    if body ~= "" then
      local ok, err = ngx.print(body)
      if not ok then self.werr = errors.new("ngx: " .. tostring(err)); return nil, self.werr end
    end
  end
  local ok, err = ngx.flush(true)
  -- "nothing to flush" is success: everything already reached the kernel.
  if not ok and err ~= "nothing to flush" then
    self.werr = errors.new("ngx: " .. tostring(err))
    return nil, self.werr
  end
  return true
end

--- The raw request socket as a conn (HTTP/1.x only): the handler writes
--- the whole response itself (cooper's 101). nil, err where impossible.
function W:hijack()
  if self.hijacked then return nil, HIJACKED end
  local v = ngx.req.http_version()
  if v ~= 1.1 and v ~= 1.0 then
    return nil, errors.new("lowbit.ngx: hijack is not possible over HTTP/" .. tostring(v))
  end
  if self.head_sent then
    local ok, err = ngx.flush(true)
    if not ok and err ~= "nothing to flush" then return nil, errors.new("ngx: " .. tostring(err)) end
  end
  local sock, err = ngx.req.socket(true)
  if not sock then return nil, errors.new("lowbit.ngx: hijack: " .. tostring(err)) end
  self.hijacked = true
  return M.conn(sock, { raw = true, peer = peer_addr() })
end

local function finish(w)
  if w.hijacked or w.werr then return end
  if not w.head_sent then
    local body = pending(w)
    send_head(w, body, #body)
    if body ~= "" then ngx.print(body) end
  end
end

---------------------------------------------------------------------------
-- The request.
---------------------------------------------------------------------------

-- The raw (name, value, ...) pairs, and the Host, Content-Length and
-- Transfer-Encoding values picked up on the way (ngx.var lookups cost
-- microseconds each per request; one ngx.req.get_headers call does not).
local function raw_headers()
  local h = ngx.req.get_headers(0, true)
  local raw, n = {}, 0
  local host, cl, te
  for name, v in pairs(h) do
    local len = #name
    if len == 4 or len == 14 or len == 17 then
      local ln = lower(name)
      local first = type(v) == "table" and v[1] or v
      if ln == "host" then host = first
      elseif ln == "content-length" then cl = first
      elseif ln == "transfer-encoding" then te = first end
    end
    if type(v) == "table" then
      for i = 1, #v do raw[n + 1], raw[n + 2] = name, v[i]; n = n + 2 end
    else
      raw[n + 1], raw[n + 2] = name, v; n = n + 2
    end
  end
  return raw, host, cl, te
end

-- The body, read on first use (nginx reads chunked bodies itself).
local Body = {}
Body.__index = Body
local function load_body(b)
  if b.s then return end
  ngx.req.read_body()
  local s = ngx.req.get_body_data()
  if not s then
    local path = ngx.req.get_body_file()
    if path then
      local f = io.open(path, "rb")
      if f then s = f:read("*a"); f:close() end
    end
  end
  b.s, b.pos = s or "", 1
end
function Body:read(n)
  load_body(self)
  local s, pos = self.s, self.pos
  if pos > #s then return nil, EOF end
  n = n or 65536
  local chunk = s:sub(pos, pos + n - 1)
  self.pos = pos + #chunk
  return chunk
end
function Body:read_all(limit)
  load_body(self)
  local rest = self.s:sub(self.pos)
  if limit and #rest > limit then return nil, errors.new("http: request body too large") end
  self.pos = #self.s + 1
  return rest
end
function Body:close() self.s, self.pos = "", 1; return true end

-- r.ctx, made on first use (most handlers never ask for it): a child of
-- the worker's root, cancelled by ngx.on_abort and when the handler returns.
local function make_ctx(r)
  local ctx, cancel = context.with_cancel(root_ctx)
  rawset(r, "_cancel", cancel)
  if rawget(r, "_over") then cancel(); return ctx end -- asked for after the handler returned
  if M.WATCH_ABORT then pcall(ngx.on_abort, cancel) end -- needs lua_check_client_abort on
  return ctx
end

-- Every field is made on first use (the hello handler reads none): each
-- ngx.var lookup is a C call that hashes its name, ngx.req.get_headers
-- builds a table of every header. LAZY[k](r) returns the field after
-- rawsetting it, or nil after rawsetting what Request's own code needs
-- (_path and host for r.url, _raw for r.headers).
local function load_target(r)
  local target = ngx.var.request_uri or "/"
  local path, query = target:match("^([^?]*)%?(.*)$")
  rawset(r, "request_uri", target)
  rawset(r, "_path", path or target)
  rawset(r, "_query", query or false)
end
local function load_headers(r)
  local raw, host, cl, te = raw_headers()
  rawset(r, "_raw", raw)
  if rawget(r, "host") == nil then rawset(r, "host", host or "") end
  if rawget(r, "content_length") == nil then rawset(r, "content_length", tonumber(cl) or (te and -1 or 0)) end
end
local function load_proto(r)
  local v = ngx.req.http_version() or 1.1
  local minor = v == 1.0 and 0 or 1
  rawset(r, "proto", v == 2 and "HTTP/2.0" or (minor == 1 and "HTTP/1.1" or "HTTP/1.0"))
  rawset(r, "proto_minor", minor)
end
local LAZY = {
  method = function(r) local m = ngx.req.get_method(); rawset(r, "method", m); return m end,
  request_uri = function(r) load_target(r); return rawget(r, "request_uri") end,
  url = function(r)
    if rawget(r, "_path") == nil then load_target(r) end
    if rawget(r, "host") == nil then rawset(r, "host", ngx.var.http_host or "") end
    return nil
  end,
  host = function(r) local h = ngx.var.http_host or ""; rawset(r, "host", h); return h end,
  headers = function(r) if rawget(r, "_raw") == nil then load_headers(r) end; return nil end,
  content_length = function(r) load_headers(r); return rawget(r, "content_length") end,
  proto = function(r) load_proto(r); return rawget(r, "proto") end,
  proto_minor = function(r) load_proto(r); return rawget(r, "proto_minor") end,
  remote_addr = function(r) local a = peer_addr(); rawset(r, "remote_addr", a); return a end,
  body = function(r) local b = setmetatable({ s = false, pos = 1 }, Body); rawset(r, "body", b); return b end,
  ctx = function(r) local c = make_ctx(r); rawset(r, "ctx", c); return c end,
}
local function lazy(r, k)
  local f = LAZY[k]
  if f then return f(r) end
  return nil
end

local function new_request()
  return request.new({ _lazy = lazy, _over = false })
end

-- Writers of finished requests, ready for the next ones, and requests
-- whose handler read none of their fields (no field to reset).
local wpool, wpool_n, WPOOL_MAX = {}, 0, 256
local rpool, rpool_n = {}, 0

local function call_handler(h, w, r)
  if type(h) == "table" and h.serve_http then return h:serve_http(w, r) end
  return h(w, r)
end

---------------------------------------------------------------------------
-- Entry points.
---------------------------------------------------------------------------

--- content_by_lua: serves this request with handler(w, r).
function M.serve(handler)
  local t = type(handler)
  if not (t == "function" or (t == "table" and (handler.serve_http or (getmetatable(handler) or {}).__call))) then
    error("bad argument 'handler' to lowbit.ngx.serve: function or table with serve_http expected, got " .. t, 2)
  end
  -- A request from the pool when one is there: only requests whose
  -- handler read no field (nothing but their own two) go back to it.
  local r
  local nr = rpool_n
  if nr > 0 then
    r = rpool[nr]; rpool[nr] = nil; rpool_n = nr - 1
  else
    r = new_request()
  end
  -- A writer from the worker's pool (as lowbit's server reuses one per
  -- connection: a handler must not use w after it returns, as in Go).
  local w
  local np = wpool_n
  if np > 0 then
    w = wpool[np]; wpool[np] = nil; wpool_n = np - 1
  else
    w = setmetatable({ status = false, hdr = false, head_sent = false, hijacked = false, werr = false,
                       b1 = false, buf = false, nbuf = 0, blen = 0, hset = false }, W)
  end
  local spawned0, dials0 = spawned, dials
  local ok, err = xpcall(call_handler, traceback, handler, w, r)
  if not ok then
    ngx_log(ngx_ERR, "lowbit.ngx: handler failed: ", tostring(err))
    if not w.head_sent and not w.hijacked then
      w.status, w.hdr = 500, false
      pending(w)
      w:header():set("Content-Type", "text/plain; charset=utf-8")
      w:write("Internal Server Error\n")
    end
  end
  finish(w)
  rawset(r, "_over", true)
  local cancel = rawget(r, "_cancel")
  if cancel then cancel() end
  -- The request's tasks: a grace period after the cancel, then killed.
  local st = spawned ~= spawned0 and states[co_running()]
  if st and st.n > 0 then
    local deadline = now() + M.GRACE
    while st.wg.n > 0 and now() < deadline do ngx.sleep(0.01) end
    for i = 1, st.n do
      local th = st.threads[i]
      if th then pcall(ngx.thread.kill, th) end
      st.threads[i] = nil
    end
    st.n = 0
    if dials ~= dials0 then keep_idle(ngx.ctx) end
    return -- a task may still hold w: not pooled
  end
  if dials ~= dials0 then keep_idle(ngx.ctx) end
  if rpool_n < WPOOL_MAX then
    local k = next(r)
    k = next(r, k)
    if next(r, k) == nil then -- untouched: _lazy and _over only
      rawset(r, "_over", false)
      local n = rpool_n + 1
      rpool[n] = r; rpool_n = n
    end
  end
  if w.hijacked or wpool_n >= WPOOL_MAX then return end
  w.status, w.hdr, w.head_sent, w.werr = false, false, false, false
  if w.nbuf ~= 0 then pending(w) end
  local n = wpool_n + 1
  wpool[n] = w; wpool_n = n
end

--- init_worker_by_lua: starts the timer thread, and main(ctx) (optional)
--- as a background task whose ctx is cancelled when the worker exits.
function M.init_worker(main)
  sched_start()
  if main ~= nil then
    check_fn(main, "lowbit.ngx.init_worker")
    L.go(main, root_ctx)
  end
end

return M
