-- lowbit.redis throughput against a redis-server of its own, next to
-- redis-benchmark (Debian's redis-tools) on the same server as the anchor:
-- pipelined SET and GET (batches of P commands per write), and one command
-- per round trip.
--   build/bin/lowbit bench/redis.lua [N] [P]
-- Prints "skipped" when redis-server or redis-benchmark is not installed.
local lowbit = require "lowbit"
local redis = require "lowbit.redis"

local N = tonumber(arg and arg[1]) or 200000
local P = tonumber(arg and arg[2]) or 100
local ROUNDTRIP_N = 20000

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

-- A server on a free loopback port, stopped by pid at the end.
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local port, pid
math.randomseed(os.time())
for _ = 1, 8 do
  port = math.random(20000, 32000)
  local log = dir .. "/redis.log"
  os.remove(log)
  pid = tonumber(sh(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s " ..
    "--logfile %s >/dev/null 2>&1 & echo $!"):format(port, dir, log)))
  local ready
  for _ = 1, 200 do
    local f = io.open(log)
    local t = f and f:read("*a") or ""
    if f then f:close() end
    if t:find("Ready to accept", 1, true) then ready = true break end
    if os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= 0 then break end
    os.execute("sleep 0.02")
  end
  if ready then break end
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
  pid = nil
end
if not pid then print("redis: skipped (redis-server did not start)") return end
local addr = "127.0.0.1:" .. port

local function anchor()
  local out = sh(("redis-benchmark -p %d -t set,get -n %d -P %d -c 1 -q --csv 2>/dev/null"):format(port, N, P))
  local r = {}
  for name, rps in out:gmatch('"(%u+)","([%d%.]+)"') do r[name] = tonumber(rps) end
  local out1 = sh(("redis-benchmark -p %d -t get -n %d -c 1 -q --csv 2>/dev/null"):format(port, ROUNDTRIP_N))
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
  -- Medians of 3 runs, each side alternating with the other (the machine
  -- is shared: both see the same load).
  local sets, gets, rts, as, ag, art = {}, {}, {}, {}, {}, {}
  for r = 1, 3 do
    sets[r], gets[r], rts[r] = pipelined("SET"), pipelined("GET"), roundtrip()
    local a = anchor()
    as[r], ag[r], art[r] = a.SET or 0, a.GET or 0, a.RT or 0
  end
  c:close()
  local set, get, rt = median(sets), median(gets), median(rts)
  local a = { SET = median(as), GET = median(ag), RT = median(art) }
  print("(medians of 3 runs)")
  print(("redis pipelined SET (P=%d, 1 conn): lowbit %.0f ops/s | redis-benchmark %s ops/s")
    :format(P, set, a.SET and ("%.0f"):format(a.SET) or "?"))
  print(("redis pipelined GET (P=%d, 1 conn): lowbit %.0f ops/s | redis-benchmark %s ops/s")
    :format(P, get, a.GET and ("%.0f"):format(a.GET) or "?"))
  print(("redis GET, one round trip each (1 conn): lowbit %.0f ops/s | redis-benchmark %s ops/s")
    :format(rt, a.RT and ("%.0f"):format(a.RT) or "?"))
end)
os.execute("kill -9 " .. pid .. " 2>/dev/null")
os.execute("rm -rf '" .. dir .. "'")
if not ok then print("redis: failed: " .. tostring(err)) end
