-- lowbit.topic: a single-channel, in-process pub/sub with fanout.
--
--   local users = topic.new{ check = function(ev)
--     return type(ev) == "table" and ev.id ~= nil, "user event with an id expected"
--   end }
--   local cancel = users:subscribe(function(ctx, ev) return send_welcome(ctx, ev) end)
--   users:subscribe(apply_credit, users:with_recovery(), users:with_retry(3, 0.5))
--   local ok, err = users:publish(ctx, { id = "u_123" })  -- every handler ran
--   cancel()                                              -- idempotent
--
-- Handlers are fn(ctx, ev). A handler fails by returning `nil, err` (err
-- anything but nil or a boolean) or an error value (lowbit.errors) alone;
-- anything else (nothing, a boolean, any other value) is a success. The
-- same rule as retry.run's fn and rungroup's services.
-- publish runs every handler in subscription order, even after some fail,
-- and returns true, or nil plus all their errors joined (errors.join).
--
-- The handler list is copy-on-write: subscribe and cancel build a new list
-- and publish iterates the list it found when it started, so subscribing or
-- cancelling from inside a handler (or from another task while a handler is
-- parked) is safe and takes effect from the next publish. A publish whose
-- handlers succeed creates no tables or closures.
--
-- Options are middleware, function(handler) -> handler, applied in the order
-- given to subscribe: the first one wraps the handler, the next wraps that.
-- So subscribe(h, t:with_recovery(), t:with_retry(3, 0.5)) turns a raise
-- into an error before the retry loop sees it. Without with_recovery an
-- error raised by a handler propagates out of publish (a raise is a bug).
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local retry = require "lowbit.retry"

local M = {}

local type, error, getmetatable, setmetatable, tostring, select, pairs, ipairs, load, assert =
  type, error, getmetatable, setmetatable, tostring, select, pairs, ipairs, load, assert
local xpcall, traceback, floor = xpcall, debug.traceback, math.floor
local unpack = unpack or table.unpack
local Ctx = context.Ctx
local join, is, with_kind, is_error = errors.join, errors.is, errors.with_kind, errors.is_error
local sleep_ctx, current, yield = lowbit.sleep_ctx, lowbit.current, lowbit.yield
local DO_NOT_RETRY, RETRY_LIMIT_EXCEEDED = retry.DO_NOT_RETRY, retry.RETRY_LIMIT_EXCEEDED

--- What with_recovery turns a raised error into (the error also matches the
--- raised value when that was an error value, and its text has the traceback).
M.HANDLER_RAISED = errors.new("topic handler raised an error")
local HANDLER_RAISED = M.HANDLER_RAISED

local Topic = {}
Topic.__index = Topic
M.Topic = Topic

local EMPTY = {}

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

-- A handler's result as an error or nil (the rule at the top, as
-- retry.run's): `nil, err` or an error value alone is a failure.
local function outcome(a, b)
  if b ~= nil and type(b) ~= "boolean" then return b end
  if is_error(a) then return a end
  return nil
end


---------------------------------------------------------------------------
-- Dispatch
--
-- Each handler list gets its own dispatch function, built when the list
-- changes. Up to UNROLL handlers it is unrolled code with the handlers in
-- upvalues: one call site per handler, so a publish compiles into its
-- caller's trace (a loop over handlers would be a trace of its own, entered
-- and left on every publish, which costs more than the handlers: 10 no-op
-- handlers took ~40 ns a publish in a loop, ~1 ns unrolled). Longer lists
-- are split into unrolled chunks (make_dispatch).
---------------------------------------------------------------------------

local UNROLL = 16

local function dispatch_none() return true end

-- makers[n](ok, outcome, join, h1, ..., hn) -> dispatch, compiled once per
-- n. It returns ok (true; nil for the chunks of a long list, so that their
-- caller's fast path sees no result) or nil, join(errors).
local makers = {}
local function unrolled(hs, n, ok)
  local make = makers[n]
  if make == nil then
    local p, hn, en = {}, {}, {}
    for i = 1, n do hn[i] = "h" .. i; en[i] = "e" .. i end
    p[#p + 1] = "local ok, outcome, join, " .. table.concat(hn, ", ") .. " = ...\n"
    p[#p + 1] = "return function(ctx, ev)\n"
    p[#p + 1] = "  local failed, " .. table.concat(en, ", ") .. " = false\n"
    p[#p + 1] = "  local a, b\n"
    for i = 1, n do
      p[#p + 1] = ("  a, b = h%d(ctx, ev)\n"):format(i)
      p[#p + 1] = ("  if a ~= nil or b ~= nil then e%d = outcome(a, b); if e%d ~= nil then failed = true end end\n"):format(i, i)
    end
    p[#p + 1] = "  if not failed then return ok end\n"
    p[#p + 1] = "  return nil, join(" .. table.concat(en, ", ") .. ")\n"
    p[#p + 1] = "end\n"
    make = assert(load(table.concat(p), "=topic.dispatch" .. n))
    makers[n] = make
  end
  return make(ok, outcome, join, unpack(hs, 1, n))
end

-- More than UNROLL handlers: unrolled dispatchers of UNROLL handlers each,
-- called by a dispatcher built the same way over them; its joined error (of
-- joined errors) is flattened so errors.list still gives one per handler.
local function make_dispatch(hs)
  local n = #hs
  if n == 0 then return dispatch_none end
  if n <= UNROLL then return unrolled(hs, n, true) end
  local chunks = {}
  for i = 1, n, UNROLL do
    local last = i + UNROLL - 1
    if last > n then last = n end
    chunks[#chunks + 1] = unrolled({ unpack(hs, i, last) }, last - i + 1, nil)
  end
  local top = make_dispatch(chunks)
  return function(ctx, ev)
    local ok, err = top(ctx, ev)
    if ok then return true end
    local flat, k = {}, 0
    for _, chunk_err in ipairs(errors.list(err)) do
      for _, e in ipairs(errors.list(chunk_err)) do k = k + 1; flat[k] = e end
    end
    return nil, join(unpack(flat, 1, k))
  end
end

--- A new topic. opts (optional): `check`, function(ev) -> ok, reason, run on
--- every published event before any handler; when it returns false or nil,
--- publish raises "bad argument 'ev' to topic:publish: <reason>".
function M.new(opts)
  local check
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("bad argument 'opts' to topic.new: table expected, got " .. type(opts), 2)
    end
    for k in pairs(opts) do
      if k ~= "check" then error("bad argument 'opts' to topic.new: unknown option '" .. tostring(k) .. "'", 2) end
    end
    check = opts.check
    if check ~= nil and not callable(check) then
      error("bad argument 'opts.check' to topic.new: function expected, got " .. type(check), 2)
    end
  end
  -- hs: the handlers (wrapped by their options); subs: one token per handler,
  -- same index. Both are replaced, never changed, once published.
  return setmetatable({ hs = EMPTY, subs = EMPTY, check = check, dispatch = dispatch_none }, Topic)
end

local function check_self(self, what)
  if getmetatable(self) ~= Topic then
    error("bad self to topic:" .. what .. ": topic expected, got " .. type(self) .. " (use ':')", 3)
  end
end

local function remove(self, token)
  local oh, os = self.hs, self.subs
  local n = #os
  for i = 1, n do
    if os[i] == token then
      local nh, ns, k = {}, {}, 0
      for j = 1, n do
        if j ~= i then k = k + 1; nh[k] = oh[j]; ns[k] = os[j] end
      end
      if k == 0 then nh, ns = EMPTY, EMPTY end
      self.hs, self.subs, self.dispatch = nh, ns, make_dispatch(nh)
      return
    end
  end
end

--- Adds handler fn(ctx, ev), wrapped by the options in order. Returns
--- cancel(), which removes it (from the next publish on); calling cancel
--- again does nothing.
function Topic:subscribe(fn, ...)
  check_self(self, "subscribe")
  if not callable(fn) then
    error("bad argument 'fn' to topic:subscribe: function expected, got " .. type(fn), 2)
  end
  local h = fn
  for i = 1, select("#", ...) do
    local opt = select(i, ...)
    if not callable(opt) then
      error("bad argument #" .. (i + 1) .. " to topic:subscribe: option (function) expected, got " .. type(opt), 2)
    end
    h = opt(h)
    if not callable(h) then
      error("bad argument #" .. (i + 1) .. " to topic:subscribe: option returned " .. type(h) .. ", handler expected", 2)
    end
  end
  local token = {}
  local oh, os = self.hs, self.subs
  local n = #os
  local nh, ns = {}, {}
  for i = 1, n do nh[i] = oh[i]; ns[i] = os[i] end
  nh[n + 1], ns[n + 1] = h, token
  self.hs, self.subs, self.dispatch = nh, ns, make_dispatch(nh)
  local topic = self
  return function()
    if token.cancelled then return end
    token.cancelled = true
    remove(topic, token)
  end
end

--- Runs every handler with (ctx, ev), even when some fail. Returns nil when
--- all succeeded, else the joined errors of those that failed
--- (errors.list(err) gives them), as Go's Publish returns its error.
function Topic:publish(ctx, ev)
  if getmetatable(ctx) ~= Ctx then
    error("bad argument 'ctx' to topic:publish: context expected, got " .. type(ctx), 2)
  end
  local check = self.check
  if check ~= nil then
    local ok, why = check(ev)
    if not ok then
      error("bad argument 'ev' to topic:publish: " .. (why ~= nil and tostring(why) or "rejected by check"), 2)
    end
  end
  local _, err = self.dispatch(ctx, ev)
  return err
end

--- Number of handlers the next publish will run.
function Topic:count()
  check_self(self, "count")
  return #self.hs
end

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

-- The xpcall message handler: the raised value becomes an error value
-- carrying the traceback of where it was raised.
local function on_raise(raised)
  local tb = traceback("", 2):gsub("^\n", "")
  local e
  if is_error(raised) then
    e = with_kind(HANDLER_RAISED, join(raised, errors.new(tb)))
  else
    e = with_kind(HANDLER_RAISED, nil, "%s\n%s", tostring(raised), tb)
  end
  e.value, e.traceback = raised, tb
  return e
end

local function recovery(h)
  return function(ctx, ev)
    local ok, a, b = xpcall(h, on_raise, ctx, ev)
    if ok then return a, b end
    return nil, a
  end
end

--- An option: a handler that raises returns HANDLER_RAISED (text: the
--- raised message and its traceback) instead of stopping publish.
function M.with_recovery() return recovery end
function Topic:with_recovery() return recovery end

--- An option: a failing handler is called again up to n more times, delay
--- seconds apart (sleeping with the publish's ctx; 0 = at once). It gives
--- up early on an error matching retry.DO_NOT_RETRY (returned as is) or
--- when ctx ends (ctx's error, also matching the last error); after n
--- retries it returns retry.RETRY_LIMIT_EXCEEDED, also matching the last error.
local function retrying(n, delay, fname)
  if type(n) ~= "number" or n ~= floor(n) or n < 0 then
    error("bad argument 'n' to " .. fname .. ": non-negative integer expected, got " .. tostring(n), 3)
  end
  if delay == nil then delay = 0 end
  if type(delay) ~= "number" or delay ~= delay or delay < 0 then
    error("bad argument 'delay' to " .. fname .. ": non-negative number expected, got " .. tostring(delay), 3)
  end
  return function(h)
    return function(ctx, ev)
      local a, b = h(ctx, ev)
      if a == nil and b == nil then return nil end
      local err = outcome(a, b)
      if err == nil then return nil end
      for _ = 1, n do
        if is(err, DO_NOT_RETRY) then return nil, err end
        if delay > 0 then
          local ok, cerr = sleep_ctx(ctx, delay)
          if not ok then return nil, with_kind(cerr, err) end
        else
          local cerr = ctx:err()
          if cerr ~= nil then return nil, with_kind(cerr, err) end
          if current() ~= nil then yield() end
        end
        err = outcome(h(ctx, ev))
        if err == nil then return nil end
      end
      if is(err, DO_NOT_RETRY) then return nil, err end
      return nil, with_kind(RETRY_LIMIT_EXCEEDED, err)
    end
  end
end

function M.with_retry(n, delay) return retrying(n, delay, "topic.with_retry") end
function Topic:with_retry(n, delay) return retrying(n, delay, "topic:with_retry") end

return M
