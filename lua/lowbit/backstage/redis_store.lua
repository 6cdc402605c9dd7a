-- lowbit.backstage.redis_store: a durable, at-least-once backstage store
-- on Redis (conformance backstage.md section 5).
--
--   local bs = require "lowbit.backstage"
--   local store = bs.redis_store{ addr = "127.0.0.1:6379", queue = "billing",
--     visibility = 30, max_stalls = 5, dedupe_ttl = 86400, max_len = 0 }
--   sv:register_queue("billing", { workers = 8, store = store })
--   sv:handle("charge", function(ctx, job) ... end)  -- jobs name their handler
--
-- Keys (one hash tag per queue): lb:{q}:ready (LIST, new at the head,
-- claimed from the tail), lb:{q}:active (ZSET id -> lease deadline ms),
-- lb:{q}:delayed (ZSET id -> due ms), lb:{q}:dead (ZSET id -> failed-at),
-- lb:{q}:marker (ZSET, wakes one idle fetcher), lb:{q}:jobs (HASH:
-- d:<id> data, t:<id> lease token, f:<id> fails, s:<id> stalls, e:<id>
-- error, r:<id> dead reason), lb:{q}:done (ZSET id -> end of its dedupe
-- ttl, ms), lb:{q}:seq (ids of jobs without one), lb:{q}:tok (fencing
-- token counter), lb:sched:<sv>:<name> (schedule ticks). Every
-- transition is one Lua script run by EVALSHA, so any number of
-- processes can share a queue without locks. A script touches only the
-- keys it is given, all with the queue's hash tag, so a queue lives on
-- one node of a Redis Cluster (opts.cluster = true).
--
-- Guarantees: at-least-once. A claim leases the job for `visibility`
-- seconds under a fencing token; the runner renews the leases of all its
-- running jobs in one `extend` call every visibility/3 s. When a process
-- dies, any live process recovers the job once its lease has expired
-- (stalls + 1; after max_stalls recoveries it goes to dead, reason
-- "stalled"). A stale owner's ack/retry/fail is refused (lease_lost), so it
-- cannot erase the new run. Handlers must be idempotent (use job.id).
-- Durability of accepted jobs is Redis' own: appendonly yes (appendfsync
-- always loses nothing, everysec up to 1 s); maxmemory-policy must be
-- noeviction (a store_warning event is emitted otherwise).
--
-- Job data is kept as a LuaJIT string.buffer serialization of { id, name,
-- payload, retries, retry_delay } (the scripts never read it; payloads
-- keep their Lua types: strings, numbers, booleans, tables).
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local redis = require "lowbit.redis"
local sbuf = require "string.buffer"

local M = {}

local type, tostring, tonumber, error, setmetatable, getmetatable, pairs, ipairs, pcall =
  type, tostring, tonumber, error, setmetatable, getmetatable, pairs, ipairs, pcall
local floor, min = math.floor, math.min
local try_send, lselect = lowbit.Chan.try_send, lowbit.select
local is_server_error, key_slot = redis.is_server_error, redis.key_slot

local function bs() return require "lowbit.backstage" end

--- A script or command of the store failed on the server (the error
--- wraps the server's text).
M.SCRIPT_ERROR = errors.new("backstage redis store: script error")

M.DEFAULTS = { addr = "127.0.0.1:6379", visibility = 30, max_stalls = 5, dedupe_ttl = 86400,
               max_len = 0, dead_max = 10000, batch = 32, timeout = 10 }

---------------------------------------------------------------------------
-- Scripts (conformance 5.2). Every key a script touches is one of its
-- KEYS, and all of a queue's keys share its hash tag, so each call runs
-- on the one cluster node owning the queue's slot. The `#!lua` line makes
-- Redis 7 refuse (in cluster mode) a key of another slot; nothing in
-- Redis checks that a key was declared, so the spec checks that through
-- MONITOR.
---------------------------------------------------------------------------

local NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

-- Per-job fields in the queue's `jobs` hash: d:<id> data, t:<id> lease
-- token, f:<id> fails, s:<id> stalls, e:<id> last error, r:<id> dead
-- reason.
local FORGET = [[
local function forget(jobs, id)
  redis.call('HDEL', jobs, 'd:' .. id, 't:' .. id, 'f:' .. id, 's:' .. id, 'e:' .. id, 'r:' .. id)
end
]]

local TRIM = FORGET .. [[
local function trim(dead, jobs, max)
  local c = redis.call('ZCARD', dead)
  if c > max then
    local old = redis.call('ZRANGE', dead, 0, c - max - 1)
    for i = 1, #old do forget(jobs, old[i]) end
    redis.call('ZREMRANGEBYRANK', dead, 0, c - max - 1)
  end
end
]]

-- KEYS ready, delayed, marker, seq, jobs, done; ARGV id ('' = new), data,
-- delay_ms, max_len -> id | 0 (duplicate) | -1 (full)
local PUSH = "#!lua\n" .. NOW .. [[
local ready, delayed, marker, seq, jobs, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id = ARGV[1]
if id == '' then
  id = '#' .. redis.call('INCR', seq)
else
  if redis.call('HEXISTS', jobs, 'd:' .. id) == 1 then return 0 end
  local until_ms = redis.call('ZSCORE', done, id)
  if until_ms then
    if tonumber(until_ms) > now then return 0 end
    redis.call('ZREM', done, id)
  end
end
local maxlen = tonumber(ARGV[4])
if maxlen > 0 and redis.call('LLEN', ready) + redis.call('ZCARD', delayed) >= maxlen then return -1 end
redis.call('HSET', jobs, 'd:' .. id, ARGV[2])
local d = tonumber(ARGV[3])
if d > 0 then redis.call('ZADD', delayed, now + d, id) else redis.call('LPUSH', ready, id) end
redis.call('ZADD', marker, 0, 'm')
return id
]]

-- KEYS ready, active, delayed, dead, marker, tok, jobs; ARGV vt_ms,
-- max_stalls, n, dead_max -> { claimed (id, token, data, fails,
-- stalls)..., recovered (id, stalls)..., dead (id, stalls)..., wake_ms }
local CLAIM = "#!lua\n" .. NOW .. TRIM .. [[
local ready, active, delayed, dead, marker, tok, jobs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local vt, maxst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 100)
for i = 1, #due do redis.call('ZREM', delayed, due[i]); redis.call('LPUSH', ready, due[i]) end
local rec, gone = {}, {}
local exp = redis.call('ZRANGEBYSCORE', active, '-inf', '(' .. now, 'LIMIT', 0, 100)
for i = 1, #exp do
  local id = exp[i]
  redis.call('ZREM', active, id)
  redis.call('HDEL', jobs, 't:' .. id)
  local st = redis.call('HINCRBY', jobs, 's:' .. id, 1)
  if st > maxst then
    redis.call('HSET', jobs, 'e:' .. id, 'stalled', 'r:' .. id, 'stalled')
    redis.call('ZADD', dead, now, id)
    gone[#gone + 1] = id; gone[#gone + 1] = st
  else
    redis.call('RPUSH', ready, id)
    rec[#rec + 1] = id; rec[#rec + 1] = st
  end
end
if #gone > 0 then trim(dead, jobs, tonumber(ARGV[4])) end
local out = {}
if n > 0 then
  local ids = redis.call('RPOP', ready, n)
  if ids then
    local dl = now + vt
    local base = redis.call('INCR', tok) -- fencing tokens unique across processes
    for i = 1, #ids do
      local id = ids[i]
      local h = redis.call('HMGET', jobs, 'd:' .. id, 'f:' .. id, 's:' .. id)
      if h[1] then
        local tk = base .. ':' .. i
        redis.call('ZADD', active, dl, id)
        redis.call('HSET', jobs, 't:' .. id, tk)
        out[#out + 1] = id; out[#out + 1] = tk; out[#out + 1] = h[1]
        out[#out + 1] = h[2] or '0'; out[#out + 1] = h[3] or '0'
      end
    end
  end
end
if redis.call('LLEN', ready) > 0 then redis.call('ZADD', marker, 0, 'm') end
local wake = 1000
local d = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if d[2] then wake = math.min(wake, tonumber(d[2]) - now) end
local a = redis.call('ZRANGE', active, 0, 0, 'WITHSCORES')
if a[2] then wake = math.min(wake, tonumber(a[2]) - now + 1) end
if wake < 1 then wake = 1 end
return { out, rec, gone, wake }
]]

-- KEYS active, jobs; ARGV vt_ms, (id, token)... -> lost ids
local EXTEND = "#!lua\n" .. NOW .. [[
local active, jobs = KEYS[1], KEYS[2]
local dl = now + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', jobs, 't:' .. id) == ARGV[i + 1] then
    redis.call('ZADD', active, 'XX', dl, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
]]

-- KEYS active, jobs, done; ARGV ttl_ms, (id, token)... -> 1 | 0 (fenced)
-- each. Finished ids stay in `done` (id -> until, ms) for the dedupe
-- ttl; each ack call drops the expired ones.
local ACK = "#!lua\n" .. NOW .. FORGET .. [[
local active, jobs, done = KEYS[1], KEYS[2], KEYS[3]
local ttl = tonumber(ARGV[1])
local res = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', jobs, 't:' .. id) == ARGV[i + 1] then
    redis.call('ZREM', active, id)
    forget(jobs, id)
    if ttl > 0 then redis.call('ZADD', done, now + ttl, id) end
    res[#res + 1] = 1
  else
    res[#res + 1] = 0
  end
end
redis.call('ZREMRANGEBYSCORE', done, '-inf', now)
return res
]]

-- KEYS active, delayed, marker, ready, jobs; ARGV id, token, delay_ms, err
local RETRY = "#!lua\n" .. NOW .. [[
local active, delayed, marker, ready, jobs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
if redis.call('HGET', jobs, 't:' .. id) ~= ARGV[2] then return 0 end
redis.call('ZREM', active, id)
redis.call('HDEL', jobs, 't:' .. id)
redis.call('HINCRBY', jobs, 'f:' .. id, 1)
redis.call('HSET', jobs, 'e:' .. id, ARGV[4])
local d = tonumber(ARGV[3])
if d > 0 then redis.call('ZADD', delayed, now + d, id) else redis.call('LPUSH', ready, id) end
redis.call('ZADD', marker, 0, 'm')
return 1
]]

-- KEYS active, dead, jobs; ARGV id, token, err, reason, dead_max
local FAIL = "#!lua\n" .. NOW .. TRIM .. [[
local active, dead, jobs = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
if redis.call('HGET', jobs, 't:' .. id) ~= ARGV[2] then return 0 end
redis.call('ZREM', active, id)
redis.call('HDEL', jobs, 't:' .. id)
redis.call('HSET', jobs, 'e:' .. id, ARGV[3], 'r:' .. id, ARGV[4])
redis.call('ZADD', dead, now, id)
trim(dead, jobs, tonumber(ARGV[5]))
return 1
]]

-- KEYS active, ready, marker, jobs; ARGV (id, token)... -> 1 | 0 each
local RELEASE = "#!lua\n" .. [[
local active, ready, marker, jobs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local res = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', jobs, 't:' .. id) == ARGV[i + 1] then
    redis.call('ZREM', active, id)
    redis.call('HDEL', jobs, 't:' .. id)
    redis.call('RPUSH', ready, id)
    res[#res + 1] = 1
  else
    res[#res + 1] = 0
  end
end
redis.call('ZADD', marker, 0, 'm')
return res
]]

-- KEYS sched key; ARGV tick_ms, interval_ms (0: a fixed tick), slack_ms
-- -> 1 (this caller fires) | 0
local TICK = "#!lua\n" .. [[
local tick, iv, slack = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local last = tonumber(redis.call('GET', KEYS[1]) or '')
if iv == 0 then
  if last and tick <= last then return 0 end
  redis.call('SET', KEYS[1], tick, 'PX', 8 * 86400000)
  return 1
end
if last and tick < last - slack then return 0 end
redis.call('SET', KEYS[1], tick + iv, 'PX', math.max(iv * 4, 60000))
return 1
]]

local LEN = "#!lua flags=no-writes\n" ..
  [[return redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])]]

M.scripts = { push = PUSH, claim = CLAIM, extend = EXTEND, ack = ACK, retry = RETRY, fail = FAIL,
              release = RELEASE, tick = TICK, len = LEN }
local SHA = {}
for k, s in pairs(M.scripts) do SHA[k] = redis.sha1_hex(s) end
local SCRIPT_OF = {}
for k, s in pairs(M.scripts) do SCRIPT_OF[SHA[k]] = s end

---------------------------------------------------------------------------
-- Connections: one shared, auto-pipelined command connection per store
-- (every caller's command joins the next pipeline), and one dedicated
-- connection for the fetcher (claim + BZPOPMIN).
---------------------------------------------------------------------------

local IOFail = {}
IOFail.__index = IOFail
local Multi = {} -- the waiters of a coalesced command

local function connect(self, ctx, addr)
  local o = self.opts
  local c, err = redis.connect{ addr = addr or o.addr, password = o.password, username = o.username, db = o.db,
                                tls = o.tls, connect_timeout = o.connect_timeout or 5, timeout = o.timeout,
                                ctx = ctx }
  if not c then return nil, err end
  return c
end

-- Loads every script on c (SCRIPT LOAD, one pipeline).
local function load_scripts(c)
  local cmds = {}
  for _, s in pairs(M.scripts) do cmds[#cmds + 1] = { "SCRIPT", "LOAD", s } end
  local res, err = c:pipeline(cmds)
  if not res then return nil, err end
  for i = 1, #res do if is_server_error(res[i]) then return nil, res[i] end end
  return true
end

-- On a cluster (opts.cluster), the store talks to the node owning a
-- command's key slot directly (every key of a queue has one slot, so one
-- node serves all of a queue's commands); a MOVED reply teaches the
-- slot's node and the command is sent there.
local function node_of(self, key)
  if not self.cluster then return self.opts.addr end
  return self.slots[key_slot(key)] or self.opts.addr
end

local function cmd_key(cmd)
  if cmd[1] == "EVALSHA" or cmd[1] == "EVAL" then return cmd[4] end
  return cmd[2]
end

-- True when v is a MOVED reply (on a cluster); its slot's node is noted.
local function moved(self, v)
  if not (self.cluster and is_server_error(v) and v.code == "MOVED") then return false end
  local slot, addr = v.msg:match("^%S+ (%d+) (%S+)")
  if not slot then return false end
  self.slots[tonumber(slot)] = addr
  return true
end

-- Sends cmds in one pipeline on the command connection to addr
-- (connecting and loading the scripts first when needed). A NOSCRIPT
-- reply (a restarted or flushed server) is run again with EVAL, which
-- loads the script. -> replies | nil, err
local function run_pipeline(self, addr, cmds)
  local c = self.cmd_conns[addr]
  if c == nil or c.closed then
    local err
    c, err = connect(self, nil, addr)
    self.cmd_conns[addr] = c
    if not c then return nil, err end
    local ok, lerr = load_scripts(c)
    if not ok then c:close(); self.cmd_conns[addr] = nil; return nil, lerr end
    if not self.checked then self:check_config(c) end
  end
  local res, err = c:pipeline(cmds)
  if not res then return nil, err end
  local again, at = nil, nil
  for i = 1, #cmds do
    local v = res[i]
    if is_server_error(v) and v.code == "NOSCRIPT" then
      again = again or {}; at = at or {}
      local cmd = cmds[i]
      local e = { "EVAL", SCRIPT_OF[cmd[2]] }
      for k = 3, #cmd do e[k] = cmd[k] end
      again[#again + 1] = e; at[#at + 1] = i
    end
  end
  if again then
    local r2, e2 = c:pipeline(again)
    for k = 1, #at do res[at[k]] = r2 and r2[k] or setmetatable({ err = e2 }, IOFail) end
  end
  return res
end

-- The cluster case: cmds grouped by node, one pipeline per node; those
-- answered MOVED go again (to the node named) up to 3 times.
local function run_cluster(self, cmds)
  local res, todo = {}, {}
  for i = 1, #cmds do todo[i] = i end
  for _ = 1, 4 do
    local groups, order = {}, {}
    for _, i in ipairs(todo) do
      local a = node_of(self, cmd_key(cmds[i]))
      local g = groups[a]
      if not g then g = {}; groups[a] = g; order[#order + 1] = a end
      g[#g + 1] = i
    end
    todo = {}
    for _, a in ipairs(order) do
      local g, sub = groups[a], {}
      for k = 1, #g do sub[k] = cmds[g[k]] end
      local r, err = run_pipeline(self, a, sub)
      for k = 1, #g do
        local v = r and r[k] or setmetatable({ err = err }, IOFail)
        res[g[k]] = v
        if moved(self, v) then todo[#todo + 1] = g[k] end
      end
    end
    if #todo == 0 then break end
  end
  return res
end

local function flush_loop(self)
  while #self.pending > 0 do
    local cmds, ws = self.pending, self.waiters
    self.pending, self.waiters, self.ack_cmd = {}, {}, nil
    local res, err
    if self.cluster then
      res = run_cluster(self, cmds)
    else
      res, err = run_pipeline(self, self.opts.addr, cmds)
    end
    local fail_v = not res and setmetatable({ err = err }, IOFail) or nil
    for i = 1, #ws do
      local w, v = ws[i], fail_v or res[i]
      if getmetatable(w) == Multi then
        -- A coalesced ack: waiter k gets the k-th element of the reply.
        local arr = type(v) == "table" and getmetatable(v) == nil
        for k = 1, #w do try_send(w[k], arr and v[k] or v) end
      else
        try_send(w, v)
      end
    end
  end
  self.flushing = false
end

-- Runs one command (an array) on the shared connection, in the next
-- pipeline. Returns the reply, or nil, err (I/O failure or server error).
local function exec(self, cmd)
  if self.closed then return nil, errors.wrap(errors.CLOSED, "backstage redis store") end
  local ch = lowbit.chan(1)
  local n = #self.pending + 1
  self.pending[n] = cmd
  self.waiters[n] = ch
  if not self.flushing then
    self.flushing = true
    lowbit.go(flush_loop, self)
  end
  local v = ch:recv()
  if getmetatable(v) == IOFail then return nil, v.err end
  if is_server_error(v) then return nil, errors.wrap(M.SCRIPT_ERROR, "%s", tostring(v)) end
  return v
end

-- Acks of many jobs waiting for the same pipeline join one ACK script
-- call (its reply holds one 1/0 per job).
local function exec_ack(self, rid, token)
  if self.closed then return nil, errors.wrap(errors.CLOSED, "backstage redis store") end
  local ch = lowbit.chan(1)
  local cmd = self.ack_cmd
  if cmd == nil or #cmd >= 2 * self.batch + 7 then
    cmd = { "EVALSHA", SHA.ack, 3, self.k_active, self.k_jobs, self.k_done, self.ttl_ms }
    self.ack_cmd = cmd
    local n = #self.pending + 1
    self.pending[n] = cmd
    self.waiters[n] = setmetatable({}, Multi)
    self.ack_w = self.waiters[n]
  end
  cmd[#cmd + 1] = rid
  cmd[#cmd + 1] = token
  local w = self.ack_w
  w[#w + 1] = ch
  if not self.flushing then
    self.flushing = true
    lowbit.go(flush_loop, self)
  end
  local v = ch:recv()
  if getmetatable(v) == IOFail then return nil, v.err end
  if is_server_error(v) then return nil, errors.wrap(M.SCRIPT_ERROR, "%s", tostring(v)) end
  return v
end

local function script_cmd(name, nkeys, ...)
  return { "EVALSHA", SHA[name], nkeys, ... }
end

---------------------------------------------------------------------------
-- The store
---------------------------------------------------------------------------

local Store = {}
Store.__index = Store
M.Store = Store

local OPTS = { addr = true, queue = true, visibility = true, max_stalls = true, dedupe_ttl = true,
  max_len = true, dead_max = true, batch = true, timeout = true, connect_timeout = true, password = true,
  username = true, db = true, tls = true, extend_interval = true, prefix = true, cluster = true }

local function bad(name, msg)
  error("bad argument '" .. name .. "' to backstage.redis_store: " .. msg, 3)
end

local function check_num(o, k, lo)
  local v = o[k]
  if v == nil then return M.DEFAULTS[k] end
  if type(v) ~= "number" or v ~= v or v < lo then bad("opts." .. k, "number >= " .. lo .. " expected, got " .. tostring(v)) end
  return v
end

--- A Redis store for one queue. opts: addr ("host:port"), queue (the
--- Redis queue name; default: the name given at register_queue),
--- visibility (lease seconds, 30), max_stalls (5), dedupe_ttl (seconds a
--- finished id is remembered, 86400; 0 = off), max_len (0 = unbounded),
--- dead_max (10000), batch (claims per round trip, 32), timeout (seconds
--- per Redis call, 10), connect_timeout, password, username, db, tls,
--- extend_interval (default visibility/3), cluster (true: addr is a seed
--- node of a Redis Cluster; the store talks to the node owning the
--- queue's slot). Connects lazily.
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then bad("opts", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not OPTS[k] then bad("opts", "unknown option '" .. tostring(k) .. "'") end
  end
  if opts.queue ~= nil and (type(opts.queue) ~= "string" or opts.queue == "") then
    bad("opts.queue", "non-empty string expected")
  end
  if opts.addr ~= nil and type(opts.addr) ~= "string" then bad("opts.addr", "string expected") end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.addr = o.addr or M.DEFAULTS.addr
  o.timeout = check_num(opts, "timeout", 0)
  local vis = check_num(opts, "visibility", 0.01)
  local self = setmetatable({
    opts = o, durable = true,
    visibility = vis, vt_ms = floor(vis * 1000 + 0.5),
    max_stalls = check_num(opts, "max_stalls", 0),
    ttl_ms = floor(check_num(opts, "dedupe_ttl", 0) * 1000 + 0.5),
    max_len = floor(check_num(opts, "max_len", 0)),
    dead_max = floor(check_num(opts, "dead_max", 1)),
    batch = floor(check_num(opts, "batch", 1)),
    extend_interval = opts.extend_interval,
    pending = {}, waiters = {}, flushing = false, cmd_conns = {},
    cluster = opts.cluster and true or false, slots = {},
    buf = {}, bhead = 1, btail = 0, parked = 0, ch = lowbit.chan(0), need = lowbit.chan(1),
    fetching = false, fetch_conn = nil, emit = false, checked = false, closed = false,
    claims = 0,
  }, Store)
  if o.queue then self:set_queue(o.queue) end
  return self
end

function Store:set_queue(q)
  self.queue = q
  local p = (self.opts.prefix or "lb") .. ":{" .. q .. "}:"
  self.prefix = p
  self.k_ready, self.k_active, self.k_delayed = p .. "ready", p .. "active", p .. "delayed"
  self.k_dead, self.k_marker, self.k_seq = p .. "dead", p .. "marker", p .. "seq"
  self.k_tok, self.k_jobs, self.k_done = p .. "tok", p .. "jobs", p .. "done"
end

local function emit(self, ev)
  local e = self.emit
  if e then e(ev) end
end

-- backstage calls attach at register_queue.
function Store:attach(info)
  self.emit = info.emit
  self.supervisor = info.supervisor
  if not self.queue then self:set_queue(info.queue) end
end

-- The maxmemory-policy check (once per store, on its first connection,
-- c): anything but noeviction can evict jobs. A server that refuses
-- CONFIG (renamed on managed services) is not warned about.
function Store:check_config(c)
  if self.checked then return self.policy end
  local v, err = c:call("CONFIG", "GET", "maxmemory-policy")
  if not v then
    if is_server_error(err) then self.checked = true end
    return nil, err
  end
  self.checked = true
  local policy = type(v) == "table" and v[2] or tostring(v)
  self.policy = policy
  if policy ~= "noeviction" then
    emit(self, { type = "store_warning", op = "config",
      err = errors.new(("redis maxmemory-policy is %s, not noeviction: Redis may evict queued jobs"):format(tostring(policy))) })
  end
  return policy
end

local function encode_job(job)
  return sbuf.encode({ id = job.id, name = job.name, payload = job.payload, retries = job.retries,
                       retry_delay = job.retry_delay })
end

--- push(job) -> true | nil, QUEUE_FULL | DUPLICATE | nil, err. job.delay
--- (seconds, optional) holds it in `delayed` first.
function Store:push(job)
  if not self.queue then error("backstage.redis_store: push before the store has a queue (opts.queue or register_queue)", 2) end
  local id = job.id
  local delay = job.delay
  local ok, data = pcall(encode_job, job)
  if not ok then error("bad argument 'job' to backstage.redis_store:push: " .. tostring(data), 2) end
  local v, err = exec(self, script_cmd("push", 6, self.k_ready, self.k_delayed, self.k_marker, self.k_seq,
    self.k_jobs, self.k_done, id == nil and "" or tostring(id), data, delay and floor(delay * 1000) or 0, self.max_len))
  if v == nil then return nil, err end
  if v == 0 then return nil, bs().DUPLICATE end
  if v == -1 then return nil, bs().QUEUE_FULL end
  return true
end

--- len() -> ready + delayed jobs (nil, err on failure).
function Store:len()
  if not self.queue then return 0 end
  return exec(self, { "EVALSHA", SHA.len, 2, self.k_ready, self.k_delayed })
end

local function decode(self, id, tok, data, fails, stalls)
  local ok, job = pcall(sbuf.decode, data)
  if not ok or type(job) ~= "table" then job = { name = "?" } end
  job.rid, job.token = id, tok
  job.attempt = (tonumber(fails) or 0) + 1
  job.stalls = tonumber(stalls) or 0
  return job
end

local function sleep_ctx(ctx, s) return lowbit.sleep_ctx(ctx, s) end

-- The fetcher task: claims min(parked workers, batch) jobs per script call
-- and hands them to the parked workers; waits on the marker (BZPOPMIN)
-- when nothing is ready.
local function fetcher(self, ctx)
  local backoff = 0.05
  local woke = false
  while ctx:err() == nil and not self.closed do
    -- After taking the marker with no idle worker, a claim of 0 jobs puts
    -- it back (when jobs are ready) for the other processes.
    if self.parked == 0 and not woke then
      if lselect({ self.need, ctx:done() }) ~= 1 then break end
    end
    woke = false
    local n = min(self.parked, self.batch)
    local c = self.fetch_conn
    local err
    if c == nil or c.closed then
      c, err = connect(self, ctx, node_of(self, self.k_ready))
      self.fetch_conn = c
      if c then self:check_config(c) end
    end
    local res
    if c then
      self.claims = self.claims + 1
      res, err = c:eval_script(CLAIM, { self.k_ready, self.k_active, self.k_delayed, self.k_dead, self.k_marker,
        self.k_tok, self.k_jobs }, { self.vt_ms, self.max_stalls, n, self.dead_max })
      -- (not cut short by ctx: a claim whose reply were lost would leave
      -- its jobs leased until they expire; the jobs of a claim that ends
      -- after shutdown began are released below)
    end
    if not res and moved(self, err) then
      -- (the queue's slot lives on another node: claim there)
      c:close(); self.fetch_conn = nil; woke = true
    elseif not res then
      if ctx:err() ~= nil then break end
      emit(self, { type = "store_error", op = "claim", err = err })
      if not sleep_ctx(ctx, backoff) then break end
      backoff = min(backoff * 2, 1)
    else
      backoff = 0.05
      local out, rec, dead, wake = res[1], res[2], res[3], res[4]
      for i = 1, #rec, 2 do emit(self, { type = "job_recovered", id = rec[i], stalls = tonumber(rec[i + 1]) }) end
      for i = 1, #dead, 2 do
        emit(self, { type = "job_dead", id = dead[i], stalls = tonumber(dead[i + 1]), reason = "stalled" })
      end
      local ch = self.ch
      for i = 1, #out, 5 do
        local job = decode(self, out[i], out[i + 1], out[i + 2], out[i + 3], out[i + 4])
        if self.parked > 0 and try_send(ch, job) then
          self.parked = self.parked - 1
        else
          self.btail = self.btail + 1
          self.buf[self.btail] = job
        end
      end
      if #out == 0 and n > 0 then
        local r, werr = c:call_ctx(ctx, "BZPOPMIN", self.k_marker, ("%.3f"):format(min(wake, 1000) / 1000))
        if r == nil and moved(self, werr) then
          c:close(); self.fetch_conn = nil; woke = true
        elseif r == nil then
          if ctx:err() == nil then emit(self, { type = "store_error", op = "wait", err = werr }) end
        elseif r ~= redis.null then
          woke = true
        end
      end
    end
  end
  self.fetching = false
  -- Jobs claimed but not handed to a worker: back to the front.
  local left = {}
  while self.bhead <= self.btail do
    left[#left + 1] = self.buf[self.bhead]
    self.buf[self.bhead] = nil
    self.bhead = self.bhead + 1
  end
  if #left > 0 then self:release_all(left) end
  if self.fetch_conn then self.fetch_conn:close(); self.fetch_conn = nil end
end

--- pop(ctx) -> job | nil, ctx:err(). Yields until a job is claimed.
function Store:pop(ctx)
  if self.bhead <= self.btail then
    local job = self.buf[self.bhead]
    self.buf[self.bhead] = nil
    self.bhead = self.bhead + 1
    return job
  end
  if ctx:err() ~= nil then return nil, ctx:err() end
  if not self.fetching then
    self.fetching = true
    lowbit.go(fetcher, self, ctx)
  end
  self.parked = self.parked + 1
  if self.parked == 1 then try_send(self.need, true) end
  local cases = self.cases
  if self.cases_ctx ~= ctx then
    cases = { self.ch, ctx:done() }
    self.cases, self.cases_ctx = cases, ctx
  end
  local i, job = lselect(cases)
  if i == 1 then return job end
  self.parked = self.parked - 1
  return nil, ctx:err()
end

-- Once per job: an extend that found the lease gone, then the refused ack.
local function lease_lost(self, job, op)
  if job.lost then return end
  job.lost = true
  emit(self, { type = "lease_lost", id = job.id, name = job.name, op = op })
end

--- ack(job): success (or a terminal end without fail). A refused ack
--- (another process holds the job now) emits lease_lost.
function Store:ack(job)
  local v, err = exec_ack(self, job.rid, job.token)
  if v == nil then return nil, err end
  if v ~= 1 then lease_lost(self, job, "ack") end
  return true
end

--- retry(job, delay_s, err): the next attempt waits in `delayed`.
function Store:retry(job, delay, err)
  local v, e = exec(self, script_cmd("retry", 5, self.k_active, self.k_delayed, self.k_marker, self.k_ready,
    self.k_jobs, job.rid, job.token, floor((delay or 0) * 1000), tostring(err)))
  if v == nil then return nil, e end
  if v ~= 1 then lease_lost(self, job, "retry") end
  return true
end

--- fail(job, err, reason): to `dead` (job_dead event).
function Store:fail(job, err, reason)
  reason = reason or "failed"
  local v, e = exec(self, script_cmd("fail", 3, self.k_active, self.k_dead, self.k_jobs,
    job.rid, job.token, tostring(err), reason, self.dead_max))
  if v == nil then return nil, e end
  if v ~= 1 then lease_lost(self, job, "fail"); return true end
  emit(self, { type = "job_dead", id = job.id, name = job.name, reason = reason, err = err })
  return true
end

function Store:release_all(jobs)
  local cmd = { "EVALSHA", SHA.release, 4, self.k_active, self.k_ready, self.k_marker, self.k_jobs }
  for i = 1, #jobs do cmd[#cmd + 1] = jobs[i].rid; cmd[#cmd + 1] = jobs[i].token end
  return exec(self, cmd)
end

--- release(job): interrupted by shutdown: to the front of `ready`, no
--- attempt counted.
function Store:release(job)
  local v, err = self:release_all({ job })
  if v == nil then return nil, err end
  if v[1] ~= 1 then lease_lost(self, job, "release") end
  return true
end

--- extend(jobs): renews the leases of all the process's running jobs in
--- one call; each lease another process holds now emits lease_lost.
function Store:extend(jobs)
  local cmd = { "EVALSHA", SHA.extend, 2, self.k_active, self.k_jobs, self.vt_ms }
  local by = {}
  for i = 1, #jobs do
    local j = jobs[i]
    cmd[#cmd + 1] = j.rid; cmd[#cmd + 1] = j.token
    by[j.rid] = j
  end
  local lost, err = exec(self, cmd)
  if lost == nil then return nil, err end
  for i = 1, #lost do
    local j = by[lost[i]]
    if j then lease_lost(self, j, "extend") end
  end
  return true
end

--- tick(supervisor, name, tick, sched): the coordinator method (pass the
--- store, or M.coordinator(opts), as backstage.new's `coordinator`): true
--- when this process fires the tick. every(s) schedules keep the next due
--- tick in Redis (a process whose tick is earlier loses), others claim the
--- tick value itself.
function Store:tick(supervisor, name, tick, sched)
  local iv = 0
  if type(sched) == "table" and sched.kind == "every" and type(sched.interval) == "number" then
    iv = floor(sched.interval * 1000 + 0.5)
  end
  local key = (self.opts.prefix or "lb") .. ":sched:" .. supervisor .. ":" .. name
  local v, err = exec(self, { "EVALSHA", SHA.tick, 1, key, floor(tick * 1000 + 0.5), iv, floor(iv / 10) })
  if v == nil then return nil, err end
  return v == 1
end

--- Counts of the queue's sets: { ready, active, delayed, dead }.
function Store:stats()
  local res, err = exec(self, { "LLEN", self.k_ready })
  if not res then return nil, err end
  local a = exec(self, { "ZCARD", self.k_active })
  local d = exec(self, { "ZCARD", self.k_delayed })
  local x = exec(self, { "ZCARD", self.k_dead })
  return { ready = res, active = a, delayed = d, dead = x }
end

--- Closes the store's connections (jobs it still holds keep their leases
--- and are recovered elsewhere).
function Store:close()
  self.closed = true
  for a, c in pairs(self.cmd_conns) do c:close(); self.cmd_conns[a] = nil end
  if self.fetch_conn then self.fetch_conn:close(); self.fetch_conn = nil end
  return true
end

--- A coordinator only (schedules once across processes): an object with
--- tick(...) on its own connection. opts: addr, password, username, db,
--- tls, timeout, prefix.
function M.coordinator(opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.queue = nil
  return M.new(o)
end

return M
