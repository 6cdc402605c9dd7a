-- Cost of retry.run when fn succeeds at once (no retries, no sleep): the
-- overhead the loop adds to a call that does not fail.
--   build/bin/lowbit bench/retry.lua [N]
local lowbit = require "lowbit"
local context = require "lowbit.context"
local retry = require "lowbit.retry"
local R = dofile("bench/report.lua").suite("retry")

local N = tonumber(arg and arg[1]) or 10000000
local bg = context.background()
local ctx = context.with_cancel(bg)

local function timeit(label, fn)
  fn(100000) -- warm up
  collectgarbage()
  local t0 = lowbit.now()
  fn(N)
  local dt = lowbit.now() - t0
  print(("%-52s %7.1f ns/op  (%d in %.3f s)"):format(label, dt / N * 1e9, N, dt))
  R:line{ case = label, metric = "ns_per_op", value = dt / N * 1e9, unit = "ns", better = "lower" }
end

local policy = retry.max_attempts(5, retry.exponential(0.1, 30))
local function ok_fn(_, attempt) return attempt end

timeit("direct call of fn (baseline)", function(n)
  local s = 0
  for _ = 1, n do s = s + ok_fn(bg, 1) end
  assert(s > 0)
end)
timeit("retry.run, success at attempt 1, background ctx", function(n)
  local s = 0
  for _ = 1, n do s = s + retry.run(bg, policy, ok_fn) end
  assert(s > 0)
end)
timeit("retry.run, success at attempt 1, cancellable ctx", function(n)
  local s = 0
  for _ = 1, n do s = s + retry.run(ctx, policy, ok_fn) end
  assert(s > 0)
end)
