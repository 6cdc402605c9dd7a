-- lowbit.context: cancellation, deadlines and request-scoped values, as in
-- Go's context package.
--
--   local ctx, cancel = context.with_timeout(context.background(), 2)
--   local conn, err = net.dial(ctx, "example.com:80")
--   cancel()
--
-- Cancelling a context cancels all of its children at once and releases
-- their timers. ctx:done() is a channel that is closed on cancellation, so
-- it works in lowbit.select.
local lowbit = require "lowbit"
local errors = require "lowbit.errors"

local M = {}

local setmetatable, type, error, pairs, next = setmetatable, type, error, pairs, next
local now, timer_add, timer_cancel = lowbit.now, lowbit._timer_add, lowbit._timer_cancel

M.CANCELED = errors.new("context canceled")
M.DEADLINE_EXCEEDED = errors.new("context deadline exceeded")

local Ctx = {}
Ctx.__index = Ctx
M.Ctx = Ctx

local function is_ctx(c) return getmetatable(c) == Ctx end
M.is_context = is_ctx

local function check_parent(p, name)
  if not is_ctx(p) then
    error("bad argument 'parent' to context." .. name .. ": context expected, got " .. type(p), 3)
  end
end

-- background: never cancelled, no deadline, no values.
local never -- a channel that is never closed
local background = setmetatable({ kind = "background" }, Ctx)

function M.background() return background end
M.todo = M.background

-- The nearest ancestor (or self) that can be cancelled, or nil.
local function canceller(c)
  while c do
    if c.children ~= nil then return c end
    c = c.parent
  end
  return nil
end

local function cancel(c, err)
  if c.err_ ~= nil then return end
  c.err_ = err
  if c.timer then timer_cancel(c.timer); c.timer = nil end
  if c.done_ then c.done_:close() end
  local kids = c.children
  c.children = false -- stays "cancellable" for canceller(), takes no new kids
  if kids then
    for k in pairs(kids) do cancel(k, err) end
  end
  local p = c.owner
  if p then
    if p.children then p.children[c] = nil end
    c.owner = nil
  end
end

local function new_cancellable(parent, fields)
  local c = fields or {}
  c.parent = parent
  c.children = {}
  setmetatable(c, Ctx)
  local perr = parent:err()
  if perr ~= nil then
    cancel(c, perr)
  else
    local owner = canceller(parent)
    if owner and owner.children then
      owner.children[c] = true
      c.owner = owner
    end
  end
  return c
end

--- A child of parent that is cancelled when cancel() is called or when the
--- parent is. Returns ctx, cancel.
function M.with_cancel(parent)
  check_parent(parent, "with_cancel")
  local c = new_cancellable(parent)
  return c, function() cancel(c, M.CANCELED) end
end

--- Internal (the HTTP server's request ctx): a child of parent as from
--- with_cancel, without the cancel closure (a function that makes one
--- cannot be compiled by LuaJIT); context._cancel(c) cancels it.
function M._child(parent)
  local c = new_cancellable(parent)
  return c
end
function M._cancel(c) cancel(c, M.CANCELED) end

local function on_deadline(e) cancel(e.data, M.DEADLINE_EXCEEDED) end

--- A child that is also cancelled, with DEADLINE_EXCEEDED, at time t
--- (lowbit.now() clock). Returns ctx, cancel.
function M.with_deadline(parent, t)
  check_parent(parent, "with_deadline")
  if type(t) ~= "number" or t ~= t then
    error("bad argument 't' to context.with_deadline: number expected, got " .. type(t), 2)
  end
  local pd = parent:deadline()
  if pd and pd <= t then
    -- The parent ends first; its deadline is ours.
    return M.with_cancel(parent)
  end
  local c = new_cancellable(parent, { deadline_ = t })
  if c.err_ == nil then
    if t <= now() then
      cancel(c, M.DEADLINE_EXCEEDED)
    else
      c.timer = timer_add(t, on_deadline, c)
    end
  end
  return c, function() cancel(c, M.CANCELED) end
end

--- with_deadline(parent, lowbit.now() + seconds).
function M.with_timeout(parent, seconds)
  check_parent(parent, "with_timeout")
  if type(seconds) ~= "number" or seconds ~= seconds then
    error("bad argument 'seconds' to context.with_timeout: number expected, got " .. type(seconds), 2)
  end
  return M.with_deadline(parent, now() + seconds)
end

--- A child carrying key = value; lookups walk up the chain.
function M.with_value(parent, key, value)
  check_parent(parent, "with_value")
  if key == nil then error("bad argument 'key' to context.with_value: nil key", 2) end
  return setmetatable({ parent = parent, key = key, val = value }, Ctx)
end

--- nil while the context is live; then CANCELED or DEADLINE_EXCEEDED.
function Ctx:err()
  -- Recursion rather than a loop: a loop here stops LuaJIT from compiling
  -- the callers' hot paths (every blocking call checks ctx:err()).
  if self.children ~= nil then return self.err_ end
  local p = self.parent
  if p then return p:err() end
  return nil
end

--- A channel closed when the context is cancelled (never, for background).
function Ctx:done()
  local c = canceller(self)
  if c == nil then
    never = never or lowbit.chan(0)
    return never
  end
  local d = c.done_
  if d == nil then
    d = lowbit.chan(0)
    c.done_ = d
    if c.err_ ~= nil then d:close() end
  end
  return d
end

--- Parks the task until the context is cancelled; returns ctx:err().
function Ctx:wait()
  local err = self:err()
  if err ~= nil then return err end
  self:done():recv()
  return self:err()
end

--- The time (lowbit.now() clock) at which the context will be cancelled, or
--- nil when it has none.
function Ctx:deadline()
  local c = self
  while c do
    if c.deadline_ then return c.deadline_ end
    c = c.parent
  end
  return nil
end

--- Seconds left before the deadline (nil without one; may be negative).
function Ctx:remaining()
  local d = self:deadline()
  return d and (d - now()) or nil
end

function Ctx:value(key)
  local c = self
  while c do
    if c.key ~= nil and c.key == key then return c.val end
    c = c.parent
  end
  return nil
end

function Ctx:__tostring()
  local c, kinds = self, {}
  while c do
    kinds[#kinds + 1] = c.kind or (c.key ~= nil and "value") or (c.deadline_ and "deadline") or "cancel"
    c = c.parent
  end
  return "context(" .. table.concat(kinds, " < ") .. ")"
end

-- The process root: the host cancels it on SIGINT/SIGTERM.
local root, root_cancel
--- The root context of the program: a child of background that the host
--- cancels on SIGINT or SIGTERM.
function M.root()
  if root == nil or (root:err() ~= nil and not lowbit.is_running()) then
    root, root_cancel = M.with_cancel(background)
  end
  return root
end

--- Cancels the root context (what the host does on the first signal).
function M.cancel_root()
  M.root()
  root_cancel()
end

--- Number of live children registered under ctx (tests use it to check that
--- cancelled children are released).
function M._children(ctx)
  local c = canceller(ctx)
  if not c or not c.children then return 0 end
  local n = 0
  for _ in next, c.children do n = n + 1 end
  return n
end

return M
