-- lowbit.seriallane.redis: keyed locks shared by processes (and machines)
-- through one Redis server: leases with a fencing token.
--
--   local lanes = require "lowbit.seriallane.redis"
--   local m = lanes.new{ redis = "127.0.0.1:6379", ttl = 10 }
--   local n, err = m:run(ctx, seriallane.namespace("stock", id), function(ctx, fence)
--     return db:update_stock(ctx, id, delta, fence)  -- the DB rejects fence <= the last one it saw
--   end)
--   m:run_multi(ctx, { key_a, key_b }, function(ctx, fences) ... end)  -- all or none
--
-- Acquire (one Lua script, for one key or all of run_multi's keys): if no
-- lease key exists, INCR each key's fence counter and SET each lease key
-- to "<token>:<fence>" PX ttl; else nothing is taken and the caller waits
-- (BLPOP on the busy key's wake list, pushed by the release, at most
-- opts.poll seconds, then tries again: a crashed holder's lease expires).
-- fn(ctx, fence) (run_multi: fn(ctx, fences), in the order of `keys`) runs
-- while a task renews the leases every ttl/3 (compare-and-PEXPIRE script);
-- when a renewal fails (the lease expired or was taken, or Redis is
-- unreachable) fn's ctx is cancelled and run returns nil, LEASE_LOST. The
-- release is a compare-and-DEL script: a stale token deletes nothing.
--
-- A lease is only as safe as the fencing check in the resource it
-- protects. A holder can be paused (GC, swap, SIGSTOP, a network
-- partition) past its ttl while another process takes the key: both then
-- believe they hold it. Exclusion is exact only when the resource itself
-- rejects writes carrying a fence lower than one it has seen (Kleppmann,
-- "How to do distributed locking", 2016). This module does no Redlock: one
-- Redis server, plus fencing; the fence counters are durable only as far
-- as the server is (appendonly yes). Waiters are not served in FIFO order.
--
-- Keys: strings or seriallane keys (namespace(...)), stored as
-- "<prefix>:{s<string>}" / "<prefix>:{k<key bytes>}" with ":fence" and
-- ":wake" companions: one hash tag per lane ("%" and "}" in it escaped:
-- redis.hash_tag), so a Redis Cluster keeps a lane's keys together.
-- run_multi takes its keys in one script, so on a cluster (opts.redis
-- with cluster = true) they must share one slot: give opts.tag to put
-- every lane of the manager under one tag (keys of different slots are
-- refused: a bad argument). While a lane's slot migrates, its scripts
-- wait for the keys to settle (lowbit.redis sends TRYAGAIN again): a
-- renewal that waits longer than ttl/3 counts as failed (LEASE_LOST).
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local redis = require "lowbit.redis"
local seriallane = require "lowbit.seriallane"

local M = {}

local type, error, tostring, pairs, setmetatable, getmetatable, pcall, select, unpack =
  type, error, tostring, pairs, setmetatable, getmetatable, pcall, select, unpack
local floor, format, sort = math.floor, string.format, table.sort
local BACKGROUND = context.background()
local sleep_ctx, now = lowbit.sleep_ctx, lowbit.now

--- run's error when a renewal failed while fn ran (fn's ctx was cancelled).
M.LEASE_LOST = errors.new("seriallane.redis: lease lost")

M.TTL = 10     -- seconds a lease lives without renewal
M.POLL = 0.5   -- longest wait between two acquire attempts

local ACQUIRE = [[
local n = #KEYS / 2
for i = 1, n do
  if redis.call('EXISTS', KEYS[2 * i - 1]) == 1 then return -i end
end
local out = {}
for i = 1, n do
  local f = redis.call('INCR', KEYS[2 * i])
  redis.call('SET', KEYS[2 * i - 1], ARGV[1] .. ':' .. f, 'PX', ARGV[2])
  out[i] = f
end
return out
]]

local RENEW = [[
local n = #KEYS
for i = 1, n do
  if redis.call('GET', KEYS[i]) ~= ARGV[i] then return 0 end
end
for i = 1, n do redis.call('PEXPIRE', KEYS[i], ARGV[n + 1]) end
return 1
]]

local RELEASE = [[
local n = #KEYS / 2
local d = 0
for i = 1, n do
  if redis.call('GET', KEYS[2 * i - 1]) == ARGV[i] then
    redis.call('DEL', KEYS[2 * i - 1], KEYS[2 * i])
    redis.call('RPUSH', KEYS[2 * i], '1')
    redis.call('PEXPIRE', KEYS[2 * i], ARGV[n + 1])
    d = d + 1
  end
end
return d
]]

local Manager = {}
Manager.__index = Manager
M.Manager = Manager

local function random_id()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(8) or tostring(os.time()) .. tostring({})
  if f then f:close() end
  return (b:gsub(".", function(c) return format("%02x", c:byte()) end))
end

local OPTS = { redis = true, ttl = true, poll = true, prefix = true, tag = true }

--- A manager. opts: redis (redis.connect's argument; default
--- "127.0.0.1:6379"), ttl (seconds, default M.TTL), poll (seconds, default
--- M.POLL), prefix (default "lane"), tag (one hash tag for every lane).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument 'opts' to seriallane.redis.new: table expected, got " .. type(opts), 2) end
  for k in pairs(opts) do
    if not OPTS[k] then error("bad argument 'opts' to seriallane.redis.new: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local ttl, poll = opts.ttl or M.TTL, opts.poll or M.POLL
  if type(ttl) ~= "number" or ttl < 0.01 then error("bad argument 'opts.ttl' to seriallane.redis.new: number >= 0.01 expected", 2) end
  if type(poll) ~= "number" or poll < 0.001 then error("bad argument 'opts.poll' to seriallane.redis.new: number >= 0.001 expected", 2) end
  local r = opts.redis or "127.0.0.1:6379"
  if type(r) ~= "string" and type(r) ~= "table" then
    error("bad argument 'opts.redis' to seriallane.redis.new: string or table expected, got " .. type(r), 2)
  end
  if opts.tag ~= nil and (type(opts.tag) ~= "string" or opts.tag:find("[{}]")) then
    error("bad argument 'opts.tag' to seriallane.redis.new: string without braces expected", 2)
  end
  return setmetatable({
    copts = type(r) == "string" and { addr = r } or r,
    ttl = ttl, ttl_ms = floor(ttl * 1000), poll = poll,
    prefix = opts.prefix or "lane", tag = opts.tag, origin = random_id(), seq = 0,
  }, Manager)
end

-- The lease key of a lane.
local function base_of(m, key, fname, what)
  local body
  if type(key) == "string" then body = "s" .. key
  elseif seriallane.is_key(key) then body = "k" .. key.bytes
  else error("bad argument '" .. what .. "' to seriallane.redis:" .. fname .. ": string or seriallane key expected, got " .. type(key), 3) end
  if m.tag then return m.prefix .. ":{" .. m.tag .. "}:" .. body end
  return m.prefix .. ":" .. redis.hash_tag(body)
end
M._base = function(m, key) return base_of(m, key, "base", "key") end

local function connect(m)
  local o = {}
  for k, v in pairs(m.copts) do o[k] = v end
  return redis.connect(o)
end

local function finish(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

-- Holds the lanes bases (sorted, distinct) while fn runs; pos[i]: index
-- in bases of the caller's i-th key (nil: run, one key).
local function hold(m, ctx, bases, pos, fn)
  local cerr = ctx:err()
  if cerr then return nil, cerr end
  local c, err = connect(m)
  if not c then return nil, err end
  m.seq = m.seq + 1
  local token = m.origin .. "." .. m.seq
  local n = #bases
  local akeys, rkeys = {}, {}
  for i = 1, n do
    akeys[2 * i - 1], akeys[2 * i] = bases[i], bases[i] .. ":fence"
    rkeys[2 * i - 1], rkeys[2 * i] = bases[i], bases[i] .. ":wake"
  end
  local fences
  while true do
    local r, aerr = c:eval_script(ACQUIRE, akeys, { token, m.ttl_ms }, ctx)
    if r == nil then c:close(); return nil, ctx:err() or aerr end
    if type(r) == "table" then fences = r; break end
    local busy = bases[-r]
    local wait = m.poll
    local dl = ctx:deadline()
    if dl then
      local left = dl - now()
      if left < wait then wait = left end
      if wait < 0.001 then wait = 0.001 end
    end
    local w, werr = c:call_ctx(ctx, "BLPOP", busy .. ":wake", format("%.3f", wait))
    if w == nil then c:close(); return nil, ctx:err() or werr end
  end
  local values = {}
  for i = 1, n do values[i] = token .. ":" .. fences[i] end
  local fctx, fcancel = context.with_cancel(ctx)
  local stopctx, stop = context.with_cancel(BACKGROUND)
  local done = lowbit.chan(0)
  local lost
  local rargs = {}
  for i = 1, n do rargs[i] = values[i] end
  rargs[n + 1] = m.ttl_ms
  lowbit.go(function()
    local every = m.ttl / 3
    while sleep_ctx(stopctx, every) do
      local rctx, rcancel = context.with_timeout(BACKGROUND, every)
      local v, rerr = c:eval_script(RENEW, bases, rargs, rctx)
      rcancel()
      if v ~= 1 then
        lost = errors.with_kind(M.LEASE_LOST, rerr)
        fcancel()
        break
      end
    end
    done:close()
  end)
  local arg
  if pos then
    arg = {}
    for i = 1, #pos do arg[i] = fences[pos[i]] end
  else
    arg = fences[1]
  end
  local res = { n = 0 }
  local function pack(...) res.n = select("#", ...); for i = 1, res.n do res[i] = (select(i, ...)) end end
  pack(pcall(fn, fctx, arg))
  stop()
  done:recv()
  fcancel()
  if not c.closed then
    local relctx, relcancel = context.with_timeout(BACKGROUND, m.ttl)
    local v = c:eval_script(RELEASE, rkeys, rargs, relctx)
    relcancel()
    if v ~= nil then c:release() else c:close() end
  else
    c:close()
  end
  if not res[1] then error(res[2], 0) end
  if lost then return nil, lost end
  return finish(true, unpack(res, 2, res.n))
end

--- Runs fn(ctx, fence) while holding key's lease (fence: an integer that
--- strictly increases per key, for the protected resource to check).
--- Returns what fn returns; nil, LEASE_LOST when a renewal failed while fn
--- ran (fn's ctx was cancelled then); nil, ctx:err() when ctx ended while
--- waiting; nil, err when Redis is unreachable. A raise in fn releases the
--- lease and propagates.
function Manager:run(ctx, key, fn)
  if getmetatable(self) ~= Manager then error("bad self to seriallane.redis:run: manager expected (use ':')", 2) end
  if not context.is_context(ctx) then error("bad argument 'ctx' to seriallane.redis:run: context expected, got " .. type(ctx), 2) end
  local base = base_of(self, key, "run", "key")
  if type(fn) ~= "function" then error("bad argument 'fn' to seriallane.redis:run: function expected, got " .. type(fn), 2) end
  return hold(self, ctx, { base }, nil, fn)
end

--- Runs fn(ctx, fences) while holding every key's lease, all taken in one
--- script or none (so no deadlock and no partial hold); fences[i] is the
--- fence of keys[i] (duplicates share one lease). Results as run.
function Manager:run_multi(ctx, keys, fn)
  if getmetatable(self) ~= Manager then error("bad self to seriallane.redis:run_multi: manager expected (use ':')", 2) end
  if not context.is_context(ctx) then error("bad argument 'ctx' to seriallane.redis:run_multi: context expected, got " .. type(ctx), 2) end
  if type(keys) ~= "table" or getmetatable(keys) ~= nil then
    error("bad argument 'keys' to seriallane.redis:run_multi: array of keys expected, got " .. type(keys), 2)
  end
  if type(fn) ~= "function" then error("bad argument 'fn' to seriallane.redis:run_multi: function expected, got " .. type(fn), 2) end
  local raw = {}
  for i = 1, #keys do raw[i] = base_of(self, keys[i], "run_multi", "keys[" .. i .. "]") end
  if #raw == 0 then return fn(ctx, {}) end
  local sorted = {}
  for i = 1, #raw do sorted[i] = raw[i] end
  sort(sorted)
  local bases, index = {}, {}
  for i = 1, #sorted do
    if sorted[i] ~= bases[#bases] then bases[#bases + 1] = sorted[i]; index[sorted[i]] = #bases end
  end
  if self.copts.cluster and not self.tag then
    local slot = redis.key_slot(bases[1])
    for i = 2, #bases do
      if redis.key_slot(bases[i]) ~= slot then
        error("bad argument 'keys' to seriallane.redis:run_multi: keys of different cluster slots (give opts.tag to the manager)", 2)
      end
    end
  end
  local pos = {}
  for i = 1, #raw do pos[i] = index[raw[i]] end
  return hold(self, ctx, bases, pos, fn)
end

return M
