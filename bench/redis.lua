-- lowbit.redis throughput against a redis-server of its own, next to
-- redis-benchmark (Debian's redis-tools) on the same server as the anchor:
-- pipelined SET and GET (batches of P commands per write), and one command
-- per round trip. Both clients do the same work: 10000 keys, 32-byte
-- values (redis-benchmark -r 10000 -d 32; its default is one key and a
-- 3-byte value, less work for the server). With 2 CPUs or more the server
-- runs on CPU 0 and the client (this process, and redis-benchmark in its
-- turn) on CPU 1, so that neither steals the other's core.
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

local function anchor()
  local out = sh(("%sredis-benchmark -p %d -t set,get -n %d -P %d -c 1 -r 10000 -d 32 -q --csv 2>/dev/null")
    :format(pin, port, N, P))
  local r = {}
  for name, rps in out:gmatch('"(%u+)","([%d%.]+)"') do r[name] = tonumber(rps) end
  local out1 = sh(("%sredis-benchmark -p %d -t get -n %d -c 1 -r 10000 -d 32 -q --csv 2>/dev/null")
    :format(pin, port, ROUNDTRIP_N))
  r.RT = tonumber(out1:match('"GET","([%d%.]+)"'))
  return r
end

local ok, err = pcall(function()
  local c = assert(redis.connect(addr))
  local value = ("v"):rep(32)
  local function pipelined(cmd)
    local t0 = lowbit.now()
    local done = 0
    while done < N do
      local k = math.min(P, N - done)
      local res = assert(c:pipeline(function(p)
        for i = done + 1, done + k do
          if cmd == "SET" then p:call("SET", "key:" .. (i % 10000), value)
          else p:call("GET", "key:" .. (i % 10000)) end
        end
      end))
      assert(#res == k)
      done = done + k
    end
    return N / (lowbit.now() - t0)
  end
  local function roundtrip()
    local t0 = lowbit.now()
    for i = 1, ROUNDTRIP_N do assert(c:call("GET", "key:" .. (i % 10000))) end
    return ROUNDTRIP_N / (lowbit.now() - t0)
  end
  local function median(t)
    table.sort(t)
    return t[(#t + 1) / 2]
  end
  pipelined("SET") -- warm up
  -- Medians of 5 runs, each side alternating with the other (the machine
  -- is shared: both see the same load).
  local sets, gets, rts, as, ag, art = {}, {}, {}, {}, {}, {}
  for r = 1, ROUNDS do
    sets[r], gets[r], rts[r] = pipelined("SET"), pipelined("GET"), roundtrip()
    local a = anchor()
    as[r], ag[r], art[r] = a.SET or 0, a.GET or 0, a.RT or 0
    print(("run %d: SET %.0f | %.0f  GET %.0f | %.0f  round trip %.0f | %.0f (lowbit | redis-benchmark, ops/s)")
      :format(r, sets[r], as[r], gets[r], ag[r], rts[r], art[r]))
  end
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
