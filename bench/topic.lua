-- Cost of topic:publish with 1 and 10 succeeding handlers (the seed's Go
-- figures: 3.7 and 20 ns/op; /work/shared/bench/compare-topic-go.sh runs the
-- same Go benchmark on this machine), and with recovery + retry options.
--   build/bin/lowbit bench/topic.lua [N]
--
-- Each case gets its own copy of the timing loop (compiled from a string),
-- as each Go benchmark is its own function: a call site that publishes to
-- one topic stays monomorphic, and the JIT inlines the handlers into it.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local topic = require "lowbit.topic"
local R = dofile("bench/report.lua").suite("topic")

local N = tonumber(arg and arg[1]) or 20000000
local bg = context.background()
local sink = { 0 }

local LOOP = [[
local t, bg, n = ...
for i = 1, n do t:publish(bg, i) end
]]

local function bench(label, nh, with_opts)
  local t = topic.new()
  for _ = 1, nh do
    local h = function(_, ev) sink[1] = sink[1] + ev end
    if with_opts then t:subscribe(h, t:with_recovery(), t:with_retry(3, 0)) else t:subscribe(h) end
  end
  local loop = assert(load(LOOP, "=bench/topic.lua:" .. label))
  local n = with_opts and N / 4 or N
  loop(t, bg, 100000) -- warm up: let the JIT settle
  collectgarbage()
  local kb0 = collectgarbage("count")
  local t0 = lowbit.now()
  loop(t, bg, n)
  local dt = lowbit.now() - t0
  local kb = collectgarbage("count") - kb0
  print(("%-40s %7.1f ns/publish  (%d in %.3f s, %+.0f KB heap)"):format(label, dt / n * 1e9, n, dt, kb))
  R:line{ case = label, metric = "ns_per_publish", value = dt / n * 1e9, unit = "ns", better = "lower" }
end

bench("publish, 1 handler", 1)
bench("publish, 10 handlers", 10)
bench("publish, 20 handlers (two unrolled chunks)", 20)
bench("publish, 1 handler, recovery+retry", 1, true)
bench("publish, 10 handlers, recovery+retry", 10, true)
assert(sink[1] ~= 0)
