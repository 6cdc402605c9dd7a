-- retry: a flaky operation retried with exponential backoff, a permanent
-- failure that stops at once, and a deadline that bounds the whole loop.
--
--   build/bin/lowbit examples/retry.lua
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local retry = require "lowbit.retry"

local UNAVAILABLE = errors.new("503 service unavailable")
local NOT_FOUND = errors.new("404 not found")

-- A pretend HTTP call: fails twice, then answers.
local calls = 0
local function fetch_user(ctx, id)
  calls = calls + 1
  if id == 0 then return nil, errors.with_kind(retry.DO_NOT_RETRY, NOT_FOUND, "user %d", id) end
  if calls < 3 then return nil, UNAVAILABLE end
  return { id = id, name = "ada" }
end

return function(ctx)
  local policy = retry.max_attempts(5, retry.exponential(0.02, 1))

  -- 1. transient failures: retried until it works
  local user, err = retry.run(ctx, policy, function(ctx, attempt)
    local u, ferr = fetch_user(ctx, 42)
    if not u then print(("  attempt %d failed: %s"):format(attempt, tostring(ferr))) end
    return u, ferr
  end)
  print("1. got user:", user and user.name, err)

  -- 2. a permanent failure: DO_NOT_RETRY stops the loop, the chain is kept
  local _, err2 = retry.run(ctx, policy, function(ctx) return fetch_user(ctx, 0) end)
  print("2. permanent:", tostring(err2), "| not found?", errors.is(err2, NOT_FOUND))

  -- 3. always failing: the policy gives up after 5 attempts
  local _, err3 = retry.run(ctx, policy, function() return nil, UNAVAILABLE end)
  print("3. exhausted:", tostring(err3), "| limit?", errors.is(err3, retry.RETRY_LIMIT_EXCEEDED),
    "| cause?", errors.is(err3, UNAVAILABLE))

  -- 4. a deadline bounds the loop, whatever the backoff says
  local dctx, cancel = context.with_timeout(ctx, 0.1)
  local t0 = lowbit.now()
  local _, err4 = retry.run(dctx, retry.constant(10), function() return nil, UNAVAILABLE end)
  cancel()
  print(("4. deadline: %s after %.2f s"):format(tostring(err4), lowbit.now() - t0))
end
