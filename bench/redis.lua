-- lowbit.redis throughput against a redis-server of its own, next to
-- redis-benchmark (Debian's redis-tools) on the same server as the anchor:
-- pipelined SET and GET (batches of P commands per write), and one command
-- per round trip. Both clients send the same bytes to the server: 10000
-- keys "key:000000000000".."key:000000009999" (what redis-benchmark -r
-- 10000 makes of its key:__rand_int__) and 32-byte values (-d 32; its
-- default is one key and a 3-byte value, less work for the server). With
-- 2 CPUs or more the server runs on CPU 0 and the client (this process,
-- and redis-benchmark in its turn) on CPU 1, so that neither steals the
-- other's core. Each case is measured in pairs, lowbit and redis-benchmark
-- one right after the other (in turn first), so that both see the same
-- load of a shared machine; the figures are the medians of 5 pairs.
-- What is left between the two is not CPU (lowbit's client uses less per
-- command, the server the same for both) but the time the client's CPU
-- takes to wake from idle: redis-benchmark's event loop takes its socket
-- out of epoll and puts it back around each request, and on a virtual
-- machine (seen on a firecracker guest) that makes its next wake-up a few
-- microseconds faster. The same epoll_ctl pair added to lowbit's client
-- (or to a C client that does what lowbit does: write, epoll_wait, read)
-- gives it the same gain: 5 to 12% on one GET per round trip, 2 to 3%
-- pipelined.
--   build/bin/lowbit bench/redis.lua [N] [P]
-- Prints "skipped" when redis-server or redis-benchmark is not installed.
local lowbit = require "lowbit"
local redis = require "lowbit.redis"
local R = dofile("bench/report.lua").suite("redis")

local N = tonumber(arg and arg[1]) or 200000
local P = tonumber(arg and arg[2]) or 100
local ROUNDTRIP_N = 20000
local ROUNDS = 5

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return out
end

if sh("command -v redis-server redis-benchmark"):match("^%s*$") then
  print("redis: skipped (redis-server / redis-benchmark not installed: make deps)")
  return
end

local srv = dofile("bench/redis_server.lua")("redis", { cpu = 0 })
if not srv then return end
local port, addr = srv.port, srv.addr
local pin = ""
if srv.pinned then
  pin = "taskset -c 1 "
  os.execute(("taskset -p -c 1 %d >/dev/null 2>&1"):format(require("luv").os_getpid()))
end

-- redis-benchmark on one case: "SET" or "GET" (P commands per write), or
-- "RT" (one GET per round trip); ops/s, or 0 when its output has none.
local function anchor(case)
  local cmd
  if case == "RT" then
    cmd = ("%sredis-benchmark -p %d -t get -n %d -c 1 -r 10000 -d 32 -q --csv 2>/dev/null"):format(pin, port, ROUNDTRIP_N)
  else
    cmd = ("%sredis-benchmark -p %d -t %s -n %d -P %d -c 1 -r 10000 -d 32 -q --csv 2>/dev/null")
      :format(pin, port, case:lower(), N, P)
  end
  return tonumber(sh(cmd):match('"%u+","([%d%.]+)"')) or 0
end

local ok, err = pcall(function()
  local c = assert(redis.connect(addr))
  local value = ("v"):rep(32)
  -- The keys as strings, made before any timing: what a Lua application
  -- passes. (Formatting one per command, format("key:%012d", n), costs
  -- this client about 420 instructions and 40-60 ns more per command, a
  -- new string to intern each time: more than redis-benchmark's writing
  -- 12 random digits into its buffer, and no part of the client.)
  local keys = {}
  for i = 0, 9999 do keys[i] = ("key:%012d"):format(i) end
  local function pipelined(cmd)
    local t0 = lowbit.now()
    local done = 0
    while done < N do
      local k = math.min(P, N - done)
      -- One loop per command, as an application has: a shared loop that
      -- tests cmd per command made LuaJIT run GET through a chain of
      -- side traces (about 200 more instructions per command).
      local res
      if cmd == "SET" then
        res = assert(c:pipeline(function(p)
          for i = done + 1, done + k do p:call("SET", keys[i % 10000], value) end
        end))
      else
        res = assert(c:pipeline(function(p)
          for i = done + 1, done + k do p:call("GET", keys[i % 10000]) end
        end))
      end
      assert(#res == k)
      done = done + k
    end
    return N / (lowbit.now() - t0)
  end
  local function roundtrip()
    local t0 = lowbit.now()
    for i = 1, ROUNDTRIP_N do assert(c:call("GET", keys[i % 10000])) end
    return ROUNDTRIP_N / (lowbit.now() - t0)
  end
  local function median(t)
    table.sort(t)
    return t[(#t + 1) / 2]
  end
  pipelined("SET") -- warm up
  local ours = { SET = function() return pipelined("SET") end, GET = function() return pipelined("GET") end,
                 RT = roundtrip }
  -- Pairs: lowbit then redis-benchmark on a case, the other way round in
  -- the next round.
  local lb, rb = { SET = {}, GET = {}, RT = {} }, { SET = {}, GET = {}, RT = {} }
  for r = 1, ROUNDS do
    for _, case in ipairs{ "SET", "GET", "RT" } do
      if r % 2 == 1 then lb[case][r] = ours[case](); rb[case][r] = anchor(case)
      else rb[case][r] = anchor(case); lb[case][r] = ours[case]() end
    end
    print(("run %d: SET %.0f | %.0f  GET %.0f | %.0f  round trip %.0f | %.0f (lowbit | redis-benchmark, ops/s)")
      :format(r, lb.SET[r], rb.SET[r], lb.GET[r], rb.GET[r], lb.RT[r], rb.RT[r]))
  end
  local sets, gets, rts = lb.SET, lb.GET, lb.RT
  local as, ag, art = rb.SET, rb.GET, rb.RT
  -- The median of each pair's ratio (load changes between pairs cancel).
  local function ratio(a, b)
    local t = {}
    for r = 1, ROUNDS do t[r] = b[r] > 0 and a[r] / b[r] or 0 end
    return median(t)
  end
  print(("(median of the pairs' ratios lowbit / redis-benchmark: SET %.2f, GET %.2f, round trip %.2f)")
    :format(ratio(sets, as), ratio(gets, ag), ratio(rts, art)))
  c:close()
  local set, get, rt = median(sets), median(gets), median(rts)
  local a = { SET = median(as), GET = median(ag), RT = median(art) }
  print(("(medians of %d runs%s)"):format(ROUNDS, srv.pinned and "; server on CPU 0, clients on CPU 1" or ""))
  print(("redis pipelined SET (P=%d, 1 conn): lowbit %.0f ops/s | redis-benchmark %s ops/s")
    :format(P, set, a.SET and ("%.0f"):format(a.SET) or "?"))
  print(("redis pipelined GET (P=%d, 1 conn): lowbit %.0f ops/s | redis-benchmark %s ops/s")
    :format(P, get, a.GET and ("%.0f"):format(a.GET) or "?"))
  print(("redis GET, one round trip each (1 conn): lowbit %.0f ops/s | redis-benchmark %s ops/s")
    :format(rt, a.RT and ("%.0f"):format(a.RT) or "?"))
  local cases = {
    { ("pipelined SET, P=%d, 1 conn"):format(P), set, a.SET },
    { ("pipelined GET, P=%d, 1 conn"):format(P), get, a.GET },
    { "GET, one round trip each, 1 conn", rt, a.RT },
  }
  for _, c in ipairs(cases) do
    R:line{ case = c[1], metric = "ops_per_s", value = c[2], unit = "ops/s", better = "higher" }
    if c[3] and c[3] > 0 then
      R:line{ case = c[1], metric = "ops_per_s", impl = "redis-benchmark", value = c[3], unit = "ops/s", better = "higher" }
    end
  end
end)
srv.stop()
if not ok then print("redis: failed: " .. tostring(err)) end
