-- lowbit.topic.redis: a topic shared by processes (and machines) through
-- one Redis server: PUBLISH to a channel, one SUBSCRIBE connection per
-- bridge, local delivery through a lowbit.topic.
--
--   local bridge = require "lowbit.topic.redis"
--   local chat = bridge.new{ redis = "127.0.0.1:6379", channel = "chat",
--                            stream = { maxlen = 1000 } }   -- optional replay
--   g:add(chat)                                 -- rungroup service: chat:run(ctx)
--   local cancel = chat:subscribe(function(ctx, m)
--     if m.kind == "gap" then return end        -- Redis went away: messages may be lost
--     sse:send{ id = m.id, data = m.data }
--   end, { after = req.headers["last-event-id"] }) -- replays what was missed
--   chat:publish(ctx, "hello")                 -- reaches every process's subscribers
--
-- Wire format of a message on the channel: origin "\n" stream id "\n"
-- payload (the stream id is empty without a stream). origin is a random id
-- per bridge: with `echo = false` a publisher delivers to its own local
-- subscribers at once and skips its echo from Redis; by default (echo =
-- true) local subscribers get the message back through Redis like every
-- other process, so all processes see one order.
--
-- Keys carry a hash tag, so a Redis Cluster keeps a channel's keys on one
-- node: channel "topic:{<name>}", stream "topic:{<name>}:stream" (the
-- stream is the one key it writes; "%" and "}" in the name are escaped in
-- the tag, redis.hash_tag).
--
-- Pub/sub is at-most-once: while the subscriber connection is down (Redis
-- restart, network), messages are lost. run() reconnects with backoff
-- (lowbit.retry), resubscribes, and then delivers { kind = "gap", err } to
-- the subscribers (and calls opts.on_gap). With a stream, every publish is
-- also XADD ... MAXLEN ~ N (in the same script as the PUBLISH), and a
-- subscriber given `after` (an SSE Last-Event-ID), or `replay = true`,
-- gets the entries after that id (XRANGE (id +) before the live ones, and
-- again after each gap, each message once, in id order. Entries trimmed by
-- MAXLEN (or lost with a Redis that keeps no data) are gone: size maxlen
-- for the longest absence a client may come back from.
--
-- On a Redis Cluster a PUBLISH reaches the subscriber's node through the
-- cluster bus when it ran on another node, so while the stream's slot
-- migrates (its publishes move from one node to the other) a live message
-- can arrive after one published later. Every message still arrives once
-- (a subscriber given after/replay dedupes by id among the last 1024
-- delivered, not by "lower than the last id"), and the stream (replay)
-- keeps the publish order.
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local retry = require "lowbit.retry"
local topic = require "lowbit.topic"
local redis = require "lowbit.redis"

local M = {}

local type, error, tostring, tonumber, pairs, setmetatable, getmetatable =
  type, error, tostring, tonumber, pairs, setmetatable, getmetatable
local find, sub, format = string.find, string.sub, string.format
local BACKGROUND = context.background()

--- What a gap message's err wraps when the subscriber connection was lost.
M.SUBSCRIPTION_LOST = errors.new("topic.redis: subscription lost, messages may be missing")

--- Defaults.
M.REPLAY_COUNT = 1000   -- at most this many entries per XRANGE
M.BACKOFF = retry.exponential(0.05, 0.5)
M.HEARTBEAT = 5

local Bridge = {}
Bridge.__index = Bridge
M.Bridge = Bridge

local function random_id()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(8) or tostring(os.time()) .. tostring({})
  if f then f:close() end
  return (b:gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function identity(v)
  if type(v) ~= "string" then return nil, "string expected (give opts.encode for other values), got " .. type(v) end
  return v
end

-- Stream ids "ms-seq": a < b.
local function id_less(a, b)
  local am, as = a:match("^(%d+)-(%d+)$")
  local bm, bs = b:match("^(%d+)-(%d+)$")
  if not am or not bm then return a < b end
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
M.id_less = id_less

local OPTS = { redis = true, channel = true, stream = true, encode = true, decode = true, echo = true,
               on_gap = true, backoff = true, topic = true, heartbeat = true }

--- A bridge. opts:
---   redis    redis.connect's argument ("host:port" or options table;
---            default "127.0.0.1:6379"); publishes use its pool
---   channel  the topic's name (non-empty string)
---   stream   nil, or { maxlen = N }: keep the last ~N messages for replay
---   encode, decode  data <-> payload string (default: strings only)
---   echo     false: publish delivers locally at once, skipping the echo
---   on_gap   fn(err), called after a resubscribe
---   backoff  a lowbit.retry policy for reconnecting (default
---            retry.exponential(0.05, 0.5))
---   topic    the local lowbit.topic (default: a new one)
---   heartbeat  seconds (default M.HEARTBEAT; false: none): run publishes
---            to a channel of its own this often, and a subscriber
---            connection silent for 3 heartbeats is taken for dead (a
---            Redis host gone without closing it, a paused server):
---            closed, reconnected, and a gap reported
function M.new(opts)
  if type(opts) ~= "table" then error("bad argument 'opts' to topic.redis.new: table expected, got " .. type(opts), 2) end
  for k in pairs(opts) do
    if not OPTS[k] then error("bad argument 'opts' to topic.redis.new: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if type(opts.channel) ~= "string" or opts.channel == "" then
    error("bad argument 'opts.channel' to topic.redis.new: non-empty string expected", 2)
  end
  local r = opts.redis or "127.0.0.1:6379"
  if type(r) ~= "string" and type(r) ~= "table" then
    error("bad argument 'opts.redis' to topic.redis.new: string or table expected, got " .. type(r), 2)
  end
  if opts.stream ~= nil and (type(opts.stream) ~= "table" or type(opts.stream.maxlen) ~= "number" or opts.stream.maxlen < 1) then
    error("bad argument 'opts.stream' to topic.redis.new: { maxlen = positive number } expected", 2)
  end
  for _, k in pairs{ "encode", "decode", "on_gap", "backoff" } do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      error("bad argument 'opts." .. k .. "' to topic.redis.new: function expected, got " .. type(opts[k]), 2)
    end
  end
  local hb = opts.heartbeat
  if hb == nil then hb = M.HEARTBEAT end
  if hb ~= false and (type(hb) ~= "number" or hb <= 0) then
    error("bad argument 'opts.heartbeat' to topic.redis.new: positive number or false expected", 2)
  end
  local copts = type(r) == "string" and { addr = r } or r
  local name = opts.channel
  local origin = random_id()
  return setmetatable({
    copts = copts, name = name,
    channel = "topic:" .. redis.hash_tag(name),
    stream_key = opts.stream and "topic:" .. redis.hash_tag(name) .. ":stream" or nil,
    maxlen = opts.stream and opts.stream.maxlen or nil,
    encode = opts.encode or identity, decode = opts.decode or function(s) return s end,
    echo = opts.echo ~= false, on_gap = opts.on_gap, backoff = opts.backoff or M.BACKOFF,
    topic = opts.topic or topic.new(), origin = origin, heartbeat = hb,
    hb_channel = "topic:" .. redis.hash_tag(name) .. ":hb:" .. origin,
    connected = false, gaps = 0, service_name = "topic.redis " .. name,
  }, Bridge)
end

local function check_self(self, fname)
  if getmetatable(self) ~= Bridge then error("bad self to bridge:" .. fname .. ": bridge expected (use ':')", 3) end
end

local function connect(self, ctx, timeout)
  local o = {}
  for k, v in pairs(self.copts) do o[k] = v end
  o.ctx = ctx
  if timeout then o.timeout = timeout end
  return redis.connect(o)
end

-- XADD + PUBLISH in one step, so a message on the channel always has its
-- stream entry already.
local PUBLISH_STREAM = [[
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'o', ARGV[2], 'd', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2] .. '\n' .. id .. '\n' .. ARGV[3])
return id
]]

--- Publishes data to every process's subscribers. Returns the stream id
--- (with a stream) or true, or nil, err (Redis unreachable: nobody got it;
--- encode failing raises).
function Bridge:publish(ctx, data)
  check_self(self, "publish")
  if not context.is_context(ctx) then error("bad argument 'ctx' to bridge:publish: context expected, got " .. type(ctx), 2) end
  local payload, why = self.encode(data)
  if type(payload) ~= "string" then
    error("bad argument 'data' to bridge:publish: " .. tostring(why or "encode returned no string"), 2)
  end
  local c, err = connect(self, ctx)
  if not c then return nil, err end
  local v
  if self.stream_key then
    v, err = c:eval_script(PUBLISH_STREAM, { self.stream_key },
      { self.maxlen, self.origin, payload, self.channel }, ctx)
  else
    v, err = c:call_ctx(ctx, "PUBLISH", self.channel, self.origin .. "\n\n" .. payload)
  end
  if v == nil then c:close(); return nil, err end
  c:release()
  local id = self.stream_key and v or nil
  if not self.echo then
    self.topic:publish(ctx, { kind = "message", data = data, id = id, origin = self.origin })
  end
  return id or true
end

--- The stream's entries after id (exclusive; nil: from the start), at
--- most opts.count (redis topic.REPLAY_COUNT): an array of { kind =
--- "message", id, data, origin }, or nil, err. Without a stream: {}.
function Bridge:replay(ctx, after, count)
  check_self(self, "replay")
  if not self.stream_key then return {} end
  local c, err = connect(self, ctx)
  if not c then return nil, err end
  local res
  res, err = c:call_ctx(ctx, "XRANGE", self.stream_key, after and "(" .. after or "-", "+",
    "COUNT", count or M.REPLAY_COUNT)
  if not res then c:close(); return nil, err end
  c:release()
  local out = {}
  for i = 1, #res do
    local e = res[i]
    local f, o, d = e[2], nil, nil
    for j = 1, #f, 2 do
      if f[j] == "o" then o = f[j + 1] elseif f[j] == "d" then d = f[j + 1] end
    end
    out[i] = { kind = "message", id = e[1], data = self.decode(d), origin = o }
  end
  return out
end

-- How many delivered ids a subscriber given after/replay remembers.
local SEEN = 1024

--- Adds handler fn(ctx, m) for this process: m is { kind = "message",
--- data, id (stream id or nil), origin } or { kind = "gap", err }. opts
--- (optional): after = a stream id (Last-Event-ID): first the entries after
--- it, then the live ones, each once; replay = true: no initial replay,
--- but after a gap, the entries missed since the last message delivered;
--- ctx bounds the initial replay. Returns cancel, or nil, err (the initial
--- replay failed; nothing was subscribed).
function Bridge:subscribe(fn, opts)
  check_self(self, "subscribe")
  if type(fn) ~= "function" then error("bad argument 'fn' to bridge:subscribe: function expected, got " .. type(fn), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument 'opts' to bridge:subscribe: table expected", 2) end
  opts = opts or {}
  if opts.after ~= nil and type(opts.after) ~= "string" then
    error("bad argument 'opts.after' to bridge:subscribe: string expected, got " .. type(opts.after), 2)
  end
  if (opts.after == nil and not opts.replay) or not self.stream_key then return self.topic:subscribe(fn) end
  local bridge = self
  -- last: the highest id delivered; seen: the last SEEN ids delivered
  -- (ring, in delivery order); floor: the highest id dropped from it (or
  -- `after`): ids up to it count as delivered.
  local st = { last = opts.after, floor = opts.after, catching = false, q = {}, seen = {}, ring = {}, rn = 0 }
  local function deliver(ctx, m)
    local id = m.id
    if id ~= nil then
      if st.seen[id] or (st.floor ~= nil and not id_less(st.floor, id)) then return end
      -- (an id below last that is not a duplicate: on a Redis Cluster,
      -- a message published on another node that came later through the
      -- cluster bus, during a slot migration: delivered, late)
      if st.last == nil or id_less(st.last, id) then st.last = id end
      local k = st.rn % SEEN + 1
      local old = st.ring[k]
      if old ~= nil then
        st.seen[old] = nil
        if st.floor == nil or id_less(st.floor, old) then st.floor = old end
      end
      st.ring[k], st.seen[id], st.rn = id, true, st.rn + 1
    end
    return fn(ctx, m)
  end
  -- Replays from st.last, then what arrived meanwhile (deduplicated).
  -- A gap that arrives meanwhile is passed on, and the replay done again.
  local function catch_up(ctx)
    st.catching = true
    local list, err
    local again = true
    while again do
      again = false
      while st.last ~= nil and not st.cancelled do
        list, err = bridge:replay(ctx, st.last)
        if not list then break end
        for i = 1, #list do deliver(ctx, list[i]) end
        if #list < M.REPLAY_COUNT then break end
      end
      while #st.q > 0 do
        local q = st.q
        st.q = {}
        for i = 1, #q do
          if q[i].kind == "gap" then fn(ctx, q[i]); again = true else deliver(ctx, q[i]) end
        end
      end
    end
    st.catching = false
    return list ~= nil or st.last == nil, err
  end
  local cancel = self.topic:subscribe(function(ctx, m)
    if st.catching then st.q[#st.q + 1] = m; return end
    if m.kind == "gap" then
      local r = fn(ctx, m)
      lowbit.go(catch_up, BACKGROUND)
      return r
    end
    return deliver(ctx, m)
  end)
  local function cancel_all() st.cancelled = true; return cancel() end
  if st.last ~= nil then
    local ok, err = catch_up(opts.ctx or BACKGROUND)
    if not ok then cancel_all(); return nil, err end
  end
  return cancel_all
end

local function dispatch(self, ctx, payload)
  local i = find(payload, "\n", 1, true)
  if not i then return end
  local j = find(payload, "\n", i + 1, true)
  if not j then return end
  local origin = sub(payload, 1, i - 1)
  if not self.echo and origin == self.origin then return end
  local id = sub(payload, i + 1, j - 1)
  local ok, data = pcall(self.decode, sub(payload, j + 1))
  if not ok then return end
  self.topic:publish(ctx, { kind = "message", data = data, id = id ~= "" and id or nil, origin = origin })
end

--- The subscriber loop (a lowbit.rungroup service): connects, subscribes,
--- delivers; after a lost connection reconnects with backoff, resubscribes
--- and reports the gap. Returns nil, ctx:err() when ctx ends.
function Bridge:run(ctx)
  check_self(self, "run")
  if not context.is_context(ctx) then error("bad argument 'ctx' to bridge:run: context expected, got " .. type(ctx), 2) end
  local lost
  local hb = self.heartbeat
  if hb then
    local channel, origin = self.hb_channel, self.origin
    lowbit.go(function()
      while lowbit.sleep_ctx(ctx, hb) do
        local pctx, pcancel = context.with_timeout(ctx, hb)
        local c = connect(self, pctx)
        if c then
          if c:call_ctx(pctx, "PUBLISH", channel, origin) then c:release() else c:close() end
        end
        pcancel()
      end
    end)
  end
  while true do
    local c, err = retry.run(ctx, self.backoff, function(rctx)
      local cl, cerr = connect(self, rctx, hb and 3 * hb or nil)
      if not cl then return nil, cerr end
      local ok, serr
      if hb then ok, serr = cl:subscribe(self.channel, self.hb_channel)
      else ok, serr = cl:subscribe(self.channel) end
      if not ok then cl:close(); return nil, serr end
      return cl
    end)
    if not c then return nil, ctx:err() or err end
    self.sub, self.connected = c, true
    if lost then
      self.gaps = self.gaps + 1
      local gerr = errors.with_kind(M.SUBSCRIPTION_LOST, lost)
      if self.on_gap then pcall(self.on_gap, gerr) end
      self.topic:publish(ctx, { kind = "gap", err = gerr })
    end
    while true do
      local m, rerr = c:read_message(ctx)
      if not m then
        c:close()
        self.sub, self.connected = nil, false
        local cerr = ctx:err()
        if cerr then return nil, cerr end
        lost = rerr
        break
      end
      if m.kind == "message" and m.channel == self.channel then dispatch(self, ctx, m.payload) end
    end
  end
end

function Bridge:__tostring() return "topic.redis bridge " .. self.name end

--- Waits (bounded by ctx) until run() is subscribed. true, or nil, ctx:err().
function Bridge:ready(ctx)
  check_self(self, "ready")
  while not self.connected do
    local ok, err = lowbit.sleep_ctx(ctx, 0.01)
    if not ok then return nil, err end
  end
  return true
end

--- Number of handlers in this process.
function Bridge:count() return self.topic:count() end

return M
