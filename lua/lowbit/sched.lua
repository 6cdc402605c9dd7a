-- lowbit.sched: everything above the ready queue -- wait queues, channels,
-- select, the blocking helpers of the I/O modules, waitgroups and mutexes
-- -- written against one small backend interface, so that the same code
-- runs on lowbit's own luv scheduler (lowbit/init.lua) and inside nginx
-- (lowbit/ngx.lua).
--
--   require("lowbit.sched")(M, B)   -- installs the functions into M
--
-- B, the backend:
--   B.need_task(what)  the waiting unit that is running now (raises
--                      "<what>: must be called from a lowbit task" outside one)
--   B.park()           parks it until B.wake(unit, a, b); returns a, b
--   B.wake(unit, a, b) makes a parked unit runnable (never runs it inline)
--   B.timer_add(at, fn, data) / B.timer_cancel(e)
--                      fn(e) at time `at` (B.now() clock), outside any task
--   B.now()            the monotonic clock in seconds
-- The functions of B are captured once, as upvalues that never change,
-- so a call through the seam costs what a direct call did.
local type, error, setmetatable, getmetatable = type, error, setmetatable, getmetatable
local floor, random = math.floor, math.random

return function(M, B)
local need_task, co_yield, wake = B.need_task, B.park, B.wake
local timer_add, timer_cancel, now = B.timer_add, B.timer_cancel, B.now

local function check_seconds(s, name)
  if type(s) ~= "number" or s ~= s then
    error("bad argument 'seconds' to " .. name .. ": number expected, got " .. type(s), 3)
  end
end

---------------------------------------------------------------------------
-- Wait queues: FIFO with O(1) removal of any entry (tombstones).
---------------------------------------------------------------------------

local function q_new() return { first = 1, last = 0, n = 0 } end

local function q_push(q, w)
  local l = q.last + 1
  q.last = l
  q[l] = w
  q.n = q.n + 1
  w.q, w.qi = q, l
end

local function q_remove(w)
  local q, i = w.q, w.qi
  if not q or q[i] ~= w then return end
  q[i] = false
  w.q = false
  q.n = q.n - 1
  if q.n == 0 then
    for k = q.first, q.last do q[k] = nil end
    q.first, q.last = 1, 0
  else
    while q[q.last] == false do q[q.last] = nil; q.last = q.last - 1 end
  end
end

-- Removes and returns the first entry for which `live(w)` holds, dropping
-- dead ones on the way.
local function q_shift(q)
  while q.n > 0 do
    local f = q.first
    local w = q[f]
    q[f] = nil
    q.first = f + 1
    if w then
      q.n = q.n - 1
      w.q = false
      if q.n == 0 then
        for k = q.first, q.last do q[k] = nil end
        q.first, q.last = 1, 0
      end
      local sel = w.sel
      if sel == nil or not sel.done then return w end
    end
  end
  return nil
end

M._q_new, M._q_push, M._q_remove, M._q_shift = q_new, q_push, q_remove, q_shift

-- Wait records are made with every field they will get: LuaJIT inserts a
-- key even to store nil, and growing a small table key by key rehashes it
-- each time (a cost paid on every blocking call otherwise).
local function new_sel_rec(co)
  return { co = co, done = false, index = false, value = false, ok = false, timer = false }
end

-- A wait-queue entry: for task co, or for case `case` of a select's sel;
-- value is what a sender offers.
local function waiter(co, sel, case, value)
  return { co = co, sel = sel, case = case, value = value, q = false, qi = 0 }
end

--- A wait-queue entry for sel (I/O modules queue them with _q_push).
function M._waiter(sel) return waiter(nil, sel) end

---------------------------------------------------------------------------
-- Channels
---------------------------------------------------------------------------

local Chan = {}
Chan.__index = Chan
M.Chan = Chan

--- A channel with a buffer of n values (n = 0 or nil: unbuffered, every
--- send waits for a receiver).
function M.chan(n)
  n = n or 0
  if type(n) ~= "number" or n < 0 or n ~= floor(n) then
    error("bad argument 'n' to lowbit.chan: non-negative integer expected", 2)
  end
  return setmetatable({ cap = n, count = 0, head = 1, buf = {}, closed = false,
                        recvq = q_new(), sendq = q_new() }, Chan)
end

local function is_chan(c) return getmetatable(c) == Chan end
M.is_chan = is_chan

-- Completes a waiter: a select waiter also learns which case fired.
local function fire(w, v, ok)
  local sel = w.sel
  if sel then
    sel.done = true
    sel.index, sel.value, sel.ok = w.case, v, ok
    wake(sel.co)
  else
    wake(w.co, v, ok)
  end
end

local function buf_push(c, v)
  local i = (c.head + c.count - 1) % c.cap + 1
  c.buf[i] = v
  c.count = c.count + 1
end

local function buf_pop(c)
  local h = c.head
  local v = c.buf[h]
  c.buf[h] = nil
  c.head = h % c.cap + 1
  c.count = c.count - 1
  return v
end

-- Non-blocking send: true when the value was taken.
local function chan_try_send(c, v)
  if c.closed then error("send on closed channel", 3) end
  local w = q_shift(c.recvq)
  if w then fire(w, v, true); return true end
  if c.count < c.cap then buf_push(c, v); return true end
  return false
end

-- Non-blocking receive: (v, true) a value; (nil, false) closed and drained;
-- (nil, nil) nothing there yet.
local function chan_try_recv(c)
  if c.count > 0 then
    local v = buf_pop(c)
    local w = q_shift(c.sendq)
    if w then buf_push(c, w.value); fire(w, nil, true) end
    return v, true
  end
  local w = q_shift(c.sendq)
  if w then
    local v = w.value
    fire(w, nil, true)
    return v, true
  end
  if c.closed then return nil, false end
  return nil, nil
end

function Chan:send(v)
  if chan_try_send(self, v) then return end
  local co = need_task("chan:send")
  local w = waiter(co, nil, nil, v)
  q_push(self.sendq, w)
  local _, ok = co_yield()
  if ok == false then error("send on closed channel", 2) end
end

function Chan:recv()
  local v, ok = chan_try_recv(self)
  if ok ~= nil then return v, ok end
  local co = need_task("chan:recv")
  q_push(self.recvq, waiter(co))
  return co_yield()
end

function Chan:try_send(v) return chan_try_send(self, v) end
function Chan:try_recv() return chan_try_recv(self) end

--- Closes the channel: receivers drain what is buffered, then get
--- (nil, false); senders still waiting raise "send on closed channel".
function Chan:close()
  if self.closed then error("close of closed channel", 2) end
  self.closed = true
  while true do
    local w = q_shift(self.recvq)
    if not w then break end
    fire(w, nil, false)
  end
  while true do
    local w = q_shift(self.sendq)
    if not w then break end
    fire(w, nil, false)
  end
end

function Chan:is_closed() return self.closed end
function Chan:len() return self.count end
function Chan:__len() return self.count end

--- A channel that receives lowbit.now() once, after s seconds.
function M.after(s)
  check_seconds(s, "lowbit.after")
  local c = M.chan(1)
  timer_add(now() + s, function() c:try_send(now()) end)
  return c
end

---------------------------------------------------------------------------
-- select
---------------------------------------------------------------------------

-- A case is a channel (receive), {recv = ch} or {send = ch, value = v}.
local function case_of(c, i)
  if is_chan(c) then return c, false end
  if type(c) == "table" then
    if c.recv ~= nil then
      if not is_chan(c.recv) then error("bad argument 'cases' to lowbit.select: case #" .. i .. ": recv needs a channel", 3) end
      return c.recv, false
    end
    if c.send ~= nil then
      if not is_chan(c.send) then error("bad argument 'cases' to lowbit.select: case #" .. i .. ": send needs a channel", 3) end
      return c.send, true, c.value
    end
  end
  error("bad argument 'cases' to lowbit.select: case #" .. i .. ": channel, {recv = ch} or {send = ch, value = v} expected", 3)
end

--- Waits for the first of several channel operations and does it.
---   local i, v, ok = lowbit.select{ ch1, {send = ch2, value = x}, ctx:done() }
--- Returns the index of the case that fired, and for a receive its value
--- and ok. With `default = true` in the table it never waits and returns
--- nil when no case is ready. When several are ready one is picked at random.
function M.select(cases)
  if type(cases) ~= "table" then error("bad argument 'cases' to lowbit.select: table expected", 2) end
  local n = #cases
  local start = n > 1 and random(n) or 1
  for k = 0, n - 1 do
    local i = (start + k - 1) % n + 1
    local ch, is_send, v = case_of(cases[i], i)
    if is_send then
      if chan_try_send(ch, v) then return i end
    else
      local rv, ok = chan_try_recv(ch)
      if ok ~= nil then return i, rv, ok end
    end
  end
  if cases.default then return nil end
  if n == 0 then error("lowbit.select: no cases and no default would block forever", 2) end
  local co = need_task("lowbit.select")
  local sel = new_sel_rec(co)
  local ws = {}
  for i = 1, n do
    local ch, is_send, v = case_of(cases[i], i)
    local w = waiter(nil, sel, i, v)
    ws[i] = w
    q_push(is_send and ch.sendq or ch.recvq, w)
  end
  co_yield()
  for i = 1, n do q_remove(ws[i]) end
  local i = sel.index
  local ch, is_send = case_of(cases[i], i)
  if is_send and sel.ok == false then error("send on closed channel", 2) end
  if is_send then return i end
  return i, sel.value, sel.ok
end

---------------------------------------------------------------------------
-- Blocking on a callback, with a context and a deadline (for I/O modules).
--
--   local sel = lowbit._sel()              -- in the task that will wait
--   start_io(function(v) lowbit._fire(sel, v) end)
--   local why, v = lowbit._block(sel, ctx, deadline)
--   -- why: "ok" (fired, v = value), "ctx" (ctx done), "timeout"
---------------------------------------------------------------------------

local WHY = { [0] = "ok", [-1] = "ctx", [-2] = "timeout" }

function M._sel(what)
  return new_sel_rec(need_task(what or "blocking call"))
end

local function sel_fire(sel, v, index)
  if sel.done then return false end
  sel.done = true
  sel.index, sel.value = index or 0, v
  wake(sel.co)
  return true
end
M._fire = sel_fire

local function fire_timeout(e) sel_fire(e.data, nil, -2) end

--- Replaces the deadline of a parked (or about to park) sel.
function M._sel_deadline(sel, deadline)
  if sel.timer then timer_cancel(sel.timer); sel.timer = nil end
  if deadline and not sel.done then
    if deadline <= now() then sel_fire(sel, nil, -2)
    else sel.timer = timer_add(deadline, fire_timeout, sel) end
  end
end

function M._block(sel, ctx, deadline)
  local cw
  if not sel.done then
    if ctx then
      if ctx:err() ~= nil then
        sel_fire(sel, nil, -1)
      else
        cw = waiter(nil, sel, -1)
        q_push(ctx:done().recvq, cw)
      end
    end
    if deadline and not sel.done then M._sel_deadline(sel, deadline) end
  end
  co_yield()
  if cw then q_remove(cw) end
  if sel.timer then timer_cancel(sel.timer); sel.timer = nil end
  return WHY[sel.index], sel.value
end

--- Like lowbit.sleep, but returns ctx's error early when ctx ends first.
function M.sleep_ctx(ctx, s)
  if type(ctx) ~= "table" or type(ctx.err) ~= "function" then
    error("bad argument 'ctx' to lowbit.sleep_ctx: context expected, got " .. type(ctx), 2)
  end
  check_seconds(s, "lowbit.sleep_ctx")
  local sel = M._sel("lowbit.sleep_ctx")
  local why = M._block(sel, ctx, now() + s)
  if why == "ctx" then return nil, ctx:err() end
  return true
end

---------------------------------------------------------------------------
-- WaitGroup and Mutex
---------------------------------------------------------------------------

local WaitGroup = {}
WaitGroup.__index = WaitGroup

function M.waitgroup()
  return setmetatable({ n = 0, waiters = q_new() }, WaitGroup)
end

function WaitGroup:add(n)
  n = n or 1
  if type(n) ~= "number" then error("bad argument 'n' to waitgroup:add: number expected", 2) end
  self.n = self.n + n
  if self.n < 0 then self.n = self.n - n; error("waitgroup: negative counter", 2) end
  if self.n == 0 then
    while true do
      local w = q_shift(self.waiters)
      if not w then break end
      fire(w)
    end
  end
end

function WaitGroup:done() self:add(-1) end

--- Parks until the counter is zero.
function WaitGroup:wait()
  if self.n == 0 then return end
  local co = need_task("waitgroup:wait")
  q_push(self.waiters, waiter(co))
  co_yield()
end

local Mutex = {}
Mutex.__index = Mutex

-- The wait queue is made on the first contention: most mutexes (a TLS
-- conn has two) are never waited on, and two tables less per mutex count
-- on servers that make them per connection.
function M.mutex()
  return setmetatable({ locked = false, waiters = false }, Mutex)
end

--- Parks until the lock is ours. Waiters get the lock in FIFO order.
function Mutex:lock()
  if not self.locked then self.locked = true; return end
  local co = need_task("mutex:lock")
  local q = self.waiters
  if not q then q = q_new(); self.waiters = q end
  q_push(q, waiter(co))
  co_yield()
end

function Mutex:try_lock()
  if self.locked then return false end
  self.locked = true
  return true
end

--- Hands the lock to the first waiter, or frees it.
function Mutex:unlock()
  if not self.locked then error("mutex: unlock of unlocked mutex", 2) end
  local q = self.waiters
  local w = q and q_shift(q)
  if w then fire(w) else self.locked = false end
end


return M
end
