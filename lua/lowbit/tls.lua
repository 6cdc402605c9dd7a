-- lowbit.tls: TLS 1.2/1.3 over any lowbit conn (TCP, pipe, ...), with the
-- same conn interface as lowbit.net.
--
--   local srv = assert(tls.server_config{ cert = "cert.pem", key = "key.pem",
--                                         alpn = { "http/1.1" } })
--   local ln = assert(tls.listen("127.0.0.1:8443", srv))
--   lowbit.go(function()
--     local c = ln:accept()            -- the handshake runs on first read/write
--     c:write(c:read()); c:close()
--   end)
--   local c = assert(tls.dial(ctx, "localhost:8443", { ca_file = "ca.pem" }))
--
-- The protocol runs in the lb_tls C core (OpenSSL, sans-I/O); this
-- module moves ciphertext between the core and the wrapped conn. A read
-- waiting for ciphertext never holds up a write: the reader only flushes
-- the core's output (TLS 1.3 session tickets, key update answers) when no
-- writer is busy, and a busy writer sends it along with its own.
--
-- Errors: handshake failures match tls.HANDSHAKE (and tls.VERIFY for
-- certificate failures), e.g. "tls handshake failed: certificate verify
-- failed: hostname mismatch"; broken records after the handshake match
-- tls.PROTOCOL; a read after the peer's close_notify returns errors.EOF.
local ffi = require "ffi"
local core = require "lowbit.core"
local lowbit = require "lowbit"
local net = require "lowbit.net"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local buffer = require "string.buffer"

local M = {}

local C = core.C
local ffi_string, ffi_gc, ffi_cast, ffi_new = ffi.string, ffi.gc, ffi.cast, ffi.new
local type, error, tostring, tonumber, setmetatable, pairs, ipairs, getmetatable =
  type, error, tostring, tonumber, setmetatable, pairs, ipairs, getmetatable
local concat, char, min = table.concat, string.char, math.min
local now = lowbit.now

local EOF, CLOSED, TIMEOUT, UNEXPECTED_EOF = errors.EOF, errors.CLOSED, errors.TIMEOUT, errors.UNEXPECTED_EOF
local LB_EAGAIN, LB_ETLSVERIFY, TLS13 = C.LB_EAGAIN, C.LB_ETLSVERIFY, C.LB_TLS_VERSION_1_3
local ERROR_MAX = C.LB_TLS_ERROR_MAX

M.HANDSHAKE = errors.new("tls handshake failed")
M.VERIFY = errors.new("certificate verify failed")
M.PROTOCOL = errors.new("tls protocol error")
M.CONFIG = errors.new("invalid tls configuration")
--- A server handshake failed on a first record that starts like an HTTP
--- request ("GET /", "POST "...): plain HTTP sent to a TLS port. Matched
--- along with tls.HANDSHAKE; HTTP servers answer it with a 400.
M.PLAIN_HTTP = errors.new("client sent an HTTP request to a TLS server")

--- Plaintext bytes encrypted per core call (and sent per conn write).
M.WRITE_CHUNK = 128 * 1024
--- Most plaintext one read returns.
M.READ_CHUNK = 64 * 1024
--- How long close() may wait to send close_notify.
M.CLOSE_NOTIFY_TIMEOUT = 1

local sbuf = ffi_new("char[?]", ERROR_MAX)
local obuf = buffer.new()

local function arg_error(fname, name, expected, v)
  error(("bad argument '%s' to %s: %s expected, got %s"):format(name, fname, expected, type(v)), 3)
end

local function check_ctx(ctx, fname)
  if ctx == nil then return context.background() end
  if not context.is_context(ctx) then arg_error(fname, "ctx", "context", ctx) end
  return ctx
end

local function check_deadline(t, fname)
  if t ~= nil and (type(t) ~= "number" or t ~= t) then arg_error(fname, "t", "number or nil", t) end
end

---------------------------------------------------------------------------
-- Configs
---------------------------------------------------------------------------

local Config = {}
Config.__index = Config
M.Config = Config

local function is_config(v) return getmetatable(v) == Config end
M.is_config = is_config

local VERSIONS = { ["1.2"] = C.LB_TLS_VERSION_1_2, ["1.3"] = C.LB_TLS_VERSION_1_3 }

local function ctx_error(ctx, what)
  local n = tonumber(C.lb_tls_ctx_last_error(ctx, sbuf, ERROR_MAX))
  local msg = n > 0 and ffi_string(sbuf, n) or "failed"
  return errors.with_kind(M.CONFIG, nil, what and (what .. ": " .. msg) or msg)
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, errors.with_kind(M.CONFIG, nil, tostring(err)) end
  local s = f:read("*a")
  f:close()
  return s
end

-- Options each kind of config accepts (anything else is a typo: raise).
local SERVER_OPTS = { cert = "string", key = "string", cert_pem = "string", key_pem = "string",
  chain = "string", chain_pem = "string", alpn = "table", sni = "table", min_version = "string",
  max_version = "string", client_auth = "string", client_ca_file = "string", client_ca_pem = "string",
  handshake_timeout = "number" }
local SNI_OPTS = { cert = "string", key = "string", cert_pem = "string", key_pem = "string",
  chain = "string", chain_pem = "string", alpn = "table" }
local CLIENT_OPTS = { ca_file = "string", ca_pem = "string", system_ca = "boolean", server_name = "string",
  alpn = "table", insecure_skip_verify = "boolean", cert = "string", key = "string", cert_pem = "string",
  key_pem = "string", chain = "string", chain_pem = "string", min_version = "string",
  max_version = "string", handshake_timeout = "number" }

local function check_opts(opts, allowed, fname, lvl)
  if type(opts) ~= "table" then
    error(("bad argument 'opts' to %s: table expected, got %s"):format(fname, type(opts)), lvl)
  end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if want == nil then
      error(("bad argument 'opts' to %s: unknown option '%s'"):format(fname, tostring(k)), lvl)
    end
    if type(v) ~= want then
      error(("bad argument 'opts.%s' to %s: %s expected, got %s"):format(k, fname, want, type(v)), lvl)
    end
  end
  for _, k in ipairs({ "min_version", "max_version" }) do
    if opts[k] ~= nil and VERSIONS[opts[k]] == nil then
      error(("bad argument 'opts.%s' to %s: \"1.2\" or \"1.3\" expected"):format(k, fname), lvl)
    end
  end
end

local function alpn_wire(list, fname, lvl)
  local parts = {}
  for i = 1, #list do
    local p = list[i]
    if type(p) ~= "string" or #p == 0 or #p > 255 then
      error(("bad argument 'opts.alpn' to %s: element %d must be a string of 1..255 bytes"):format(fname, i), lvl)
    end
    parts[i] = char(#p) .. p
  end
  return concat(parts)
end

-- Loads cert/key (files or PEM) and a chain into ctx. Returns true, false
-- (nothing given) or nil, err.
local function load_identity(ctx, o, fname, lvl)
  local rc
  if o.cert ~= nil or o.key ~= nil then
    if o.cert == nil or o.key == nil then
      error(("bad argument 'opts' to %s: cert and key go together"):format(fname), lvl)
    end
    rc = C.lb_tls_ctx_use_cert_file(ctx, o.cert, o.key)
    if rc ~= 0 then return nil, ctx_error(ctx, o.cert .. ", " .. o.key) end
  elseif o.cert_pem ~= nil or o.key_pem ~= nil then
    if o.cert_pem == nil or o.key_pem == nil then
      error(("bad argument 'opts' to %s: cert_pem and key_pem go together"):format(fname), lvl)
    end
    rc = C.lb_tls_ctx_use_cert_pem(ctx, o.cert_pem, #o.cert_pem, o.key_pem, #o.key_pem)
    if rc ~= 0 then return nil, ctx_error(ctx) end
  else
    return false
  end
  local chain = o.chain_pem
  if o.chain then
    local err
    chain, err = read_file(o.chain)
    if not chain then return nil, err end
  end
  if chain then
    rc = C.lb_tls_ctx_add_chain_pem(ctx, chain, #chain)
    if rc ~= 0 then return nil, ctx_error(ctx) end
  end
  return true
end

local function new_ctx(is_server)
  local ctx = C.lb_tls_ctx_new(is_server and 1 or 0)
  if ctx == nil then error("tls: out of memory", 3) end
  return ffi_gc(ctx, C.lb_tls_ctx_free)
end

local function set_common(ctx, o, fname, lvl)
  if o.alpn then
    local w = alpn_wire(o.alpn, fname, lvl + 1)
    if C.lb_tls_ctx_set_alpn(ctx, w, #w) ~= 0 then
      error(("bad argument 'opts.alpn' to %s: list too long"):format(fname), lvl)
    end
  end
  if o.min_version or o.max_version then
    local lo, hi = VERSIONS[o.min_version] or 0, VERSIONS[o.max_version] or 0
    if C.lb_tls_ctx_set_versions(ctx, lo, hi) ~= 0 then
      error(("bad argument 'opts' to %s: min_version is above max_version"):format(fname), lvl)
    end
  end
end

--- A server configuration. opts:
---   cert, key         PEM file paths (cert may hold the chain after the leaf)
---   cert_pem, key_pem the same as PEM text
---   chain, chain_pem  intermediate certificates (file / PEM text)
---   alpn              protocols to select from, in order of preference
---                     ({ "h2", "http/1.1" }); none: no ALPN
---   sni               { ["name"] = { cert=..., key=... (or *_pem), alpn? } }:
---                     certificates per SNI name; "*.example.com" matches
---                     one label; other names get the main certificate
---   min_version, max_version   "1.2" | "1.3" (default: 1.2 .. 1.3)
---   client_auth       nil | "request" | "require": ask for client certs,
---                     checked against client_ca_file / client_ca_pem
---   handshake_timeout seconds a lazy handshake may take (default: none;
---                     the conn's deadlines still apply)
--- Returns the config, or nil, err (matching tls.CONFIG) when a certificate
--- or key cannot be used.
function M.server_config(opts)
  check_opts(opts, SERVER_OPTS, "tls.server_config", 3)
  local ctx = new_ctx(true)
  local ok, err = load_identity(ctx, opts, "tls.server_config", 3)
  if ok == nil then return nil, err end
  if ok == false then
    error("bad argument 'opts' to tls.server_config: cert and key (or cert_pem and key_pem) required", 2)
  end
  set_common(ctx, opts, "tls.server_config", 3)
  local cfg = setmetatable({ ctx = ctx, is_server = true, children = {},
                             handshake_timeout = opts.handshake_timeout }, Config)
  if opts.client_auth ~= nil then
    local mode = ({ request = C.LB_TLS_VERIFY_PEER, require = C.LB_TLS_VERIFY_REQUIRE })[opts.client_auth]
    if not mode then error("bad argument 'opts.client_auth' to tls.server_config: \"request\" or \"require\" expected", 2) end
    if not opts.client_ca_file and not opts.client_ca_pem then
      error("bad argument 'opts' to tls.server_config: client_auth needs client_ca_file or client_ca_pem", 2)
    end
    C.lb_tls_ctx_set_verify(ctx, mode)
  end
  if opts.client_ca_file and C.lb_tls_ctx_load_ca_file(ctx, opts.client_ca_file) ~= 0 then
    return nil, ctx_error(ctx, opts.client_ca_file)
  end
  if opts.client_ca_pem and C.lb_tls_ctx_load_ca_pem(ctx, opts.client_ca_pem, #opts.client_ca_pem) ~= 0 then
    return nil, ctx_error(ctx)
  end
  if opts.sni then
    for name, o in pairs(opts.sni) do
      if type(name) ~= "string" then error("bad argument 'opts.sni' to tls.server_config: names must be strings", 2) end
      check_opts(o, SNI_OPTS, "tls.server_config (sni " .. name .. ")", 3)
      local child = new_ctx(true)
      local cok, cerr = load_identity(child, o, "tls.server_config", 3)
      if cok == nil then return nil, errors.wrap(cerr, "sni %s", name) end
      if cok == false then
        error(("bad argument 'opts.sni' to tls.server_config: %s: cert and key required"):format(name), 2)
      end
      set_common(child, o, "tls.server_config", 3)
      if C.lb_tls_ctx_add_sni(ctx, name, child) ~= 0 then
        error(("bad argument 'opts.sni' to tls.server_config: invalid name %q"):format(name), 2)
      end
      cfg.children[name] = child
    end
  end
  return cfg
end

--- A client configuration. opts:
---   ca_file, ca_pem   trust these CAs (default: the system store)
---   system_ca         also trust the system store with ca_file / ca_pem
---   server_name       name to send as SNI and to verify (default: the host
---                     given to tls.dial)
---   alpn              protocols to offer ({ "http/1.1" })
---   insecure_skip_verify  accept any certificate (tests only!)
---   cert, key / cert_pem, key_pem, chain / chain_pem  a client certificate
---   min_version, max_version, handshake_timeout   as for servers
--- Returns the config, or nil, err (matching tls.CONFIG).
function M.client_config(opts)
  opts = opts or {}
  check_opts(opts, CLIENT_OPTS, "tls.client_config", 3)
  local ctx = new_ctx(false)
  local ok, err = load_identity(ctx, opts, "tls.client_config", 3)
  if ok == nil then return nil, err end
  set_common(ctx, opts, "tls.client_config", 3)
  if opts.ca_file and C.lb_tls_ctx_load_ca_file(ctx, opts.ca_file) ~= 0 then
    return nil, ctx_error(ctx, opts.ca_file)
  end
  if opts.ca_pem and C.lb_tls_ctx_load_ca_pem(ctx, opts.ca_pem, #opts.ca_pem) ~= 0 then
    return nil, ctx_error(ctx)
  end
  if opts.system_ca and C.lb_tls_ctx_use_system_ca(ctx) ~= 0 then return nil, ctx_error(ctx) end
  if opts.insecure_skip_verify then C.lb_tls_ctx_set_verify(ctx, C.LB_TLS_VERIFY_NONE) end
  return setmetatable({ ctx = ctx, is_server = false, server_name = opts.server_name,
                        insecure = opts.insecure_skip_verify or false,
                        handshake_timeout = opts.handshake_timeout }, Config)
end

-- A config argument: a Config, or an options table turned into one.
local function get_config(v, is_server, fname)
  if is_config(v) then
    if v.is_server ~= is_server then
      error(("bad argument 'config' to %s: %s config expected"):format(fname, is_server and "server" or "client"), 3)
    end
    return v
  end
  if v == nil and not is_server then v = {} end
  if type(v) ~= "table" then arg_error(fname, "config", "tls config or options table", v) end
  if is_server then return M.server_config(v) end
  return M.client_config(v)
end

---------------------------------------------------------------------------
-- Conns
---------------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn
M.Conn = Conn

local function tls_error(self, rc, kind)
  local n = self.t and tonumber(C.lb_tls_last_error(self.t, sbuf, ERROR_MAX)) or 0
  local msg = n > 0 and ffi_string(sbuf, n) or core.strerror(rc)
  if rc == LB_ETLSVERIFY then
    return errors.with_kind(kind, errors.with_kind(M.VERIFY, nil, (msg:gsub("^certificate verify failed: ", ""))))
  end
  return errors.with_kind(kind, nil, msg)
end

-- Sends what the core has pending, once. The caller holds wlock. true,
-- or nil, err.
local function send_pending(self, t)
  self.defer_out = false
  local n = tonumber(C.lb_tls_pending_out(t))
  if n == 0 then return true end
  local p, cap = obuf:reserve(n)
  obuf:commit(tonumber(C.lb_tls_take_out(t, p, cap)))
  -- (obuf is shared: both ways empty it before any wait)
  local ok, err
  local inner = self.conn
  if type(inner.write_buffer) == "function" then ok, err = inner:write_buffer(obuf)
  else ok, err = self.conn:write(obuf:get()) end
  if not ok then
    obuf:reset()
    self.werr = self.werr or err
    return nil, err
  end
  return true
end

-- Sends all pending ciphertext. The caller holds wlock. No loop in the
-- usual case (one send): a loop here would become a root trace of its
-- own, which returns into its callers through the interpreter.
local function flush_locked(self)
  local t = self.t
  if t == nil then return nil, CLOSED end
  local ok, err = send_pending(self, t)
  if not ok then return nil, err end
  t = self.t
  if t == nil then return nil, CLOSED end
  if C.lb_tls_pending_out(t) == 0 then return true end
  -- The reader made more while the send waited: send until none is left.
  while true do
    ok, err = send_pending(self, t)
    if not ok then return nil, err end
    t = self.t
    if t == nil then return nil, CLOSED end
    if C.lb_tls_pending_out(t) == 0 then return true end
  end
end

-- The write lock, in the conn's wlock field: false (free), true (held,
-- nobody waiting) or, from the first time a task had to wait for it, a
-- lowbit.mutex that holds the state from then on. Most conns never see
-- two writers at once: they get no mutex (a table less per connection).
local function wlock(self)
  local m = self.wlock
  if m == false then self.wlock = true; return end
  if m == true then
    m = lowbit.mutex()
    m:try_lock() -- (stands for the task holding the lock now)
    self.wlock = m
  end
  m:lock()
end

local function wtry_lock(self)
  local m = self.wlock
  if m == false then self.wlock = true; return true end
  if m == true then return false end
  return m:try_lock()
end

local function wunlock(self)
  local m = self.wlock
  if m == true then self.wlock = false
  elseif m then m:unlock()
  else error("tls: unlock of a free write lock", 2) end
end

-- From the reader: send what the core produced (answers to post-handshake
-- messages) unless a writer is busy, which then sends it with its own
-- bytes (it loops until nothing is pending).
local function flush_try(self)
  if self.t and not self.defer_out and C.lb_tls_pending_out(self.t) > 0 and wtry_lock(self) then
    flush_locked(self)
    wunlock(self)
  end
end

local function new_conn(inner, cfg, is_server, server_name)
  local t = C.lb_tls_new(cfg.ctx, is_server and 1 or 0, server_name)
  if t == nil then error("tls: out of memory", 3) end
  -- A wrapped conn that exposes its read buffer (TCP) is read in place.
  local ib = false
  if type(inner.fill) == "function" and type(inner.read_buffer) == "function" then ib = inner:read_buffer() end
  -- Sixteen fields, the deadlines included (servers set them on every
  -- request): a table of 16 hash slots, half the size of 17 to 32. head
  -- is a server's first bytes ("" at first), false on a client: it tells
  -- the side. (Whether the wrapped conn writes string.buffers is asked
  -- when sending; wclosed is CLOSING while close sends close_notify.)
  return setmetatable({ conn = inner, t = ffi_gc(t, C.lb_tls_free), cfg = cfg,
                        rbuf = buffer.new(), inner_buf = ib, defer_out = false, hs_done = false, closed = false,
                        reading = false, rerr = false, werr = false, wclosed = false, head = is_server and "" or false,
                        wlock = false, rdeadline = nil, wdeadline = nil }, Conn)
end

local function check_conn(c, fname)
  local tc = type(c)
  if (tc ~= "table" and tc ~= "userdata") or type(c.read) ~= "function" or type(c.write) ~= "function" then
    arg_error(fname, "conn", "conn", c)
  end
end

--- Wraps conn as the server side of TLS. The handshake runs on the first
--- read or write, or by calling handshake(ctx).
function M.server(conn, config)
  check_conn(conn, "tls.server")
  local cfg, err = get_config(config, true, "tls.server")
  if not cfg then return nil, err end
  return new_conn(conn, cfg, true, nil)
end

--- Wraps conn as the client side of TLS. config: a client config or its
--- options; config.server_name is required unless insecure_skip_verify.
function M.client(conn, config, server_name)
  check_conn(conn, "tls.client")
  if server_name ~= nil and type(server_name) ~= "string" then arg_error("tls.client", "server_name", "string or nil", server_name) end
  local cfg, err = get_config(config, false, "tls.client")
  if not cfg then return nil, err end
  server_name = server_name or cfg.server_name
  if not server_name and not cfg.insecure then
    error("bad argument 'config' to tls.client: server_name is required unless insecure_skip_verify is set", 2)
  end
  return new_conn(conn, cfg, false, server_name)
end

-- The first five bytes of a request line, as Go's net/http tells plain
-- HTTP from a TLS record header.
local HTTP_HEADS = { ["GET /"] = true, ["HEAD "] = true, ["POST "] = true, ["PUT /"] = true, ["OPTIO"] = true }

-- A server keeps the first five bytes it was sent, to tell plain HTTP.
local function note_head(self, p, len)
  local head = self.head
  if head == "" and len >= 5 then
    self.head = ffi_string(p, 5) -- (the usual case: one string, no concatenation)
  elseif head and #head < 5 and len > 0 then
    self.head = head .. ffi_string(p, len < 5 - #head and len or 5 - #head)
  end
end

-- Feeds what the wrapped conn has buffered. Returns its byte count.
local function feed_buffered(t, ib)
  local p, len = ib:ref()
  if len > 0 then
    C.lb_tls_feed(t, p, len)
    ib:reset()
  end
  return len
end

local handshake_wait

-- One step of the handshake: the core goes as far as its input allows,
-- and what it produced is sent. Then done, or (by a tail call, not a loop)
-- wait for the peer's next flight: a loop here would become the trace, and
-- the handshake's callers would be left to the interpreter (a root trace
-- started at their entry aborted on reaching it).
local function handshake_step(self)
  local t = self.t
  if t == nil then return nil, CLOSED end
  -- A server speaks second: with nothing received yet, there is nothing
  -- for the core to do (no call, no flush: wait for the ClientHello).
  if self.head == "" then return handshake_wait(self) end
  local rc = C.lb_tls_handshake(t)
  -- Plain HTTP gets no alert (as from Go): the HTTP server answers it.
  if rc ~= 0 and rc ~= LB_EAGAIN and self.head and HTTP_HEADS[self.head] then
    return nil, errors.with_kind(M.HANDSHAKE, M.PLAIN_HTTP)
  end
  if rc == 0 and self.head and C.lb_tls_version_id(t) == TLS13 then
    -- All a TLS 1.3 server has left to send is its session tickets,
    -- which nobody waits for: they go with the first write (or close)
    -- instead of a write of their own on every connection.
    self.defer_out = true
    return true
  end
  -- Send what the core produced, alerts included: the peer should learn
  -- why the handshake failed.
  local fok, ferr = flush_locked(self) -- (Conn:handshake holds wlock)
  if self.closed then return nil, CLOSED end
  if rc == 0 then
    if not fok then return nil, errors.with_kind(M.HANDSHAKE, ferr) end
    return true
  elseif rc == LB_EAGAIN then
    if not fok then return nil, errors.with_kind(M.HANDSHAKE, ferr) end
    return handshake_wait(self)
  end
  return nil, tls_error(self, rc, M.HANDSHAKE)
end

-- Feeds the bytes buffered in the wrapped conn (in place, as reads do),
-- then steps on.
local function handshake_feed(self, ib)
  note_head(self, ib:ref())
  feed_buffered(self.t, ib)
  return handshake_step(self)
end

-- Waits for the peer's next flight (bytes already there first), then
-- feeds it and steps on. What follows the wait runs interpreted until it
-- calls a compiled function: it is kept short.
function handshake_wait(self)
  local ib, data, err = self.inner_buf, nil, nil
  if ib then
    if #ib == 0 then data, err = self.conn:fill() else data = true end
    if self.closed then return nil, CLOSED end
    if not data then return nil, errors.with_kind(M.HANDSHAKE, err) end
    return handshake_feed(self, ib)
  end
  data, err = self.conn:read()
  if self.closed then return nil, CLOSED end
  if not data then return nil, errors.with_kind(M.HANDSHAKE, err) end
  note_head(self, data, #data)
  C.lb_tls_feed(self.t, data, #data)
  return handshake_step(self)
end

-- A task that ends a handshake bounded by ctx when ctx is done: returns
-- the channel that stops it. (A function of its own: a closure made in
-- run_handshake would make its return close upvalues, which LuaJIT cannot
-- compile, and every handshake's way back to its caller ran interpreted.)
local function watch_ctx(self, ctx, inner)
  local stop = lowbit.chan(0)
  lowbit.go(function()
    if lowbit.select({ ctx:done(), stop }) == 1 and not self.closed then
      inner:set_deadline(now() - 1) -- wakes the blocked read or write
    end
  end)
  return stop
end

local function run_handshake(self, ctx)
  local limit = ctx and ctx:deadline()
  local hto = self.cfg.handshake_timeout
  if hto then limit = min(limit or math.huge, now() + hto) end
  local inner = self.conn
  if limit then
    inner:set_read_deadline(min(self.rdeadline or math.huge, limit))
    inner:set_write_deadline(min(self.wdeadline or math.huge, limit))
  end
  local stop
  if ctx and ctx ~= context.background() then stop = watch_ctx(self, ctx, inner) end
  local ok, err = handshake_step(self)
  if stop then stop:close() end
  if (limit or stop) and not self.closed then
    inner:set_read_deadline(self.rdeadline)
    inner:set_write_deadline(self.wdeadline)
  end
  if not ok and ctx and ctx:err() and not self.closed then
    err = errors.with_kind(M.HANDSHAKE, ctx:err())
  end
  return ok, err
end

--- Runs the handshake now (otherwise the first read or write does). ctx
--- (optional) bounds it: on cancellation or its deadline it returns nil,
--- err matching tls.HANDSHAKE and ctx:err(). A failed handshake leaves
--- the conn unusable (close it). Returns true or nil, err.
function Conn:handshake(ctx)
  if ctx ~= nil then check_ctx(ctx, "conn:handshake") end
  if self.closed then return nil, CLOSED end
  if self.hs_done then return true end
  if self.hs_err then return nil, self.hs_err end
  if ctx and ctx:err() then return nil, errors.with_kind(M.HANDSHAKE, ctx:err()) end
  -- The handshake holds the write lock (no lock of its own per conn):
  -- nothing else takes it before the handshake is done (writes and
  -- close_write run the handshake first, close sends close_notify only
  -- after one), and the handshake's own sends need it anyway.
  wlock(self)
  local ok, err
  if self.closed then
    ok, err = nil, CLOSED
  elseif self.hs_done then
    ok = true
  elseif self.hs_err then
    err = self.hs_err
  else
    ok, err = run_handshake(self, ctx)
    if ok then self.hs_done = true
    elseif err ~= CLOSED then self.hs_err = err end
  end
  wunlock(self)
  return ok, err
end

-- Reading: ciphertext goes from the wrapped conn's read buffer straight
-- into the core (TCP conns expose theirs: no Lua string per record), and
-- plaintext from the core into self.rbuf, which parsers read in place
-- (fill / read_buffer, as on TCP conns). The work after a wait is done in
-- functions of their own: LuaJIT runs code that follows a resume
-- interpreted until it calls into a compiled function.

-- Decrypts what the core can into rbuf. Returns the core's result: a
-- count (> 0), 0 at close_notify, or a negative code. rbuf grows only by
-- what may come (a string.buffer's memory counts for the GC: a fixed 16
-- KiB per conn would make it run far more often).
local function decrypt(t, rbuf)
  local want = tonumber(C.lb_tls_read_bound(t))
  local p, cap = rbuf:reserve(want > 0 and want or 1)
  local n = tonumber(C.lb_tls_read(t, p, cap))
  if n > 0 then rbuf:commit(n) end
  return n
end

-- Feeds what the wrapped conn has read, decrypts what it can into rbuf
-- and sends what the core produced (post-handshake answers). Returns the
-- core's result: a count (> 0), 0 at close_notify, or a negative code.
-- It runs right after the wait for input: as a function of its own it is
-- compiled from its entry (see the top of this section).
local function step(self, t)
  local ib = self.inner_buf
  if ib and #ib > 0 then feed_buffered(t, ib) end
  local n = decrypt(t, self.rbuf)
  if C.lb_tls_pending_out(t) > 0 then flush_try(self) end
  return n
end

-- Waits for ciphertext from the wrapped conn (fed by the next step).
-- true, or nil, err (the conn's error; EOF inside a record is
-- UNEXPECTED_EOF).
local function await_input(self)
  local data, err
  if self.inner_buf then
    data, err = self.conn:fill()
  else
    data, err = self.conn:read()
    if data and not self.closed then C.lb_tls_feed(self.t, data, #data) end
  end
  if self.closed then return nil, CLOSED end
  if data then return true end
  -- The peer closed the transport without close_notify: EOF at a record
  -- boundary (as Go does), UNEXPECTED_EOF inside a record.
  if err == EOF and C.lb_tls_partial_input(self.t) ~= 0 then err = UNEXPECTED_EOF end
  if err ~= TIMEOUT then self.rerr = err end
  return nil, err
end

-- The result of a step that decrypted nothing: true to wait for input,
-- or nil, err.
local function no_plaintext(self, n)
  if n == 0 then
    self.rerr = EOF -- the peer's close_notify
    return nil, EOF
  elseif n == LB_EAGAIN then
    return true
  end
  self.rerr = tls_error(self, n, M.PROTOCOL)
  return nil, self.rerr
end

local fill_wait

-- Adds at least one byte of plaintext to self.rbuf. true or nil, err.
-- fill_loop and fill_wait repeat by tail calls rather than a loop: a
-- trace LuaJIT starts at conn:fill would reach that loop on nearly every
-- request (the next request is rarely there yet) and abort as "inner loop
-- in root trace", until conn:fill was blacklisted and ran interpreted.
local function fill_loop(self)
  if self.closed then return nil, CLOSED end
  if self.rerr then return nil, self.rerr end
  local n = step(self, self.t)
  if n > 0 then return true end
  return fill_wait(self, n)
end

-- After a step that decrypted nothing (its result n): waits for input and
-- steps again.
function fill_wait(self, n)
  local ok, err = no_plaintext(self, n)
  if not ok then return nil, err end
  ok, err = await_input(self)
  if not ok then return nil, err end
  return fill_loop(self)
end

local function fill(self, fname)
  if self.closed then return nil, CLOSED end
  if not self.hs_done then
    local ok, err = self:handshake()
    if not ok then return nil, err end
  end
  if self.reading then error(fname .. ": another task is already reading this conn", 3) end
  self.reading = true
  local ok, err = fill_loop(self)
  self.reading = false
  return ok, err
end

--- Returns up to max bytes of plaintext (at least one; nil: what is
--- there, up to READ_CHUNK), or nil, errors.EOF after the peer's
--- close_notify, or nil, err.
function Conn:read(max)
  if max ~= nil and (type(max) ~= "number" or max < 1) then arg_error("conn:read", "max", "positive number or nil", max) end
  if self.closed then return nil, CLOSED end
  local rbuf = self.rbuf
  if #rbuf == 0 then
    local ok, err = fill(self, "conn:read")
    if not ok then return nil, err end
  end
  local chunk = M.READ_CHUNK
  return rbuf:get((max and max < chunk) and max or chunk)
end

--- Waits until more plaintext is buffered (without taking any) and
--- returns the read buffer (a string.buffer to consume from), or nil, err.
function Conn:fill()
  local ok, err = fill(self, "conn:fill")
  if not ok then return nil, err end
  return self.rbuf
end

--- The read buffer (plaintext received, not yet read).
function Conn:read_buffer() return self.rbuf end

Conn.read_full = net.read_full

--- Bytes readable without waiting (unread bytes and decrypted plaintext).
function Conn:buffered()
  return #self.rbuf + (self.t and tonumber(C.lb_tls_readable(self.t)) or 0)
end

--- Puts s back in front of the unread plaintext.
function Conn:unread(s)
  if type(s) ~= "string" then arg_error("conn:unread", "s", "string", s) end
  if #s == 0 then return end
  local rest = self.rbuf:get()
  self.rbuf:put(s, rest)
end

local function check_data(data, fname)
  local t = type(data)
  if t == "string" then return data end
  if t ~= "table" then arg_error(fname, "data", "string or array of strings", data) end
  for i = 1, #data do
    if type(data[i]) ~= "string" then
      error(("bad argument 'data' to %s: element %d is %s, string expected"):format(fname, i, type(data[i])), 3)
    end
  end
  return concat(data)
end

-- wclosed while close sends close_notify (the only wait of a close).
local CLOSING = "closing"

local EPIPE = errors.from_uv("EPIPE: write after close_write", "EPIPE", "write")

-- The checks a write makes before taking the lock: nil, or nil, err.
local function write_check(self)
  if self.closed then return nil, CLOSED end
  if self.werr then return nil, self.werr end
  if self.wclosed then return nil, EPIPE end
  if not self.hs_done then
    local ok, err = self:handshake()
    if not ok then return nil, err end
  end
  local wd = self.wdeadline
  if wd and wd <= now() then return nil, TIMEOUT end
  return true
end

-- Encrypts k bytes at p and sends them. true or nil, err.
local function write_chunk(self, p, k)
  if self.closed then return nil, CLOSED end
  if self.werr then return nil, self.werr end
  if self.wclosed then return nil, EPIPE end
  local n = tonumber(C.lb_tls_write(self.t, p, k))
  if n < 0 then
    self.werr = tls_error(self, n, M.PROTOCOL)
    return nil, self.werr
  end
  return flush_locked(self)
end

-- Encrypts and sends total bytes at p (kept alive by the caller): in
-- WRITE_CHUNK pieces, so that the ciphertext waiting in memory stays
-- bounded. (No loop for one piece: see flush_locked.)
local function write_locked(self, p, total)
  local chunk = M.WRITE_CHUNK
  if total <= chunk then return write_chunk(self, p, total) end
  local off = 0
  while off < total do
    local k = min(chunk, total - off)
    local ok, err = write_chunk(self, p + off, k)
    if not ok then return nil, err end
    off = off + k
  end
  return true
end

--- Encrypts and sends a string or an array of strings; returns the number
--- of plaintext bytes, or nil, err.
function Conn:write(data)
  local s = check_data(data, "conn:write")
  local ok, err = write_check(self)
  if not ok then return nil, err end
  local total = #s
  if total == 0 then return 0 end
  wlock(self)
  ok, err = write_locked(self, ffi_cast("const char *", s), total)
  wunlock(self)
  if not ok then return nil, err end
  return total
end

--- Encrypts, sends and empties a string.buffer (servers build responses
--- in one). Same results as write(buf:get()), without that string.
function Conn:write_buffer(buf)
  local ok, err = write_check(self)
  if not ok then return nil, err end
  local total = #buf
  if total == 0 then return 0 end
  wlock(self)
  local p = buf:ref()
  ok, err = write_locked(self, p, total)
  wunlock(self)
  buf:reset()
  if not ok then return nil, err end
  return total
end

--- The last bytes this side sends: encrypts and empties a string.buffer,
--- queues close_notify after it and sends both in one write (a server's
--- response that ends the connection: one write and one TCP segment less
--- than write_buffer then close_write). Returns the plaintext byte count,
--- or nil, err; this side may go on reading.
function Conn:write_buffer_close(buf)
  local total = #buf
  if total > M.WRITE_CHUNK then -- (written piece by piece: no gain)
    local n, err = self:write_buffer(buf)
    if not n then return nil, err end
    local ok, cerr = self:close_write()
    if not ok then return nil, cerr end
    return n
  end
  local ok, err = write_check(self)
  if not ok then return nil, err end
  wlock(self)
  local p = buf:ref()
  if self.closed then
    ok, err = nil, CLOSED
  elseif self.werr or self.wclosed then
    ok, err = nil, self.werr or EPIPE
  else
    local t = self.t
    local n = total > 0 and tonumber(C.lb_tls_write(t, p, total)) or 0
    if n < 0 then
      self.werr = tls_error(self, n, M.PROTOCOL)
      ok, err = nil, self.werr
    else
      local rc = C.lb_tls_shutdown(t)
      if rc ~= 0 then
        self.werr = tls_error(self, rc, M.PROTOCOL)
        ok, err = nil, self.werr
      else
        self.wclosed = true
        ok, err = flush_locked(self)
      end
    end
  end
  wunlock(self)
  buf:reset()
  if not ok then return nil, err end
  return total
end

--- Sends close_notify: the peer reads EOF; this side may go on reading.
function Conn:close_write()
  if self.closed then return nil, CLOSED end
  if self.wclosed then return true end
  if not self.hs_done then
    local ok, err = self:handshake()
    if not ok then return nil, err end
  end
  wlock(self)
  local ok, err
  if self.closed then
    ok, err = nil, CLOSED
  else
    local rc = C.lb_tls_shutdown(self.t)
    if rc ~= 0 then
      ok, err = nil, tls_error(self, rc, M.PROTOCOL)
    else
      self.wclosed = true
      ok, err = flush_locked(self)
    end
  end
  wunlock(self)
  if not ok then return nil, err end
  return true
end

--- Sends close_notify (when no write is in progress; waiting at most
--- CLOSE_NOTIFY_TIMEOUT) and closes the wrapped conn. Tasks blocked in
--- read or write return errors.CLOSED.
function Conn:close()
  if self.closed or self.wclosed == CLOSING then return nil, CLOSED end
  local t = self.t
  if self.hs_done and not self.wclosed and not self.werr and lowbit.current() and wtry_lock(self) then
    if C.lb_tls_shutdown(t) == 0 then
      self.wclosed = CLOSING -- (true to writes; a second close returns CLOSED)
      local limit = now() + M.CLOSE_NOTIFY_TIMEOUT
      self.conn:set_write_deadline(min(self.wdeadline or limit, limit))
      flush_locked(self)
    end
    wunlock(self)
  end
  self.closed = true
  self.t = nil
  ffi_gc(t, nil)
  C.lb_tls_free(t)
  self.conn:close()
  return true
end

function Conn:set_read_deadline(t)
  check_deadline(t, "conn:set_read_deadline")
  self.rdeadline = t
  self.conn:set_read_deadline(t)
  return true
end

function Conn:set_write_deadline(t)
  check_deadline(t, "conn:set_write_deadline")
  self.wdeadline = t
  self.conn:set_write_deadline(t)
  return true
end

function Conn:set_deadline(t)
  check_deadline(t, "conn:set_deadline")
  self:set_read_deadline(t)
  return self:set_write_deadline(t)
end

function Conn:local_addr() return self.conn:local_addr() end
function Conn:remote_addr() return self.conn:remote_addr() end

local function text(fn, t)
  if t == nil then return nil end
  local n = tonumber(fn(t, sbuf, ERROR_MAX))
  if n <= 0 then return nil end
  return ffi_string(sbuf, n)
end

--- The negotiated ALPN protocol ("http/1.1"), or nil.
function Conn:alpn() return text(C.lb_tls_alpn, self.t) end

--- The negotiated version ("TLSv1.3"), or nil before the handshake.
function Conn:version()
  if self.t == nil then return nil end
  local v = ffi_string(C.lb_tls_version(self.t))
  return v ~= "" and v or nil
end

--- Server: the SNI name the client sent; client: the name verified.
function Conn:server_name() return text(C.lb_tls_server_name, self.t) end

--- The peer certificate's subject ("CN=localhost"), or nil.
function Conn:peer_subject() return text(C.lb_tls_peer_subject, self.t) end

--- The wrapped conn.
function Conn:inner() return self.conn end

function Conn:__tostring()
  return ("tls %s conn %s -> %s%s"):format(self.head and "server" or "client", tostring(self:local_addr()),
    tostring(self:remote_addr()), self.closed and " (closed)" or "")
end

---------------------------------------------------------------------------
-- Dial and listen
---------------------------------------------------------------------------

--- Dials "host:port" over TCP and runs the client handshake, all bounded
--- by ctx. The server name (SNI and verification) is config.server_name
--- or the host part of addr. config: a client config, its options, or nil
--- (system CAs). Returns a conn or nil, err.
function M.dial(ctx, addr, config)
  ctx = check_ctx(ctx, "tls.dial")
  if type(addr) ~= "string" then arg_error("tls.dial", "addr", "string", addr) end
  local cfg, cerr = get_config(config, false, "tls.dial")
  if not cfg then return nil, cerr end
  local host, perr = net.split_host_port(addr)
  if not host then return nil, errors.wrap(perr, "dial tls") end
  local raw, err = net.dial(ctx, addr)
  if not raw then return nil, err end
  local name = cfg.server_name or (host ~= "" and host or "127.0.0.1")
  local c = new_conn(raw, cfg, false, name)
  local ok, herr = c:handshake(ctx)
  if not ok then
    c:close()
    return nil, herr
  end
  return c
end

local Listener = {}
Listener.__index = Listener
M.Listener = Listener

--- Wraps a listener (anything with accept(ctx), addr(), close()) so that
--- accept returns TLS server conns.
function M.new_listener(ln, config)
  if type(ln) ~= "table" or type(ln.accept) ~= "function" then arg_error("tls.new_listener", "ln", "listener", ln) end
  local cfg, err = get_config(config, true, "tls.new_listener")
  if not cfg then return nil, err end
  return setmetatable({ ln = ln, cfg = cfg }, Listener)
end

--- Listens on "host:port" (opts as for net.listen). accept returns TLS
--- conns whose handshake runs lazily (bounded by their deadlines and
--- config.handshake_timeout).
function M.listen(addr, config, opts)
  if type(addr) ~= "string" then arg_error("tls.listen", "addr", "string", addr) end
  local cfg, err = get_config(config, true, "tls.listen")
  if not cfg then return nil, err end
  local ln, lerr = net.listen(addr, opts)
  if not ln then return nil, lerr end
  return setmetatable({ ln = ln, cfg = cfg }, Listener)
end

function Listener:accept(ctx)
  local c, err = self.ln:accept(ctx)
  if not c then return nil, err end
  return new_conn(c, self.cfg, true, nil)
end

function Listener:addr() return self.ln:addr() end
function Listener:port() return self.ln:port() end
function Listener:close() return self.ln:close() end
function Listener:__tostring() return "tls listener " .. tostring(self:addr()) end

return M
