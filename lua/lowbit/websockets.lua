-- lowbit.websockets: RFC 6455 WebSocket connections with RFC 7692
-- permessage-deflate, on any conn (TCP, TLS, a pipe), framed by the lb_ws
-- C core and compressed by lb_deflate.
--
--   -- server (inside an HTTP handler)
--   local c, err = websockets.accept(w, r, { subprotocols = { "chat" } })
--   if not c then return end            -- the refusal was written to w
--   local buf = require("string.buffer").new()
--   while true do
--     buf:reset()                           -- (read_message releases an empty
--     local msg, op = c:read_message(buf)  -- buf's memory when idle)
--     if not msg then break end             -- op is nil; see the error's code
--     c:write_message(op, msg)
--   end
--
--   -- client
--   local c = assert(websockets.dial("ws://127.0.0.1:8080/ws"))
--   c:write_message(websockets.TEXT, "hello")
--   print(c:read_message())
--   c:close()
--
-- read_message answers pings, ignores unsolicited pongs, reassembles
-- fragments, inflates, validates UTF-8 and runs the close handshake; it
-- returns nil, err once the connection is over, where err.code is the close
-- code (the peer's, ours when we failed the connection, 1006 when the
-- connection dropped without a Close) and err.reason its reason. Errors:
-- websockets.CLOSED (a close handshake took place), PROTOCOL_ERROR (1002
-- and the other codes of a peer breaking the protocol), INVALID_DATA (1007),
-- MESSAGE_TOO_BIG (1009), or the I/O error (errors.EOF for a dropped
-- connection) with code 1006.
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local core = require "lowbit.core"
local cooper = require "lowbit.cooper"
local headers = require "lowbit.http.headers"
local buffer = require "string.buffer"

local C, ffi = core.C, core.ffi
local ffi_string, ffi_copy, ffi_cast = ffi.string, ffi.copy, ffi.cast
local type, error, tostring, tonumber, setmetatable, getmetatable, pcall =
  type, error, tostring, tonumber, setmetatable, getmetatable, pcall
local concat = table.concat
local now = lowbit.now
local timer_add, timer_cancel = lowbit._timer_add, lowbit._timer_cancel

local parse_header, msg_frame, ws_mask, build_header =
  C.lb_ws_parse_header, C.lb_ws_msg_frame, C.lb_ws_mask, C.lb_ws_build_header
local utf8_validate, utf8_finish, utf8_check = C.lb_utf8_validate, C.lb_utf8_finish, C.lb_utf8_check


local M = {}

--- Opcodes.
M.CONTINUATION, M.TEXT, M.BINARY, M.CLOSE, M.PING, M.PONG = 0, 1, 2, 8, 9, 10

--- Read limits (bytes of one message, after inflating).
M.READ_LIMIT_SMALL = 64 * 1024           -- events, commands, small updates
M.READ_LIMIT_STANDARD = 1024 * 1024      -- typical JSON payloads (the default)
M.READ_LIMIT_LARGE = 16 * 1024 * 1024    -- uploads, large documents

--- Chunk sizes: the frame size stream_message uses by default.
M.CHUNK_SIZE_LOW_MEMORY = 4096           -- many connections (the default)
M.CHUNK_SIZE_BALANCED = 8192             -- typical web payloads
M.CHUNK_SIZE_STREAMING = 32768           -- bulk transfers (DEFLATE's window size)

--- Close codes.
M.CLOSE_NORMAL, M.CLOSE_GOING_AWAY, M.CLOSE_PROTOCOL_ERROR, M.CLOSE_UNSUPPORTED = 1000, 1001, 1002, 1003
M.CLOSE_NO_STATUS, M.CLOSE_ABNORMAL, M.CLOSE_INVALID_DATA, M.CLOSE_POLICY = 1005, 1006, 1007, 1008
M.CLOSE_TOO_BIG, M.CLOSE_EXTENSION, M.CLOSE_INTERNAL = 1009, 1010, 1011

--- Errors (each returned error also has fields code and reason).
M.CLOSED = errors.new("websocket: closed")
M.PROTOCOL_ERROR = errors.new("websocket: protocol error")
M.INVALID_DATA = errors.new("websocket: invalid data")
M.MESSAGE_TOO_BIG = errors.new("websocket: message too big")
M.BAD_HANDSHAKE = cooper.BAD_HANDSHAKE

--- Seconds close() waits for the peer's Close (and a client for the
--- server to end TCP) before closing the conn anyway.
M.CLOSE_TIMEOUT = 5
--- Seconds a failed connection keeps reading (discarding) after its Close
--- frame, so the peer gets the frame before the TCP connection ends.
M.FAIL_LINGER = 1

local TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10
local EAGAIN = -1
local LB_EUTF8, LB_EDEFLATE, LB_ETOOLARGE = C.LB_EUTF8, C.LB_EDEFLATE, C.LB_ETOOLARGE
local F_SERVER, F_CLIENT, F_RSV1 = C.LB_WS_SERVER, C.LB_WS_CLIENT, C.LB_WS_RSV1
local SYNC_TAIL = "\0\0\255\255"

local u8ptr = ffi.typeof("const uint8_t *")

local function arg_error(fname, name, expected, v)
  error(("bad argument '%s' to %s: %s expected, got %s"):format(name, fname, expected, type(v)), 3)
end

local function make_err(kind, code, reason, detail)
  local e = errors.with_kind(kind, nil, "%s", detail)
  e.code, e.reason = code, reason
  return e
end

--- Bytes of buffer a connection keeps. A frame larger than this is written
--- from the caller's string or buffer instead of being copied; the reading
--- buffers (read, reassembly, and an empty buffer given to read_message)
--- grown past it are released once the connection has waited IDLE_RELEASE
--- seconds for the next message. (The default compressor's buffers go
--- after each message unless at most 4 KiB.) An idle connection holds a
--- few KiB whatever it carried.
M.BUFFER_KEEP = 16 * 1024
--- Seconds a connection waits between messages before its reading buffers
--- grown past BUFFER_KEEP are released.
M.IDLE_RELEASE = 0.5
local KEEP = M.BUFFER_KEEP
local DIRECT_MAX = KEEP - 14      -- larger payloads: send_large
local SLICE = 256 * 1024          -- a server's large frame goes out in slices of this
local STAGE = 64 * 1024           -- a client masks a large frame in slices of this

-- Mask keys come from the CSPRNG, drawn 4 at a time from a pool.
local KPOOL = 1024
local kpool = ffi.new("uint8_t[?]", KPOOL)
local kpos = KPOOL

---------------------------------------------------------------------------
-- The default compressor: zlib through lb_deflate.
---------------------------------------------------------------------------

local Deflate = {}
Deflate.__index = Deflate
M.Deflate = Deflate

local function free_buf(b) C.lb_buf_free(b) end

local function to_params(t)
  local p = ffi.new("lb_deflate_params")
  if type(t) == "table" then
    p.server_no_context_takeover = t.server_no_context_takeover and 1 or 0
    p.client_no_context_takeover = t.client_no_context_takeover and 1 or 0
    p.server_max_window_bits = t.server_max_window_bits or 0
    p.client_max_window_bits = t.client_max_window_bits or 0
  end
  return p
end

local function from_params(p)
  return {
    server_no_context_takeover = p.server_no_context_takeover ~= 0,
    client_no_context_takeover = p.client_no_context_takeover ~= 0,
    server_max_window_bits = p.server_max_window_bits ~= 0 and tonumber(p.server_max_window_bits) or nil,
    client_max_window_bits = p.client_max_window_bits > 0 and tonumber(p.client_max_window_bits) or nil,
  }
end

--- The default compressor for agreed parameters (a table with
--- server_no_context_takeover, client_no_context_takeover,
--- server_max_window_bits, client_max_window_bits), seen from the server
--- (server = true) or the client; level: zlib level (default 1). Any object
--- with these methods can be injected instead (opts.compressor):
---   compress(self, s) -> payload | nil, err   a whole message (or one chunk
---        of a streamed message), deflated with a sync flush, minus the
---        trailing 00 00 ff ff (RFC 7692 7.2.1)
---   decompress(self, s, limit) -> message | nil, err   the payload of one
---        whole message; must not produce more than limit bytes (return
---        nil, err then)
---   reset(self, which)   which = "compress" | "decompress": drop that
---        direction's window; called before each message when the agreed
---        parameters ask for no context takeover in that direction
--- (the default compressor applies no context takeover itself).
function M.new_compressor(params, server, level)
  if params ~= nil and type(params) ~= "table" then arg_error("websockets.new_compressor", "params", "table or nil", params) end
  if level ~= nil and type(level) ~= "number" then arg_error("websockets.new_compressor", "level", "number or nil", level) end
  local p = to_params(params)
  local ctx = C.lb_deflate_new_from_params(p, server and 1 or 0, level or 1)
  if ctx == nil then return nil, errors.new("websocket: cannot create deflate context") end
  local self = setmetatable({
    ctx = ffi.gc(ctx, C.lb_deflate_free),
    zin = ffi.gc(ffi.new("lb_buf[1]"), free_buf),
    zout = ffi.gc(ffi.new("lb_buf[1]"), free_buf),
    params = params, server = server, level = level or 1,
  }, Deflate)
  return self
end

-- Fast paths (pointer in, pointer out; the result lives until the next call).
function Deflate:_deflate(p, n)
  local zout = self.zout
  C.lb_buf_reset(zout)
  local r = tonumber(C.lb_deflate_compress(self.ctx, p, n, zout))
  if r < 0 then return nil, r end
  return zout[0].data, r
end

function Deflate:_inflate(p, n, limit)
  local zin = self.zin
  C.lb_buf_reset(zin)
  local r = tonumber(C.lb_deflate_decompress(self.ctx, p, n, zin, limit or 0))
  if r < 0 then return nil, r end
  return zin[0].data, r
end

-- Releases the output buffer of one direction ("in": inflated data, "out":
-- deflated data) after a message, unless it is small: the connection then
-- holds no more than that between messages. (These are malloc'd: a fresh
-- one per message costs far less than the compression.)
local ZKEEP = 4096
function Deflate:_trim(which)
  local b = which == "in" and self.zin or self.zout
  if b[0].cap > ZKEEP then C.lb_buf_free(b) end
end

-- Appends the sync-flush tail (between chunks of a streamed message).
function Deflate:_tail()
  C.lb_buf_append(self.zout, SYNC_TAIL, 4)
  return self.zout[0].data, tonumber(self.zout[0].len)
end

function Deflate:compress(s)
  if type(s) ~= "string" then arg_error("compressor:compress", "s", "string", s) end
  local p, n = self:_deflate(s, #s)
  if not p then return nil, errors.new("websocket: deflate failed: " .. core.strerror(n)) end
  local z = ffi_string(p, n)
  self:_trim("out")
  return z
end

function Deflate:decompress(s, limit)
  if type(s) ~= "string" then arg_error("compressor:decompress", "s", "string", s) end
  local p, n = self:_inflate(s, #s, limit)
  if not p then
    if n == LB_ETOOLARGE then return nil, make_err(M.MESSAGE_TOO_BIG, 1009, "", "inflated message over the limit") end
    return nil, make_err(M.INVALID_DATA, 1007, "", core.strerror(n))
  end
  local m = ffi_string(p, n)
  self:_trim("in")
  return m
end

function Deflate:reset()
  local ctx = C.lb_deflate_new_from_params(to_params(self.params), self.server and 1 or 0, self.level)
  if ctx ~= nil then self.ctx = ffi.gc(ctx, C.lb_deflate_free) end
end

function Deflate:close()
  C.lb_buf_free(self.zin)
  C.lb_buf_free(self.zout)
end

---------------------------------------------------------------------------
-- Conn
---------------------------------------------------------------------------

local WS = {}
WS.__index = WS
M.Conn = WS

--- Wraps an already-upgraded conn. opts:
---   server       true on the server side (frames from the peer must be
---                masked, ours are not); default false (client: we mask)
---   read_limit   largest message accepted, after inflating
---                (READ_LIMIT_STANDARD); over it: fail with 1009
---   chunk_size   stream_message's default frame size (CHUNK_SIZE_LOW_MEMORY)
---   compression  the agreed permessage-deflate parameters (a table as for
---                new_compressor, or true for the defaults); nil/false: none
---   compressor   an object (see new_compressor) or a factory
---                function(params, server) -> object; default zlib
---   compression_level  zlib level for the default compressor (1)
---   subprotocol  the agreed subprotocol (c:subprotocol() returns it)
---   close_timeout  seconds (CLOSE_TIMEOUT)
---   on_pong      function(payload) called for each pong
function M.new(conn, opts)
  if type(conn) ~= "table" or type(conn.read) ~= "function" or type(conn.write) ~= "function" then
    arg_error("websockets.new", "conn", "conn", conn)
  end
  if opts ~= nil and type(opts) ~= "table" then arg_error("websockets.new", "opts", "table or nil", opts) end
  opts = opts or {}
  local limit = opts.read_limit or M.READ_LIMIT_STANDARD
  if type(limit) ~= "number" or limit < 1 then arg_error("websockets.new", "opts.read_limit", "positive number", limit) end
  if limit == math.huge then limit = 2 ^ 53 end
  local chunk = opts.chunk_size or M.CHUNK_SIZE_LOW_MEMORY
  if type(chunk) ~= "number" or chunk < 1 then arg_error("websockets.new", "opts.chunk_size", "positive number", chunk) end
  local ct = opts.close_timeout or M.CLOSE_TIMEOUT
  if type(ct) ~= "number" or ct < 0 then arg_error("websockets.new", "opts.close_timeout", "non-negative number", ct) end
  if opts.subprotocol ~= nil and type(opts.subprotocol) ~= "string" then
    arg_error("websockets.new", "opts.subprotocol", "string or nil", opts.subprotocol)
  end
  if opts.on_pong ~= nil and type(opts.on_pong) ~= "function" then arg_error("websockets.new", "opts.on_pong", "function", opts.on_pong) end
  local server = opts.server and true or false
  local params = opts.compression
  if params == true then params = {} end
  if params ~= nil and params ~= false and type(params) ~= "table" then
    arg_error("websockets.new", "opts.compression", "table, boolean or nil", params)
  end
  local comp
  if params then
    local cp = opts.compressor
    if type(cp) == "function" then comp = cp(params, server)
    elseif cp ~= nil then comp = cp
    else
      local cerr
      comp, cerr = M.new_compressor(params, server, opts.compression_level)
      if not comp then return nil, cerr end
    end
    if type(comp) ~= "table" and type(comp) ~= "userdata" or type(comp.compress) ~= "function"
      or type(comp.decompress) ~= "function" then
      arg_error("websockets.new", "opts.compressor", "compressor (compress, decompress, reset)", comp)
    end
  else
    params = nil
  end
  local inplace = conn.fill ~= nil and conn.read_buffer ~= nil
  local wire_limit = limit
  if comp then wire_limit = limit + math.floor(limit / 8) + 1024 end -- incompressible data grows a little
  local self = setmetatable({
    conn = conn, server = server, client = not server,
    inplace = inplace, ib = inplace and conn:read_buffer() or buffer.new(),
    mb = buffer.new(), ob = buffer.new(), zb = comp and buffer.new() or nil,
    h = ffi.new("lb_ws_header"), msg = ffi.new("lb_ws_msg"), u8 = ffi.new("lb_utf8_state"),
    cbuf = ffi.new("uint8_t[128]"),
    limit = limit, wire_limit = wire_limit, chunk_size = chunk, close_timeout = ct,
    pflags = (server and F_SERVER or F_CLIENT) + (comp and F_RSV1 or 0),
    comp = comp, params = params, fast_comp = comp and comp._inflate ~= nil,
    -- whether each direction resets its window per message
    our_reset = params and ((server and params.server_no_context_takeover) or (not server and params.client_no_context_takeover)) or false,
    peer_reset = params and ((server and params.client_no_context_takeover) or (not server and params.server_no_context_takeover)) or false,
    proto = opts.subprotocol, on_pong = opts.on_pong,
    wmu = lowbit.mutex(), large = false, q_pong = false, q_ping = false, q_close = false,
    rel = false, rel_buf = false,
    reading = false, sent_close = false, recv_close = false, conn_closed = false,
  }, WS)
  self.wbuf = type(conn.write_buffer) == "function"
  return self
end

function WS:subprotocol() return self.proto end
--- The agreed permessage-deflate parameters, or nil.
function WS:compression() return self.params end
function WS:underlying() return self.conn end
function WS:local_addr() return self.conn:local_addr() end
function WS:remote_addr() return self.conn:remote_addr() end
function WS:set_deadline(t) return self.conn:set_deadline(t) end
function WS:set_read_deadline(t) return self.conn:set_read_deadline(t) end
function WS:set_write_deadline(t) return self.conn:set_write_deadline(t) end
function WS:__tostring()
  return ("websocket %s %s"):format(self.server and "server" or "client", tostring(self.conn))
end

-- Ends the TCP (or whatever) connection once.
local function teardown(self)
  if self.conn_closed then return end
  self.conn_closed = true
  self.conn:close()
  local d = self.done
  if d then self.done = nil; d:close() end
end

---------------------------------------------------------------------------
-- Writing
---------------------------------------------------------------------------

-- Sends what ob holds: through conn:write_buffer when the conn has it (a
-- TCP conn writes it straight to the socket, no Lua string made), else
-- through conn:write.
local function flush_out(self)
  local conn = self.conn
  local ok, err
  if self.wbuf then ok, err = conn:write_buffer(self.ob)
  else ok, err = conn:write(self.ob:get()) end
  if not ok then
    self.werr = err
    return nil, err
  end
  return true
end

local function mask_key()
  if kpos >= KPOOL then
    if C.lb_ws_random(kpool, KPOOL) ~= 0 then return nil end
    kpos = 0
  end
  local key = kpool + kpos
  kpos = kpos + 4
  return key
end

local send_frame

-- A frame whose payload does not fit the frame buffer (see BUFFER_KEEP):
-- the header and the start of the payload go out from ob, then the rest
-- straight from p in slices (a server's frame), or all of it masked
-- through ob in slices that are released after (a client's). Called with
-- the write mutex held; control frames sent meanwhile are queued
-- (self.large) and go out right after it, never inside it.
local function send_large(self, fin, rsv1, op, p, n)
  local ob, conn = self.ob, self.conn
  ob:reset()
  local key
  if self.client then
    key = mask_key()
    if not key then return nil, errors.new("websocket: CSPRNG failed") end
  end
  local hl = tonumber(build_header(ob:reserve(14), 14, fin, rsv1, op, key and 1 or 0, key, n))
  ob:commit(hl)
  local src = ffi_cast(u8ptr, p) -- (p, a string, stays referenced by the caller)
  self.large = true
  local ok, err = true, nil
  local off = 0
  if key then
    while off < n do
      local k = n - off
      if k > STAGE then k = STAGE end
      local d = ob:reserve(k)
      ffi_copy(d, src + off, k)
      ws_mask(d, k, key, off)
      ob:commit(k)
      ok, err = flush_out(self)
      if not ok then break end
      off = off + k
    end
    ob:free()
  else
    -- The header goes with the start of the payload (no tiny packet of
    -- its own), as much as fills ob up to BUFFER_KEEP.
    off = KEEP - 14
    ffi_copy(ob:reserve(off), src, off)
    ob:commit(off)
    ok, err = flush_out(self)
    if ok then
      local wbuf = self.wbuf
      local view = wbuf and buffer.new() or nil
      while off < n do
        local k = n - off
        if k > SLICE then k = SLICE end
        -- A TCP conn writes from the view without a copy (only the part
        -- the socket did not take is copied, at most a slice).
        if wbuf then view:set(src + off, k); ok, err = conn:write_buffer(view)
        else ok, err = conn:write(ffi_string(src + off, k)) end
        if not ok then self.werr = err; break end
        off = off + k
      end
      if view then view:reset() end
    end
  end
  self.large = false
  -- The control frames that came meanwhile (the write mutex is still ours:
  -- no data frame can start before them).
  local pong, ping, close = self.q_pong, self.q_ping, self.q_close
  if pong or ping or close then
    self.q_pong, self.q_ping, self.q_close = false, false, false
    if ok and pong then send_frame(self, 1, 0, PONG, pong, #pong) end
    if ok and ping then send_frame(self, 1, 0, PING, ping, #ping) end
    if ok and close then send_frame(self, 1, 0, CLOSE, close, #close) end
  end
  if ok then return true end
  return nil, err
end

-- Writes one frame; the payload p (string or pointer, n bytes) is copied
-- into the frame buffer before anything can yield, unless it is large.
function send_frame(self, fin, rsv1, op, p, n)
  if n > DIRECT_MAX then return send_large(self, fin, rsv1, op, p, n) end
  if self.large then
    -- A control frame while a large frame goes out in parts: the task
    -- writing that frame sends it right after, so nobody waits here (a
    -- reader answering a ping must go on reading). One of each kind is
    -- kept, the latest (a pong may answer only the latest ping, RFC 6455
    -- 5.5.3). p may point into the read buffer: copied.
    local s = ffi_string(p, n)
    if op == PONG then self.q_pong = s elseif op == PING then self.q_ping = s else self.q_close = s end
    return true
  end
  local ob = self.ob
  ob:reset()
  local dst = ob:reserve(n + 14)
  local hl
  if self.client then
    local key = mask_key()
    if not key then return nil, errors.new("websocket: CSPRNG failed") end
    hl = tonumber(build_header(dst, 14, fin, rsv1, op, 1, key, n))
    if n > 0 then
      ffi_copy(dst + hl, p, n)
      ws_mask(dst + hl, n, key, 0)
    end
  else
    hl = tonumber(build_header(dst, 14, fin, rsv1, op, 0, nil, n))
    if n > 0 then ffi_copy(dst + hl, p, n) end
  end
  ob:commit(hl + n)
  return flush_out(self)
end

local function closed_write_err(self)
  return self.rerr or make_err(M.CLOSED, 1000, "", "close frame sent")
end

local function send_close(self, code, reason)
  if self.sent_close then return true end
  self.sent_close = true
  local n = 0
  if code then
    n = tonumber(C.lb_ws_build_close(self.cbuf, 125, code, reason, #reason))
    if n < 0 then n = tonumber(C.lb_ws_build_close(self.cbuf, 125, code, "", 0)) end
  end
  return send_frame(self, 1, 0, CLOSE, self.cbuf, n)
end

local function check_payload(s, fname)
  local t = type(s)
  if t == "string" then return s, #s end
  if t == "userdata" and s.ref then
    local p, n = s:ref()
    return p, n
  end
  error(("bad argument 's' to %s: string or string.buffer expected, got %s"):format(fname, t), 3)
end

local function deflate(self, p, n)
  local comp = self.comp
  if self.fast_comp then
    local zp, zn = comp:_deflate(p, n)
    if not zp then return nil, errors.new("websocket: deflate failed: " .. core.strerror(zn)) end
    return zp, zn
  end
  if self.our_reset and comp.reset then comp:reset("compress") end
  local z, err = comp:compress(type(p) == "string" and p or ffi_string(p, n))
  if not z then return nil, err end
  self.zkeep = z
  return z, #z
end

--- Sends one message in a single frame. op: TEXT, BINARY (compressed when
--- permessage-deflate was agreed), PING or PONG; s: a string or a
--- string.buffer (its contents are sent, the buffer is not consumed).
--- Returns true or nil, err.
function WS:write_message(op, s)
  if op ~= TEXT and op ~= BINARY and op ~= PING and op ~= PONG then
    if op == CLOSE then error("bad argument 'op' to ws:write_message: use ws:close(code, reason) to close", 2) end
    error("bad argument 'op' to ws:write_message: TEXT, BINARY, PING or PONG expected, got " .. tostring(op), 2)
  end
  local p, n = check_payload(s, "ws:write_message")
  if op >= 8 then
    if n > 125 then error("bad argument 's' to ws:write_message: control frame payload over 125 bytes", 2) end
    if self.sent_close then return nil, closed_write_err(self) end
    return send_frame(self, 1, 0, op, p, n)
  end
  if self.sent_close then return nil, closed_write_err(self) end
  if self.werr then return nil, self.werr end
  local mu = self.wmu
  mu:lock()
  local ok, err
  if self.comp then
    local zp, zn = deflate(self, p, n)
    if zp then ok, err = send_frame(self, 1, 1, op, zp, zn) else err = zn end
    if self.fast_comp then self.comp:_trim("out") end
    self.zkeep = nil
  else
    ok, err = send_frame(self, 1, 0, op, p, n)
  end
  mu:unlock()
  return ok, err
end

--- Sends a ping with payload s ("" by default, at most 125 bytes).
function WS:ping(s)
  s = s or ""
  if type(s) ~= "string" then arg_error("ws:ping", "s", "string or nil", s) end
  if #s > 125 then error("bad argument 's' to ws:ping: more than 125 bytes", 2) end
  if self.sent_close then return nil, closed_write_err(self) end
  return send_frame(self, 1, 0, PING, s, #s)
end

local function read_chunk(reader, n)
  while true do
    local s, err = reader:read(n)
    if s == nil then return nil, err end
    if type(s) ~= "string" then error("stream_message: reader:read returned " .. type(s) .. ", string expected", 0) end
    if #s > 0 then return s end
  end
end

--- Streams a message read from reader (anything with read(n) -> string,
--- ending with nil, errors.EOF) in frames of at most chunk_size bytes
--- (the conn's chunk_size by default). A chunk is read ahead, so the last
--- data frame carries FIN: no empty trailing frame. An empty reader sends
--- one empty message. A reader error after the first frame went out fails
--- the connection (1011: the message cannot be ended) and is returned.
function WS:stream_message(op, reader, chunk_size)
  if op ~= TEXT and op ~= BINARY then
    error("bad argument 'op' to ws:stream_message: TEXT or BINARY expected, got " .. tostring(op), 2)
  end
  if (type(reader) ~= "table" and type(reader) ~= "userdata") or type(reader.read) ~= "function" then
    arg_error("ws:stream_message", "reader", "reader (with read(n))", reader)
  end
  chunk_size = chunk_size or self.chunk_size
  if type(chunk_size) ~= "number" or chunk_size < 1 then
    arg_error("ws:stream_message", "chunk_size", "positive number", chunk_size)
  end
  if self.sent_close then return nil, closed_write_err(self) end
  if self.werr then return nil, self.werr end
  local mu = self.wmu
  mu:lock()
  local comp = self.comp
  if comp and not self.fast_comp and self.our_reset and comp.reset then comp:reset("compress") end
  local cur, err = read_chunk(reader, chunk_size)
  local ok, werr
  if cur == nil then
    if err ~= errors.EOF then mu:unlock(); return nil, err end
    if comp then
      local zp, zn = deflate(self, "", 0)
      if zp then ok, werr = send_frame(self, 1, 1, op, zp, zn) else werr = zn end
    else
      ok, werr = send_frame(self, 1, 0, op, "", 0)
    end
    mu:unlock()
    return ok, werr
  end
  local first = true
  while true do
    local nxt, nerr = read_chunk(reader, chunk_size)
    if nxt == nil and nerr ~= errors.EOF then
      mu:unlock()
      if not first then
        send_close(self, 1011, "message source failed")
        self.rerr = self.rerr or make_err(M.CLOSED, 1011, "message source failed", "stream failed")
        teardown(self)
      end
      return nil, nerr
    end
    local final = nxt == nil
    local p, n = cur, #cur
    if comp then
      if self.fast_comp then
        p, n = comp:_deflate(cur, #cur)
        if p and not final then p, n = comp:_tail() end
      else
        p, n = comp:compress(cur)
        if p and not final then p = p .. SYNC_TAIL end
        if p then n = #p end
      end
      if not p then mu:unlock(); return nil, errors.new("websocket: deflate failed") end
    end
    ok, werr = send_frame(self, final and 1 or 0, (first and comp) and 1 or 0, first and op or 0, p, n)
    if not ok then mu:unlock(); return nil, werr end
    first = false
    if final then break end
    cur = nxt
  end
  if self.fast_comp then comp:_trim("out") end
  mu:unlock()
  return true
end

---------------------------------------------------------------------------
-- Reading
---------------------------------------------------------------------------

-- Reads more bytes into ib.
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

-- Reads and drops everything until EOF, an error or `deadline`.
local function drain(self, deadline)
  local conn = self.conn
  if self.conn_closed then return end
  conn:set_read_deadline(deadline)
  while true do
    self.ib:reset()
    if not more(self) then break end
  end
end

-- A client waits (briefly) for the server to end TCP first (RFC 6455 7.1.1).
local function finish_close(self)
  if self.client then drain(self, now() + self.close_timeout) end
  teardown(self)
end

-- Fails the connection for core error code `lberr`: Close with the code it
-- maps to, then the TCP connection ends.
local function fail(self, lberr, detail)
  local code = tonumber(C.lb_ws_close_code_for(lberr))
  local kind = code == 1007 and M.INVALID_DATA or code == 1009 and M.MESSAGE_TOO_BIG or M.PROTOCOL_ERROR
  local reason = detail or core.strerror(lberr)
  local err = make_err(kind, code, reason, reason)
  self.rerr = err
  if not self.conn_closed then
    if not self.sent_close then
      self.conn:set_write_deadline(now() + math.min(M.FAIL_LINGER, self.close_timeout))
      send_close(self, code, reason)
    end
    -- Half-close, then read until the peer is done: a close with unread
    -- bytes would reset the connection and could lose our Close frame.
    self.conn:close_write()
    drain(self, now() + math.min(M.FAIL_LINGER, self.close_timeout))
    teardown(self)
  end
  return nil, err
end

local function io_fail(self, ioerr)
  local err
  if self.sent_close then
    err = make_err(M.CLOSED, 1006, "", "connection ended before the peer's Close")
  else
    err = errors.wrap(ioerr, "websocket: connection lost")
    err.code, err.reason = 1006, ""
  end
  self.rerr = err
  teardown(self)
  return nil, err
end

local function got_close(self, code, reason)
  self.recv_close = true
  local err = make_err(M.CLOSED, code, reason, code .. (reason ~= "" and (" " .. reason) or ""))
  self.rerr = err
  if not self.sent_close then
    -- Echo the code (an empty Close is answered with an empty one).
    self.conn:set_write_deadline(now() + self.close_timeout)
    send_close(self, code ~= 1005 and code or nil, "")
  end
  finish_close(self)
  return nil, err
end

-- After an inflated message: its output buffer goes, unless small.
local function release_inflated(self)
  if self.fast_comp then self.comp:_trim("in") end
  self.zkeep = nil
end

-- Inflates a whole message payload. Returns ptr, len (valid until the next
-- call), or nil, core error code.
local function inflate(self, p, n)
  local comp = self.comp
  if self.fast_comp then return comp:_inflate(p, n, self.limit) end
  if self.peer_reset and comp.reset then comp:reset("decompress") end
  local s, err = comp:decompress(ffi_string(p, n), self.limit)
  if not s then
    self.comp_err = err
    if errors.is(err, M.MESSAGE_TOO_BIG) then return nil, LB_ETOOLARGE end
    return nil, LB_EDEFLATE
  end
  if #s > self.limit then return nil, LB_ETOOLARGE end
  self.zkeep = s
  return ffi_cast(u8ptr, s), #s
end

-- A whole single-frame data message is in ib at p (header n bytes, payload
-- plen), already accepted by msg_frame: unmask, inflate, check, deliver.
-- No loop here, so the JIT compiles it into the caller's trace.
local function deliver_whole(self, buf, p, n, plen)
  local h, msg, ib = self.h, self.msg, self.ib
  local opcode = msg.opcode
  local pp = p + n
  if h.masked ~= 0 and plen > 0 then ws_mask(pp, plen, h.mask, 0) end
  local rp, rn = pp, plen
  if msg.compressed ~= 0 then
    rp, rn = inflate(self, pp, plen)
    if not rp then ib:skip(n + plen); return fail(self, rn) end
  elseif rn > self.limit then
    ib:skip(n + plen)
    return fail(self, LB_ETOOLARGE)
  end
  if opcode == TEXT and rn > 0 and utf8_check(rp, rn) ~= 0 then
    ib:skip(n + plen)
    return fail(self, LB_EUTF8)
  end
  local res
  if buf then buf:putcdata(rp, rn); res = buf else res = ffi_string(rp, rn) end
  ib:skip(n + plen)
  if msg.compressed ~= 0 then release_inflated(self) end
  return res, opcode
end

-- The whole single-frame data message at the front of ib, when all of it
-- is there: returns what read_message returns; false otherwise. A function
-- of its own (loop-free), so that it runs compiled also right after a
-- wait for bytes, where LuaJIT resumes the reading task interpreted.
local function whole_message(self, buf)
  local p, len = self.ib:ref()
  if len < 2 then return false end
  local h, msg = self.h, self.msg
  local n = tonumber(parse_header(h, p, len, self.pflags, self.wire_limit))
  if n > 0 and h.fin ~= 0 and h.opcode ~= 0 and h.opcode < 8 and msg.open == 0 then
    local plen = tonumber(h.payload_len)
    if len >= n + plen then
      local op = msg_frame(msg, h, self.wire_limit)
      if op < 0 then return fail(self, op) end
      if not buf then self.mb:reset() end
      return deliver_whole(self, buf, p, n, plen)
    end
  end
  return false
end

local function room(b)
  local _, free = b:reserve(0)
  return #b + free
end

-- Whether a reading buffer grew past BUFFER_KEEP (checked when the
-- connection waits between messages).
local function bloated(self)
  local zb = self.zb
  return room(self.ib) > KEEP or room(self.mb) > KEEP or (zb ~= nil and room(zb) > KEEP)
end

-- Timer callback: the connection has waited IDLE_RELEASE seconds between
-- messages; its grown reading buffers go, and the buffer read_message was
-- given if it is still empty (free = reset + the memory back). Released on
-- a timer, not after each message: a stream of large messages would
-- otherwise pay for a fresh buffer, page faults included, every time.
local function release_idle(e)
  local self = e.data
  self.rel = false
  local ib = self.ib
  if #ib == 0 then ib:free() end -- (bytes may have come in this loop pass)
  self.mb:free()
  if self.zb then self.zb:free() end
  local ub = self.rel_buf
  if ub then
    self.rel_buf = false
    if #ub == 0 then ub:free() end
  end
end

local function read_msg(self, buf)
  local ib, h, msg = self.ib, self.h, self.msg
  local mb = self.mb
  local dst = buf or mb
  if not buf then mb:reset() end
  local started, opcode, compressed = false, 0, false
  while true do
    local p, len = ib:ref()
    local n = EAGAIN
    if len >= 2 then n = tonumber(parse_header(h, p, len, self.pflags, self.wire_limit)) end
    if n == EAGAIN then
      if len == 0 and not started and not self.rel then
        -- The caller's buf, when empty, is only memory too.
        local ub = buf and #buf == 0 and room(buf) > KEEP and buf or false
        if ub or bloated(self) then
          self.rel_buf = ub
          self.rel = timer_add(now() + M.IDLE_RELEASE, release_idle, self)
        end
      end
      local ok, err = more(self)
      local e = self.rel
      if e then timer_cancel(e); self.rel = false; self.rel_buf = false end
      if not ok then return io_fail(self, err) end
      if not started then
        local res, op = whole_message(self, buf)
        if res ~= false then return res, op end
      end
    elseif n < 0 then
      return fail(self, n)
    else
      local op = msg_frame(msg, h, self.wire_limit)
      if op < 0 then return fail(self, op) end
      local plen = tonumber(h.payload_len)
      local masked = h.masked ~= 0
      if op >= 8 then
        -- A control frame (at most 125 bytes): wait for all of it.
        while len < n + plen do
          local ok, err = more(self)
          if not ok then return io_fail(self, err) end
          p, len = ib:ref()
        end
        local pp = p + n
        if masked and plen > 0 then ws_mask(pp, plen, h.mask, 0) end
        if op == PING then
          if not self.sent_close then send_frame(self, 1, 0, PONG, pp, plen) end
          ib:skip(n + plen)
        elseif op == PONG then
          local cb = self.on_pong
          if cb then
            local s = ffi_string(pp, plen)
            ib:skip(n + plen)
            cb(s)
          else
            ib:skip(n + plen)
          end
        else
          local code = tonumber(C.lb_ws_check_close_payload(pp, plen))
          local reason = plen > 2 and ffi_string(pp + 2, plen - 2) or ""
          ib:skip(n + plen)
          if code < 0 then return fail(self, code, "invalid close frame: " .. core.strerror(code)) end
          return got_close(self, code, reason)
        end
      else
        local fin = h.fin ~= 0
        if not started and fin and len >= n + plen then
          return deliver_whole(self, buf, p, n, plen)
        end
        ib:skip(n)
        if not started then
          started = true
          opcode, compressed = msg.opcode, msg.compressed ~= 0
          self.u8.state = 0
          if compressed then self.zb:reset() end
        end
        if not compressed and tonumber(msg.len) > self.limit then return fail(self, LB_ETOOLARGE) end
        local target = compressed and self.zb or dst
        local remaining, off = plen, 0
        local text = opcode == TEXT and not compressed
        while remaining > 0 do
          local q, avail = ib:ref()
          if avail == 0 then
            local ok, err = more(self)
            if not ok then return io_fail(self, err) end
            q, avail = ib:ref()
          end
          local k = avail < remaining and avail or remaining
          if masked then ws_mask(q, k, h.mask, off) end
          if text and utf8_validate(self.u8, q, k) ~= 0 then return fail(self, LB_EUTF8) end
          target:putcdata(q, k)
          ib:skip(k)
          remaining, off = remaining - k, off + k
        end
        if fin then
          if compressed then
            local zb = self.zb
            local zp, zn = zb:ref()
            local rp, rn = inflate(self, zp, zn)
            if not rp then return fail(self, rn) end
            if opcode == TEXT and rn > 0 and utf8_check(rp, rn) ~= 0 then return fail(self, LB_EUTF8) end
            dst:putcdata(rp, rn)
            zb:reset()
            release_inflated(self)
          else
            if tonumber(msg.len) > self.limit then return fail(self, LB_ETOOLARGE) end
            if text and utf8_finish(self.u8) ~= 0 then return fail(self, LB_EUTF8) end
          end
          if buf then return buf, opcode end
          return mb:get(), opcode
        end
      end
    end
  end
end

--- Reads the next data message: returns payload, opcode (TEXT or BINARY).
--- With buf (a string.buffer) the payload is appended to buf and buf is
--- returned instead of a new string; when buf is empty and larger than
--- BUFFER_KEEP, and no message comes for IDLE_RELEASE seconds, its memory
--- is released (buf:free(): still empty and usable). Control frames are
--- handled on the way (see the module comment). At the end: nil, err (err.code,
--- err.reason); every later call returns the same.
function WS:read_message(buf)
  if buf ~= nil and (type(buf) ~= "userdata" or not buf.putcdata) then
    arg_error("ws:read_message", "buf", "string.buffer or nil", buf)
  end
  if self.rerr then return nil, self.rerr end
  if self.reading then error("ws:read_message: another task is already reading this websocket", 2) end
  -- Fast path, loop-free: a whole single-frame data message is buffered.
  local res, op = whole_message(self, buf)
  if res ~= false then return res, op end
  self.reading = true
  res, op = read_msg(self, buf)
  self.reading = false
  return res, op
end

---------------------------------------------------------------------------
-- Closing
---------------------------------------------------------------------------

--- Runs the close handshake: sends Close (code 1000 by default; reason at
--- most 123 bytes of UTF-8), waits up to close_timeout for the peer's
--- Close (reading and dropping data messages, unless another task is in
--- read_message: that task then gets the CLOSED error), and closes the
--- conn. Returns true, or nil, err when the connection was already over.
function WS:close(code, reason)
  if code ~= nil and (type(code) ~= "number" or code % 1 ~= 0) then arg_error("ws:close", "code", "integer or nil", code) end
  if reason ~= nil and type(reason) ~= "string" then arg_error("ws:close", "reason", "string or nil", reason) end
  code, reason = code or 1000, reason or ""
  if C.lb_ws_build_close(self.cbuf, 125, code, reason, #reason) < 0 then
    error(("bad argument to ws:close: code %d / reason %q cannot be sent"):format(code, reason), 2)
  end
  if self.conn_closed then return nil, self.rerr or make_err(M.CLOSED, 1006, "", "already closed") end
  if not self.sent_close then
    self.conn:set_write_deadline(now() + self.close_timeout)
    send_close(self, code, reason)
  end
  if not self.recv_close and not self.rerr then
    if self.reading then
      self.done = self.done or lowbit.chan(0)
      lowbit.select{ self.done, lowbit.after(self.close_timeout) }
    else
      self.conn:set_read_deadline(now() + self.close_timeout)
      while true do
        local m = self:read_message()
        if not m then break end
      end
    end
  end
  teardown(self)
  return true
end

---------------------------------------------------------------------------
-- Handshakes
---------------------------------------------------------------------------

local function accept_key(key)
  if type(key) ~= "string" then arg_error("websockets.accept_key", "key", "string", key) end
  local out = ffi.new("char[28]")
  local n = C.lb_ws_accept_key(key, #key, out)
  if n ~= 28 then return nil end
  return ffi_string(out, 28)
end
M.accept_key = accept_key

-- Walks the permessage-deflate elements of an extensions header value.
local function each_offer(s, flags, fn)
  local cs = ffi_cast("const char *", s)
  local p = ffi.new("lb_deflate_params")
  local consumed = ffi.new("size_t[1]")
  local pos, len = 0, #s
  while pos < len do
    local r = C.lb_deflate_parse_offer(p, cs + pos, len - pos, flags, consumed)
    local stop = fn(r, p)
    if stop then return stop end
    local c = tonumber(consumed[0])
    if c == 0 then break end
    pos = pos + c
  end
  return nil
end

local function check_accept_opts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then arg_error(fname, "opts", "table or nil", opts) end
  local sp = opts.subprotocols
  if sp ~= nil then
    if type(sp) ~= "table" then arg_error(fname, "opts.subprotocols", "array of strings", sp) end
    for i = 1, #sp do
      if type(sp[i]) ~= "string" or sp[i] == "" or sp[i]:find("[%c%s,]") then
        error(("bad argument 'opts.subprotocols' to %s: element %d is not a token"):format(fname, i), 3)
      end
    end
  end
  local c = opts.compression
  if c ~= nil and type(c) ~= "boolean" and type(c) ~= "table" then
    arg_error(fname, "opts.compression", "boolean or table", c)
  end
  return opts
end

local function conn_opts(opts, server, proto, params)
  return { server = server, subprotocol = proto, compression = params, read_limit = opts.read_limit,
           chunk_size = opts.chunk_size, compressor = opts.compressor, compression_level = opts.compression_level,
           close_timeout = opts.close_timeout, on_pong = opts.on_pong }
end

--- The server handshake inside an HTTP handler. Checks the request (GET,
--- "Connection: upgrade", "Upgrade: websocket": 400/426 otherwise),
--- Sec-WebSocket-Version (426 with "Sec-WebSocket-Version: 13" unless 13)
--- and Sec-WebSocket-Key (400), then answers 101. opts: subprotocols (the
--- first of ours, in our order, that the client offers is chosen),
--- compression (default on: accept the client's first acceptable
--- permessage-deflate offer; false: never; a table sets our preferences:
--- server_no_context_takeover, client_no_context_takeover,
--- server_max_window_bits, client_max_window_bits), check_origin(r) (false:
--- 403), headers (extra 101 headers), and the options of new. Returns the
--- websocket conn, or nil, err (matching BAD_HANDSHAKE; the refusal has
--- been written to w).
function M.accept(w, r, opts)
  if type(w) ~= "table" then arg_error("websockets.accept", "w", "response writer", w) end
  if type(r) ~= "table" or type(r.headers) ~= "table" then arg_error("websockets.accept", "r", "request", r) end
  opts = check_accept_opts(opts, "websockets.accept")
  local function refuse(status, msg, extra)
    cooper.refuse(w, status, msg, extra)
    local e = errors.wrap(M.BAD_HANDSHAKE, "%s", msg)
    e.status = status
    return nil, e
  end
  local proto, status, msg, extra = cooper.check_request(r, { "websocket" })
  if not proto then return refuse(status, msg, extra) end
  local hs = r.headers
  local ver = hs:values("Sec-WebSocket-Version")
  if #ver ~= 1 or ver[1] ~= "13" then
    return refuse(426, "426 Upgrade Required: unsupported Sec-WebSocket-Version (this server speaks 13)",
      { ["Sec-WebSocket-Version"] = "13" })
  end
  local keys = hs:values("Sec-WebSocket-Key")
  if #keys ~= 1 or C.lb_ws_client_key_valid(keys[1], #keys[1]) ~= 1 then
    return refuse(400, "400 Bad Request: missing or invalid Sec-WebSocket-Key")
  end
  if opts.check_origin and not opts.check_origin(r) then
    return refuse(403, "403 Forbidden: origin not allowed")
  end
  local chosen
  if opts.subprotocols then
    local offered = cooper._tokens(hs, "Sec-WebSocket-Protocol")
    for i = 1, #opts.subprotocols do
      local want = opts.subprotocols[i]
      for j = 1, #offered do
        if offered[j] == want then chosen = want; break end
      end
      if chosen then break end
    end
  end
  local params, ext_header
  if opts.compression ~= false and hs:has("Sec-WebSocket-Extensions") then
    local prefs = to_params(type(opts.compression) == "table" and opts.compression or nil)
    local resp = ffi.new("lb_deflate_params")
    each_offer(concat(hs:values("Sec-WebSocket-Extensions"), ", "), C.LB_DEFLATE_CLIENT_OFFER, function(rc, p)
      if rc == 0 and C.lb_deflate_accept_offer(p, prefs, resp) == 0 then
        local out = ffi.new("char[?]", C.LB_DEFLATE_PARAMS_MAX)
        local n = tonumber(C.lb_deflate_format_params(out, C.LB_DEFLATE_PARAMS_MAX, resp))
        if n > 0 then
          params = from_params(resp)
          ext_header = ffi_string(out, n)
          return true
        end
      end
    end)
  end
  local out_h = headers.new(opts.headers)
  out_h:set("Sec-WebSocket-Accept", accept_key(keys[1]))
  if chosen then out_h:set("Sec-WebSocket-Protocol", chosen) end
  if ext_header then out_h:set("Sec-WebSocket-Extensions", ext_header) end
  local conn, cerr = cooper.accept(w, r, { protocols = { "websocket" }, response_headers = function() return out_h end })
  if not conn then return nil, cerr end
  local c, nerr = M.new(conn, conn_opts(opts, true, chosen, params))
  if not c then conn:close(); return nil, nerr end
  return c
end

--- A handler (function(w, r)) that accepts websockets (opts as for accept)
--- and runs fn(c, r) for each; the conn is closed when fn returns.
function M.handler(fn, opts)
  if type(fn) ~= "function" then arg_error("websockets.handler", "fn", "function", fn) end
  check_accept_opts(opts, "websockets.handler")
  return function(w, r)
    local c = M.accept(w, r, opts)
    if not c then return end
    local ok, err = pcall(fn, c, r)
    if not c.conn_closed then
      if ok then c:close() else send_close(c, 1011, ""); teardown(c) end
    end
    if not ok then error(err, 0) end
  end
end

--- Connects to a ws:// or wss:// URL (http/https also accepted). opts:
--- headers (extra request headers), subprotocols (offered in order),
--- compression (default on: offer permessage-deflate; false: do not; a
--- table: offer these parameters), ctx (bounds the dial and handshake),
--- tls (lowbit.tls client config or options, for wss), and the options of
--- new. Returns the websocket conn and the 101 response, or nil, err
--- (matching BAD_HANDSHAKE when the server refused: err.status,
--- err.response).
function M.dial(u, opts)
  if type(u) ~= "string" then arg_error("websockets.dial", "url", "string", u) end
  opts = check_accept_opts(opts, "websockets.dial")
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    arg_error("websockets.dial", "opts.headers", "table or headers", opts.headers)
  end
  local keyb = ffi.new("char[24]")
  if C.lb_ws_client_key(keyb) ~= 24 then return nil, errors.new("websocket: CSPRNG failed") end
  local key = ffi_string(keyb, 24)
  local hdrs = headers.is_headers(opts.headers) and opts.headers:clone() or headers.new(opts.headers)
  hdrs:set("Upgrade", "websocket")
  hdrs:set("Connection", "Upgrade")
  hdrs:set("Sec-WebSocket-Key", key)
  hdrs:set("Sec-WebSocket-Version", "13")
  local offered = opts.subprotocols
  if offered and #offered > 0 then hdrs:set("Sec-WebSocket-Protocol", concat(offered, ", ")) end
  local offer_deflate = opts.compression ~= false
  if offer_deflate then
    local p = to_params(type(opts.compression) == "table" and opts.compression or nil)
    if type(opts.compression) ~= "table" then p.client_max_window_bits = C.LB_DEFLATE_BITS_NOVALUE end
    local out = ffi.new("char[?]", C.LB_DEFLATE_PARAMS_MAX)
    local n = tonumber(C.lb_deflate_format_params(out, C.LB_DEFLATE_PARAMS_MAX, p))
    if n < 0 then error("bad argument 'opts.compression' to websockets.dial: invalid parameters", 2) end
    hdrs:set("Sec-WebSocket-Extensions", ffi_string(out, n))
  end
  local want = accept_key(key)
  local proto, params
  local function validate(_, resp)
    local rh = resp.headers
    if rh:get("Sec-WebSocket-Accept") ~= want or #rh:values("Sec-WebSocket-Accept") ~= 1 then
      return nil, "Sec-WebSocket-Accept mismatch"
    end
    local ps = rh:values("Sec-WebSocket-Protocol")
    if #ps > 1 then return nil, "several Sec-WebSocket-Protocol values" end
    if #ps == 1 then
      for i = 1, #(offered or {}) do if offered[i] == ps[1] then proto = ps[1] end end
      if not proto then return nil, "server chose subprotocol " .. ("%q"):format(ps[1]) .. ", which was not offered" end
    end
    local exts = rh:values("Sec-WebSocket-Extensions")
    if #exts > 0 then
      local bad = each_offer(concat(exts, ", "), C.LB_DEFLATE_SERVER_RESPONSE, function(rc, p)
        if rc == C.LB_DEFLATE_OTHER then return "server agreed to an extension that was not offered" end
        if rc ~= 0 then return "invalid permessage-deflate response" end
        if not offer_deflate then return "server agreed to permessage-deflate, which was not offered" end
        if params then return "permessage-deflate agreed twice" end
        params = from_params(p)
      end)
      if bad then return nil, bad end
    end
    return true
  end
  local conn, resp = cooper.dial({ url = u, headers = hdrs },
    { ctx = opts.ctx, tls = opts.tls, response_validator = validate })
  if not conn then return nil, resp end
  local c, nerr = M.new(conn, conn_opts(opts, false, proto, params))
  if not c then conn:close(); return nil, nerr end
  return c, resp
end

return M
