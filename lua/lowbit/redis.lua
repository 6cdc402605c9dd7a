-- lowbit.redis: a Redis client on the conn interface (TCP, TLS, net.pipe(),
-- any conn), over the sans-I/O RESP2/RESP3 core lb_resp.
--
--   local redis = require "lowbit.redis"
--   local c = assert(redis.connect("127.0.0.1:6379"))
--   assert(c:call("SET", "k", "v"))
--   local v = c:call("GET", "k")                 --> "v" (redis.null if none)
--   local res = c:pipeline(function(p)           -- one write, N replies
--     p:call("INCR", "n"); p:call("GET", "n")
--   end)
--   c:release()                                  -- back to the pool
--
-- Results and errors (DESIGN.md's errors rules):
--   - a reply is a Lua value: simple/bulk/verbatim strings and big numbers
--     -> string, integer -> number, double -> number, boolean -> boolean,
--     array/set/push -> array table, map -> table, null -> redis.null;
--     attributes are dropped.
--   - a server error reply (-ERR ..., !...) -> `nil, err` where
--     errors.is(err, redis.SERVER_ERROR), tostring(err) is the server's text
--     ("ERR unknown command ...") and err.code its first word ("ERR",
--     "NOSCRIPT", "WRONGTYPE"). The connection stays usable. Inside
--     arrays and pipeline results such an error is the value itself
--     (redis.is_server_error(v)).
--   - an I/O failure, a timeout, a cancelled ctx or a reply that breaks RESP
--     (redis.PROTOCOL) -> `nil, err`, and the connection is closed: its
--     stream is no longer in a known state. Reconnecting is the caller's
--     policy (lowbit.retry).
--   - Redis Cluster (connect option cluster = true): call, call_ctx and
--     eval_script send a command to the node owning its first key's slot
--     (as learned from MOVED replies, per seed address), follow MOVED (and
--     remember it) and ASK (ASKING first, on that node, once), at most 5
--     redirects, and send again what a slot migration answered TRYAGAIN
--     (redis.TRYAGAIN_LIMIT), through pooled connections to the other nodes. Pipelines
--     and subscriber mode stay on this client's node (PUBLISH reaches the
--     whole cluster). Multi-key commands need one hash tag (CROSSSLOT).
--   - misuse (wrong argument types, a command other than (P)SUBSCRIBE,
--     (P)UNSUBSCRIBE or PING in subscriber mode, using a closed or
--     released client) raises.
local ffi = require "ffi"
local core = require "lowbit.core"
local lowbit = require "lowbit"
local net = require "lowbit.net"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local buffer = require "string.buffer"
local BACKGROUND = context.background()
local tnew = require "table.new"

local M = {}

local C = core.C
local ffi_new, ffi_string, ffi_copy = ffi.new, ffi.string, ffi.copy
local type, error, tostring, tonumber, setmetatable, getmetatable, select, pairs, rawequal, unpack =
  type, error, tostring, tonumber, setmetatable, getmetatable, select, pairs, rawequal, unpack
local floor, huge = math.floor, math.huge
local format, upper, byte = string.format, string.upper, string.byte
local now = lowbit.now

local EAGAIN, ENOSPACE = C.LB_EAGAIN, C.LB_ENOSPACE
local T_SIMPLE, T_ERROR, T_INTEGER, T_BULK, T_ARRAY, T_NULL = 43, 45, 58, 36, 42, 95
local T_DOUBLE, T_BOOLEAN, T_BIGNUM, T_BLOB_ERROR, T_VERBATIM = 44, 35, 40, 33, 61
local T_MAP, T_SET, T_ATTRIBUTE, T_PUSH = 37, 126, 124, 62

--- Matches every server error reply (errors.is).
M.SERVER_ERROR = errors.new("redis server error")
--- A reply that breaks RESP, or exceeds a limit of the parser.
M.PROTOCOL = errors.new("redis protocol error")

--- The null reply ($-1, *-1, _): a unique value (never nil, so arrays
--- keep their length).
M.null = setmetatable({}, { __tostring = function() return "redis.null" end,
                            __newindex = function() error("redis.null is read-only", 2) end })
local null = M.null

--- Defaults (seconds; nil = no limit).
M.CONNECT_TIMEOUT = 10
M.POOL_SIZE = 16       -- idle connections kept per pool key
M.IDLE_TIMEOUT = 60    -- an idle pooled connection older than this is closed

local ServerError = {}
ServerError.__index = ServerError
ServerError.__tostring = function(e) return e.msg end
function ServerError:is(target) return rawequal(target, M.SERVER_ERROR) end

local function server_error(msg)
  return setmetatable({ msg = msg, code = msg:match("^(%S+)") or "" }, ServerError)
end

--- True when v is a server error value (a reply element or pipeline result).
function M.is_server_error(v) return getmetatable(v) == ServerError end

local function arg_error(fname, name, expected, v)
  error(format("bad argument '%s' to %s: %s expected, got %s", name, fname, expected, type(v)), 3)
end

---------------------------------------------------------------------------
-- Values from nodes
---------------------------------------------------------------------------

local function to_double(s)
  local v = tonumber(s)
  if v then return v end
  if s == "inf" or s == "+inf" then return huge end
  if s == "-inf" then return -huge end
  return 0 / 0 -- nan
end

-- The value of a node that is not an aggregate (nor an attribute), else
-- nil. Not recursive, so that the usual replies build within one trace.
local function leaf(nd, base)
  local t = nd.type
  if t == T_BULK or t == T_SIMPLE or t == T_VERBATIM or t == T_BIGNUM then
    local off = nd.off
    -- +OK (SET, MSET...): the constant, without lj_str_new's hash lookup.
    if t == T_SIMPLE and nd.len == 2 and base[off] == 79 and base[off + 1] == 75 then return "OK" end
    return ffi_string(base + off, nd.len)
  elseif t == T_INTEGER then
    return tonumber(nd.n)
  elseif t == T_NULL then
    return null
  elseif t == T_ERROR or t == T_BLOB_ERROR then
    return server_error(ffi_string(base + nd.off, nd.len))
  elseif t == T_BOOLEAN then
    return nd.n ~= 0
  elseif t == T_DOUBLE then
    return to_double(ffi_string(base + nd.off, nd.len))
  end
  return nil
end

-- Builds the value of node i (0-based) of a reply at base; returns it and
-- the index after it.
local build

-- An array of n <= 4 elements from node i on (pub/sub messages, most
-- command replies that are arrays): unrolled, leaves built in place,
-- because a loop of a few iterations, or a recursive call, inside the
-- caller's loop is more than LuaJIT compiles ("loop unroll limit
-- reached": the interpreter built every message).
local function element(nodes, i, base)
  local v = leaf(nodes[i], base)
  if v ~= nil then return v, i + 1 end
  return build(nodes, i, base)
end

local function small_array(nodes, i, base, n)
  local a = tnew(n, 0)
  if n >= 1 then
    a[1], i = element(nodes, i, base)
    if n >= 2 then
      a[2], i = element(nodes, i, base)
      if n >= 3 then
        a[3], i = element(nodes, i, base)
        if n >= 4 then a[4], i = element(nodes, i, base) end
      end
    end
  end
  return a, i
end

build = function(nodes, i, base)
  local nd = nodes[i]
  local v = leaf(nd, base)
  if v ~= nil then return v, i + 1 end
  local t = nd.type
  if t == T_ARRAY or t == T_SET or t == T_PUSH then
    local n = tonumber(nd.n)
    if n <= 4 then return small_array(nodes, i + 1, base, n) end
    local a = tnew(n, 0)
    i = i + 1
    for k = 1, n do a[k], i = build(nodes, i, base) end
    return a, i
  elseif t == T_MAP then
    local n = tonumber(nd.n)
    local m = tnew(0, n)
    i = i + 1
    for _ = 1, n do
      local k, v
      k, i = build(nodes, i, base)
      v, i = build(nodes, i, base)
      m[k] = v
    end
    return m, i
  else -- attribute: skip its pairs, then the value it describes
    local n = 2 * tonumber(nd.n)
    i = i + 1
    for _ = 1, n do local _, j = build(nodes, i, base); i = j end
    return build(nodes, i, base)
  end
end

---------------------------------------------------------------------------
-- Client
---------------------------------------------------------------------------

local Client = {}
Client.__index = Client
M.Client = Client

local NODES0 = 64

local cluster_slotmaps = {}
local function slotmap(k)
  local m = cluster_slotmaps[k]
  if not m then m = {}; cluster_slotmaps[k] = m end
  return m
end

local function new_client(conn, o, key)
  local inplace = conn.fill ~= nil and conn.read_buffer ~= nil
  local p = ffi_new("lb_resp_parser")
  if o.max_bulk then p.max_bulk = o.max_bulk end
  if o.max_depth then p.max_depth = o.max_depth end
  if o.max_count then p.max_count = o.max_count end
  return setmetatable({
    conn = conn, inplace = inplace, ib = inplace and conn:read_buffer() or buffer.new(),
    wb = buffer.new(), parser = p, nodes = ffi_new("lb_resp_node[?]", NODES0), cap = NODES0,
    key = key, timeout = o.timeout, addr = o.addr or "conn", resp = o.resp or 2,
    subscribed = false, subs = 0, subsets = { {}, {} }, msgq = nil, scripts = {}, pool_size = o.pool_size,
    seen_ctx = false, ctx_deadline = false, ctx_done = false, -- (arm: the last ctx seen)
    idle_timeout = o.idle_timeout, copts = o, cluster = o.cluster and true or false,
    slotmap = o.cluster and slotmap(key or o.addr) or nil,
  }, Client)
end

-- Closes the connection after a failure and returns nil, err (wrapped
-- with the address).
local function fail(self, err)
  if not self.closed then
    self.closed = true
    self.conn:close()
  end
  return nil, errors.wrap(err, "redis %s", self.addr)
end

local function more(self)
  local conn = self.conn
  if self.inplace then
    local b, err = conn:fill()
    if b then return true end
    return nil, err
  end
  local s, err = conn:read()
  if s then self.ib:put(s); return true end
  return nil, err
end

-- The reply at the front of the read buffer when all of it is there:
-- value, type (the first node's type byte); else nil, the parser's code.
-- Loop-free, so that the callers' loops (a pipeline's N replies) compile
-- into one trace with it.
local function try_reply(self)
  local ib = self.ib
  local ptr, len = ib:ref()
  local rc = tonumber(C.lb_resp_parse(self.parser, ptr, len, self.nodes, self.cap))
  if rc > 0 then
    local nodes = self.nodes
    local v = build(nodes, 0, ptr)
    local t = nodes[0].type
    ib:skip(rc)
    return v, t
  end
  return nil, rc
end

-- The rest of read_reply: waits for bytes, grows the node array, or fails.
local function read_more(self, rc)
  local ib, parser = self.ib, self.parser
  while true do
    local v, t
    if rc == nil then
      v, t = try_reply(self)
      if v ~= nil then return v, t end
      rc = t
    end
    local len = #ib
    if rc == EAGAIN then
      local ok, err = more(self)
      if not ok then
        if errors.is(err, errors.EOF) and len > 0 then err = errors.UNEXPECTED_EOF end
        return fail(self, err)
      end
    elseif rc == ENOSPACE then
      local cap = self.cap * 4
      local bigger = ffi_new("lb_resp_node[?]", cap)
      ffi_copy(bigger, self.nodes, ffi.sizeof("lb_resp_node") * self.cap)
      self.nodes, self.cap = bigger, cap
    else
      C.lb_resp_parser_reset(parser)
      return fail(self, errors.with_kind(M.PROTOCOL, nil, core.strerror(rc)))
    end
    rc = nil
  end
end

-- Reads one reply: returns value, type, or nil, err (the connection is
-- then closed). The usual wait (one read brings the rest of the reply)
-- is loop-free, like try_reply: a loop here would abort the trace of
-- every caller's loop (one command per round trip would then run in the
-- interpreter); read_more's loop is for the rest.
local function read_reply(self)
  local v, t
  -- Nothing buffered (one command per round trip: the reply is still on
  -- its way): straight to the wait, without a parse that can only say
  -- EAGAIN (its general path: about 170 instructions).
  if #self.ib == 0 then t = EAGAIN else v, t = try_reply(self) end
  if v ~= nil then return v, t end
  if t == EAGAIN then
    local len = #self.ib
    local ok, err = more(self)
    if not ok then
      if errors.is(err, errors.EOF) and len > 0 then err = errors.UNEXPECTED_EOF end
      return fail(self, err)
    end
    v, t = try_reply(self)
    if v ~= nil then return v, t end
  end
  return read_more(self, t)
end

local argp = ffi_new("const char *[?]", 64)
local argl = ffi_new("size_t[?]", 64)
local argcap = 64
local keep = {}

local function arg_string(v, i, fname)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then
    if v == floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
    return format("%.17g", v)
  end
  error(format("bad argument #%d to %s: string or number expected, got %s", i, fname, tv), 3)
end

local function put_arg(i, v, fname)
  local s = arg_string(v, i, fname)
  keep[i] = s
  argp[i - 1] = s
  argl[i - 1] = #s
end

-- Appends one command (args[1..n]) to the write buffer. Up to 4
-- arguments (most commands) go to C as they are, in one call, straight
-- into the buffer: no argument arrays to fill, no loop, so that a
-- caller's loop over commands compiles into one trace with it (a
-- two-iteration loop here would be blacklisted by LuaJIT as "leaving loop
-- in root trace").
local function encode(wb, fname, n, ...)
  if n == 0 then error("bad argument #1 to " .. fname .. ": command name expected", 3) end
  if n <= 4 then
    local a1, a2, a3, a4 = ...
    if type(a1) ~= "string" then a1 = arg_string(a1, 1, fname) end
    local l1, l2, l3, l4 = #a1, 0, 0, 0
    if n >= 2 then
      if type(a2) ~= "string" then a2 = arg_string(a2, 2, fname) end
      l2 = #a2
      if n >= 3 then
        if type(a3) ~= "string" then a3 = arg_string(a3, 3, fname) end
        l3 = #a3
        if n >= 4 then
          if type(a4) ~= "string" then a4 = arg_string(a4, 4, fname) end
          l4 = #a4
        end
      end
    end
    local out, room = wb:reserve(l1 + l2 + l3 + l4 + 104) -- lb_resp_encode4's bound
    wb:commit(tonumber(C.lb_resp_encode4(out, room, n, a1, l1, a2, l2, a3, l3, a4, l4)))
    return
  end
  if n > argcap then
    argcap = n * 2
    argp = ffi_new("const char *[?]", argcap)
    argl = ffi_new("size_t[?]", argcap)
  end
  for i = 1, n do put_arg(i, (select(i, ...)), fname) end
  local need = tonumber(C.lb_resp_command_len(argl, n))
  local out = wb:reserve(need)
  local w = tonumber(C.lb_resp_encode_command(argp, argl, n, out, need))
  wb:commit(w)
  -- Drop the references (the strings were only needed during the call).
  for i = 1, n do keep[i] = nil end
end

local function encode_table(wb, fname, t)
  return encode(wb, fname, #t, unpack(t, 1, #t))
end

local function flush(self)
  local wb, conn = self.wb, self.conn
  local ok, err
  if conn.write_buffer then ok, err = conn:write_buffer(wb)
  else ok, err = conn:write(wb:get()) end
  wb:reset()
  if not ok then return fail(self, err) end
  return true
end

-- Misuse raises (DESIGN.md): a method of a client its owner closed or
-- released, or of a client another task is using (replies would be read
-- by the wrong caller). A client closed by a failure answers nil, err.
local function check_open(self, fname)
  if getmetatable(self) ~= Client then error("bad self to " .. fname .. ": redis client expected", 3) end
  if self.released then error(fname .. ": client was released to the pool", 3) end
  if self.user_closed then error(fname .. ": client is closed", 3) end
  if self.busy then error(fname .. ": client is in use by another task (use one client per task, or a pool)", 3) end
end

-- The watcher task of watch (no closure per call: lowbit.go passes the
-- arguments).
local function watcher(done, ch, conn)
  if lowbit.select{ done, ch } == 1 then conn:close() end
end

-- Closes conn when done (ctx:done()) is closed before the returned
-- channel is.
local function watch(done, conn)
  local ch = lowbit.chan(0)
  lowbit.go(watcher, done, ch, conn)
  return ch
end

-- Sets the conn's deadline from the client timeout and ctx; watches ctx
-- for cancellation (closing the conn). Returns a stop function.
local function arm(self, ctx)
  self.busy = true
  if self.closed then return nil end
  local dl = self.timeout and now() + self.timeout or nil
  local stop
  if ctx then
    -- A context's deadline and done channel never change: looked up once
    -- per ctx (both walk its parents, a loop that would end the caller's
    -- trace).
    local cd, done
    if ctx == self.seen_ctx then cd, done = self.ctx_deadline, self.ctx_done
    else
      cd, done = ctx:deadline(), ctx ~= BACKGROUND and ctx:done() or false
      self.seen_ctx, self.ctx_deadline, self.ctx_done = ctx, cd, done
    end
    if cd and (not dl or cd < dl) then dl = cd end
    if done then stop = watch(done, self.conn) end
  end
  if dl or self.had_deadline then
    self.conn:set_deadline(dl)
    self.had_deadline = dl ~= nil
  end
  return stop
end

local function disarm(self, stop)
  self.busy = false
  if stop then stop:close() end
end

-- The error of a failed exchange under ctx: ctx's own error when it has
-- ended (the conn deadline may fire a moment before ctx's timer does).
local function ctx_failure(self, ctx, err)
  if ctx then
    local cerr = ctx:err()
    local dl = ctx:deadline()
    if not cerr and dl and now() >= dl then cerr = context.DEADLINE_EXCEEDED end
    if cerr then
      self.closed = true
      self.conn:close()
      return nil, errors.wrap(cerr, "redis %s", self.addr)
    end
  end
  return nil, err
end

local function check_ctx(ctx, fname)
  if ctx ~= nil and not context.is_context(ctx) then arg_error(fname, "ctx", "context", ctx) end
end

local sub_command, sub_ping -- subscriber mode, below

local SUB_CMDS = { SUBSCRIBE = true, PSUBSCRIBE = true, UNSUBSCRIBE = true, PUNSUBSCRIBE = true }
-- First bytes of those names (and of PING), to look at the name only then.
local SUB_FIRST = { [80] = true, [112] = true, [83] = true, [115] = true, [85] = true, [117] = true }

-- RESP3 out-of-band data (pub/sub, client tracking) read before a
-- command's reply: queued for read_message. v is the first push; returns
-- the reply (value, type) or nil, err. (Apart from do_call, so that its
-- usual path has no loop.)
local function skip_pushes(self, v)
  local t = T_PUSH
  while t == T_PUSH do
    if not self.msgq then self.msgq = {} end
    self.msgq[#self.msgq + 1] = v
    v, t = read_reply(self)
    if v == nil then return nil, t end
  end
  return v, t
end

local function do_call(self, ctx, fname, n, ...)
  if self.closed then return nil, errors.wrap(errors.CLOSED, "redis %s", self.addr) end
  local first = ...
  if self.subscribed or (type(first) == "string" and SUB_FIRST[byte(first, 1)]) then
    local name = upper(tostring(first))
    if SUB_CMDS[name] then return sub_command(self, fname, name, select(2, ...)) end
    if self.subscribed then
      if name ~= "PING" then error(fname .. ": " .. name .. " is not allowed in subscriber mode", 3) end
      return sub_ping(self, ctx, fname, n, ...)
    end
  end
  encode(self.wb, fname, n, ...)
  local stop = arm(self, ctx)
  local ok, err = flush(self)
  if not ok then disarm(self, stop); return ctx_failure(self, ctx, err) end
  local v, t = read_reply(self)
  if t == T_PUSH then v, t = skip_pushes(self, v) end
  if v == nil then disarm(self, stop); return ctx_failure(self, ctx, t) end
  disarm(self, stop)
  if getmetatable(v) == ServerError then return nil, v end
  return v
end

---------------------------------------------------------------------------
-- Redis Cluster: key slots, MOVED and ASK
---------------------------------------------------------------------------

local bit = require "bit"
local band, bxor, lshift, rshift = bit.band, bit.bxor, bit.lshift, bit.rshift

local crc_table = {}
for i = 0, 255 do
  local c = lshift(i, 8)
  for _ = 1, 8 do
    if band(c, 0x8000) ~= 0 then c = band(bxor(lshift(c, 1), 0x1021), 0xffff)
    else c = band(lshift(c, 1), 0xffff) end
  end
  crc_table[i] = c
end

--- The cluster hash slot (0..16383) of a key: CRC16 (XMODEM) of the key,
--- or of its hash tag (the bytes between the first "{" and the next "}",
--- when not empty), modulo 16384.
local function key_slot(key)
  if type(key) == "number" then key = arg_string(key, 1, "redis.key_slot") end
  if type(key) ~= "string" then arg_error("redis.key_slot", "key", "string", key) end
  local s, e = key:find("{", 1, true), nil
  if s then
    e = key:find("}", s + 1, true)
    if e and e > s + 1 then key = key:sub(s + 1, e - 1) end
  end
  local crc = 0
  for i = 1, #key do
    crc = band(bxor(lshift(crc, 8), crc_table[bxor(rshift(crc, 8), byte(key, i))]), 0xffff)
  end
  return crc % 16384
end
M.key_slot = key_slot

local TAG_ESC = { ["%"] = "%25", ["}"] = "%7D" }
--- "{" .. s .. "}", a hash tag for the keys built around it: "%" and "}"
--- in s are escaped (%25, %7D), so the tag is all of s and never empty
--- (s: a non-empty string), and two names never share a tag.
function M.hash_tag(s)
  if type(s) ~= "string" or s == "" then arg_error("redis.hash_tag", "s", "non-empty string", s) end
  return "{" .. s:gsub("[%%}]", TAG_ESC) .. "}"
end

-- Commands whose second word is not a key.
local NOKEY = { PING = true, INFO = true, CLIENT = true, CONFIG = true, PUBSUB = true, CLUSTER = true,
  SCRIPT = true, FLUSHALL = true, FLUSHDB = true, DBSIZE = true, AUTH = true, HELLO = true,
  SELECT = true, ECHO = true, TIME = true, COMMAND = true, ASKING = true, READONLY = true,
  FUNCTION = true, MEMORY = true, SLOWLOG = true, LATENCY = true, ACL = true, WAIT = true,
  SUBSCRIBE = true, PSUBSCRIBE = true, UNSUBSCRIBE = true, PUNSUBSCRIBE = true, PUBLISH = true }

-- The slot of a command's first key, or nil.
local function command_slot(n, ...)
  local name, a2, a3, a4 = ...
  if type(name) ~= "string" or n < 2 then return nil end
  name = upper(name)
  if NOKEY[name] then return nil end
  if name == "EVAL" or name == "EVALSHA" or name == "EVAL_RO" or name == "EVALSHA_RO" or name == "FCALL" then
    if n >= 4 and tonumber(a3) and tonumber(a3) > 0 then return key_slot(tostring(a4)) end
    return nil
  end
  if type(a2) ~= "string" and type(a2) ~= "number" then return nil end
  return key_slot(tostring(a2))
end

-- A client for another node of the cluster (same options, from the pool).
local function node_client(self, addr)
  local o = {}
  for k, v in pairs(self.copts) do o[k] = v end
  o.addr, o.ctx = addr, nil
  return M.connect(o)
end

local cluster_call_once
local MAX_REDIRECTS = 5
--- Longest time (seconds) a cluster command answered TRYAGAIN (a
--- multi-key command or script on a slot being migrated, its keys split
--- between the two nodes) is sent again before that error is returned.
M.TRYAGAIN_LIMIT = 10

-- A command on a cluster: sent to the node the slot map says owns its
-- key (else to this client's node); MOVED updates the map and resends
-- there, ASK resends to the node named, preceded by ASKING. TRYAGAIN
-- (nothing was run) waits and starts over, with a backoff, for at most
-- TRYAGAIN_LIMIT seconds (and ctx).
local function cluster_call(self, ctx, fname, n, ...)
  local deadline, pause = nil, 0.005
  while true do
    local v, err = cluster_call_once(self, ctx, fname, n, ...)
    if v ~= nil or getmetatable(err) ~= ServerError or err.code ~= "TRYAGAIN" then return v, err end
    deadline = deadline or now() + M.TRYAGAIN_LIMIT
    if now() + pause > deadline then return nil, err end
    if not lowbit.sleep_ctx(ctx or BACKGROUND, pause) then return nil, ctx:err() end
    pause = pause * 2 > 0.1 and 0.1 or pause * 2
  end
end

cluster_call_once = function(self, ctx, fname, n, ...)
  local slot = command_slot(n, ...)
  local map = self.slotmap
  local addr = slot and map[slot]
  local target, borrowed = self, nil
  if addr and addr ~= self.addr then
    local err
    borrowed, err = node_client(self, addr)
    if not borrowed then return nil, err end
    target = borrowed
  end
  local asking = false
  local v, err
  for _ = 0, MAX_REDIRECTS do
    if asking then
      local res
      res, err = target:pipeline({ { "ASKING" }, { ... } }, ctx)
      if res then
        v = res[2]
        if getmetatable(v) == ServerError then v, err = nil, v end
      else
        v = nil
      end
    else
      v, err = do_call(target, ctx, fname, n, ...)
    end
    local redirect = v == nil and getmetatable(err) == ServerError and (err.code == "MOVED" or err.code == "ASK")
    if borrowed then borrowed:release(); borrowed = nil end
    if not redirect then return v, err end
    local s, a = err.msg:match("^%S+ (%d+) (%S+)")
    if not s then return nil, err end
    if err.code == "MOVED" then map[tonumber(s)] = a end
    asking = err.code == "ASK"
    target = self
    if a ~= self.addr then
      local cerr
      borrowed, cerr = node_client(self, a)
      if not borrowed then return nil, cerr end
      target = borrowed
    end
  end
  if borrowed then borrowed:release() end
  return nil, err
end

--- Sends one command and returns its reply (see the header for values
--- and errors). Arguments are strings or numbers.
function Client:call(...)
  check_open(self, "client:call")
  if self.cluster then return cluster_call(self, nil, "client:call", select("#", ...), ...) end
  return do_call(self, nil, "client:call", select("#", ...), ...)
end

--- The same, bounded by ctx (deadline and cancellation; a cancelled call
--- closes the connection).
function Client:call_ctx(ctx, ...)
  check_open(self, "client:call_ctx")
  check_ctx(ctx, "client:call_ctx")
  if self.cluster then return cluster_call(self, ctx, "client:call_ctx", select("#", ...), ...) end
  return do_call(self, ctx, "client:call_ctx", select("#", ...), ...)
end

local Pipe = {}
Pipe.__index = Pipe

--- Queues a command in a pipeline.
function Pipe:call(...)
  if self.done then error("pipeline:call: the pipeline was already sent", 2) end
  local n = select("#", ...)
  encode(self.c.wb, "pipeline:call", n, ...)
  self.n = self.n + 1
end

--- Runs fn(p), which queues commands with p:call(...), then sends them in
--- one write and reads the replies in order. Returns an array of the
--- replies (a server error is the error value itself) and their count,
--- or nil, err after an I/O failure. ctx (optional) bounds it all.
--- fn may also be an array of commands ({ {"SET", "a", 1}, {"GET", "a"} }).
function Client:pipeline(fn, ctx)
  check_open(self, "client:pipeline")
  check_ctx(ctx, "client:pipeline")
  if self.subscribed then error("client:pipeline: not allowed in subscriber mode", 2) end
  if self.closed then return nil, errors.wrap(errors.CLOSED, "redis %s", self.addr) end
  local p = setmetatable({ c = self, n = 0 }, Pipe)
  self.wb:reset()
  if type(fn) == "function" then
    fn(p)
  elseif type(fn) == "table" then
    for i = 1, #fn do
      if type(fn[i]) ~= "table" then arg_error("client:pipeline", "fn[" .. i .. "]", "table", fn[i]) end
      encode_table(self.wb, "client:pipeline", fn[i])
      p.n = p.n + 1
    end
  else
    arg_error("client:pipeline", "fn", "function or array of commands", fn)
  end
  p.done = true
  local n = p.n
  if n == 0 then return {}, 0 end
  local res = tnew(n, 0) -- (no rehash as it fills)
  local stop = arm(self, ctx)
  local ok, err = flush(self)
  if not ok then disarm(self, stop); return ctx_failure(self, ctx, err) end
  local i = 0
  while i < n do
    local v, t = read_reply(self)
    if v == nil then disarm(self, stop); return ctx_failure(self, ctx, t) end
    if t == T_PUSH then
      if not self.msgq then self.msgq = {} end
      self.msgq[#self.msgq + 1] = v
    else
      i = i + 1
      res[i] = v
    end
  end
  disarm(self, stop)
  return res, n
end

---------------------------------------------------------------------------
-- Scripts
---------------------------------------------------------------------------

local shabuf = ffi_new("uint8_t[20]")
local function sha1_hex(s)
  if type(s) ~= "string" then arg_error("redis.sha1_hex", "s", "string", s) end
  C.lb_sha1(s, #s, shabuf)
  local hex = {}
  for i = 0, 19 do hex[i + 1] = format("%02x", shabuf[i]) end
  return table.concat(hex)
end
M.sha1_hex = sha1_hex

--- Runs a Lua script with EVALSHA (its SHA1 computed once and cached per
--- client); when the server answers NOSCRIPT, sends EVAL, which also
--- loads it. keys and args are arrays (or nil). Same results as call.
function Client:eval_script(script, keys, args, ctx)
  check_open(self, "client:eval_script")
  if type(script) ~= "string" then arg_error("client:eval_script", "script", "string", script) end
  if keys ~= nil and type(keys) ~= "table" then arg_error("client:eval_script", "keys", "table or nil", keys) end
  if args ~= nil and type(args) ~= "table" then arg_error("client:eval_script", "args", "table or nil", args) end
  check_ctx(ctx, "client:eval_script")
  local sha = self.scripts[script]
  if not sha then sha = sha1_hex(script); self.scripts[script] = sha end
  local nk, na = keys and #keys or 0, args and #args or 0
  local argv = { "EVALSHA", sha, nk }
  for i = 1, nk do argv[3 + i] = keys[i] end
  for i = 1, na do argv[3 + nk + i] = args[i] end
  local send = self.cluster and cluster_call or do_call
  local v, err = send(self, ctx, "client:eval_script", #argv, unpack(argv))
  if v == nil and getmetatable(err) == ServerError and err.code == "NOSCRIPT" then
    argv[1], argv[2] = "EVAL", script
    return send(self, ctx, "client:eval_script", #argv, unpack(argv))
  end
  return v, err
end

---------------------------------------------------------------------------
-- Subscriber mode
---------------------------------------------------------------------------

-- The kinds as Redis writes them: found as they are, without lower()'s
-- new string for every message.
local KINDS = { message = "message", pmessage = "pmessage", smessage = "smessage", pong = "pong",
  subscribe = "subscribe", psubscribe = "psubscribe", unsubscribe = "unsubscribe",
  punsubscribe = "punsubscribe", ssubscribe = "ssubscribe", sunsubscribe = "sunsubscribe" }

local function msg_kind(v)
  if type(v) == "table" then
    local k = v[1]
    if type(k) == "string" then return KINDS[k] or k:lower() end
  end
  return nil
end

-- Sends a (p)(un)subscribe command and reads its confirmations (one per
-- channel, or until the count is 0 for an unsubscribe without channels),
-- queueing messages that arrive meanwhile.
sub_command = function(self, fname, cmd, ...)
  check_open(self, fname)
  local n = select("#", ...)
  local sub = cmd == "SUBSCRIBE" or cmd == "PSUBSCRIBE"
  if sub and n == 0 then error("bad argument #1 to " .. fname .. ": channel expected", 3) end
  for i = 1, n do
    if type((select(i, ...))) ~= "string" then
      error(format("bad argument #%d to %s: string expected, got %s", i, fname, type((select(i, ...)))), 3)
    end
  end
  if self.closed then return nil, errors.wrap(errors.CLOSED, "redis %s", self.addr) end
  if not sub and not self.subscribed then return true end
  encode(self.wb, fname, n + 1, cmd, ...)
  local stop = arm(self, nil)
  local ok, err = flush(self)
  if not ok then disarm(self, stop); return nil, err end
  local want = cmd:lower()
  -- One confirmation per name; for an unsubscribe without names, one per
  -- name subscribed (of that kind), or one when there is none.
  local set = self.subsets[(cmd == "SUBSCRIBE" or cmd == "UNSUBSCRIBE") and 1 or 2]
  local left = n
  if n == 0 then
    for _ in pairs(set) do left = left + 1 end
    if left == 0 then left = 1 end
  end
  self.subscribed = true
  while true do
    local v, t = read_reply(self)
    if v == nil then disarm(self, stop); return nil, t end
    if getmetatable(v) == ServerError then
      disarm(self, stop)
      self.subscribed = self.subs > 0
      return nil, v
    end
    if msg_kind(v) == want then
      self.subs = tonumber(v[3]) or 0
      if type(v[2]) == "string" then set[v[2]] = sub or nil end
      left = left - 1
      if left <= 0 then break end
    else
      if not self.msgq then self.msgq = {} end
      self.msgq[#self.msgq + 1] = v
    end
  end
  disarm(self, stop)
  if self.subs == 0 then self.subscribed = false end
  return true
end

-- PING in subscriber mode: the answer is a ["pong", payload] message;
-- messages that arrive before it are queued. Returns what PING returns
-- outside: "PONG", or the payload given.
sub_ping = function(self, ctx, fname, n, ...)
  encode(self.wb, fname, n, ...)
  local stop = arm(self, ctx)
  local ok, err = flush(self)
  if not ok then disarm(self, stop); return ctx_failure(self, ctx, err) end
  while true do
    local v, t = read_reply(self)
    if v == nil then disarm(self, stop); return ctx_failure(self, ctx, t) end
    if getmetatable(v) == ServerError then disarm(self, stop); return nil, v end
    if type(v) ~= "table" then
      -- RESP3 answers PING with a plain reply even in subscriber mode.
      disarm(self, stop)
      return v
    end
    if msg_kind(v) == "pong" then
      disarm(self, stop)
      if n > 1 then return v[2] end
      return "PONG"
    end
    if not self.msgq then self.msgq = {} end
    self.msgq[#self.msgq + 1] = v
  end
end

--- Enters subscriber mode (if not yet) and subscribes to the channels.
--- Returns true once the server has confirmed each, or nil, err. While
--- subscribed, only (p)(un)subscribe and ping are allowed; messages are
--- read with read_message. A subscribed client is never pooled.
function Client:subscribe(...) return sub_command(self, "client:subscribe", "SUBSCRIBE", ...) end
--- Same, for glob patterns.
function Client:psubscribe(...) return sub_command(self, "client:psubscribe", "PSUBSCRIBE", ...) end
--- Unsubscribes from the channels (all when none given); leaves
--- subscriber mode when no subscription is left.
function Client:unsubscribe(...) return sub_command(self, "client:unsubscribe", "UNSUBSCRIBE", ...) end
function Client:punsubscribe(...) return sub_command(self, "client:punsubscribe", "PUNSUBSCRIBE", ...) end

local function to_message(v)
  local kind = msg_kind(v)
  if kind == "message" or kind == "smessage" then
    return { kind = kind, channel = v[2], payload = v[3] }
  elseif kind == "pmessage" then
    return { kind = kind, pattern = v[2], channel = v[3], payload = v[4] }
  elseif kind == "pong" then
    return { kind = kind, payload = v[2] }
  end
  return { kind = kind or "push", data = v }
end

local CONFIRMS = { subscribe = true, psubscribe = true, unsubscribe = true, punsubscribe = true }

-- The rest of read_message after a (un)subscribe confirmation v: counts
-- it and reads on.
local function read_message_loop(self, ctx, stop, v)
  while true do
    self.subs = tonumber(v[3]) or self.subs
    local t
    v, t = read_reply(self)
    if v == nil then disarm(self, stop); return ctx_failure(self, ctx, t) end
    local m = to_message(v)
    if not CONFIRMS[m.kind] then
      disarm(self, stop)
      return m
    end
  end
end

--- Waits for the next message: { kind = "message", channel, payload },
--- { kind = "pmessage", pattern, channel, payload }, { kind = "pong",
--- payload } or (other pushes) { kind, data }. Returns nil, err on I/O
--- failure, timeout or ctx end (the client is then closed).
function Client:read_message(ctx)
  check_open(self, "client:read_message")
  check_ctx(ctx, "client:read_message")
  local q = self.msgq
  if q and #q > 0 then return to_message(table.remove(q, 1)) end
  if self.closed then return nil, errors.wrap(errors.CLOSED, "redis %s", self.addr) end
  local stop = arm(self, ctx)
  -- The usual case, a message, without a loop (a loop here would abort
  -- the trace of the caller's read loop); late confirmations are skipped
  -- in read_message_loop.
  local v, t = read_reply(self)
  if v == nil then disarm(self, stop); return ctx_failure(self, ctx, t) end
  local m = to_message(v)
  if not CONFIRMS[m.kind] then
    disarm(self, stop)
    return m
  end
  return read_message_loop(self, ctx, stop, v)
end

---------------------------------------------------------------------------
-- Connect, pool, close
---------------------------------------------------------------------------

local pools = {} -- key -> array of { client, since }

-- The TLS part of a pool key: "tcp", "tls" (true), the config object's
-- identity, or the options (sorted) of an options table.
local function tls_key(t)
  if not t then return "tcp" end
  if t == true then return "tls" end
  local tls = require "lowbit.tls"
  if tls.is_config(t) then return tostring(t) end
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
  table.sort(parts)
  return "tls{" .. table.concat(parts, ",") .. "}"
end

local function pool_key(o)
  if o.conn then return nil end
  return table.concat({ o.addr, tostring(o.db or 0), o.username or "", o.password or "",
                        tostring(o.resp or 2), tls_key(o.tls), o.server_name or "", o.cluster and "cluster" or "" }, "|")
end

local CONNECT_OPTS = { addr = true, conn = true, tls = true, server_name = true, ctx = true,
  connect_timeout = true, timeout = true, password = true, username = true, db = true,
  resp = true, pool_size = true, idle_timeout = true, max_bulk = true, max_depth = true,
  max_count = true, name = true, cluster = true }

-- The connection setup (HELLO / AUTH, SELECT, CLIENT SETNAME), in one
-- pipeline.
local function handshake(c, o, ctx)
  local cmds = {}
  if o.resp == 3 then
    local h = { "HELLO", 3 }
    if o.password then h[3], h[4], h[5] = "AUTH", o.username or "default", o.password end
    if o.name then h[#h + 1] = "SETNAME"; h[#h + 1] = o.name end
    cmds[#cmds + 1] = h
  else
    if o.password then
      cmds[#cmds + 1] = o.username and { "AUTH", o.username, o.password } or { "AUTH", o.password }
    end
    if o.name then cmds[#cmds + 1] = { "CLIENT", "SETNAME", o.name } end
  end
  if o.db and o.db ~= 0 then cmds[#cmds + 1] = { "SELECT", o.db } end
  if #cmds == 0 then return true end
  local res, err = c:pipeline(cmds, ctx)
  if not res then return nil, err end
  for i = 1, #res do
    if M.is_server_error(res[i]) then return nil, res[i] end
  end
  return true
end

--- Connects. addr_or_opts: "host:port", or an options table:
---   addr          "host:port" (default "127.0.0.1:6379")
---   conn          an already connected conn (net.pipe(), a cosocket
---                 adapter...): used as is, never pooled
---   tls           true or a tls client config / its options: TLS over TCP
---   server_name   TLS name to verify (default: the host of addr)
---   ctx           bounds the connect and setup
---   connect_timeout  seconds (default redis.CONNECT_TIMEOUT)
---   timeout       seconds for each later call (default: none)
---   password, username  AUTH (or HELLO's AUTH with resp = 3)
---   db            SELECT db
---   resp          2 (default) or 3 (HELLO 3: maps, sets, doubles...)
---   name          CLIENT SETNAME
---   pool_size, idle_timeout  for release() (defaults redis.POOL_SIZE,
---                 redis.IDLE_TIMEOUT)
---   max_bulk, max_depth, max_count  parser limits (lb_resp defaults)
--- An idle pooled connection with the same addr, tls, db, credentials and
--- resp is reused. Returns a client, or nil, err.
function M.connect(addr_or_opts)
  local o = addr_or_opts
  if type(o) == "string" then o = { addr = o }
  elseif type(o) ~= "table" then arg_error("redis.connect", "addr_or_opts", "string or table", o) end
  for k in pairs(o) do
    if not CONNECT_OPTS[k] then error("bad argument 'opts' to redis.connect: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if o.addr ~= nil and type(o.addr) ~= "string" then arg_error("redis.connect", "opts.addr", "string", o.addr) end
  if o.resp ~= nil and o.resp ~= 2 and o.resp ~= 3 then error("bad argument 'opts.resp' to redis.connect: 2 or 3 expected", 2) end
  if o.db ~= nil and type(o.db) ~= "number" then arg_error("redis.connect", "opts.db", "number", o.db) end
  if o.timeout ~= nil and type(o.timeout) ~= "number" then arg_error("redis.connect", "opts.timeout", "number", o.timeout) end
  if o.password ~= nil and type(o.password) ~= "string" then arg_error("redis.connect", "opts.password", "string", o.password) end
  if o.conn ~= nil and (type(o.conn) ~= "table" or type(o.conn.read) ~= "function") then arg_error("redis.connect", "opts.conn", "conn", o.conn) end
  check_ctx(o.ctx, "redis.connect")
  local oo = {}
  for k, v in pairs(o) do oo[k] = v end
  o = oo
  o.addr = o.addr or (o.conn and "conn" or "127.0.0.1:6379")
  local key = pool_key(o)
  if key then
    local pool = pools[key]
    while pool and #pool > 0 do
      local e = table.remove(pool)
      local c = e.client
      -- Not one the server closed (or wrote to) while it was idle: a
      -- restarted Redis would otherwise fail the caller's first command.
      if now() - e.since <= (c.idle_timeout or M.IDLE_TIMEOUT) and not c.closed
         and #c.ib == 0 and net.idle_usable(c.conn) then
        c.released = false
        c.timeout, c.pool_size, c.idle_timeout = o.timeout, o.pool_size, o.idle_timeout
        return c
      end
      c.conn:close()
    end
  end
  local ctx, cancel = o.ctx or context.background(), nil
  local conn = o.conn
  local ct = o.connect_timeout or M.CONNECT_TIMEOUT
  if ct then ctx, cancel = context.with_timeout(ctx, ct) end
  if not conn then
    local err
    if o.tls then
      local tls = require "lowbit.tls"
      local cfg = o.tls
      if cfg == true then cfg = {} end
      if type(cfg) == "table" and not tls.is_config(cfg) and o.server_name then
        local copy = {}
        for k, v in pairs(cfg) do copy[k] = v end
        copy.server_name = o.server_name
        cfg = copy
      end
      conn, err = tls.dial(ctx, o.addr, cfg)
    else
      -- pool: inside nginx (lowbit.ngx), the keepalive pool the cosocket
      -- goes back to after the request (per key: same db, auth, resp).
      conn, err = net.dial(ctx, o.addr, key and { pool = "lowbit-redis " .. key } or nil)
    end
    if not conn then
      if cancel then cancel() end
      return nil, errors.wrap(err, "redis connect %s", o.addr)
    end
  end
  local c = new_client(conn, o, key)
  local ok, err = handshake(c, o, ctx)
  if cancel then cancel() end
  if not ok then
    c:close()
    return nil, err -- a server error (AUTH, SELECT) as it is, else wrapped
  end
  c.conn:set_deadline(nil)
  c.had_deadline = false
  return c
end

--- Closes the connection (idempotent).
function Client:close()
  self.user_closed = true
  if not self.closed then
    self.closed = true
    self.conn:close()
  end
  return true
end

--- Hands the connection back to its address's pool for a later
--- redis.connect with the same options (lua-resty-redis' set_keepalive).
--- A client in subscriber mode, closed, with unread bytes, or made from
--- a given conn is closed instead. The client must not be used after.
--- Returns true.
function Client:release()
  check_open(self, "client:release")
  self.released = true
  self.seen_ctx, self.ctx_deadline, self.ctx_done = false, false, false -- (not kept alive by the pool)
  if self.closed or self.subscribed or not self.key or #self.ib > 0 then
    self:close()
    return true
  end
  local pool = pools[self.key]
  if not pool then pool = {}; pools[self.key] = pool end
  if #pool >= (self.pool_size or M.POOL_SIZE) then
    self:close()
    return true
  end
  pool[#pool + 1] = { client = self, since = now() }
  if self.conn.pooled then self.conn:pooled() end -- (lowbit.ngx: clean and idle)
  return true
end

--- Number of idle pooled connections for addr (all keys with that addr).
function M.pool_idle(addr)
  if type(addr) ~= "string" then arg_error("redis.pool_idle", "addr", "string", addr) end
  local n = 0
  for k, pool in pairs(pools) do
    if k:sub(1, #addr + 1) == addr .. "|" then n = n + #pool end
  end
  return n
end

--- Closes every idle pooled connection.
function M.close_idle(...)
  if select("#", ...) > 0 then error("bad argument to redis.close_idle: no arguments expected", 2) end
  for k, pool in pairs(pools) do
    for i = 1, #pool do pool[i].client.conn:close(); pool[i].client.closed = true end
    pools[k] = nil
  end
end

function Client:__tostring() return "redis client " .. self.addr end

return M
