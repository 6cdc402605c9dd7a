-- lowbit.redis on a Redis Cluster of 3 masters started here on loopback
-- ports (redis-server --cluster-enabled yes x3 + redis-cli --cluster
-- create), stopped by pid: key slots, MOVED and ASK followed, and the
-- topic bridge and the lanes working on the cluster (every key they write
-- carries a hash tag).
local lowbit = require "lowbit"
local redis = require "lowbit.redis"
local context = require "lowbit.context"
local bridge = require "lowbit.topic.redis"
local lanes = require "lowbit.seriallane.redis"
local rstore = require "lowbit.backstage.redis_store"
local flows = require "backstage_redis_flows"
local bs = require "lowbit.backstage"
local support = require "support"
local procs = require "redis_procs"
local run = support.run

describe("redis cluster", function()
  local nodes = {}

  setup(function()
    for i = 1, 3 do
      nodes[i] = assert(support.start_redis{ args = { "--cluster-enabled yes",
        "--cluster-config-file nodes.conf", "--cluster-node-timeout 5000" } })
    end
    local addrs = {}
    for i = 1, 3 do addrs[i] = nodes[i].addr end
    local out, rc = support.sh("redis-cli --cluster create " .. table.concat(addrs, " ") ..
      " --cluster-replicas 0 --cluster-yes 2>&1")
    assert(rc == 0, out)
    for i = 1, 3 do
      local ok = false
      for _ = 1, 300 do
        local info = support.sh("redis-cli -p " .. nodes[i].port .. " cluster info")
        if info:find("cluster_state:ok", 1, true) then ok = true; break end
        os.execute("sleep 0.02")
      end
      assert(ok, "cluster did not come up")
    end
  end)

  teardown(function()
    run(function() redis.close_idle() end)
    for i = 1, 3 do if nodes[i] then nodes[i].stop() end end
  end)

  it("computes key slots as Redis does (CRC16 XMODEM, hash tags)", function()
    assert.equal(12182, redis.key_slot("foo"))
    assert.equal(0x31C3 % 16384, redis.key_slot("123456789"))
    assert.equal(redis.key_slot("user1000"), redis.key_slot("{user1000}.following"))
    assert.equal(redis.key_slot("{}x"), redis.key_slot("{}x"))
    assert.are_not.equal(redis.key_slot("{}x"), redis.key_slot(""))
    local c = assert(support.sh("redis-cli -p " .. nodes[1].port .. " cluster keyslot somekey"))
    assert.equal(tonumber(c), redis.key_slot("somekey"))
    -- hash_tag: the whole name, never empty, "%" and "}" escaped
    assert.equal("{billing}", redis.hash_tag("billing"))
    assert.equal("{%7Dq%25{1}", redis.hash_tag("}q%{1"))
    assert.equal(redis.key_slot("%7Dq%25{1"), redis.key_slot("lb:" .. redis.hash_tag("}q%{1") .. ":ready"))
    assert.are_not.equal(redis.hash_tag("a}"), redis.hash_tag("a%7D"))
    assert.has_error(function() redis.hash_tag("") end, "bad argument 's' to redis.hash_tag: non-empty string expected, got string")
    assert.has_error(function() redis.hash_tag(1) end)
  end)

  it("follows MOVED: keys of every slot, through one seed node", function()
    local res = run(function()
      local c = assert(redis.connect{ addr = nodes[1].addr, cluster = true })
      for i = 1, 60 do assert(c:call("SET", "key:" .. i, "v" .. i)) end
      local got = {}
      for i = 1, 60 do got[i] = c:call("GET", "key:" .. i) end
      local sizes = {}
      for i = 1, 3 do
        local n = assert(redis.connect(nodes[i].addr))
        sizes[i] = n:call("DBSIZE")
        n:close()
      end
      -- Without cluster mode the same command gets the MOVED error.
      local plain = assert(redis.connect(nodes[1].addr))
      local moved
      for i = 1, 60 do
        local v, err = plain:call("GET", "key:" .. i)
        if v == nil then moved = err; break end
      end
      plain:close()
      local ev = c:eval_script("return redis.call('GET', KEYS[1])", { "key:7" })
      c:release()
      return { got = got, sizes = sizes, moved = moved, ev = ev }
    end)
    for i = 1, 60 do assert.equal("v" .. i, res.got[i]) end
    for i = 1, 3 do assert.is_true(res.sizes[i] > 0) end
    assert.equal("MOVED", res.moved.code)
    assert.equal("v7", res.ev)
  end)

  it("follows ASK during a slot migration (ASKING first)", function()
    local res = run(function()
      local key = "{ask}k"
      local slot = redis.key_slot(key)
      local ids, owner = {}, nil
      local admin = {}
      for i = 1, 3 do
        admin[i] = assert(redis.connect(nodes[i].addr))
        ids[i] = admin[i]:call("CLUSTER", "MYID")
      end
      for i = 1, 3 do
        local v = admin[i]:call("GET", key)
        if v ~= nil then owner = i end
      end
      local target = owner % 3 + 1
      assert(admin[target]:call("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner]))
      assert(admin[owner]:call("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target]))
      local c = assert(redis.connect{ addr = nodes[owner].addr, cluster = true })
      local set = c:call("SET", key, "moved-along")
      local got = c:call("GET", key)
      local on_target = admin[target]:pipeline({ { "ASKING" }, { "GET", key } })[2]
      local plain_err = select(2, admin[owner]:call("GET", key))
      for i = 1, 3 do admin[i]:close() end
      c:close()
      return { set = set, got = got, on_target = on_target, plain = plain_err }
    end)
    assert.equal("OK", res.set)
    assert.equal("moved-along", res.got)
    assert.equal("moved-along", res.on_target)  -- it really went to the importing node
    assert.equal("ASK", res.plain.code)
  end)

  it("the topic bridge (with a stream) and the lanes work on the cluster", function()
    local res = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      local sub = bridge.new{ redis = { addr = nodes[2].addr, cluster = true }, channel = "cl", stream = { maxlen = 50 } }
      local pub = bridge.new{ redis = { addr = nodes[1].addr, cluster = true }, channel = "cl", stream = { maxlen = 50 } }
      local got = {}
      sub:subscribe(function(_, m) got[#got + 1] = m.data end)
      lowbit.go(function() sub:run(ctx) end)
      assert(sub:ready(context.with_timeout(ctx, 5)))
      local ids = {}
      for i = 1, 3 do ids[i] = assert(pub:publish(ctx, "c" .. i)) end
      for _ = 1, 250 do if #got >= 3 then break end lowbit.sleep(0.02) end
      local replay = assert(sub:replay(ctx, ids[1]))
      local m = lanes.new{ redis = { addr = nodes[3].addr, cluster = true }, ttl = 5, poll = 0.05 }
      local fences = {}
      for i = 1, 3 do
        fences[i] = assert(m:run(ctx, "lane-" .. i, function(_, f) return f end))
      end
      local again = assert(m:run(ctx, "lane-1", function(_, f) return f end))
      cancel()
      return { got = got, replay = replay, fences = fences, again = again }
    end)
    assert.same({ "c1", "c2", "c3" }, res.got)
    assert.equal(2, #res.replay)
    assert.equal("c2", res.replay[1].data)
    assert.same({ 1, 1, 1 }, res.fences)
    assert.equal(2, res.again)
  end)
  it("backstage's Redis store on the cluster: enqueue, claim, complete, fail-retry, dead, dedupe, schedule (through a seed node that does not own the queue)", function()
    -- A queue whose slot is not on nodes[1] (slots 0-5460 are there).
    local q
    for i = 1, 100 do
      if redis.key_slot("{jobs" .. i .. "}") > 5460 then q = "jobs" .. i; break end
    end
    local res = run(function()
      return flows.run(function(o)
        o.addr, o.cluster = nodes[1].addr, true
        return rstore.new(o)
      end, q)
    end)
    flows.check(res)
    -- All of the queue's keys are on the node owning its slot.
    local slot = redis.key_slot("{" .. q .. "}")
    local counts = {}
    for i = 1, 3 do
      counts[i] = tonumber((support.sh("redis-cli -p " .. nodes[i].port .. " cluster countkeysinslot " .. slot)))
    end
    assert.equal(0, counts[1])
    assert.is_true(counts[2] + counts[3] >= 4) -- ready/active may be gone; jobs, dead, done, tok, seq, marker stay
  end)

  -- Found on redis-server 7.0.15 in cluster mode: a script without a
  -- shebang may touch keys it did not declare, even of other slots (with 0
  -- KEYS too), as long as the node owns them; a key of another node fails
  -- ("non local key"). With `#!lua` (no allow-cross-slot-keys flag), a
  -- key of another slot than the first one touched fails ("do not hash to
  -- the same slot"); an undeclared key of the same slot still passes. No
  -- flag or setting makes Redis require declared keys, so the backstage
  -- spec checks that with MONITOR (backstage_redis_spec.lua).
  it("the store's scripts are refused a key of another slot on the cluster (the #!lua line; without it Redis 7.0 allows it)", function()
    local res = run(function()
      local c = assert(redis.connect{ addr = nodes[1].addr, cluster = true })
      local bad = "#!lua\nredis.call('SET', KEYS[1], 1) return redis.call('SET', KEYS[1] .. '-untagged', 2)"
      local old = "redis.call('SET', KEYS[1], 1) return redis.call('SET', KEYS[1] .. '-untagged', 2)"
      -- a key whose "-untagged" twin sits on the same node, other slot
      local key
      for i = 1, 1000 do
        local k = "k" .. i
        local a, b = redis.key_slot(k), redis.key_slot(k .. "-untagged")
        if a ~= b and (a <= 5460) == (b <= 5460) and (a > 10922) == (b > 10922) then key = k; break end
      end
      local v1, e1 = c:eval_script(bad, { key })
      local v2, e2 = c:eval_script(old, { key })
      c:release()
      return { v1 = v1, e1 = e1 and tostring(e1), v2 = v2, e2 = e2 }
    end)
    assert.is_nil(res.v1)
    assert.is_truthy(res.e1:find("do not hash to the same slot", 1, true))
    assert.equal("OK", res.v2)
    for _, s in pairs(rstore.scripts) do assert.equal("#!lua", s:match("^#!lua")) end
  end)

  -- The node (1..3) serving slot, from CLUSTER SLOTS on c.
  local function owner_of(c, slot)
    for _, e in ipairs(assert(c:call("CLUSTER", "SLOTS"))) do
      if slot >= e[1] and slot <= e[2] then
        for i = 1, 3 do if tonumber(e[3][2]) == nodes[i].port then return i end end
      end
    end
  end

  -- A name whose hash tag's slot no test has used, on a node other than
  -- nodes[1] (the seed every client is given).
  local function fresh_name(prefix)
    local used = { [redis.key_slot("{ask}k")] = true }
    for i = 1, 1000 do
      local n = prefix .. i
      local slot = redis.key_slot("{" .. n .. "}")
      if slot > 5460 and not used[slot] then return n, slot end
    end
  end

  -- Moves slot from node `from` to node `to` as redis-cli --cluster
  -- reshard does (SETSLOT IMPORTING / MIGRATING, MIGRATE key by key, then
  -- SETSLOT NODE on every master), with pauses so the work going on sees
  -- the slot migrating and its keys split between the two nodes. Returns
  -- how many keys it moved.
  local function migrate(admin, ids, slot, from, to)
    assert(admin[to]:call("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from]))
    assert(admin[from]:call("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to]))
    lowbit.sleep(0.2)
    local moved = 0
    for _ = 1, 1000 do
      local keys = assert(admin[from]:call("CLUSTER", "GETKEYSINSLOT", slot, 1))
      if #keys == 0 then break end
      assert(admin[from]:call("MIGRATE", "127.0.0.1", nodes[to].port, "", 0, 5000, "KEYS", keys[1]))
      moved = moved + 1
      lowbit.sleep(0.1) -- (more than 1 s in all: the fetcher's wait on the marker ends meanwhile)
    end
    lowbit.sleep(0.1)
    assert(admin[to]:call("CLUSTER", "SETSLOT", slot, "NODE", ids[to]))
    for i = 1, 3 do
      if i ~= to then assert(admin[i]:call("CLUSTER", "SETSLOT", slot, "NODE", ids[to])) end
    end
    return moved
  end

  it("a slot migrating mid-workload (ASK, TRYAGAIN, then MOVED): backstage jobs, lanes and a topic stream on it lose nothing, run nothing twice and return no error", function()
    local name, slot = fresh_name("mig")
    local res = run(function()
      local admin, ids = {}, {}
      for i = 1, 3 do
        admin[i] = assert(redis.connect(nodes[i].addr))
        ids[i] = admin[i]:call("CLUSTER", "MYID")
      end
      local from = owner_of(admin[1], slot)
      local to = from % 3 + 1
      local seed = { addr = nodes[1].addr, cluster = true }
      local r = { errs = {}, from = from, to = to }
      local function fail(what, err) r.errs[#r.errs + 1] = what .. ": " .. tostring(err) end
      local ctx, cancel = context.with_cancel(context.background())

      -- backstage: 4 workers, jobs dispatched all along the migration
      local evs, runs = {}, {}
      local st = rstore.new{ addr = nodes[1].addr, cluster = true, queue = name, visibility = 30 }
      local sv = bs.new("mig", { logger = false, on_event = function(e) evs[#evs + 1] = e end })
      sv:register_queue(name, { workers = 4, store = st })
      sv:handle("count", function(_, job)
        runs[job.id] = (runs[job.id] or 0) + 1
        lowbit.sleep(0.003)
      end)
      local served = lowbit.chan(1)
      lowbit.go(function() served:send({ sv:serve(ctx) }) end)
      -- (jobs 1-20 at once, the others all along)
      local N = 150
      local pushed = lowbit.chan(1)
      lowbit.go(function()
        for i = 1, N do
          local ok, err = sv:dispatch(name, { id = "j" .. i, name = "count" })
          if not ok then fail("dispatch j" .. i, err) end
          if i > 20 then lowbit.sleep(0.01) end
        end
        pushed:send(true)
      end)

      -- lanes: 3 tasks taking lane "counter" (and run_multi on two
      -- lanes), all under the migrating slot's tag
      local m = lanes.new{ redis = seed, ttl = 5, poll = 0.02, tag = name }
      local inside, overlaps, fences, lane_runs = 0, 0, {}, 0
      local lanes_done = lowbit.chan(3)
      for t = 1, 3 do
        lowbit.go(function()
          for k = 1, 25 do
            local function body(_, f)
              inside = inside + 1
              if inside > 1 then overlaps = overlaps + 1 end
              fences[#fences + 1] = type(f) == "table" and f[1] or f
              lowbit.sleep(0.005)
              inside = inside - 1
              lane_runs = lane_runs + 1
              return true
            end
            local ok, err
            if k % 5 == 0 then ok, err = m:run_multi(ctx, { "counter", "other" .. t }, body)
            else ok, err = m:run(ctx, "counter", body) end
            if not ok then fail("lane", err) end
            lowbit.sleep(0.01)
          end
          lanes_done:send(true)
        end)
      end

      -- topic: a stream on the same slot, published all along
      local sub = bridge.new{ redis = seed, channel = name, stream = { maxlen = 1000 } }
      local pub = bridge.new{ redis = seed, channel = name, stream = { maxlen = 1000 } }
      local got, got_r = {}, {}
      sub:subscribe(function(_, msg) got[#got + 1] = msg.kind == "message" and msg.data or msg.kind end)
      -- (a subscriber deduplicating by stream id, as one with a Last-Event-ID)
      sub:subscribe(function(_, msg) got_r[#got_r + 1] = msg.kind == "message" and msg.data or msg.kind end,
        { replay = true })
      lowbit.go(function() sub:run(ctx) end)
      assert(sub:ready(context.with_timeout(ctx, 5)))
      local M_ = 100
      local published = lowbit.chan(1)
      lowbit.go(function()
        for i = 1, M_ do
          local ok, err = pub:publish(ctx, "m" .. i)
          if not ok then fail("publish m" .. i, err) end
          lowbit.sleep(0.012)
        end
        published:send(true)
      end)

      lowbit.sleep(0.3)
      r.moved_keys = migrate(admin, ids, slot, from, to)
      r.owner_after = owner_of(admin[2], slot)
      pushed:recv()
      published:recv()
      for _ = 1, 3 do lanes_done:recv() end
      local n
      for _ = 1, 500 do
        n = 0
        for _ in pairs(runs) do n = n + 1 end
        if n >= N and #got >= M_ and #got_r >= M_ then break end
        lowbit.sleep(0.02)
      end
      lowbit.sleep(0.1)
      r.replay = assert(sub:replay(ctx, nil, 1000))
      cancel()
      served:recv()
      st:close()
      r.runs, r.N, r.got, r.got_r, r.M = runs, N, got, got_r, M_
      r.overlaps, r.fences, r.lane_runs = overlaps, fences, lane_runs
      r.bad_events = {}
      for _, e in ipairs(evs) do
        if e.type == "store_error" or e.type == "lease_lost" or e.type == "job_failed" or e.type == "job_rejected"
          or e.type == "job_recovered" then
          r.bad_events[#r.bad_events + 1] = e.type .. " " .. tostring(e.op) .. " " .. tostring(e.err)
        end
      end
      r.keys_on = {}
      for i = 1, 3 do r.keys_on[i] = admin[i]:call("CLUSTER", "COUNTKEYSINSLOT", slot); admin[i]:close() end
      return r
    end)
    assert.same({}, res.errs)
    assert.same({}, res.bad_events)
    assert.equal(res.to, res.owner_after)
    assert.is_true(res.moved_keys >= 5) -- the queue's, the lanes' and the stream's keys
    assert.equal(0, res.keys_on[res.from])
    for i = 1, res.N do assert.equal(1, res.runs["j" .. i], "job j" .. i) end
    local n = 0
    for _ in pairs(res.runs) do n = n + 1 end
    assert.equal(res.N, n)
    assert.equal(0, res.overlaps)
    assert.equal(75, res.lane_runs)
    for i = 2, #res.fences do assert.is_true(res.fences[i] > res.fences[i - 1]) end
    local want = {}
    for i = 1, res.M do want[i] = "m" .. i end
    -- Live messages: each once (their order may break while the slot
    -- moves: the cluster bus brings those published on the other node).
    local function by_number(a, b) return tonumber(a:sub(2)) < tonumber(b:sub(2)) end
    table.sort(res.got, by_number)
    table.sort(res.got_r, by_number)
    assert.same(want, res.got)
    assert.same(want, res.got_r)
    -- The stream keeps the publish order.
    local replayed = {}
    for i, e in ipairs(res.replay) do replayed[i] = e.data end
    assert.same(want, replayed)
  end)

  -- Where hash tag of key ends, or nil when it has none (Redis' rule:
  -- the first "{", the next "}", at least one byte between).
  local function tag_of(key)
    local s = key:find("{", 1, true)
    local e = s and key:find("}", s + 1, true)
    if e and e > s + 1 then return key:sub(s + 1, e - 1) end
  end

  it("every key the backstage store, its schedules, the topic bridge and the lanes write carries a hash tag, and each command's and script's keys share one slot (MONITOR on the 3 nodes; names with { } % in them)", function()
    local mons, pids = {}, {}
    for i = 1, 3 do support.sh("redis-cli -p " .. nodes[i].port .. " flushall") end -- (the schedule ticks of earlier tests)
    for i = 1, 3 do
      mons[i] = nodes[i].dir .. "/monitor-tags.txt"
      pids[i] = tonumber(support.sh(("redis-cli -p %d monitor > %s 2>&1 & echo $!"):format(nodes[i].port, mons[i])):match("%d+"))
    end
    local function text(i) local f = io.open(mons[i]); local t = f and f:read("*a") or ""; if f then f:close() end; return t end
    local eventually = support.eventually
    local ok, err = pcall(run, function()
      for i = 1, 3 do assert(eventually(function() return text(i):find("OK", 1, true) ~= nil end)) end
      local seed = { addr = nodes[1].addr, cluster = true }
      -- backstage: every script (flows) on a queue whose name starts with
      -- "}" (unescaped, its tag would be empty: one slot per key)
      flows.check(flows.run(function(o)
        o.addr, o.cluster = nodes[1].addr, true
        return rstore.new(o)
      end, "}q%{1"))
      -- a supervisor's schedule through a coordinator
      local co = rstore.coordinator{ addr = nodes[1].addr, cluster = true }
      assert.is_true(assert(co:tick("}sv", "nightly", 1800000000)))
      co:close()
      -- topic bridge with a stream
      local ctx, cancel = context.with_cancel(context.background())
      local sub = bridge.new{ redis = seed, channel = "}room{", stream = { maxlen = 10 } }
      local pub = bridge.new{ redis = seed, channel = "}room{", stream = { maxlen = 10 } }
      local got = {}
      sub:subscribe(function(_, m) got[#got + 1] = m.data end)
      lowbit.go(function() sub:run(ctx) end)
      assert(sub:ready(context.with_timeout(ctx, 5)))
      for i = 1, 3 do assert(pub:publish(ctx, "t" .. i)) end
      assert(eventually(function() return #got == 3 end))
      assert.equal(3, #assert(sub:replay(ctx, nil)))
      -- lanes: one tag per lane, and one tag for a manager's run_multi
      local m = lanes.new{ redis = seed, ttl = 5, poll = 0.02 }
      assert.equal(1, assert(m:run(ctx, "}lane", function(_, f) return f end)))
      local held = lowbit.chan(0)
      local let_go = lowbit.chan(0)
      lowbit.go(function() m:run(ctx, "busy", function() held:send(true); let_go:recv() end) end)
      held:recv()
      lowbit.go(function() lowbit.sleep(0.1); let_go:send(true) end)
      assert(m:run(ctx, "busy", function() return true end)) -- waited on busy's wake list
      local mt = lanes.new{ redis = seed, ttl = 5, poll = 0.02, tag = "acct" }
      assert.same({ 1, 1 }, assert(mt:run_multi(ctx, { "a", "b" }, function(_, fs) return fs end)))
      -- without a tag, lanes of different slots cannot be taken together
      local a, b = "x1", nil
      for i = 2, 100 do
        if redis.key_slot(lanes._base(m, "x" .. i)) ~= redis.key_slot(lanes._base(m, a)) then b = "x" .. i; break end
      end
      assert.has_error(function() m:run_multi(ctx, { a, b }, function() end) end,
        "bad argument 'keys' to seriallane.redis:run_multi: keys of different cluster slots (give opts.tag to the manager)")
      cancel()
      lowbit.sleep(0.05)
      for i = 1, 3 do
        local c = assert(redis.connect(nodes[i].addr))
        c:call("ECHO", "tags-end")
        c:close()
        assert(eventually(function() return text(i):find("tags-end", 1, true) ~= nil end))
      end
    end)
    for i = 1, 3 do os.execute("kill " .. pids[i]) end
    assert(ok, err)
    -- Every key of every command (top level: COMMAND GETKEYS, or a
    -- script's KEYS; inside a script: COMMAND GETKEYS too).
    local shapes, all, untagged, crossed, n = {}, {}, {}, {}, 0
    run(function()
      local c = assert(redis.connect(nodes[1].addr))
      local function keys_of(args)
        local ks = c:call("COMMAND", "GETKEYS", unpack(args))
        return type(ks) == "table" and ks or {}
      end
      for i = 1, 3 do
        local slot -- the enclosing script's
        for line in text(i):gmatch("[^\n]+") do
          local src, args = procs.parse_monitor(line)
          local ks
          if src == "lua" then
            ks = keys_of(args)
          elseif src and args[1] and (args[1]:upper() == "EVALSHA" or args[1]:upper() == "EVAL") then
            ks, slot = {}, nil
            for k = 1, tonumber(args[3]) do ks[k] = args[3 + k] end
          elseif src and args[1] then
            ks, slot = keys_of(args), nil
          end
          for _, k in ipairs(ks or {}) do
            n = n + 1
            local tag = tag_of(k)
            if not tag then untagged[#untagged + 1] = k end
            shapes[(k:gsub("{[^}]*}", "{T}", 1))] = true
            all[k] = true
            slot = slot or redis.key_slot(k)
            if redis.key_slot(k) ~= slot then crossed[#crossed + 1] = line end
          end
        end
      end
      c:close()
    end)
    assert.same({}, untagged)
    assert.same({}, crossed)
    local list = {}
    for k in pairs(shapes) do list[#list + 1] = k end
    table.sort(list)
    assert.same({
      "lane:{T}", "lane:{T}:fence", -- a lane (its own tag)
      "lane:{T}:sa", "lane:{T}:sa:fence", "lane:{T}:sa:wake", -- lanes of a tagged manager
      "lane:{T}:sb", "lane:{T}:sb:fence", "lane:{T}:sb:wake",
      "lane:{T}:wake",
      "lb:sched:{T}", -- a schedule's ticks
      "lb:{T}:active", "lb:{T}:dead", "lb:{T}:delayed", "lb:{T}:done", "lb:{T}:jobs", "lb:{T}:marker",
      "lb:{T}:ready", "lb:{T}:seq", "lb:{T}:tok", -- a queue
      "topic:{T}:stream", -- a topic's stream
    }, list)
    -- names with braces and % get whole tags
    for _, k in ipairs{ "lb:{%7Dq%25{1}:jobs", "lb:sched:{%7Dsv:nightly}", "lb:sched:{sv:beat}",
                        "topic:{%7Droom{}:stream", "lane:{s%7Dlane}", "lane:{acct}:sa" } do
      assert.is_true(all[k], k)
    end
    assert.is_true(n > 100)
  end)
end)
