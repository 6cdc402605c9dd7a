-- lowbit.seriallane: keyed locks. One fn at a time per key, in arrival
-- order; different keys run in parallel.
--
--   local m = seriallane.new(600)                   -- lanes idle 10 min may go
--   local stock = seriallane.namespace("stock", location_id)
--   local n, err = m:run(ctx, stock, function(ctx) return adjust(ctx, delta) end)
--   m:run_multi(ctx, { seriallane.namespace("stock", from),
--                      seriallane.namespace("stock", to) }, move)  -- no deadlock
--   g:add(m:cleanup_service(300))                   -- lowbit.rungroup
--
-- The lanes live in the C core (lb_lanes): key -> owner id and a FIFO of
-- waiter ids. A release hands the lane straight to the first waiter, so no
-- newcomer can overtake a waiter. Lua only maps the id of a parked call to
-- its task and wakes it. Each call gets a fresh id (a per-manager counter),
-- so ids are never reused while the C side could still know them.
--
-- Keys. A key object (namespace(name, ...), key:sub(...)) is a path of
-- parts; its bytes are the parts, each prefixed with its length
-- ("<len>:<bytes>"), so no two different paths share bytes (("a:b", "c")
-- and ("a", "b:c") differ). A plain string is also a key, with a table of
-- its own in the core: it never equals a key object, whatever its text.
-- Numbers in parts are written as integers when integral ("%d"), else with
-- 17 significant digits, so namespace("stock", 7) == namespace("stock", "7").
--
-- Lanes are made on first use. An idle lane (no owner, no waiter) unused
-- for `idle` seconds may be removed by the cleanup: mark_idle() marks such
-- lanes, sweep_marked() removes those still idle and not acquired since
-- the mark (the seed's two-phase cleanup: a lane that got busy in between
-- is kept). cleanup_service(interval) does sweep then mark every interval.
--
-- Not reentrant: fn must not run (or run_multi) a key it already holds;
-- that call would wait for itself forever, as with Go's sync.Mutex.
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local core = require "lowbit.core"

local M = {}

local type, error, getmetatable, setmetatable, tostring, tonumber, select, pcall =
  type, error, getmetatable, setmetatable, tostring, tonumber, select, pcall
local floor, huge = math.floor, math.huge
local format, find = string.format, string.find
local concat, sort = table.concat, table.sort
local ffi = core.ffi
local C = core.C
local ffi_gc, ffi_istype = ffi.gc, ffi.istype
local lanes_new, lanes_free = C.lb_lanes_new, C.lb_lanes_free
local acquire, release, cancel = C.lb_lanes_acquire, C.lb_lanes_release, C.lb_lanes_cancel
local lanes_owner, lanes_waiting, lanes_count, lanes_sweep =
  C.lb_lanes_owner, C.lb_lanes_waiting, C.lb_lanes_count, C.lb_lanes_sweep
local is_ctx, BACKGROUND = context.is_context, context.background()
local now, new_sel, fire, block, sleep_ctx = lowbit.now, lowbit._sel, lowbit._fire, lowbit._block, lowbit.sleep_ctx

-- The time stamped on a lane at release: lowbit.now()'s clock (which
-- calls uv_hrtime through the FFI, so m:run stays one JIT trace).
local clock = now

local QUEUED, OWNED = C.LB_LANES_QUEUED, C.LB_LANES_OWNED
local MARK, SWEEP, SWEEP_NOW = C.LB_LANES_MARK, C.LB_LANES_SWEEP, C.LB_LANES_SWEEP_NOW
local ENOMEM = C.LB_ENOMEM

--- The lane table could not grow (a new key, or one more waiter).
M.OUT_OF_MEMORY = errors.new("seriallane: out of memory")
local OUT_OF_MEMORY = M.OUT_OF_MEMORY

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

---------------------------------------------------------------------------
-- Keys
---------------------------------------------------------------------------

local Key = {}
Key.__index = Key
M.Key = Key

local function is_key(v) return getmetatable(v) == Key end
M.is_key = is_key

local int64_t, uint64_t = ffi.typeof("int64_t"), ffi.typeof("uint64_t")

-- The text of one part, or nil and what was wrong.
local function part_text(v)
  local ty = type(v)
  if ty == "string" then return v end
  if ty == "number" then
    if v ~= v or v == huge or v == -huge then return nil, "finite number expected, got " .. tostring(v) end
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
    return format("%.17g", v)
  end
  if ty == "cdata" and (ffi_istype(int64_t, v) or ffi_istype(uint64_t, v)) then
    return (tostring(v):gsub("U?LL$", ""))
  end
  return nil, "string or number expected, got " .. ty
end

-- Appends the parts in ... to the parts/enc arrays (texts, encodings);
-- argoff: how many arguments of fname come before them (for messages).
local function add_parts(fname, argoff, parts, enc, np, ...)
  for i = 1, select("#", ...) do
    local p, why = part_text((select(i, ...)))
    if p == nil then
      error("bad argument #" .. (i + argoff) .. " to " .. fname .. ": " .. why, 3)
    end
    np = np + 1
    parts[np] = p
    enc[np] = #p .. ":" .. p
  end
  return np
end

--- A key in namespace `name` (a non-empty string), with more parts (strings
--- or numbers) below it: namespace("stock", id) is the same key as
--- namespace("stock"):sub(id).
function M.namespace(name, ...)
  if type(name) ~= "string" or name == "" then
    error("bad argument 'name' to seriallane.namespace: non-empty string expected, got "
      .. (type(name) == "string" and '""' or type(name)), 2)
  end
  local parts, enc = { name }, { #name .. ":" .. name }
  local np = add_parts("seriallane.namespace", 1, parts, enc, 1, ...)
  return setmetatable({ parts = parts, n = np, bytes = concat(enc) }, Key)
end

--- A child key: this key's parts followed by `...` (at least one).
function Key:sub(...)
  if not is_key(self) then error("bad argument 'self' to key:sub: seriallane key expected (use key:sub, not key.sub)", 2) end
  if select("#", ...) == 0 then error("bad argument #1 to key:sub: at least one part expected", 2) end
  local parts, enc = {}, {}
  for i = 1, self.n do parts[i] = self.parts[i] end
  local np = add_parts("key:sub", 0, parts, enc, self.n, ...)
  local b = concat(enc, "", self.n + 1, np)
  return setmetatable({ parts = parts, n = np, bytes = self.bytes .. b }, Key)
end

--- The key's parts (a copy).
function Key:path()
  local t = {}
  for i = 1, self.n do t[i] = self.parts[i] end
  return t
end

-- Readable, for logs: stock:7, with a part quoted (%q) when it is empty or
-- holds ':', '"', a space or a control byte.
function Key:__tostring()
  local out = {}
  for i = 1, self.n do
    local p = self.parts[i]
    if p == "" or find(p, '[%c%s:"\\\128-\255]') then p = format("%q", p):gsub("\\\n", "\\n") end
    out[i] = p
  end
  return concat(out, ":")
end

function Key.__eq(a, b) return a.bytes == b.bytes end

---------------------------------------------------------------------------
-- The manager
---------------------------------------------------------------------------

local Manager = {}
Manager.__index = Manager
M.Manager = Manager

--- A new manager. idle: seconds (>= 0, math.huge: never) a lane must have
--- been unused before the cleanup may remove it.
function M.new(idle)
  if type(idle) ~= "number" or idle ~= idle or idle < 0 then
    error("bad argument 'idle' to seriallane.new: non-negative number of seconds expected, got " .. tostring(idle), 2)
  end
  local ts, tk = lanes_new(), lanes_new()
  if ts == nil or tk == nil then
    if ts ~= nil then lanes_free(ts) end
    if tk ~= nil then lanes_free(tk) end
    error("seriallane.new: out of memory", 2)
  end
  return setmetatable({
    idle = idle,
    ts = ffi_gc(ts, lanes_free), -- plain string keys
    tk = ffi_gc(tk, lanes_free), -- key objects (length-prefixed parts)
    last_id = 0,
    waiters = {},                -- id -> sel of a call parked in a FIFO
  }, Manager)
end

local function check_self(m, fname)
  if getmetatable(m) ~= Manager then
    error("bad argument 'self' to seriallane:" .. fname .. ": manager expected (use m:" .. fname .. ")", 3)
  end
end

-- The table and bytes of a key, or nil when it is not one.
local function resolve(m, key)
  if type(key) == "string" then return m.ts, key end
  if getmetatable(key) == Key then return m.tk, key.bytes end
  return nil
end

local function key_type(key)
  local ty = type(key)
  if ty == "table" and getmetatable(key) ~= nil then return "table (not a seriallane key)" end
  return ty
end

-- Releases lane (t, k) held by id and wakes the call it was handed to.
local function release_lane(m, t, k, id)
  local nxt = tonumber(release(t, k, #k, id, clock()))
  if nxt > 0 then
    local waiters = m.waiters
    local sel = waiters[nxt]
    waiters[nxt] = nil
    -- Every queued id has a sel until its call owns the lane or cancels
    -- (which happens in its own task, never between these two lines).
    fire(sel, nil)
  elseif nxt < 0 then
    error("seriallane: internal error: release of a lane not held (" .. core.errname(nxt) .. ")", 0)
  end
end

-- id was queued on (t, k): parks until the lane is handed over (true) or
-- ctx ends (false; id is off the FIFO and owns nothing there).
local function wait_lane(m, t, k, id, ctx, fname)
  local sel = new_sel(fname)
  local waiters = m.waiters
  waiters[id] = sel
  -- background can never end: no need to watch its done channel
  local why = block(sel, ctx ~= BACKGROUND and ctx or nil, nil)
  waiters[id] = nil
  if why == "ok" then return true end
  -- ctx ended first. A release may still have handed us the lane between
  -- the wake and now: then pass it on to the next waiter.
  if cancel(t, k, #k, id) == OWNED then release_lane(m, t, k, id) end
  return false
end

local function finish(m, t, k, id, ok, ...)
  release_lane(m, t, k, id)
  if not ok then error((...), 0) end
  return ...
end

--- Runs fn(ctx) while holding key's lane, after the calls queued before it.
--- Returns what fn returns. Ends with nil, ctx:err() without running fn
--- when ctx is done before the lane is ours (a cancel while queued leaves
--- the FIFO at once), or nil, OUT_OF_MEMORY. If fn raises, the lane is
--- released and the error re-raised unchanged (fn's own traceback is lost:
--- use xpcall inside fn to keep it).
function Manager:run(ctx, key, fn)
  if getmetatable(self) ~= Manager then check_self(self, "run") end
  if not is_ctx(ctx) then
    error("bad argument 'ctx' to seriallane:run: context expected, got " .. type(ctx), 2)
  end
  local t, k = resolve(self, key)
  if t == nil then
    error("bad argument 'key' to seriallane:run: string or seriallane key expected, got " .. key_type(key), 2)
  end
  if not callable(fn) then
    error("bad argument 'fn' to seriallane:run: function expected, got " .. type(fn), 2)
  end
  -- (ctx:err() walks the ctx chain in a loop: an inner loop that keeps the
  -- caller's loop from compiling into one trace. background never ends.)
  if ctx ~= BACKGROUND then
    local err = ctx:err()
    if err ~= nil then return nil, err end
  end
  local id = self.last_id + 1
  self.last_id = id
  -- `now` 0: a lane's last-used time only matters while it is idle, and
  -- the release that ends this hold stamps the real time.
  local r = acquire(t, k, #k, id, 0)
  if r == QUEUED then
    if not wait_lane(self, t, k, id, ctx, "seriallane:run") then return nil, ctx:err() end
  elseif r < 0 then
    if r == ENOMEM then return nil, OUT_OF_MEMORY end
    error("seriallane: internal error: acquire failed (" .. core.errname(r) .. ")", 0)
  end
  return finish(self, t, k, id, pcall(fn, ctx))
end

---------------------------------------------------------------------------
-- run_multi
---------------------------------------------------------------------------

-- The canonical order: plain strings (table ts) before key objects, then
-- byte order (LuaJIT compares strings with memcmp, whatever the locale).
local function less(ta, ka, tb, kb)
  if ta ~= tb then return ta < tb end
  return ka < kb
end

local function rec_less(a, b) return less(a[1], a[2], b[1], b[2]) end

-- Sorts tabs/ks (parallel arrays, tab 1 = ts, 2 = tk) and drops
-- duplicates; returns the new length.
local function canonical(tabs, ks, n)
  if n <= 16 then
    for i = 2, n do
      local ta, ka = tabs[i], ks[i]
      local j = i - 1
      while j >= 1 and less(ta, ka, tabs[j], ks[j]) do
        tabs[j + 1], ks[j + 1] = tabs[j], ks[j]
        j = j - 1
      end
      tabs[j + 1], ks[j + 1] = ta, ka
    end
  else
    local recs = {}
    for i = 1, n do recs[i] = { tabs[i], ks[i] } end
    sort(recs, rec_less)
    for i = 1, n do tabs[i], ks[i] = recs[i][1], recs[i][2] end
  end
  local w = n > 0 and 1 or 0
  for i = 2, n do
    if tabs[i] ~= tabs[w] or ks[i] ~= ks[w] then
      w = w + 1
      tabs[w], ks[w] = tabs[i], ks[i]
    end
  end
  for i = w + 1, n do tabs[i], ks[i] = nil, nil end
  return w
end

local function release_all(m, tabs, ks, held, id)
  local ts, tk = m.ts, m.tk
  for i = held, 1, -1 do
    release_lane(m, tabs[i] == 1 and ts or tk, ks[i], id)
  end
end

local function finish_multi(m, tabs, ks, n, id, ok, ...)
  release_all(m, tabs, ks, n, id)
  if not ok then error((...), 0) end
  return ...
end

--- Runs fn(ctx) while holding the lanes of every key in `keys` (an array of
--- strings and keys; duplicates count once; empty: fn just runs). The lanes
--- are taken one by one in a canonical order (sorted on a copy: `keys` is
--- not touched), so callers asking for overlapping sets never deadlock.
--- Results, errors and raises as m:run; a ctx ending while some lanes are
--- held releases them.
function Manager:run_multi(ctx, keys, fn)
  if getmetatable(self) ~= Manager then check_self(self, "run_multi") end
  if not is_ctx(ctx) then
    error("bad argument 'ctx' to seriallane:run_multi: context expected, got " .. type(ctx), 2)
  end
  if type(keys) ~= "table" or getmetatable(keys) ~= nil then
    error("bad argument 'keys' to seriallane:run_multi: array of keys expected, got " .. key_type(keys), 2)
  end
  if not callable(fn) then
    error("bad argument 'fn' to seriallane:run_multi: function expected, got " .. type(fn), 2)
  end
  local n = #keys
  local tabs, ks = {}, {}
  for i = 1, n do
    local key = keys[i]
    if type(key) == "string" then
      tabs[i], ks[i] = 1, key
    elseif getmetatable(key) == Key then
      tabs[i], ks[i] = 2, key.bytes
    else
      error("bad argument 'keys' to seriallane:run_multi: element #" .. i
        .. ": string or seriallane key expected, got " .. key_type(key), 2)
    end
  end
  if ctx ~= BACKGROUND then
    local err = ctx:err()
    if err ~= nil then return nil, err end
  end
  n = canonical(tabs, ks, n)
  local id = self.last_id + 1
  self.last_id = id
  local ts, tk = self.ts, self.tk
  for i = 1, n do
    local t, k = tabs[i] == 1 and ts or tk, ks[i]
    local r = acquire(t, k, #k, id, 0)
    if r == QUEUED then
      if not wait_lane(self, t, k, id, ctx, "seriallane:run_multi") then
        release_all(self, tabs, ks, i - 1, id)
        return nil, ctx:err()
      end
    elseif r < 0 then
      release_all(self, tabs, ks, i - 1, id)
      if r == ENOMEM then return nil, OUT_OF_MEMORY end
      error("seriallane: internal error: acquire failed (" .. core.errname(r) .. ")", 0)
    end
  end
  return finish_multi(self, tabs, ks, n, id, pcall(fn, ctx))
end

---------------------------------------------------------------------------
-- Inspection and cleanup
---------------------------------------------------------------------------

--- Number of lanes in the table (busy or idle).
function Manager:count()
  check_self(self, "count")
  return tonumber(lanes_count(self.ts)) + tonumber(lanes_count(self.tk))
end

local function lane_of(m, key, fname)
  check_self(m, fname)
  local t, k = resolve(m, key)
  if t == nil then
    error("bad argument 'key' to seriallane:" .. fname .. ": string or seriallane key expected, got " .. key_type(key), 3)
  end
  return t, k
end

--- Number of calls waiting for key's lane (not counting its holder).
function Manager:waiting(key)
  local t, k = lane_of(self, key, "waiting")
  return tonumber(lanes_waiting(t, k, #k))
end

--- True while a call holds key's lane.
function Manager:busy(key)
  local t, k = lane_of(self, key, "busy")
  return lanes_owner(t, k, #k) ~= 0
end

--- Cleanup phase 1: marks the lanes idle (no holder, no waiter) and unused
--- for at least `idle` seconds; unmarks all others. Returns how many.
function Manager:mark_idle()
  check_self(self, "mark_idle")
  local t, idle = now(), self.idle
  return tonumber(lanes_sweep(self.ts, t, idle, MARK)) + tonumber(lanes_sweep(self.tk, t, idle, MARK))
end

--- Cleanup phase 2: removes the marked lanes that are still idle and were
--- not taken since mark_idle (even if released again); clears the marks.
--- Returns how many were removed.
function Manager:sweep_marked()
  check_self(self, "sweep_marked")
  return tonumber(lanes_sweep(self.ts, 0, 0, SWEEP)) + tonumber(lanes_sweep(self.tk, 0, 0, SWEEP))
end

--- Both phases at once: removes the lanes idle for `idle` seconds now.
function Manager:remove_idle()
  check_self(self, "remove_idle")
  local t, idle = now(), self.idle
  return tonumber(lanes_sweep(self.ts, t, idle, SWEEP_NOW)) + tonumber(lanes_sweep(self.tk, t, idle, SWEEP_NOW))
end

--- A service for lowbit.rungroup (or to call as svc:run(ctx) in a task):
--- every `interval` seconds it removes the lanes marked at the previous
--- tick that are still idle and unused, then marks the idle ones for the
--- next tick. So an idle lane goes between idle and idle + 2 * interval
--- seconds after its last use. run returns nil, ctx:err() when ctx ends.
--- One cleanup service per manager: two would clear each other's marks.
function Manager:cleanup_service(interval)
  check_self(self, "cleanup_service")
  if type(interval) ~= "number" or interval ~= interval or interval <= 0 or interval == huge then
    error("bad argument 'interval' to seriallane:cleanup_service: positive number of seconds expected, got "
      .. tostring(interval), 2)
  end
  local m = self
  return {
    name = "seriallane cleanup",
    interval = interval,
    run = function(_, ctx)
      if not is_ctx(ctx) then
        error("bad argument 'ctx' to cleanup_service:run: context expected, got " .. type(ctx), 2)
      end
      local next_tick = now() + interval
      while true do
        local ok, err = sleep_ctx(ctx, next_tick - now())
        if not ok then return nil, err end
        m:sweep_marked()
        m:mark_idle()
        next_tick = next_tick + interval
        local t = now()
        if next_tick <= t then next_tick = t + interval end -- fell behind: no burst
      end
    end,
  }
end

return M
