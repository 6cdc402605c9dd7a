-- lowbit.topic.redis and lowbit.seriallane.redis against a redis-server of
-- their own (loopback, stopped by pid at the end):
--   * bridge: messages/s and p50/p99 latency from publish in this process
--     to delivery in another lowbit process (C concurrent publishers, one
--     subscriber bridge), next to raw PUBLISH pipelined by redis-benchmark
--     (-P 100 -c 1) with a redis-cli subscriber attached, and to raw
--     pipelined PUBLISH through lowbit.redis received by a raw subscriber
--     (those two: medians of 5 alternated pairs of runs);
--   * lanes: acquire + release round trips of seriallane.redis m:run,
--     run_multi, and the hand-off between two managers on one key.
--   build/bin/lowbit bench/topic_redis.lua [N]
-- Prints "skipped" when redis-server or redis-benchmark is not installed.
local lowbit = require "lowbit"
local uv = require "luv"
local context = require "lowbit.context"
local redis = require "lowbit.redis"
local bridge = require "lowbit.topic.redis"
local lanes = require "lowbit.seriallane.redis"
local R = dofile("bench/report.lua").suite("topic_redis")

local N = tonumber(arg and arg[1]) or 20000
local C = 16
local LANE_N = 3000

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return out
end

for _, prog in ipairs{ "redis-server", "redis-benchmark", "redis-cli" } do
  if sh("command -v " .. prog):match("^%s*$") then
    print("topic_redis: skipped (" .. prog .. " not installed: make deps)")
    return
  end
end

local srv = dofile("bench/redis_server.lua")("topic_redis")
if not srv then return end
local port, addr = srv.port, srv.addr

-- The subscriber process: mode "bridge" (a topic.redis bridge) or "raw"
-- (a lowbit.redis subscriber); payloads start with the send time
-- (lowbit.now(): CLOCK_MONOTONIC, shared by the processes of one host).
-- Prints: count seconds(first..last) p50 p99 (latencies in ms).
local SUB = [[
local lowbit = require "lowbit"
local context = require "lowbit.context"
local redis = require "lowbit.redis"
local bridge = require "lowbit.topic.redis"
local addr, mode, n = arg[1], arg[2], tonumber(arg[3])
local ctx, cancel = context.with_timeout(context.root(), 120)
local lat, first, last, got = {}, nil, nil, 0
local done = lowbit.chan(1)
local function on(payload)
  local t = lowbit.now()
  got = got + 1
  first = first or t
  last = t
  lat[got] = t - tonumber(payload:match("^([%d%.]+)"))
  if got == n then done:try_send(true) end
end
if mode == "bridge" then
  local b = bridge.new{ redis = addr, channel = arg[4] or "bench" }
  b:subscribe(function(_, m) if m.kind == "message" then on(m.data) end end)
  lowbit.go(function() b:run(ctx) end)
else
  lowbit.go(function()
    local c = assert(redis.connect(addr))
    assert(c:subscribe("raw"))
    while true do
      local m = c:read_message(ctx)
      if not m then return end
      if m.kind == "message" then on(m.payload) end
    end
  end)
end
lowbit.select{ done, ctx:done() }
cancel()
table.sort(lat)
local function pct(p) return (lat[math.max(1, math.floor(#lat * p))] or 0) * 1000 end
io.write(("%d %.6f %.3f %.3f\n"):format(got, (last or 0) - (first or 0), pct(0.5), pct(0.99)))
]]

local function child(src, ...)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w")); f:write(src); f:close()
  local out, stdout = {}, uv.new_pipe(false)
  local done, left = lowbit.chan(1), 2
  local function one() left = left - 1; if left == 0 then done:try_send(true) end end
  local h
  h = assert(uv.spawn(arg[-1] or "build/bin/lowbit", { args = { path, ... }, stdio = { nil, stdout, 2 } },
    function() uv.close(h); one() end))
  uv.read_start(stdout, function(_, d) if d then out[#out + 1] = d else uv.close(stdout); one() end end)
  return function()
    if lowbit.select{ done, lowbit.after(120) } ~= 1 then uv.process_kill(h, "sigkill"); done:recv() end
    os.remove(path)
    return table.concat(out)
  end
end

local function numsub(c, ch, want)
  for _ = 1, 1000 do
    local r = c:call("PUBSUB", "NUMSUB", ch)
    if r[2] >= want then return end
    lowbit.sleep(0.01)
  end
  error("subscriber did not subscribe")
end

local ok, err = pcall(function()
  local ctl = assert(redis.connect(addr))
  local pad = (" "):rep(32)

  -- Anchor: redis-benchmark pipelined PUBLISH, one redis-cli subscriber.
  local function anchor_once()
    local cli = tonumber(sh(("redis-cli -p %d SUBSCRIBE raw >/dev/null 2>&1 & echo $!"):format(port)))
    numsub(ctl, "raw", 1)
    local out = sh(("redis-benchmark -p %d -n %d -P 100 -c 1 -q --csv PUBLISH raw 0.0%s 2>/dev/null"):format(port, N * 5, pad))
    local rate = tonumber(out:match('"PUBLISH[^"]*","([%d%.]+)"') or out:match(',"([%d%.]+)"'))
    os.execute("kill " .. cli .. " 2>/dev/null")
    for _ = 1, 100 do
      local r = ctl:call("PUBSUB", "NUMSUB", "raw")
      if r[2] == 0 then break end
      lowbit.sleep(0.01)
    end
    return rate
  end

  -- Raw lowbit.redis: pipelined PUBLISH (P=100) to a raw subscriber process,
  -- as many messages as the anchor sent (5 N). A batch goes out in one
  -- write, so its messages carry one send time, stamped as it is built.
  local function lowbit_once()
    local wait = child(SUB, addr, "raw", tostring(N * 5))
    numsub(ctl, "raw", 1)
    local pc = assert(redis.connect(addr))
    local t0 = lowbit.now()
    local sent = 0
    while sent < N * 5 do
      local k = math.min(100, N * 5 - sent)
      local payload = ("%.6f"):format(lowbit.now()) .. pad
      assert(pc:pipeline(function(p)
        for _ = 1, k do p:call("PUBLISH", "raw", payload) end
      end))
      sent = sent + k
    end
    local rate = N * 5 / (lowbit.now() - t0)
    local rn, rsec, rp50, rp99 = wait():match("(%d+) ([%d%.]+) ([%d%.]+) ([%d%.]+)")
    pc:close()
    for _ = 1, 100 do
      local r = ctl:call("PUBSUB", "NUMSUB", "raw")
      if r[2] == 0 then break end
      lowbit.sleep(0.01)
    end
    return { rate = rate, rn = rn, rsec = rsec, rp50 = rp50, rp99 = rp99 }
  end

  -- Each run is a burst of a tenth of a second: one run of each swung 2x
  -- between make bench runs (the anchor most). So they run in PAIRS rounds,
  -- taking turns going first, and the medians are the figures (the raw
  -- subscriber's delivery figures are those of the median publish run).
  local PAIRS = 5
  local anchors, runs = {}, {}
  for i = 1, PAIRS do
    if i % 2 == 1 then
      anchors[i] = anchor_once() or 0; runs[i] = lowbit_once()
    else
      runs[i] = lowbit_once(); anchors[i] = anchor_once() or 0
    end
  end
  table.sort(anchors)
  table.sort(runs, function(a, b) return a.rate < b.rate end)
  local mid = (PAIRS + 1) / 2
  local anchor = anchors[mid] > 0 and anchors[mid] or nil
  local m = runs[mid]
  local raw_pub, rn, rsec, rp50, rp99 = m.rate, m.rn, m.rsec, m.rp50, m.rp99

  -- Raw lowbit.redis again, at the bridge's pace: C tasks, each sending
  -- one PUBLISH at a time on its own connection (the latency anchor for
  -- the bridge case below; the pipelined burst above measures queueing).
  local wait = child(SUB, addr, "raw", tostring(N))
  numsub(ctl, "raw", 1)
  local wgr = lowbit.waitgroup()
  t0 = lowbit.now()
  for i = 1, C do
    wgr:add(1)
    lowbit.go(function()
      local c = assert(redis.connect(addr))
      for _ = i, N, C do assert(c:call("PUBLISH", "raw", ("%.6f"):format(lowbit.now()) .. pad)) end
      c:close()
      wgr:done()
    end)
  end
  wgr:wait()
  local rc_pub = N / (lowbit.now() - t0)
  local cn, csec, cp50, cp99 = wait():match("(%d+) ([%d%.]+) ([%d%.]+) ([%d%.]+)")

  -- The bridge: C publisher tasks in this process, a bridge in another.
  wait = child(SUB, addr, "bridge", tostring(N))
  numsub(ctl, "topic:{bench}", 1)
  local b = bridge.new{ redis = addr, channel = "bench" }
  local wg = lowbit.waitgroup()
  local bg = context.background()
  t0 = lowbit.now()
  for i = 1, C do
    wg:add(1)
    lowbit.go(function()
      for _ = i, N, C do assert(b:publish(bg, ("%.6f"):format(lowbit.now()) .. pad)) end
      wg:done()
    end)
  end
  wg:wait()
  local br_pub = N / (lowbit.now() - t0)
  local bn, bsec, bp50, bp99 = wait():match("(%d+) ([%d%.]+) ([%d%.]+) ([%d%.]+)")

  -- The bridge subscriber's own capacity: pipelined PUBLISH in its wire
  -- format (origin "\n" id "\n" payload), as fast as the raw case.
  wait = child(SUB, addr, "bridge", tostring(N), "bench2")
  numsub(ctl, "topic:{bench2}", 1)
  pc = assert(redis.connect(addr))
  sent = 0
  while sent < N do
    local k = math.min(100, N - sent)
    assert(pc:pipeline(function(p)
      for _ = 1, k do p:call("PUBLISH", "topic:{bench2}", "x\n\n" .. ("%.6f"):format(lowbit.now()) .. pad) end
    end))
    sent = sent + k
  end
  pc:close()
  local sn, ssec, sp50, sp99 = wait():match("(%d+) ([%d%.]+) ([%d%.]+) ([%d%.]+)")

  print(("topic over Redis, %d messages of ~42 bytes, publisher and subscriber in two processes:"):format(N))
  print(("  redis-benchmark PUBLISH -P 100 -c 1 (redis-cli subscriber): %.0f msg/s"):format(anchor or 0))
  print(("  lowbit.redis pipelined PUBLISH (P=100) -> raw subscriber: publish %.0f msg/s, delivered %s in %.2f s = %.0f msg/s, latency p50 %s ms p99 %s ms")
    :format(raw_pub, rn, tonumber(rsec), tonumber(rn) / tonumber(rsec), rp50, rp99))
  print(("  lowbit.redis PUBLISH, %d tasks one at a time -> raw subscriber: publish %.0f msg/s, delivered %s in %.2f s = %.0f msg/s, latency p50 %s ms p99 %s ms")
    :format(C, rc_pub, cn, tonumber(csec), tonumber(cn) / tonumber(csec), cp50, cp99))
  print(("  topic.redis bridge, %d publisher tasks -> bridge subscriber: publish %.0f msg/s, delivered %s in %.2f s = %.0f msg/s, latency p50 %s ms p99 %s ms")
    :format(C, br_pub, bn, tonumber(bsec), tonumber(bn) / tonumber(bsec), bp50, bp99))
  print(("  pipelined PUBLISH (P=100) -> topic.redis bridge subscriber: delivered %s in %.2f s = %.0f msg/s, latency p50 %s ms p99 %s ms")
    :format(sn, tonumber(ssec), tonumber(sn) / tonumber(ssec), sp50, sp99))
  -- Publish rate, pipelined (P=100), one connection: redis-benchmark is the anchor.
  R:line{ case = "pipelined PUBLISH, P=100, 1 conn", metric = "msgs_per_s", value = raw_pub, unit = "msgs/s", better = "higher" }
  R:line{ case = "pipelined PUBLISH, P=100, 1 conn", metric = "msgs_per_s", impl = "redis-benchmark", value = anchor,
    unit = "msgs/s", better = "higher" }
  local function deliv(case, n, sec, p50, p99)
    R:line{ case = case, metric = "msgs_per_s", value = tonumber(n) / tonumber(sec), unit = "msgs/s", better = "higher" }
    R:line{ case = case, metric = "latency_p50_ms", value = p50, unit = "ms", better = "lower" }
    R:line{ case = case, metric = "latency_p99_ms", value = p99, unit = "ms", better = "lower" }
  end
  deliv("delivered, raw subscriber", rn, rsec, rp50, rp99)
  deliv(("delivered, raw subscriber, %d tasks one PUBLISH at a time"):format(C), cn, csec, cp50, cp99)
  R:line{ case = ("delivered, raw subscriber, %d tasks one PUBLISH at a time"):format(C), metric = "publish_per_s",
    value = rc_pub, unit = "msgs/s", better = "higher" }
  deliv(("delivered, bridge to bridge, %d publisher tasks"):format(C), bn, bsec, bp50, bp99)
  deliv("delivered, pipelined PUBLISH to bridge subscriber", sn, ssec, sp50, sp99)

  -- Lanes: acquire + release, one task; run_multi; then two managers
  -- contending for one key.
  local m = lanes.new{ redis = addr, ttl = 10, poll = 0.05 }
  local function nothing() return true end
  for _ = 1, 200 do m:run(bg, "warm", nothing) end
  t0 = lowbit.now()
  for _ = 1, LANE_N do assert(m:run(bg, "k", nothing)) end
  local one = (lowbit.now() - t0) / LANE_N
  t0 = lowbit.now()
  for _ = 1, LANE_N do assert(m:run_multi(bg, { "x", "y", "z" }, nothing)) end
  local multi = (lowbit.now() - t0) / LANE_N
  -- Contended: two managers (each its own connections, as two processes
  -- would have) take turns on one key; fn yields once, so the other is
  -- waiting (BLPOP on the lane's wake list) when the lane is released.
  local m2 = lanes.new{ redis = addr, ttl = 10, poll = 0.05 }
  local turns = {}
  local function hold() lowbit.sleep(0); return true end
  t0 = lowbit.now()
  local wg2 = lowbit.waitgroup()
  for i, mm in ipairs({ m, m2 }) do
    wg2:add(1)
    lowbit.go(function()
      local n = 0
      for _ = 1, LANE_N / 2 do assert(mm:run(bg, "hot", hold)); n = n + 1 end
      turns[i] = n
      wg2:done()
    end)
  end
  wg2:wait()
  local contended = (lowbit.now() - t0) / LANE_N
  local r = ctl:call("PING")
  assert(r == "PONG")
  print(("seriallane over Redis: m:run (acquire script + release script, fn empty) %.1f us = %.0f runs/s; run_multi of 3 keys %.1f us")
    :format(one * 1e6, 1 / one, multi * 1e6))
  R:line{ case = "seriallane.redis m:run, fn empty", metric = "us_per_run", value = one * 1e6, unit = "us", better = "lower" }
  R:line{ case = "seriallane.redis run_multi, 3 keys", metric = "us_per_run", value = multi * 1e6, unit = "us", better = "lower" }
  print(("  two managers taking turns on one key (hand-off through the wake list): %.1f us per run = %.0f runs/s")
    :format(contended * 1e6, 1 / contended))
  R:line{ case = "seriallane.redis m:run, two managers on one key", metric = "us_per_run", value = contended * 1e6,
    unit = "us", better = "lower" }
  ctl:close()
end)
srv.stop()
if not ok then print("topic_redis: failed: " .. tostring(err)) end
