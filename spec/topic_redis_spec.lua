-- lowbit.topic.redis against real redis-servers started here (loopback,
-- --save '' --appendonly no, stopped by pid), with child lowbit processes:
-- scale.md list C, statement 3 (topic bridge), one test per part.
local lowbit = require "lowbit"
local redis = require "lowbit.redis"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local bridge = require "lowbit.topic.redis"
local sse = require "lowbit.sse"
local support = require "support"
local procs = require "redis_procs"
local run = support.run

-- A subscriber process: prints the data of the first n messages, comma
-- separated, then exits (or after 20 s).
local SUBSCRIBER = [[
local lowbit = require "lowbit"
local context = require "lowbit.context"
local bridge = require "lowbit.topic.redis"
local addr, chan, n = arg[1], arg[2], tonumber(arg[3])
local b = bridge.new{ redis = addr, channel = chan }
local ctx, cancel = context.with_timeout(context.root(), 20)
local got, done = {}, lowbit.chan(1)
b:subscribe(function(_, m)
  if m.kind == "message" then
    got[#got + 1] = m.data
    if #got == n then done:try_send(true) end
  end
end)
lowbit.go(function() b:run(ctx) end)
lowbit.select{ done, ctx:done() }
cancel()
io.write(table.concat(got, ","), "\n")
]]

-- A publisher process with a stream: publishes m1..mn, prints the ids.
local PUBLISHER = [[
local context = require "lowbit.context"
local bridge = require "lowbit.topic.redis"
local addr, chan, n = arg[1], arg[2], tonumber(arg[3])
local b = bridge.new{ redis = addr, channel = chan, stream = { maxlen = 100 } }
local ids = {}
for i = 1, n do ids[i] = assert(b:publish(context.root(), "m" .. i)) end
io.write(table.concat(ids, ","), "\n")
]]

describe("topic.redis (scale.md C3)", function()
  local srv = support.use_redis()

  it("C3.1: a publish in process A reaches the subscribers in processes B and C", function()
    local outs = run(function()
      local b = procs.child(SUBSCRIBER, srv.addr, "room", "5")
      local c = procs.child(SUBSCRIBER, srv.addr, "room", "5")
      -- Both subscribed (bounded wait), then A publishes.
      local cl = assert(redis.connect(srv.addr))
      for _ = 1, 500 do
        local r = assert(cl:call("PUBSUB", "NUMSUB", "topic:{room}"))
        if r[2] == 2 then break end
        lowbit.sleep(0.02)
      end
      assert.same({ "topic:{room}", 2 }, cl:call("PUBSUB", "NUMSUB", "topic:{room}"))
      cl:close()
      local a = bridge.new{ redis = srv.addr, channel = "room" }
      for i = 1, 5 do assert.is_true(a:publish(context.background(), "m" .. i)) end
      local cb, ob = b.wait(20)
      local cc, oc = c.wait(20)
      return { cb, ob, cc, oc }
    end)
    assert.equal(0, outs[1])
    assert.equal("m1,m2,m3,m4,m5\n", outs[2])
    assert.equal(0, outs[3])
    assert.equal("m1,m2,m3,m4,m5\n", outs[4])
  end)

  it("C3.1: origin: with echo = false the publisher delivers locally once, skipping its echo", function()
    local got = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      local a = bridge.new{ redis = srv.addr, channel = "echo", echo = false }
      local other = bridge.new{ redis = srv.addr, channel = "echo" }
      local seen, seen_other = {}, {}
      a:subscribe(function(_, m) seen[#seen + 1] = m.data end)
      other:subscribe(function(_, m) seen_other[#seen_other + 1] = m.data end)
      lowbit.go(function() a:run(ctx) end)
      lowbit.go(function() other:run(ctx) end)
      assert(a:ready(context.with_timeout(ctx, 5)))
      assert(other:ready(context.with_timeout(ctx, 5)))
      assert(a:publish(ctx, "x"))
      assert(other:publish(ctx, "y"))
      for _ = 1, 250 do
        if #seen_other == 2 and #seen == 2 then break end
        lowbit.sleep(0.02)
      end
      lowbit.sleep(0.05) -- an echo of "x" would have arrived by now
      cancel()
      return { seen, seen_other }
    end)
    assert.same({ "x", "y" }, got[1])
    assert.same({ "x", "y" }, got[2])
  end)

  it("C3.2: after a Redis restart the bridge resubscribes within 2 s and reports the possible gap", function()
    local res = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      local b = bridge.new{ redis = srv.addr, channel = "news" }
      local msgs, gaps, on_gap = {}, {}, {}
      local arrived = lowbit.chan(10)
      local b2 = bridge.new{ redis = srv.addr, channel = "news", on_gap = function(e) on_gap[#on_gap + 1] = e end }
      b2:subscribe(function(_, m)
        if m.kind == "gap" then gaps[#gaps + 1] = m.err; arrived:try_send("gap")
        else msgs[#msgs + 1] = m.data; arrived:try_send(m.data) end
      end)
      lowbit.go(function() b2:run(ctx) end)
      assert(b2:ready(context.with_timeout(ctx, 5)))
      assert(b:publish(ctx, "before"))
      assert.equal("before", lowbit.select{ arrived, lowbit.after(5) } == 1 and msgs[1])
      procs.restart_redis(srv)
      -- From the moment the new server is ready: gap reported within 2 s.
      local i = lowbit.select{ arrived, lowbit.after(2) }
      local gap_in_time = i == 1 and #gaps == 1
      assert(b2:ready(context.with_timeout(ctx, 2)))
      redis.close_idle() -- pooled publisher connections died with the old server
      assert(b:publish(ctx, "after"))
      lowbit.select{ arrived, lowbit.after(5) }
      cancel()
      return { gap_in_time = gap_in_time, gaps = gaps, on_gap = on_gap, msgs = msgs, count = b2.gaps }
    end)
    assert.is_true(res.gap_in_time)
    assert.equal(1, res.count)
    assert.equal(1, #res.on_gap)
    assert.is_true(errors.is(res.gaps[1], bridge.SUBSCRIPTION_LOST))
    assert.same({ "before", "after" }, res.msgs)
  end)

  it("C3.2: a paused Redis (SIGSTOP, connection open but silent) is noticed by the heartbeat; after SIGCONT the bridge resubscribes and reports the gap", function()
    local res = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      local b = bridge.new{ redis = srv.addr, channel = "hb", heartbeat = 0.3, backoff = function() return 0.05 end }
      local got, gaps = {}, 0
      local arrived = lowbit.chan(10)
      b:subscribe(function(_, m)
        if m.kind == "gap" then gaps = gaps + 1; arrived:try_send("gap")
        else got[#got + 1] = m.data; arrived:try_send(m.data) end
      end)
      lowbit.go(function() b:run(ctx) end)
      assert(b:ready(context.with_timeout(ctx, 5)))
      local pub = bridge.new{ redis = srv.addr, channel = "hb" }
      assert(pub:publish(ctx, "a"))
      lowbit.select{ arrived, lowbit.after(5) }
      os.execute("kill -STOP " .. srv.pid)
      -- Three heartbeats without a word: the connection is given up.
      for _ = 1, 250 do
        if not b.connected then break end
        lowbit.sleep(0.02)
      end
      local noticed = not b.connected
      os.execute("kill -CONT " .. srv.pid)
      lowbit.select{ arrived, lowbit.after(5) }
      redis.close_idle()
      assert(b:ready(context.with_timeout(ctx, 5)))
      assert(pub:publish(ctx, "b"))
      for _ = 1, 250 do
        if got[2] then break end
        lowbit.sleep(0.02)
      end
      cancel()
      return { noticed = noticed, got = got, gaps = gaps }
    end)
    assert.is_true(res.noticed)
    assert.is_true(res.gaps >= 1) -- (a loaded machine may also miss 3 beats before the pause)
    assert.same({ "a", "b" }, res.got)
  end)

  it("C3.3: with a stream, a client reconnecting with Last-Event-ID gets the events it missed, published by another process", function()
    local res = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      -- Another process published m1..m5 while this client was away.
      local p = procs.child(PUBLISHER, srv.addr, "feed", "5")
      local code, out = p.wait(20)
      assert.equal(0, code)
      local ids = {}
      for id in out:gmatch("[%d%-]+") do ids[#ids + 1] = id end
      assert.equal(5, #ids)
      local b = bridge.new{ redis = srv.addr, channel = "feed", stream = { maxlen = 100 } }
      lowbit.go(function() b:run(ctx) end)
      assert(b:ready(context.with_timeout(ctx, 5)))
      -- The client saw up to m2: Last-Event-ID = ids[2].
      local got, gotids = {}, {}
      assert(b:subscribe(function(_, m)
        if m.kind == "message" then got[#got + 1] = m.data; gotids[#gotids + 1] = m.id end
      end, { after = ids[2] }))
      -- Live messages follow, each once.
      local pub = bridge.new{ redis = srv.addr, channel = "feed", stream = { maxlen = 100 } }
      local id6 = assert(pub:publish(ctx, "m6"))
      for _ = 1, 250 do
        if #got >= 4 then break end
        lowbit.sleep(0.02)
      end
      lowbit.sleep(0.05)
      cancel()
      return { got = got, gotids = gotids, ids = ids, id6 = id6 }
    end)
    assert.same({ "m3", "m4", "m5", "m6" }, res.got)
    assert.same({ res.ids[3], res.ids[4], res.ids[5], res.id6 }, res.gotids)
  end)

  it("C3.3: over HTTP, an SSE client (curl) reconnecting with Last-Event-ID gets the events published by another process while it was away", function()
    local res = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      local b = bridge.new{ redis = srv.addr, channel = "sse", stream = { maxlen = 100 } }
      lowbit.go(function() b:run(ctx) end)
      assert(b:ready(context.with_timeout(ctx, 5)))
      -- The SSE endpoint: replays after Last-Event-ID, then live events,
      -- ending the response after ?n events.
      local srv_http, ln = support.http_server{ handler = function(w, r)
        local want = tonumber(r.url.raw_query:match("n=(%d+)")) or 1
        local e = sse.new_emitter(w, { ctx = r.ctx })
        local q = lowbit.chan(1000)
        local last = r.headers:get("Last-Event-ID")
        local unsub = assert(b:subscribe(function(_, m)
          if m.kind == "message" then q:try_send(m) end
        end, { after = last ~= "" and last or nil, replay = true }))
        for _ = 1, want do
          local i, m = lowbit.select{ q, r.ctx:done(), lowbit.after(10) }
          if i ~= 1 then break end
          e:send{ id = m.id, data = m.data }
        end
        unsub()
      end }
      local url = "http://" .. ln:addr() .. "/events?n="
      -- First connection: the client sees e1, e2, then goes away.
      local first = lowbit.chan(1)
      lowbit.go(function()
        first:send({ support.spawn("curl", { "-sN", url .. "2" }, 20) })
      end)
      local cl = assert(redis.connect(srv.addr))
      for _ = 1, 500 do
        local r = cl:call("PUBSUB", "NUMSUB", "topic:{sse}")
        if r[2] >= 1 and b:count() >= 1 then break end
        lowbit.sleep(0.01)
      end
      cl:close()
      local pub = procs.child(PUBLISHER, srv.addr, "sse", "2")
      local c1, o1 = pub.wait(20)
      assert.equal(0, c1)
      local r1 = first:recv()
      -- While it is away, another process publishes three more (m1..m3 of its own).
      local pub2 = procs.child(PUBLISHER, srv.addr, "sse", "3")
      local c2, o2 = pub2.wait(20)
      assert.equal(0, c2)
      -- The client reconnects with the last id it saw.
      local last_id = r1[2]:match("id: *([%d%-]+)\n[^\n]*\n\n$") or r1[2]:match(".*id: *([%d%-]+)")
      local code, out = support.spawn("curl", { "-sN", "-H", "Last-Event-ID: " .. tostring(last_id), url .. "3" }, 20)
      cancel()
      srv_http:close()
      return { r1 = r1, first_ids = o1, second_ids = o2, code = code, out = out, last_id = last_id }
    end)
    assert.equal(0, res.r1[1])
    local ids1, ids2 = {}, {}
    for id in res.first_ids:gmatch("[%d%-]+") do ids1[#ids1 + 1] = id end
    for id in res.second_ids:gmatch("[%d%-]+") do ids2[#ids2 + 1] = id end
    assert.equal(("id: %s\ndata: m1\n\nid: %s\ndata: m2\n\n"):format(ids1[1], ids1[2]), res.r1[2])
    assert.equal(0, res.code)
    assert.equal(("id: %s\ndata: m1\n\nid: %s\ndata: m2\n\nid: %s\ndata: m3\n\n"):format(ids2[1], ids2[2], ids2[3]), res.out)
  end)

  it("examples/cluster_chat.lua: two processes on two ports sharing one Redis form one room", function()
    local res = run(function()
      local http = require "lowbit.http"
      local websockets = require "lowbit.websockets"
      local ports = { 21000 + math.random(0, 4499), 25500 + math.random(0, 4499) }
      local servers = {}
      for i = 1, 2 do
        servers[i] = procs.start(support.root .. "/examples/cluster_chat.lua", false,
          "127.0.0.1:" .. ports[i], srv.addr)
      end
      local base = {}
      for i = 1, 2 do
        base[i] = "http://127.0.0.1:" .. ports[i]
        for _ = 1, 250 do
          local resp = http.get(base[i] .. "/")
          if resp then resp.body:close(); break end
          lowbit.sleep(0.02)
        end
      end
      -- Both processes subscribed to both channels.
      local cl = assert(redis.connect(srv.addr))
      for _ = 1, 250 do
        local r = cl:call("PUBSUB", "NUMSUB", "topic:{chat:says}", "topic:{chat:presence}")
        if r[2] == 2 and r[4] == 2 then break end
        lowbit.sleep(0.02)
      end
      cl:close()
      local out = {}
      local resp = assert(http.get(base[2] .. "/events"))
      local feed = sse.new_reader(resp.body)
      local function ev() local e = assert(feed:read()); out[#out + 1] = e.name .. "=" .. e.data end
      ev()
      local ann = assert(websockets.dial(base[1]:gsub("^http", "ws") .. "/ws?name=ann"))
      ev()
      local bob = assert(websockets.dial(base[2]:gsub("^http", "ws") .. "/ws?name=bob"))
      ev()
      ann:write_message(websockets.TEXT, "hi bob")
      out[#out + 1] = (bob:read_message())
      out[#out + 1] = (ann:read_message())
      bob:write_message(websockets.TEXT, "hi ann")
      out[#out + 1] = (ann:read_message())
      ann:close()
      ev()
      -- A new page on A sees bob, connected to B.
      local resp2 = assert(http.get(base[1] .. "/events"))
      local e2 = assert(sse.new_reader(resp2.body):read())
      out[#out + 1] = "A:" .. e2.name .. "=" .. e2.data
      resp2.body:close()
      bob:close()
      ev()
      resp.body:close()
      local codes = {}
      for i = 1, 2 do
        os.execute("kill -INT " .. servers[i].pid)
        codes[i] = servers[i].wait(10)
      end
      return { out = out, codes = codes }
    end)
    assert.same({ "members=[]", "join=ann", "join=bob", "ann: hi bob", "ann: hi bob", "bob: hi ann",
                  "leave=ann", 'A:members=["bob"]', "leave=bob" }, res.out)
    assert.same({ 0, 0 }, res.codes)
  end)

  it("C3.3: a replay longer than one XRANGE page is read page by page", function()
    local res = run(function()
      local ctx = context.background()
      local b = bridge.new{ redis = srv.addr, channel = "pages", stream = { maxlen = 100 } }
      local ids = {}
      for i = 1, 7 do ids[i] = assert(b:publish(ctx, "p" .. i)) end
      local saved = bridge.REPLAY_COUNT
      bridge.REPLAY_COUNT = 2
      local got = {}
      local cancel = assert(b:subscribe(function(_, m) got[#got + 1] = m.data end, { after = ids[1] }))
      bridge.REPLAY_COUNT = saved
      cancel()
      return got
    end)
    assert.same({ "p2", "p3", "p4", "p5", "p6", "p7" }, res)
  end)

  it("C3.3: the stream is trimmed (MAXLEN ~) and a gap is refilled from it for replay subscribers", function()
    local res = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      local b = bridge.new{ redis = srv.addr, channel = "t", stream = { maxlen = 10 } }
      for i = 1, 300 do assert(b:publish(ctx, "e" .. i)) end
      local cl = assert(redis.connect(srv.addr))
      local len = cl:call("XLEN", "topic:{t}:stream")
      cl:close()
      -- replay: a subscriber cut off from the channel (its connection
      -- killed) gets what was published meanwhile from the stream.
      local s = bridge.new{ redis = srv.addr, channel = "t", stream = { maxlen = 10 }, backoff = function() return 0.05 end }
      local got = {}
      s:subscribe(function(_, m) got[#got + 1] = m.kind == "gap" and "gap" or m.data end, { replay = true })
      lowbit.go(function() s:run(ctx) end)
      assert(s:ready(context.with_timeout(ctx, 5)))
      assert(b:publish(ctx, "live1"))
      for _ = 1, 250 do if #got >= 1 then break end lowbit.sleep(0.02) end
      -- Kill the subscriber's connection; publish while it reconnects.
      local killer = assert(redis.connect(srv.addr))
      assert(killer:call("CLIENT", "KILL", "TYPE", "pubsub"))
      assert(b:publish(ctx, "missed"))
      killer:close()
      for _ = 1, 250 do if #got >= 3 then break end lowbit.sleep(0.02) end
      cancel()
      return { len = len, got = got }
    end)
    assert.is_true(res.len >= 10 and res.len < 300)
    assert.same({ "live1", "gap", "missed" }, res.got)
  end)

  it("a live message that arrives after a later one (a cluster's bus during a slot migration) still reaches after/replay subscribers, each id once", function()
    local res = run(function()
      local ctx, cancel = context.with_cancel(context.background())
      local b = bridge.new{ redis = srv.addr, channel = "late", stream = { maxlen = 10 } }
      local got, plain = {}, {}
      b:subscribe(function(_, m) got[#got + 1] = m.data end, { replay = true })
      b:subscribe(function(_, m) plain[#plain + 1] = m.data end)
      lowbit.go(function() b:run(ctx) end)
      assert(b:ready(context.with_timeout(ctx, 5)))
      -- Messages as the bridge publishes them ("origin\nid\ndata"), in
      -- the order a subscriber's node may relay them from two nodes.
      local c = assert(redis.connect(srv.addr))
      for _, m in ipairs{ { "5-0", "e5" }, { "7-0", "e7" }, { "6-0", "e6" }, { "7-0", "e7" }, { "5-0", "e5" } } do
        assert(c:call("PUBLISH", "topic:{late}", "other\n" .. m[1] .. "\n" .. m[2]))
      end
      for _ = 1, 250 do if #plain >= 5 then break end lowbit.sleep(0.02) end
      local first = { got = got, plain = plain }
      -- The ids remembered are the last 1024 delivered: an older one
      -- counts as delivered.
      got, plain = {}, {}
      local cmds = {}
      for i = 100, 1199 do cmds[#cmds + 1] = { "PUBLISH", "topic:{late}", "other\n" .. i .. "-0\nx" .. i } end
      for _, m in ipairs{ { "150-0", "old" }, { "1198-0", "seen" }, { "1199-1", "new" } } do
        cmds[#cmds + 1] = { "PUBLISH", "topic:{late}", "other\n" .. m[1] .. "\n" .. m[2] }
      end
      assert(c:pipeline(cmds))
      c:close()
      for _ = 1, 250 do if #plain >= #cmds then break end lowbit.sleep(0.02) end
      cancel()
      first.n2, first.plain2, first.last2 = #got, #plain, { got[#got - 1], got[#got] }
      return first
    end)
    assert.same({ "e5", "e7", "e6" }, res.got) -- e6 was dropped as "older than the last id"
    assert.same({ "e5", "e7", "e6", "e7", "e5" }, res.plain)
    assert.equal(1103, res.plain2)
    assert.equal(1101, res.n2)
    assert.same({ "x1199", "new" }, res.last2)
  end)

  it("rejects misuse", function()
    assert.has_error(function() bridge.new{ channel = "" } end)
    assert.has_error(function() bridge.new{ channel = "c", nope = 1 } end)
    assert.has_error(function() bridge.new{ channel = "c", stream = { maxlen = 0 } } end)
    local b = bridge.new{ channel = "c" }
    assert.has_error(function() b:publish(context.background(), {}) end)
    assert.has_error(function() b:publish(nil, "x") end)
    assert.has_error(function() b:subscribe("f") end)
  end)
  it("the bench (bench/topic_redis.lua, small N) prints every figure: bridge and raw messages/s and latency, lane round trips", function()
    local code, out, errout = run(function()
      return support.spawn(support.host, { "bench/topic_redis.lua", "500" }, 120)
    end)
    assert.equal(0, code, errout)
    assert.is_falsy(out:find("failed", 1, true), out)
    for _, want in ipairs({ "redis%-benchmark PUBLISH %-P 100 %-c 1 %(redis%-cli subscriber%): %d+ msg/s",
      "pipelined PUBLISH %(P=100%) %-> raw subscriber: .* latency p50 [%d.]+ ms p99 [%d.]+ ms",
      "16 tasks one at a time %-> raw subscriber: .* latency p50 [%d.]+ ms p99 [%d.]+ ms",
      "topic.redis bridge, 16 publisher tasks %-> bridge subscriber: .* = %d+ msg/s, latency p50 [%d.]+ ms p99 [%d.]+ ms",
      "m:run %(acquire script %+ release script, fn empty%) [%d.]+ us", "run_multi of 3 keys [%d.]+ us",
      "two managers taking turns on one key .*: [%d.]+ us per run" }) do
      assert.matches(want, out)
    end
  end)
end)
