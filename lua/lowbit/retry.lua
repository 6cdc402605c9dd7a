-- lowbit.retry: a context-aware retry loop driven by policies that are plain
-- functions.
--
--   local v, err = retry.run(ctx, retry.max_attempts(5, retry.exponential(0.1, 30)),
--     function(ctx, attempt)
--       local body, err = fetch(ctx)
--       if not body then return nil, err end        -- failed: try again
--       return body                                  -- done
--     end)
--
-- fn(ctx, attempt) is called with attempt = 1, 2, ... The rule of the whole
-- family (retry, topic handlers, rungroup services): fn fails by returning
-- `nil, err` (err anything but nil or a boolean) or an error value
-- (lowbit.errors) alone; anything else succeeds: nothing, or a result (any
-- other value, booleans included). An error raised inside fn is not caught:
-- it propagates out of retry.run (a raise is a bug, not a transient failure).
--
-- A policy is function(attempt) -> seconds, called after attempt number
-- `attempt` failed: seconds > 0 sleeps that long before the next attempt,
-- 0 tries again at once (after letting other tasks run), a negative value
-- stops. The loop ends with:
--   result                        fn succeeded (true when fn returned nothing)
--   nil, ctx:err()                ctx ended before an attempt or during a sleep
--   nil, err                      err matches retry.DO_NOT_RETRY (chain kept)
--   nil, RETRY_LIMIT_EXCEEDED     the policy stopped; the error also matches
--                                 (errors.is) the last error fn returned
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"

local M = {}

local type, error, getmetatable, tostring = type, error, getmetatable, tostring
local random, min, floor, huge = math.random, math.min, math.floor, math.huge
local is_ctx = context.is_context
local is, with_kind, is_error = errors.is, errors.with_kind, errors.is_error
local sleep_ctx, current, yield = lowbit.sleep_ctx, lowbit.current, lowbit.yield

--- fn returned an error wrapping this: stop at once, return that error.
M.DO_NOT_RETRY = errors.new("do not retry")
--- The policy gave up; the returned error wraps the last error too.
M.RETRY_LIMIT_EXCEEDED = errors.new("retry limit exceeded")

local DO_NOT_RETRY, RETRY_LIMIT_EXCEEDED = M.DO_NOT_RETRY, M.RETRY_LIMIT_EXCEEDED

-- fn's results as an error, or nil for a success (the rule at the top;
-- topic and rungroup judge their callbacks' results the same way).
local function failure(a, b)
  if b ~= nil and type(b) ~= "boolean" then return b end
  if is_error(a) then return a end
  return nil
end

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

local function check_number(v, name, fname, allow_neg)
  if type(v) ~= "number" or v ~= v then
    error("bad argument '" .. name .. "' to retry." .. fname .. ": number expected, got " .. type(v), 3)
  end
  if not allow_neg and v < 0 then
    error("bad argument '" .. name .. "' to retry." .. fname .. ": must be >= 0, got " .. tostring(v), 3)
  end
end

---------------------------------------------------------------------------
-- The loop
---------------------------------------------------------------------------

-- After attempt 1 failed with err: the retry loop.
local function again(ctx, policy, fn, err)
  local attempt = 1
  while true do
    if is(err, DO_NOT_RETRY) then return nil, err end
    local d = policy(attempt)
    if type(d) ~= "number" or d ~= d then
      error("retry.run: policy returned " .. tostring(d) .. " for attempt " .. attempt .. ", number expected", 3)
    end
    if d < 0 then return nil, with_kind(RETRY_LIMIT_EXCEEDED, err) end
    if d > 0 then
      local ok, serr = sleep_ctx(ctx, d)
      if not ok then return nil, serr end
    elseif current() ~= nil then
      yield() -- a zero delay still lets the other tasks (and a canceller) run
    end
    local cerr = ctx:err()
    if cerr ~= nil then return nil, cerr end
    attempt = attempt + 1
    local res, e = fn(ctx, attempt)
    err = failure(res, e)
    if err == nil then
      if res == nil then return true end
      return res
    end
  end
end

--- Calls fn(ctx, attempt) until it succeeds, the policy stops, fn says
--- DO_NOT_RETRY, or ctx ends. Returns fn's result (true if it returned
--- nothing) or nil, err (see the top of this file).
function M.run(ctx, policy, fn)
  if not is_ctx(ctx) then
    error("bad argument 'ctx' to retry.run: context expected, got " .. type(ctx), 2)
  end
  if not callable(policy) then
    error("bad argument 'policy' to retry.run: function expected, got " .. type(policy), 2)
  end
  if not callable(fn) then
    error("bad argument 'fn' to retry.run: function expected, got " .. type(fn), 2)
  end
  -- The first attempt is kept out of the loop: a call that succeeds at once
  -- (the common case) then compiles into its caller's trace.
  local cerr = ctx:err()
  if cerr ~= nil then return nil, cerr end
  local res, e = fn(ctx, 1)
  local err = failure(res, e)
  if err == nil then
    if res == nil then return true end
    return res
  end
  return again(ctx, policy, fn, err)
end

---------------------------------------------------------------------------
-- Policies
---------------------------------------------------------------------------

--- Exponential backoff with full jitter: a uniform random delay in
--- [0, min(cap, base * 2^(attempt-1))]. cap defaults to infinity.
function M.exponential(base, cap)
  check_number(base, "base", "exponential")
  if cap == nil then cap = huge end
  check_number(cap, "cap", "exponential")
  return function(attempt)
    local e = attempt - 1
    if e > 1023 then e = 1023 end
    return random() * min(cap, base * 2 ^ e)
  end
end

--- The same delay d after every attempt.
function M.constant(d)
  check_number(d, "d", "constant")
  return function() return d end
end

--- step * attempt, capped at cap (no cap when nil).
function M.linear(step, cap)
  check_number(step, "step", "linear")
  if cap == nil then cap = huge end
  check_number(cap, "cap", "linear")
  return function(attempt) return min(cap, step * attempt) end
end

--- Retry at once, forever (bound it with max_attempts or a ctx deadline).
function M.always() return function() return 0 end end

--- Never retry: one attempt only.
function M.never() return function() return -1 end end

--- At most n attempts in total, with policy's delays in between.
function M.max_attempts(n, policy)
  if type(n) ~= "number" or n ~= floor(n) or n < 1 then
    error("bad argument 'n' to retry.max_attempts: positive integer expected, got " .. tostring(n), 2)
  end
  if not callable(policy) then
    error("bad argument 'policy' to retry.max_attempts: function expected, got " .. type(policy), 2)
  end
  return function(attempt)
    if attempt >= n then return -1 end
    return policy(attempt)
  end
end

return M
