-- lowbit.backstage.redis_store against a real redis-server: statements
-- 26-37 of conformance/backstage.md section 7 (named by number), the
-- crash test with a second process killed by SIGKILL, and bad input.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local redis = require "lowbit.redis"
local bs = require "lowbit.backstage"
local rstore = require "lowbit.backstage.redis_store"
local support = require "support"
local flows = require "backstage_redis_flows"
local run = support.run

local bg = context.background()
local srv = support.use_redis{ once = true }
local qn = 0

local function of_type(evs, ty)
  local out = {}
  for _, e in ipairs(evs) do if e.type == ty then out[#out + 1] = e end end
  return out
end

local function newq() qn = qn + 1; return "q" .. qn end

local function cmd(...)
  local c = assert(redis.connect{ addr = srv.addr, timeout = 10 })
  local v, err = c:call(...)
  c:release()
  return v, err
end

local function new_sv(name, opts)
  opts = opts or {}
  local evs = {}
  opts.on_event = function(e) evs[#evs + 1] = e end
  opts.logger = opts.logger or false
  return bs.new(name or "app", opts), evs
end

local function start(sv)
  local cctx, cancel = context.with_cancel(bg)
  local res = lowbit.chan(1)
  lowbit.go(function() res:send({ sv:serve(cctx) }) end)
  return cancel, function() local r = res:recv(); return r[1], r[2] end
end

local eventually = support.eventually

-- A job's field in the queue's jobs hash: d data, t token, f fails,
-- s stalls, e error, r reason.
local function job_field(q, id, f) return cmd("HGET", "lb:{" .. q .. "}:jobs", f .. ":" .. id) end
local function job_exists(q, id) return cmd("HEXISTS", "lb:{" .. q .. "}:jobs", "d:" .. id) == 1 end
-- Until when (Redis ms) a finished id is remembered for dedupe, or nil.
local function done_until(q, id)
  local v = cmd("ZSCORE", "lb:{" .. q .. "}:done", id)
  return v ~= redis.null and tonumber(v) or nil
end

local parse_monitor = require("redis_procs").parse_monitor

local function store(q, o)
  o = o or {}
  o.addr, o.queue = srv.addr, q
  return bs.redis_store(o)
end

describe("lowbit.backstage.redis_store", function()
  it("26: a duplicate id (queued, delayed, running, or completed within dedupe_ttl) is refused; after the ttl it is accepted", function()
    run(function()
      local q = newq()
      local st = store(q, { dedupe_ttl = 0.5 })
      local sv = new_sv()
      sv:register_queue(q, { workers = 1, store = st })
      local gate, started = lowbit.chan(0), lowbit.chan(1)
      sv:handle("h", function(_, job) if job.id == "run" then started:send(true); gate:recv() end end)
      assert.is_true(st:push({ id = "q1", name = "h" }))
      local ok, err = st:push({ id = "q1", name = "h" })
      assert.is_nil(ok); assert.is_true(errors.is(err, bs.DUPLICATE))
      assert.is_true(st:push({ id = "d1", name = "h", delay = 60 }))
      ok, err = sv:dispatch(q, { id = "d1", name = "h" })
      assert.is_nil(ok); assert.is_true(errors.is(err, bs.DUPLICATE))
      assert.equal(1, cmd("DEL", "lb:{" .. q .. "}:ready")) -- q1 out of the way
      cmd("HDEL", "lb:{" .. q .. "}:jobs", "d:q1")
      assert.is_true(sv:dispatch(q, { id = "run", name = "h" }))
      local cancel, wait = start(sv)
      started:recv()
      ok, err = sv:dispatch(q, { id = "run", name = "h" }) -- running
      assert.is_nil(ok); assert.is_true(errors.is(err, bs.DUPLICATE))
      gate:send(true)
      assert.is_true(eventually(function() return done_until(q, "run") ~= nil end))
      ok, err = sv:dispatch(q, { id = "run", name = "h" }) -- completed within the ttl
      assert.is_nil(ok); assert.is_true(errors.is(err, bs.DUPLICATE))
      local remembered = done_until(q, "run")
      assert.is_true(eventually(function()
        local t = cmd("TIME")
        return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 > remembered
      end))
      assert.is_true(st:push({ id = "run", name = "h" }))
      cancel(); assert.is_nil(wait())
      st:close()
    end)
  end)

  it("27: max_len = n: the (n+1)-th pending job gets QUEUE_FULL", function()
    run(function()
      local q = newq()
      local st = store(q, { max_len = 3 })
      local sv = new_sv()
      sv:register_queue(q, { store = st })
      assert.is_true(sv:dispatch(q, { name = "h" }))
      assert.is_true(sv:dispatch(q, { name = "h" }))
      assert.is_true(st:push({ name = "h", delay = 30 })) -- delayed jobs are pending too
      local ok, err = sv:dispatch(q, { name = "h" })
      assert.is_nil(ok); assert.is_true(errors.is(err, bs.QUEUE_FULL))
      assert.equal(3, st:len())
      assert.same({ ready = 2, active = 0, delayed = 1, dead = 0 }, st:stats())
      st:close()
    end)
  end)

  it("28: kill -9 mid-job: another process runs the job after the lease expires (stalls = 1); of 1,000 jobs every id completes once or twice", function()
    run(function()
      local q = newq()
      cmd("DEL", "lbtest:done", "lbtest:stalls", "lbtest:started")
      local st = store(q)
      local N = 1000
      for i = 1, N / 2 do assert(st:push({ id = "j" .. i, name = "rec" })) end
      -- A: 20 workers, each job sleeps 20 ms (every 50th: 30 s), lease 1 s.
      local stopA = lowbit.chan(1)
      local codeA = lowbit.chan(1)
      lowbit.go(function()
        codeA:send(support.spawn(support.host, { "spec/backstage_redis_worker.lua", "jobs", srv.addr, q, "1", "20", tostring(N), "0.02" }, stopA))
      end)
      assert.is_true(eventually(function() return cmd("HLEN", "lbtest:done") >= 100 and cmd("SCARD", "lbtest:started") >= 150 end, 20))
      stopA:send(true) -- SIGKILL
      codeA:recv()
      local started = cmd("SMEMBERS", "lbtest:started")
      local inflight = {}
      for _, id in ipairs(started) do
        if cmd("HGET", "lbtest:done", id) == redis.null then inflight[#inflight + 1] = id end
      end
      assert.is_true(#inflight > 0) -- A died mid-job
      for i = N / 2 + 1, N do assert(st:push({ id = "j" .. i, name = "rec" })) end
      local codeB = support.spawn(support.host, { "spec/backstage_redis_worker.lua", "jobs", srv.addr, q, "1", "20", tostring(N), "0" }, 60)
      assert.equal(0, codeB)
      local done = cmd("HGETALL", "lbtest:done")
      local count = {}
      for i = 1, #done, 2 do count[done[i]] = tonumber(done[i + 1]) end
      for i = 1, N do
        local c = count["j" .. i]
        assert.is_truthy(c, "j" .. i .. " never completed")
        assert.is_true(c >= 1 and c <= 2, "j" .. i .. " completed " .. tostring(c) .. " times")
      end
      for _, id in ipairs(inflight) do
        assert.equal("1", cmd("HGET", "lbtest:stalls", id)) -- recovered once, run by B
      end
      st:close()
    end)
  end)

  it("29: an owner that lost its lease is fenced: its ack is refused (lease_lost) and the new run's state stays", function()
    run(function()
      local q = newq()
      -- A renews nothing (extend_interval far away): blocked > visibility.
      local stA = store(q, { visibility = 0.3, extend_interval = 100 })
      local stB = store(q, { visibility = 5 })
      local svA, evA = new_sv("a")
      local svB, evB = new_sv("b")
      svA:register_queue(q, { store = stA })
      svB:register_queue(q, { store = stB })
      local runs = {}
      local releaseB = lowbit.chan(0)
      svA:handle("h", function() runs[#runs + 1] = "A"; lowbit.sleep(1) end)
      svB:handle("h", function(_, job) runs[#runs + 1] = "B" .. job.stalls; releaseB:recv() end)
      assert.is_true(svA:dispatch(q, { id = "x", name = "h" }))
      local cancelA, waitA = start(svA)
      assert.is_true(eventually(function() return #runs == 1 end))
      local cancelB, waitB = start(svB)
      assert.is_true(eventually(function() return #of_type(evA, "lease_lost") == 1 end))
      assert.same({ "A", "B1" }, runs)
      assert.equal("ack", of_type(evA, "lease_lost")[1].op)
      assert.equal("x", of_type(evA, "lease_lost")[1].job_id)
      -- B's run is intact: its lease and hash are there.
      assert.is_truthy(tonumber(cmd("ZSCORE", "lb:{" .. q .. "}:active", "x")))
      assert.is_truthy(job_field(q, "x", "t"):match("%S"))
      releaseB:send(true)
      assert.is_true(eventually(function() return #of_type(evB, "job_done") == 1 end))
      assert.is_false(job_exists(q, "x"))
      assert.is_truthy(done_until(q, "x"))
      cancelA(); cancelB(); assert.is_nil(waitA()); assert.is_nil(waitB())
      stA:close(); stB:close()
    end)
  end)

  it("29: an extend that finds the lease taken reports lease_lost once (op extend); the late ack is refused without a second event", function()
    run(function()
      local q = newq()
      local stA = store(q, { visibility = 0.2, extend_interval = 0.6 })
      local stB = store(q, { visibility = 5 })
      local svA, evA = new_sv("a")
      local svB, evB = new_sv("b")
      svA:register_queue(q, { store = stA })
      svB:register_queue(q, { store = stB })
      svA:handle("h", function() lowbit.sleep(1.2) end)
      svB:handle("h", function() end)
      assert.is_true(svA:dispatch(q, { id = "y", name = "h" }))
      local cancelA, waitA = start(svA)
      lowbit.sleep(0.05)
      local cancelB, waitB = start(svB)
      assert.is_true(eventually(function() return #of_type(evB, "job_done") == 1 end))
      assert.is_true(eventually(function() return #of_type(evA, "job_done") == 1 end))
      local lost = of_type(evA, "lease_lost")
      assert.equal(1, #lost); assert.equal("extend", lost[1].op)
      assert.is_truthy(done_until(q, "y"))
      cancelA(); cancelB(); assert.is_nil(waitA()); assert.is_nil(waitB())
      stA:close(); stB:close()
    end)
  end)

  it("leases of running jobs are renewed by one extend call per process (all its jobs): long jobs are not recovered", function()
    run(function()
      local q = newq()
      local st = store(q, { visibility = 0.3 })
      local calls = {}
      local extend = st.extend
      st.extend = function(self, jobs) calls[#calls + 1] = #jobs; return extend(self, jobs) end
      local sv, evs = new_sv()
      sv:register_queue(q, { workers = 3, store = st })
      local runs = 0
      sv:handle("long", function() runs = runs + 1; lowbit.sleep(1) end)
      for i = 1, 3 do assert.is_true(sv:dispatch(q, { id = "L" .. i, name = "long" })) end
      local cancel, wait = start(sv)
      assert.is_true(eventually(function() return #of_type(evs, "job_done") == 3 end))
      assert.equal(3, runs)
      assert.equal(0, #of_type(evs, "job_recovered")); assert.equal(0, #of_type(evs, "lease_lost"))
      assert.is_true(#calls >= 2)
      assert.equal(3, calls[2]) -- one call carries the three running jobs
      cancel(); assert.is_nil(wait())
      st:close()
    end)
  end)

  it("30: a job recovered max_stalls+1 times lands in dead (reason stalled); recoveries do not consume retries", function()
    run(function()
      local q = newq()
      local st = store(q, { visibility = 0.2, max_stalls = 1, extend_interval = 100 })
      local sv, evs = new_sv()
      sv:register_queue(q, { workers = 3, store = st })
      local calls = {}
      sv:handle("h", function(_, job) calls[#calls + 1] = job.stalls; lowbit.sleep(0.6) end)
      assert.is_true(sv:dispatch(q, { id = "p", name = "h", retries = 0 }))
      local cancel, wait = start(sv)
      assert.is_true(eventually(function() return #of_type(evs, "job_dead") == 1 end))
      local d = of_type(evs, "job_dead")[1]
      assert.equal("stalled", d.reason); assert.equal("p", d.job_id); assert.equal(2, d.stalls)
      assert.same({ 0, 1 }, calls) -- two runs with retries = 0
      assert.equal(1, #of_type(evs, "job_recovered"))
      assert.is_truthy(cmd("ZSCORE", "lb:{" .. q .. "}:dead", "p") ~= redis.null)
      assert.equal("stalled", job_field(q, "p", "r"))
      assert.equal(redis.null, job_field(q, "p", "f"))
      cancel(); assert.is_nil(wait())
      st:close()
    end)
  end)

  it("31: retries wait in delayed (the worker is free meanwhile, another process can run them); fails counts; then dead with the error", function()
    run(function()
      local q = newq()
      local stA, stB = store(q), store(q)
      local svA, evA = new_sv("a")
      svA:register_queue(q, { workers = 1, store = stA })
      local seen = {}
      svA:handle("h", function(_, job) seen[#seen + 1] = "A" .. job.attempt; return nil, "boom " .. job.attempt end)
      svA:handle("quick", function() seen[#seen + 1] = "quick" end)
      assert.is_true(svA:dispatch(q, { id = "r", name = "h", retries = 2, retry_delay = 0.4 }))
      local cancelA, waitA = start(svA)
      assert.is_true(eventually(function() return cmd("ZCARD", "lb:{" .. q .. "}:delayed") == 1 end))
      assert.same({ "A1" }, seen)
      assert.equal("1", job_field(q, "r", "f"))
      -- The single worker is free during the delay.
      assert.is_true(svA:dispatch(q, { name = "quick" }))
      assert.is_true(eventually(function() return #seen == 2 end))
      assert.same({ "A1", "quick" }, seen)
      cancelA(); assert.is_nil(waitA())
      -- A has exited; B runs the remaining attempts.
      local svB, evB = new_sv("b")
      svB:register_queue(q, { workers = 1, store = stB })
      svB:handle("h", function(_, job) seen[#seen + 1] = "B" .. job.attempt; return nil, "boom " .. job.attempt end)
      local cancelB, waitB = start(svB)
      assert.is_true(eventually(function() return #of_type(evB, "job_dead") == 1 end))
      assert.same({ "A1", "quick", "B2", "B3" }, seen)
      assert.equal(1, #of_type(evA, "job_retry")); assert.equal(1, #of_type(evB, "job_retry"))
      assert.equal("failed", of_type(evB, "job_dead")[1].reason)
      assert.equal("boom 3", tostring(of_type(evB, "job_failed")[1].err))
      assert.equal("2", job_field(q, "r", "f"))
      assert.equal("boom 3", job_field(q, "r", "e"))
      assert.is_truthy(cmd("ZSCORE", "lb:{" .. q .. "}:dead", "r") ~= redis.null)
      cancelB(); assert.is_nil(waitB())
      stA:close(); stB:close()
    end)
  end)

  it("32: three processes on one queue complete 10,000 jobs exactly once each (nobody crashes)", function()
    run(function()
      local q = newq()
      cmd("DEL", "lbtest:done", "lbtest:stalls", "lbtest:started")
      local st = store(q)
      local N = 10000
      local t0 = lowbit.now()
      local wg = lowbit.waitgroup()
      local codes = {}
      for p = 1, 3 do
        wg:add(1)
        lowbit.go(function()
          codes[p] = support.spawn(support.host, { "spec/backstage_redis_worker.lua", "jobs", srv.addr, q, "5", "20", tostring(N), "0" }, 120)
          wg:done()
        end)
      end
      -- Dispatch while they serve, 200 in flight.
      local wg2 = lowbit.waitgroup()
      for k = 1, 200 do
        wg2:add(1)
        lowbit.go(function()
          for i = k, N, 200 do assert(st:push({ id = "t" .. i, name = "rec" })) end
          wg2:done()
        end)
      end
      wg2:wait()
      wg:wait()
      local secs = lowbit.now() - t0
      assert.same({ 0, 0, 0 }, codes)
      local done = cmd("HGETALL", "lbtest:done")
      assert.equal(2 * N, #done)
      for i = 2, #done, 2 do assert.equal("1", done[i], done[i - 1]) end
      print(("\n  32: 3 processes, %d jobs exactly once in %.2f s (%.0f jobs/s, dispatch included)"):format(N, secs, N / secs))
      st:close()
    end)
  end)

  it("33: graceful shutdown releases an interrupted job to the head of ready (no failure counted); the next process runs it", function()
    run(function()
      local q = newq()
      local st = store(q)
      local svA, evA = new_sv("a")
      svA:register_queue(q, { store = st })
      local started = lowbit.chan(1)
      svA:handle("h", function(ctx) started:send(true); ctx:wait(); return nil, ctx:err() end)
      assert.is_true(svA:dispatch(q, { id = "g", name = "h", retries = 0 }))
      local cancelA, waitA = start(svA)
      started:recv()
      assert.is_true(st:push({ id = "later", name = "h" }))
      cancelA(); assert.is_nil(waitA())
      assert.equal(1, #of_type(evA, "job_released"))
      assert.equal(0, #of_type(evA, "job_failed"))
      assert.same({ "later", "g" }, cmd("LRANGE", "lb:{" .. q .. "}:ready", 0, -1)) -- g is first in line
      assert.equal(redis.null, job_field(q, "g", "f"))
      local st2 = store(q)
      local svB = new_sv("b")
      svB:register_queue(q, { store = st2 })
      local got = {}
      svB:handle("h", function(_, job) got[#got + 1] = job.id .. ":" .. job.attempt end)
      local cancelB, waitB = start(svB)
      assert.is_true(eventually(function() return #got == 2 end))
      assert.same({ "g:1", "later:1" }, got)
      cancelB(); assert.is_nil(waitB())
      st:close(); st2:close()
    end)
  end)

  it("34: a durable job names its handler; run on a durable dispatch raises; no handler -> dead with reason no_handler", function()
    run(function()
      local q = newq()
      local st = store(q)
      local sv, evs = new_sv()
      sv:register_queue(q, { store = st })
      assert.has_error(function() sv:dispatch(q, { name = "h", run = function() end }) end)
      assert.has_error(function() sv:dispatch(q, { payload = 1 }) end)
      local got
      sv:handle("h", function(_, job) got = job.payload end)
      assert.is_true(sv:dispatch(q, { id = "ok", name = "h", payload = { n = 42, s = "x" } }))
      assert.is_true(sv:dispatch(q, { id = "nh", name = "nobody" }))
      local cancel, wait = start(sv)
      assert.is_true(eventually(function() return #of_type(evs, "job_dead") == 1 end))
      assert.same({ n = 42, s = "x" }, got)
      local d = of_type(evs, "job_dead")[1]
      assert.equal("no_handler", d.reason); assert.equal("nh", d.job_id)
      assert.equal("no_handler", job_field(q, "nh", "r"))
      cancel(); assert.is_nil(wait())
      st:close()
    end)
  end)

  it("35: with a coordinator, 3 supervisors on one fake clock fire each tick once in total; 3 real processes with every(1) over 5 s fire 5 +- 1 times, never twice for a tick", function()
    run(function()
      -- One fake clock shared by the three supervisors.
      local fake = { t = 1800000000 }
      local clock = {
        now = function() return fake.t end,
        sleep = function(ctx, s)
          local until_t = fake.t + s
          while fake.t < until_t do
            if ctx:err() then return nil, ctx:err() end
            lowbit.sleep(0.001)
          end
          return true
        end,
      }
      local fires = {}
      local cancels, waits, coords = {}, {}, {}
      for i = 1, 3 do
        local coord = rstore.coordinator{ addr = srv.addr }
        coords[#coords + 1] = coord
        local sv = new_sv("fake-cluster", { clock = clock, coordinator = coord })
        sv:schedule(bs.must_cron("*/5 * * * *"), { name = "five", run = function() fires[#fires + 1] = fake.t end })
        sv:schedule(bs.every(60), { name = "minute", run = function() fires[#fires + 1] = -fake.t end })
        cancels[i], waits[i] = start(sv)
      end
      lowbit.sleep(0.05)
      for _ = 1, 60 do -- 30 minutes of fake time, 30 s a step
        fake.t = fake.t + 30
        lowbit.sleep(0.03)
      end
      lowbit.sleep(0.1)
      for i = 1, 3 do cancels[i]() ; assert.is_nil(waits[i]()); coords[i]:close() end
      local five, minute = 0, 0
      local seen = {}
      for _, t in ipairs(fires) do
        assert.is_nil(seen[t], "tick fired twice: " .. t)
        seen[t] = true
        if t > 0 then five = five + 1 else minute = minute + 1 end
      end
      assert.equal(6, five) -- 1800000000 is a multiple of 300: 30 min = 6 ticks
      assert.is_true(minute >= 28 and minute <= 30, "every(60) fired " .. minute .. " times")

      -- Three real processes.
      cmd("DEL", "lbtest:fires", "lb:sched:{cluster:beat}")
      local wg = lowbit.waitgroup()
      local codes = {}
      for p = 1, 3 do
        wg:add(1)
        lowbit.go(function()
          codes[p] = support.spawn(support.host, { "spec/backstage_redis_worker.lua", "sched", srv.addr, "s", "5.5" }, 30)
          wg:done()
        end)
        lowbit.sleep(0.2)
      end
      wg:wait()
      assert.same({ 0, 0, 0 }, codes)
      local list = cmd("LRANGE", "lbtest:fires", 0, -1)
      local ts = {}
      for i, v in ipairs(list) do ts[i] = tonumber(v) end
      table.sort(ts)
      assert.is_true(#ts >= 4 and #ts <= 6, #ts .. " fires")
      for i = 2, #ts do assert.is_true(ts[i] - ts[i - 1] > 0.5, "two fires " .. (ts[i] - ts[i - 1]) .. " s apart") end
    end)
  end)

  it("36: the store warns (event and log) when maxmemory-policy is not noeviction", function()
    run(function()
      for _, policy in ipairs({ "allkeys-lru", "noeviction" }) do
        assert(cmd("CONFIG", "SET", "maxmemory-policy", policy))
        local q = newq()
        local st = store(q)
        local records = {}
        local sv, evs = new_sv("app", { logger = function(level, msg, fields) records[#records + 1] = { level, msg, fields } end })
        sv:register_queue(q, { store = st })
        sv:handle("h", function() end)
        assert.is_true(sv:dispatch(q, { name = "h" }))
        -- A process that only dispatches is warned too (first connection).
        assert.equal(policy == "noeviction" and 0 or 1, #of_type(evs, "store_warning"))
        local cancel, wait = start(sv)
        assert.is_true(eventually(function() return #of_type(evs, "job_done") == 1 end))
        cancel(); assert.is_nil(wait())
        local w = of_type(evs, "store_warning")
        if policy == "noeviction" then
          assert.equal(0, #w)
        else
          assert.equal(1, #w)
          assert.is_truthy(tostring(w[1].err):find("allkeys-lru", 1, true))
          local logged = false
          for _, r in ipairs(records) do if r[2] == "store_warning" and r[1] == "warn" then logged = true end end
          assert.is_true(logged)
        end
        st:close()
      end
    end)
  end)

  it("37: the bench driver runs (bench/backstage_redis.lua, small N) and prints both phases", function()
    local code, out, errout = run(function()
      return support.spawn(support.host, { "bench/backstage_redis.lua", "2000", "50", tostring(srv.port), "1" }, 60)
    end)
    assert.equal(0, code, errout)
    assert.is_truthy(out:find("dispatch", 1, true))
    assert.is_truthy(out:find("drain", 1, true))
  end)

  it("examples/jobs.lua runs its Redis-backed durable queue (retry store-side, dedupe by id)", function()
    local out, rc = support.sh(("cd %s && timeout 20 %s examples/jobs.lua %s 2>&1"):format(support.root, support.host, srv.addr))
    assert.equal(0, rc, out)
    assert.matches("charged cust%-1 1200 cents %(attempt 1%)", out)
    assert.matches("charged cust%-2 4500 cents %(attempt 2%)", out)
    assert.matches("dispatch invoice%-1 again: backstage: duplicate job", out)
    assert.matches("serve returned: ok", out)
    -- Without a reachable Redis and without redis-server on PATH: a clear skip.
    out, rc = support.sh(("cd %s && timeout 20 env PATH=/nonexistent %s examples/jobs.lua 127.0.0.1:1 2>&1"):format(support.root, support.host))
    assert.equal(0, rc, out)
    assert.matches("redis: skipped the durable queue %(no redis at 127%.0%.0%.1:1 and redis%-server is not installed", out)
    assert.matches("serve returned: ok", out)
  end)

  it("every key a script touches is one of its KEYS (seen by MONITOR on the real server, each command's keys from COMMAND GETKEYS)", function()
    -- Redis checks no such thing itself (7.0.15, cluster mode: a script
    -- may touch undeclared keys of its node; with the `#!lua` line, only
    -- keys of another slot are refused), so the spec watches.
    local mon = srv.dir .. "/monitor.txt"
    local pid = tonumber(support.sh(("redis-cli -p %d monitor > %s 2>&1 & echo $!"):format(srv.port, mon)):match("%d+"))
    local function text() local f = io.open(mon); local t = f and f:read("*a") or ""; if f then f:close() end; return t end
    local ok, err = pcall(run, function()
      assert.is_true(eventually(function() return text():find("OK", 1, true) ~= nil end))
      flows.check(flows.run(function(o) o.addr = srv.addr; return bs.redis_store(o) end, newq()))
      cmd("ECHO", "flows-end")
      assert.is_true(eventually(function() return text():find("flows-end", 1, true) ~= nil end))
    end)
    os.execute("kill " .. pid)
    assert(ok, err)
    local name_of = {}
    for name, s in pairs(rstore.scripts) do name_of[redis.sha1_hex(s)] = name; name_of[s] = name end
    local seen, checked, keys, script = {}, 0, nil, nil
    local c = run(function() return assert(redis.connect(srv.addr)) end)
    run(function()
      for line in text():gmatch("[^\n]+") do
        local src, args = parse_monitor(line)
        if src == "lua" then
          assert(keys, "a script command without its EVALSHA: " .. line)
          local ks = c:call("COMMAND", "GETKEYS", unpack(args))
          if type(ks) == "table" then
            for _, k in ipairs(ks) do
              assert(keys[k], ("script %s touches %s, not in its KEYS"):format(script, k))
              checked = checked + 1
            end
          end
        elseif src and args[1] and (args[1]:upper() == "EVALSHA" or args[1]:upper() == "EVAL") then
          script = name_of[args[2]] or "?"
          seen[script] = true
          keys = {}
          for i = 1, tonumber(args[3]) do keys[args[3 + i]] = true end
        elseif src then
          keys = nil
        end
      end
      c:close()
    end)
    for name in pairs(rstore.scripts) do assert.is_true(seen[name], "script " .. name .. " did not run") end
    assert.is_true(checked > 50)
  end)

  it("misuse raises: bad options, a payload that cannot be stored, push before the store has a queue", function()
    assert.has_error(function() bs.redis_store{ visibility = -1 } end)
    assert.has_error(function() bs.redis_store{ visibilty = 3 } end)
    assert.has_error(function() bs.redis_store{ queue = 5 } end)
    assert.has_error(function() bs.redis_store("127.0.0.1:6379") end)
    run(function()
      local st = bs.redis_store{ addr = srv.addr }
      assert.has_error(function() st:push({ name = "h" }) end)
      local st2 = store(newq())
      assert.has_error(function() st2:push({ name = "h", payload = { f = function() end } }) end)
      st:close(); st2:close()
    end)
  end)

  it("bad input: a script error is a clear nil, err and the job is not accepted; a Redis that goes away mid-pipeline fails each call with nil, err and loses no accepted job", function()
    run(function()
      local q = newq()
      assert(cmd("SET", "lb:{" .. q .. "}:ready", "not a list"))
      local st = store(q)
      local ok, err = st:push({ id = "w", name = "h" })
      assert.is_nil(ok)
      assert.is_true(errors.is(err, rstore.SCRIPT_ERROR))
      assert.is_truthy(tostring(err):find("WRONGTYPE", 1, true))
      st:close()

      -- A second server with appendfsync always, killed mid-stream, then restarted on its files.
      local r2 = assert(support.start_redis{ args = { "--appendonly yes", "--appendfsync always" } })
      local s2 = bs.redis_store{ addr = r2.addr, queue = "crash", timeout = 5 }
      local accepted, failed = {}, 0
      local wg = lowbit.waitgroup()
      for k = 1, 50 do
        wg:add(1)
        lowbit.go(function()
          for i = k, 100000, 50 do
            local pok, perr = s2:push({ id = "c" .. i, name = "h" })
            if pok then accepted[#accepted + 1] = "c" .. i
            else
              assert.is_truthy(perr)
              failed = failed + 1
              break
            end
          end
          wg:done()
        end)
      end
      lowbit.sleep(0.3)
      r2.stop() -- SIGKILL mid-pipeline
      wg:wait()
      assert.equal(50, failed)
      assert.is_true(#accepted > 0)
      s2:close()
      -- Restart on the same port and append-only file.
      support.sh(("redis-server --port %d --bind 127.0.0.1 --dir %s --appendonly yes --save '' --daemonize no --logfile %s/r2b.log >/dev/null 2>&1 & echo $! > %s/pid2")
        :format(r2.port, r2.dir, r2.dir, r2.dir))
      local c
      assert.is_true(eventually(function()
        c = redis.connect{ addr = r2.addr, timeout = 5 }
        if not c then return false end
        local v = c:call("PING")
        if v ~= "PONG" then c:close(); c = nil; return false end
        return true
      end))
      local n = 0
      for _, id in ipairs(accepted) do
        if c:call("HEXISTS", "lb:{crash}:jobs", "d:" .. id) == 1 then n = n + 1 end
      end
      c:close()
      assert.equal(#accepted, n)
      support.sh("kill -9 $(cat " .. r2.dir .. "/pid2)")
    end)
  end)

  it("bad input: a serving queue survives a Redis restart (store_error events, then jobs run again) and a script error in claim", function()
    run(function()
      local r3 = assert(support.start_redis())
      local st = bs.redis_store{ addr = r3.addr, queue = "restart", timeout = 5 }
      local sv, evs = new_sv()
      sv:register_queue("restart", { workers = 2, store = st })
      local ran = {}
      sv:handle("h", function(_, job) ran[#ran + 1] = job.id end)
      assert.is_true(sv:dispatch("restart", { id = "before", name = "h" }))
      local cancel, wait = start(sv)
      assert.is_true(eventually(function() return #ran == 1 end))
      r3.stop()
      local ok, err = sv:dispatch("restart", { id = "down", name = "h" })
      assert.is_nil(ok); assert.is_truthy(err)
      assert.is_true(eventually(function() return #of_type(evs, "store_error") > 0 end))
      support.sh(("redis-server --port %d --bind 127.0.0.1 --dir %s --save '' --appendonly no --daemonize no >/dev/null 2>&1 & echo $! > %s/pid3")
        :format(r3.port, r3.dir, r3.dir))
      assert.is_true(eventually(function() return (sv:dispatch("restart", { id = "after", name = "h" })) == true end))
      assert.is_true(eventually(function() return #ran == 2 end))
      assert.same({ "before", "after" }, ran)
      -- A claim that fails in its script (ready is not a list): store_error, nothing raised.
      local c = assert(redis.connect(r3.addr))
      local n0 = #of_type(evs, "store_error")
      assert(c:call("SET", "lb:{restart}:ready", "oops"))
      assert(c:call("ZADD", "lb:{restart}:marker", 0, "m"))
      assert.is_true(eventually(function() return #of_type(evs, "store_error") > n0 end))
      local e = of_type(evs, "store_error")[#of_type(evs, "store_error")]
      assert.equal("claim", e.op); assert.is_truthy(tostring(e.err):find("WRONGTYPE", 1, true))
      assert(c:call("DEL", "lb:{restart}:ready"))
      c:close()
      assert.is_true(sv:dispatch("restart", { id = "fixed", name = "h" }))
      assert.is_true(eventually(function() return #ran == 3 end))
      cancel(); assert.is_nil(wait())
      st:close()
      support.sh("kill -9 $(cat " .. r3.dir .. "/pid3)")
    end)
  end)
end)
