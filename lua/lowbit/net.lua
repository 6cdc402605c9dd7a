-- lowbit.net: TCP and UDP on the luv loop, behind Go's net.Conn shape.
--
--   local ln = assert(net.listen("127.0.0.1:0"))
--   lowbit.go(function()
--     local c = ln:accept()
--     c:write(c:read())
--     c:close()
--   end)
--   local c = assert(net.dial(ctx, ln:addr()))
--
-- Conns: read(max), read_full(n), write(s | {s...}), close(), close_write(),
-- set_deadline / set_read_deadline / set_write_deadline (absolute
-- lowbit.now() times, nil clears), local_addr(), remote_addr(). Failures
-- return nil, err: errors.EOF at a clean end, errors.CLOSED after close,
-- errors.TIMEOUT past a deadline, a wrapped errors.sys("E...") otherwise.
local uv = require "luv"
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local background = context.background()
local buffer = require "string.buffer"

local M = {}

local type, error, tostring, tonumber, setmetatable = type, error, tostring, tonumber, setmetatable
local concat = table.concat
local now = lowbit.now
local new_sel, fire, block, sel_deadline = lowbit._sel, lowbit._fire, lowbit._block, lowbit._sel_deadline

local EOF, CLOSED, TIMEOUT = errors.EOF, errors.CLOSED, errors.TIMEOUT
M.EOF, M.CLOSED, M.TIMEOUT = EOF, CLOSED, TIMEOUT

--- Read buffering: a conn stops reading from the socket once this many
--- bytes wait unread, and starts again when the reader drains it.
M.READ_HIGH_WATER = 256 * 1024

local function arg_error(fname, name, expected, v)
  error(("bad argument '%s' to %s: %s expected, got %s"):format(name, fname, expected, type(v)), 3)
end

local function check_deadline(t, fname)
  if t ~= nil and (type(t) ~= "number" or t ~= t) then arg_error(fname, "t", "number or nil", t) end
end

local function check_ctx(ctx, fname)
  if ctx == nil then return context.background() end
  if not context.is_context(ctx) then arg_error(fname, "ctx", "context", ctx) end
  return ctx
end

---------------------------------------------------------------------------
-- Addresses
---------------------------------------------------------------------------

--- Splits "host:port" ("[::1]:80", ":8080") into host, port. Returns nil, err
--- for a malformed address.
function M.split_host_port(addr)
  if type(addr) ~= "string" then return nil, errors.new("address must be a string") end
  local host, port = addr:match("^%[([^%]]*)%]:(%d+)$")
  if not host then host, port = addr:match("^([^:]*):(%d+)$") end
  if not host then return nil, errors.new("invalid address " .. ("%q"):format(addr) .. " (want host:port)") end
  port = tonumber(port)
  if port > 65535 then return nil, errors.new("invalid port in address " .. ("%q"):format(addr)) end
  return host, port
end

--- Joins host and port, bracketing IPv6 literals.
function M.join_host_port(host, port)
  if type(host) ~= "string" then arg_error("net.join_host_port", "host", "string", host) end
  if type(port) ~= "string" and type(port) ~= "number" then arg_error("net.join_host_port", "port", "string or number", port) end
  if host:find(":", 1, true) then return "[" .. host .. "]:" .. port end
  return host .. ":" .. port
end

local function sockaddr_string(sa)
  if not sa then return nil end
  return M.join_host_port(sa.ip, sa.port)
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:find(":", 1, true) ~= nil
end

-- Resolves host to a list of IPs. Outside a task (or for literals) the call
-- is synchronous; in a task it waits on the loop and honours ctx.
local function resolve(ctx, host, socktype)
  if host == "" then return { "0.0.0.0" } end
  if is_ip(host) then return { host } end
  local hints = { socktype = socktype }
  local res, err
  if lowbit.current() then
    local sel = new_sel("net.resolve")
    local req = uv.getaddrinfo(host, nil, hints, function(e, r) fire(sel, { e, r }) end)
    local why, v = block(sel, ctx)
    if why == "ctx" then
      if req then pcall(uv.cancel, req) end
      return nil, ctx:err()
    end
    err, res = v[1], v[2]
  else
    res, err = uv.getaddrinfo(host, nil, hints)
  end
  if not res or #res == 0 then
    return nil, errors.from_uv(err or "ENOTFOUND", nil, "lookup " .. host)
  end
  local ips, seen = {}, {}
  for _, r in ipairs(res) do
    if r.addr and not seen[r.addr] then seen[r.addr] = true; ips[#ips + 1] = r.addr end
  end
  return ips
end

---------------------------------------------------------------------------
-- Shared conn helpers
---------------------------------------------------------------------------

-- read_full for any conn with read(max): exactly n bytes, or EOF (nothing
-- read) / UNEXPECTED_EOF (some read) / the read error.
local function read_full(c, n)
  if type(c) ~= "table" or type(c.read) ~= "function" then arg_error("net.read_full", "c", "conn", c) end
  if type(n) ~= "number" or n < 0 then arg_error("conn:read_full", "n", "non-negative number", n) end
  if n == 0 then return "" end
  local first, err = c:read(n)
  if not first then return nil, err end
  if #first == n then return first end
  local parts, got = { first }, #first
  while got < n do
    local s, rerr = c:read(n - got)
    if not s then
      if rerr == EOF then return nil, errors.UNEXPECTED_EOF end
      return nil, rerr
    end
    parts[#parts + 1] = s
    got = got + #s
  end
  return concat(parts)
end
M.read_full = read_full

local function data_len(data)
  if type(data) == "string" then return #data end
  local n = 0
  for i = 1, #data do n = n + #data[i] end
  return n
end

local function check_data(data, fname)
  local t = type(data)
  if t == "string" then return end
  if t ~= "table" then arg_error(fname, "data", "string or array of strings", data) end
  for i = 1, #data do
    if type(data[i]) ~= "string" then
      error(("bad argument 'data' to %s: element %d is %s, string expected"):format(fname, i, type(data[i])), 3)
    end
  end
end

---------------------------------------------------------------------------
-- TCP conn
---------------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn
M.Conn = Conn

-- Reading: libuv's read callbacks stay in C (lb_uvread), which buffers the
-- bytes and lists the conns that got news; after each loop pass the
-- scheduler calls collect_reads, which moves the bytes into each conn's
-- rbuf and wakes its reader. No Lua callback, string or closure per read.
local ffi = require "ffi"
local C = require("lowbit.core").C

-- Two libuvs in one process: lb_uvread (in liblowbit, linked to the system
-- libuv) works on handles that luv creates. A luv built with its own
-- bundled libuv (the luv rock's default) lays those handles out for its
-- copy; reading them with ours would corrupt memory. Their versions are
-- compared at load, and a mismatch is refused with what to do.
pcall(ffi.cdef, "unsigned int uv_version(void);")

--- The refusal message when luv's libuv (version number luv_v, as
--- uv.version() gives it) is not the libuv liblowbit uses (ours), else nil.
function M._libuv_mismatch(luv_v, ours)
  if luv_v == ours then return nil end
  local function s(v) return ("%d.%d.%d"):format(math.floor(v / 65536), math.floor(v / 256) % 256, v % 256) end
  return ("lowbit.net: luv runs libuv %s but liblowbit uses libuv %s: two libuvs in one process"
    .. " cannot share handles. Build luv against the system libuv (luarocks install luv"
    .. " WITH_SHARED_LIBUV=ON, or Debian's lua-luv), or rebuild liblowbit against luv's libuv"):format(s(luv_v), s(ours))
end

do
  local ok, ours = pcall(function() return tonumber(C.uv_version()) end)
  if ok and ours then
    local msg = M._libuv_mismatch(uv.version(), ours)
    if msg then error(msg, 0) end
  end
end

local reading = {} -- id -> conn, while C may report on it (anchors conn and handle)
local next_id = 0
local UV_EOF = -4095

local function uv_error(code, what)
  local name = ffi.string(C.lb_uvread_err_name(code))
  return errors.from_uv(name .. ": " .. ffi.string(C.lb_uvread_strerror(code)), name, what)
end

-- nodelay: TCP_NODELAY is already on (a connection accepted from a
-- listener that has it: Linux copies it to the accepted socket).
local function new_conn(h, nodelay)
  -- The fields a conn gets on every request are there from the start
  -- (false for none): LuaJIT inserts a key even to store nil into it.
  next_id = next_id + 1
  -- No finalizer (ffi.gc costs a weak-table insert per conn and a call at
  -- collection): a conn that C may report on is anchored in `reading`
  -- until its bytes are collected, which frees its buffer (rd.buf is NULL
  -- whenever the conn is unreachable), and close forgets rd. A conn
  -- dropped unclosed may stay in lb_uvread's by_fd table, but that entry
  -- is never read: libuv calls lb_uvread back only for streams reading
  -- through it, and each start replaces its descriptor's entry first.
  -- (Its fields are set by lb_uvread_start: fd 0 until then is no
  -- registration, which by_fd's own entry tells.)
  local rd = ffi.new("lb_uvread")
  local c = setmetatable({ h = h, rbuf = buffer.new(), reading = false, eof = false,
                           rerr = nil, werr = nil, closed = false, rsel = false, fsel = false,
                           tentry = false, rdeadline = false, wdeadline = false,
                           rd = rd, id = next_id }, Conn)
  if not nodelay then pcall(uv.tcp_nodelay, h, true) end
  -- The descriptor from lb_uvread, which knows luv's handle layout once a
  -- conn has read (a compiled call; uv.fileno is luv's, which compiled
  -- code calls through a trace stitch); from luv for the first conns.
  local fd = tonumber(C.lb_uvread_fileno(h))
  if fd < 0 then fd = uv.fileno(h) end
  c.fd = type(fd) == "number" and fd >= 0 and fd or nil
  return c
end
M._new_conn = new_conn

local function start_reading(c)
  if not c.reading and not c.eof and not c.rerr and not c.closed then
    local room = M.READ_HIGH_WATER - #c.rbuf
    local rc = c.fd and C.lb_uvread_start(c.h, c.fd, c.rd, c.id, room > 65536 and room or 65536) or -9 -- EBADF
    if rc ~= 0 then
      c.rerr = uv_error(rc, "read")
    else
      c.reading = true
      reading[c.id] = c
    end
  end
end

local function stop_reading(c)
  c.reading = false
  -- Still listed while bytes or news wait to be collected.
  if C.lb_uvread_stop(c.rd) == 0 then reading[c.id] = nil end
end

local ids = ffi.new("int32_t[64]")

-- Each pass collects one or two readers' news, mostly: as a loop, the
-- recording of its trace often aborted ("leaving loop in root trace")
-- until LuaJIT gave up on it, and it ran interpreted, where each access to
-- a cdata (ids[i], rd.len...) or C call costs about a thousand
-- instructions. So: tail calls rather than loops, and two C calls per
-- reader (lb_uvread_collect / lb_uvread_collected) for its fields.

-- The news of reader c (bytes, EOF or an error).
local function collect_one(c)
  local rd = c.rd
  local len = tonumber(C.lb_uvread_collect(rd))
  if len > 0 then c.rbuf:putcdata(rd.buf, len) end
  local st = C.lb_uvread_collected(rd)
  if st < 0 then
    if st == UV_EOF then c.eof = true else c.rerr = uv_error(st, "read") end
    c.reading = false -- C stopped reading
    reading[c.id] = nil
  elseif st == 1 or #c.rbuf >= M.READ_HIGH_WATER then
    stop_reading(c) -- (C has paused already, or rbuf is full)
  end
  local sel = c.rsel
  if sel then c.rsel = nil; fire(sel) end
end

-- The readers at ids[i .. n-1].
local function collect_from(i, n)
  local c = reading[ids[i]]
  if c then collect_one(c) end
  i = i + 1
  if i < n then return collect_from(i, n) end
end

local function collect_reads()
  local n = tonumber(C.lb_uvread_take(ids, 64))
  if n > 0 then collect_from(0, n) end
  if n == 64 then return collect_reads() end
end
lowbit._set_after_poll(collect_reads)

-- Read deadlines: one timer entry per conn that may fire early and then
-- re-arms itself, instead of a heap insert and removal for every blocking
-- read (servers move their idle deadline on every request).
local timer_add, timer_cancel = lowbit._timer_add, lowbit._timer_cancel
local function read_deadline_fire(e)
  local c = e.data
  c.tentry = nil
  local sel, rd = c.rsel, c.rdeadline
  if sel and rd then
    if rd <= now() + 0.0005 then fire(sel, nil, -2)
    else c.tentry = timer_add(rd, read_deadline_fire, c) end
  end
end

local function arm_read_deadline(c, rd)
  local e = c.tentry
  if e then
    if e.idx and e.at <= rd then return end -- fires early enough; re-arms then
    timer_cancel(e)
  end
  c.tentry = timer_add(rd, read_deadline_fire, c)
end

-- Parks the reading task on sel until data, close, or the read deadline.
local function wait_readable(c, sel, rd)
  c.rsel = sel
  if rd then arm_read_deadline(c, rd) end
  local why = block(sel, nil, nil)
  if c.rsel == sel then c.rsel = nil end
  return why
end

--- Returns up to max bytes (all that is buffered when max is nil), waiting
--- for at least one. nil, errors.EOF when the peer has closed its side.
function Conn:read(max)
  if max ~= nil and (type(max) ~= "number" or max < 1) then arg_error("conn:read", "max", "positive number or nil", max) end
  while true do
    if self.closed then return nil, CLOSED end
    local rbuf = self.rbuf
    if #rbuf > 0 then
      local s = rbuf:get(max)
      if not self.reading and #rbuf < M.READ_HIGH_WATER / 2 then start_reading(self) end
      return s
    end
    if self.rerr then return nil, self.rerr end
    if self.eof then return nil, EOF end
    local rd = self.rdeadline
    if rd and rd <= now() then return nil, TIMEOUT end
    if self.rsel then error("conn:read: another task is already reading this conn", 2) end
    start_reading(self)
    if not self.rerr then
      local why = wait_readable(self, new_sel("conn:read"), rd)
      if why == "timeout" then return nil, TIMEOUT end
    end
  end
end

Conn.read_full = read_full

-- One look at what fill waits for: the read buffer when it grew past
-- before, nil, err when the conn cannot fill it, false when fill must wait.
local function fill_check(c, before)
  if c.closed then return nil, CLOSED end
  local rbuf = c.rbuf
  if #rbuf > before then return rbuf end
  if c.rerr then return nil, c.rerr end
  if c.eof then return nil, EOF end
  local rd = c.rdeadline
  if rd and rd <= now() then return nil, TIMEOUT end
  return false
end

-- One wait of fill for bytes; false on timeout.
local function fill_wait(c)
  start_reading(c)
  if not c.rerr then
    -- One waiter object per conn, reset for each wait: fill runs once per
    -- request on HTTP keep-alive connections.
    local sel = c.fsel
    if not sel then sel = new_sel("conn:fill"); c.fsel = sel
    else sel.co = lowbit._need_task("conn:fill"); sel.done = false; sel.index = nil; sel.value = nil end
    local why = wait_readable(c, sel, c.rdeadline)
    if why == "timeout" then return false end
  end
  return true
end

-- The rest of fill after a wait that brought nothing new (rare).
local function fill_loop(c, before)
  while true do
    local b, err = fill_check(c, before)
    if b ~= false then return b, err end
    if c.rsel then error("conn:fill: another task is already reading this conn", 3) end
    if not fill_wait(c) then return nil, TIMEOUT end
  end
end

--- Waits until more bytes are buffered (without taking any) and returns
--- the conn's read buffer (a string.buffer the caller may consume from),
--- or nil, err. Protocol parsers use it to parse in place.
-- No loop on the common path (check, wait once, check): it runs once per
-- request on keep-alive connections, and a loop whose usual exit follows
-- a yield would leave that exit to the interpreter.
function Conn:fill()
  local before = #self.rbuf
  local b, err = fill_check(self, before)
  if b ~= false then return b, err end
  if self.rsel then error("conn:fill: another task is already reading this conn", 2) end
  if not fill_wait(self) then return nil, TIMEOUT end
  b, err = fill_check(self, before)
  if b ~= false then return b, err end
  b, err = fill_loop(self, before)
  return b, err
end

--- The conn's read buffer (bytes received, not yet read).
function Conn:read_buffer()
  if not self.reading and #self.rbuf < M.READ_HIGH_WATER / 2 then start_reading(self) end
  return self.rbuf
end

--- Number of bytes buffered and ready to read without waiting.
function Conn:buffered() return #self.rbuf end

--- Puts s back in front of the unread bytes (protocol switches use it so
--- that bytes read past a handshake are not lost).
function Conn:unread(s)
  if type(s) ~= "string" then arg_error("conn:unread", "s", "string", s) end
  if #s == 0 then return end
  local rest = self.rbuf:get()
  self.rbuf:put(s, rest)
end

--- Writes a string or an array of strings; waits until libuv has taken all
--- of it. Returns the number of bytes written, or nil, err.
function Conn:write(data)
  check_data(data, "conn:write")
  if self.closed then return nil, CLOSED end
  if self.werr then return nil, self.werr end
  local wd = self.wdeadline
  if wd and wd <= now() then return nil, TIMEOUT end
  local total = data_len(data)
  if total == 0 then return 0 end
  if not self.wpending then
    local n = uv.try_write(self.h, data)
    if n == total then return total end
    if n and n > 0 then
      if type(data) == "table" then data = concat(data) end
      data = data:sub(n + 1)
    end
  end
  local sel = new_sel("conn:write")
  self.wpending = (self.wpending or 0) + 1
  local ok, err = uv.write(self.h, data, function(e) fire(sel, e or false) end)
  if not ok then
    self.wpending = self.wpending - 1
    if self.wpending == 0 then self.wpending = nil end
    return nil, errors.from_uv(err, nil, "write")
  end
  if self.wsels == nil then self.wsels = {} end
  self.wsels[sel] = true
  local why, e = block(sel, nil, wd)
  self.wsels[sel] = nil
  self.wpending = self.wpending - 1
  if self.wpending == 0 then self.wpending = nil end
  if why == "timeout" then
    -- libuv keeps the bytes queued; the stream is now in an unknown state.
    self.werr = TIMEOUT
    return nil, TIMEOUT
  end
  if self.closed then return nil, CLOSED end
  if e then
    self.werr = errors.from_uv(e, nil, "write")
    return nil, self.werr
  end
  return total
end

-- Direct writes from a string.buffer: the same write(2) uv_try_write would
-- make, without first turning the buffer into a Lua string.
pcall(ffi.cdef, "ssize_t write(int, const void *, size_t);")
local libc = ffi.C

pcall(ffi.cdef, "ssize_t recv(int, void *, size_t, int);")
local MSG_PEEK, MSG_DONTWAIT = 0x2, 0x40
local peek_buf = ffi.new("char[1]")

--- Whether an idle conn (one a client pools between requests) may carry a
--- new request: nothing arrived while it was idle, no byte, no EOF, no
--- error, as Go's idle read loop checks. It looks at the bytes libuv has
--- collected, then at the kernel's (a MSG_PEEK that never waits), and for
--- TLS (or any wrapping conn) at what a read that may not wait makes of
--- them (a session ticket is fine, a close_notify or data is not). The
--- caller checks its own read buffer first.
function M.idle_usable(c)
  if type(c) ~= "table" or type(c.read) ~= "function" then arg_error("net.idle_usable", "c", "conn", c) end
  if c.closed then return false end
  local inner = c.inner and c:inner() or c
  local is_tls = inner ~= c
  if not is_tls and (c.eof or c.rerr or (c.rbuf and #c.rbuf > 0)) then return false end
  local fd = type(inner) == "table" and inner.fd or nil
  if fd then
    local n = tonumber(libc.recv(fd, peek_buf, 1, MSG_PEEK + MSG_DONTWAIT))
    if n == 0 then return false end -- EOF
    if n < 0 then
      local e = ffi.errno()
      if e ~= 11 and e ~= 4 then return false end -- not EAGAIN / EINTR: broken
    end
    -- Unsolicited bytes on a plain conn; on TLS they may be a ticket.
    if not is_tls then return n < 0 end
  end
  c:set_read_deadline(0)
  local d, err = c:read(1)
  if c.closed then return false end
  c:set_read_deadline(nil)
  if d then return false end
  return err == TIMEOUT
end

--- Writes and empties a string.buffer (servers build responses in one).
--- Same results as write(buf:get()). The buffer is never held across a
--- wait: what the socket does not take at once is copied out first (the
--- HTTP server builds every TCP head in one buffer shared by all conns).
function Conn:write_buffer(buf)
  if self.closed then return nil, CLOSED end
  if self.werr then return nil, self.werr end
  local total = #buf
  if total == 0 then return 0 end
  local wd = self.wdeadline
  if wd and wd <= now() then return nil, TIMEOUT end
  local fd = self.fd
  if not self.wpending and fd then
    local p, len = buf:ref()
    local n = tonumber(libc.write(fd, p, len))
    if n == len then buf:reset(); return total end
    if n > 0 then buf:skip(n) end
    -- EAGAIN (or an error: uv.write below reports it properly)
  end
  local ok, err = self:write(buf:get())
  if not ok then return nil, err end
  return total
end

--- Shuts down the writing side (the peer reads EOF); reading goes on.
function Conn:close_write()
  if self.closed then return nil, CLOSED end
  local sel = new_sel("conn:close_write")
  local ok, err = uv.shutdown(self.h, function(e) fire(sel, e or false) end)
  if not ok then return nil, errors.from_uv(err, nil, "shutdown") end
  local _, e = block(sel, nil, self.wdeadline)
  if e then return nil, errors.from_uv(e, nil, "shutdown") end
  return true
end

--- Closes the conn; tasks blocked in read or write return errors.CLOSED.
function Conn:close()
  if self.closed then return nil, CLOSED end
  self.closed = true
  C.lb_uvread_forget(self.rd)
  self.reading = false
  reading[self.id] = nil
  -- (Asked of lb_uvread when it knows luv's layout: a compiled call, where
  -- uv.is_closing is a luv call that compiled code reaches by a stitch.)
  local h = self.h
  local closing = C.lb_uvread_is_closing(h)
  if closing < 0 then closing = uv.is_closing(h) and 1 or 0 end
  if closing == 0 then uv.close(h) end
  if self.tentry then timer_cancel(self.tentry); self.tentry = nil end
  local sel = self.rsel
  if sel then self.rsel = nil; fire(sel) end
  if self.wsels then
    for s in pairs(self.wsels) do fire(s, false) end
  end
  return true
end

function Conn:set_read_deadline(t)
  check_deadline(t, "conn:set_read_deadline")
  self.rdeadline = t
  if self.rsel and t then
    if t <= now() then fire(self.rsel, nil, -2) else arm_read_deadline(self, t) end
  end
  return true
end

function Conn:set_write_deadline(t)
  check_deadline(t, "conn:set_write_deadline")
  self.wdeadline = t
  if self.wsels then
    for s in pairs(self.wsels) do sel_deadline(s, t) end
  end
  return true
end

function Conn:set_deadline(t)
  check_deadline(t, "conn:set_deadline")
  self:set_read_deadline(t)
  return self:set_write_deadline(t)
end

-- "ip:port" of the conn's socket (peer: 1) or of its peer (0), or nil.
-- One C call (lb_uvread_sockname) where luv's getpeername builds a table
-- and its strings: servers ask every new connection for its peer.
local addr_buf = ffi.new("char[64]")
local function sock_addr(c, peer)
  local fd = c.fd
  if fd then
    local n = tonumber(C.lb_uvread_sockname(fd, peer, addr_buf, 64))
    if n <= 0 then return nil end
    local s = ffi.string(addr_buf, n) -- (not a tail call: LuaJIT aborted the trace)
    return s
  end
  return sockaddr_string(peer == 1 and uv.tcp_getpeername(c.h) or uv.tcp_getsockname(c.h))
end

function Conn:local_addr()
  if self.laddr == nil and not self.closed then self.laddr = sock_addr(self, 0) end
  return self.laddr
end

function Conn:remote_addr()
  if self.raddr == nil and not self.closed then self.raddr = sock_addr(self, 1) end
  return self.raddr
end

function Conn:__tostring()
  return ("tcp conn %s -> %s%s"):format(tostring(self:local_addr()), tostring(self:remote_addr()),
    self.closed and " (closed)" or "")
end

---------------------------------------------------------------------------
-- TCP listener
---------------------------------------------------------------------------

-- libuv 1.44 has no SO_REUSEPORT flag; set it on the socket before bind.
local set_reuseport
do
  local ffi = require "ffi"
  pcall(ffi.cdef, "int setsockopt(int, int, int, const void *, unsigned int);")
  local one = ffi.new("int[1]", 1)
  local SOL_SOCKET, SO_REUSEPORT = 1, 15 -- Linux
  set_reuseport = function(h)
    local fd = uv.fileno(h)
    if not fd then return nil, "EBADF: no socket" end
    if ffi.C.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, one, 4) ~= 0 then
      return nil, "EINVAL: setsockopt SO_REUSEPORT failed"
    end
    return true
  end
end

local Listener = {}
Listener.__index = Listener
M.Listener = Listener

local IS_LINUX = jit and jit.os == "Linux"

--- Connections a listener may take from the kernel ahead of accept calls
--- (see on_connection).
M.ACCEPT_AHEAD = 16

-- libuv's connection callback. libuv accepts one connection and calls it;
-- a connection the callback leaves there makes libuv stop watching the
-- socket until uv.accept takes it, and start again then: two epoll_ctl
-- calls per connection, one of them failing (EEXIST). So while a task
-- waits in accept, or conns taken this way wait for one, the callback
-- takes the connection at once, and libuv goes on accepting in the same
-- pass (until the kernel has none left): at most ACCEPT_AHEAD conns wait
-- in the listener. Otherwise (nobody accepts) connections stay in the
-- kernel's backlog until accept is called, as before.
local function on_connection(l, e)
  if e then
    l.lerr = errors.from_uv(e, nil, "accept")
    l.pending = l.pending + 1
  else
    local queued = l.rlast - l.rfirst + 1
    local client = (l.accq.n > 0 or queued > 0) and queued < M.ACCEPT_AHEAD and not l.closed and uv.new_tcp()
    if client and uv.accept(l.h, client) then
      local i = l.rlast + 1
      l.rlast = i
      l.ready[i] = new_conn(client, l.nodelay)
    else
      if client then uv.close(client) end
      l.pending = l.pending + 1
    end
  end
  local w = lowbit._q_shift(l.accq)
  if w then fire(w.sel) end
end

-- Under `lowbit -w N` (lowbit.host), a worker inherits its slot's listening
-- socket from the master: M._inherited = { fd, ip, port, spec_port, on_ready }.
-- The first net.listen whose address resolves to the same ip, with the
-- bound port or the port given to `-l` (0 included), opens that socket
-- instead of binding a new one, so scripts need no change.
M._inherited = nil
M._resolve = resolve

local function adopt(ip, port)
  local inh = M._inherited
  if not inh or inh.used or ip ~= inh.ip then return nil end
  if port ~= inh.port and port ~= inh.spec_port then return nil end
  inh.used = true
  local h = uv.new_tcp()
  local ok, err = uv.tcp_open(h, inh.fd)
  if not ok then uv.close(h); return nil, err end
  return h, inh
end

--- Listens on "host:port" (port 0 picks a free one). opts.backlog (511),
--- opts.reuseport (SO_REUSEPORT, for several worker processes on a port).
--- In a worker of `lowbit -w N -l addr`, listening on addr adopts the
--- socket the master holds for the worker's slot.
function M.listen(addr, opts)
  if type(addr) ~= "string" then arg_error("net.listen", "addr", "string", addr) end
  opts = opts or {}
  local host, port = M.split_host_port(addr)
  if not host then return nil, errors.wrap(port, "listen tcp") end
  local ips, rerr = resolve(nil, host, "stream")
  if not ips then return nil, errors.wrap(rerr, "listen tcp %s", addr) end
  local ip = ips[1]
  local h, inh = adopt(ip, port)
  if not h and inh then return nil, errors.from_uv(inh, nil, "listen tcp " .. addr) end
  local ok, err = true, nil
  if not h then
    h = uv.new_tcp(ip:find(":", 1, true) and "inet6" or "inet")
    if opts.reuseport then ok, err = set_reuseport(h) end
    if ok then ok, err = uv.tcp_bind(h, ip, port) end
  end
  local l = setmetatable({ h = h, pending = 0, closed = false, accq = lowbit._q_new(),
                           ready = {}, rfirst = 1, rlast = 0, nodelay = false, accw = false }, Listener)
  if ok then
    ok, err = uv.listen(h, opts.backlog or 511, function(e) on_connection(l, e) end)
  end
  if not ok then
    uv.close(h)
    return nil, errors.from_uv(err, nil, "listen tcp " .. addr)
  end
  -- Set once here, TCP_NODELAY is inherited by every accepted socket on
  -- Linux (a setsockopt per connection less); elsewhere, or if it fails,
  -- each conn sets it.
  l.nodelay = IS_LINUX and uv.tcp_nodelay(h, true) == 0
  if h and inh and inh.on_ready then inh.on_ready() end
  return l
end

-- One look for a connection: a conn, nil, err, or false when accept must
-- wait. (Tail calls rather than loops, here and in accept_wait: a loop in
-- accept made every trace started in a server's accept loop abort on it,
-- and that loop, with the task spawn of each connection, ran interpreted.)
local function accept_try(self)
  if self.closed then return nil, CLOSED end
  local i = self.rfirst
  if i <= self.rlast then
    local c = self.ready[i]
    self.ready[i] = nil
    if i == self.rlast then self.rfirst, self.rlast = 1, 0 else self.rfirst = i + 1 end
    return c
  end
  if self.lerr then
    local e = self.lerr
    self.lerr = nil
    self.pending = self.pending - 1
    return nil, e
  end
  if self.pending <= 0 then return false end
  local client = uv.new_tcp()
  local ok, err = uv.accept(self.h, client)
  self.pending = self.pending - 1
  if ok then return new_conn(client, self.nodelay) end
  uv.close(client)
  if err and not tostring(err):find("EAGAIN", 1, true) then
    return nil, errors.from_uv(err, nil, "accept")
  end
  return accept_try(self)
end

-- Waits until accept_try may find something, then looks again.
local function accept_wait(self, ctx)
  if ctx:err() then return nil, ctx:err() end
  -- A server's accept loop waits here for most connections: the
  -- waiter and its entry are kept on the listener for the next wait
  -- (taken while in use: tasks accepting at once get their own), and
  -- background (never done) is not watched (an entry in its queue).
  local w = self.accw
  local sel
  if w then
    self.accw = false
    sel = w.sel
    sel.co, sel.done, sel.index, sel.value, sel.ok = lowbit._need_task("listener:accept"), false, false, false, false
  else
    sel = new_sel("listener:accept")
    w = lowbit._waiter(sel)
  end
  lowbit._q_push(self.accq, w)
  local why = block(sel, ctx ~= background and ctx or nil, nil)
  lowbit._q_remove(w)
  sel.co, sel.value = false, false
  self.accw = w
  if why == "ctx" then return nil, ctx:err() end
  local c, err = accept_try(self)
  if c ~= false then return c, err end
  return accept_wait(self, ctx)
end

--- Waits for the next connection. ctx (optional) stops the wait early with
--- nil, ctx:err().
function Listener:accept(ctx)
  ctx = check_ctx(ctx, "listener:accept")
  local c, err = accept_try(self)
  if c ~= false then return c, err end
  return accept_wait(self, ctx)
end

--- The address the listener is bound to, "host:port".
function Listener:addr()
  if self.addr_ == nil and not self.closed then self.addr_ = sockaddr_string(uv.tcp_getsockname(self.h)) end
  return self.addr_
end

--- The bound port.
function Listener:port()
  local _, port = M.split_host_port(self:addr())
  return port
end

--- Stops listening; tasks blocked in accept return errors.CLOSED.
function Listener:close()
  if self.closed then return nil, CLOSED end
  self:addr()
  self.closed = true
  if not uv.is_closing(self.h) then uv.close(self.h) end
  for i = self.rfirst, self.rlast do self.ready[i]:close(); self.ready[i] = nil end
  self.rfirst, self.rlast = 1, 0
  while true do
    local w = lowbit._q_shift(self.accq)
    if not w then break end
    fire(w.sel)
  end
  return true
end

function Listener:__tostring() return "tcp listener " .. tostring(self:addr()) end

---------------------------------------------------------------------------
-- Dial
---------------------------------------------------------------------------

local function connect_one(ctx, ip, port)
  local h = uv.new_tcp(ip:find(":", 1, true) and "inet6" or "inet")
  local sel = new_sel("net.dial")
  local ok, err = uv.tcp_connect(h, ip, port, function(e) fire(sel, e or false) end)
  if not ok then uv.close(h); return nil, errors.from_uv(err) end
  local why, e = block(sel, ctx, ctx:deadline())
  if why ~= "ok" then
    uv.close(h)
    return nil, ctx:err() or context.DEADLINE_EXCEEDED
  end
  if e then uv.close(h); return nil, errors.from_uv(e) end
  return new_conn(h)
end

--- Connects to "host:port" (names resolved through the loop). ctx bounds
--- the whole dial; nil means no bound. Tries each resolved address in turn.
function M.dial(ctx, addr)
  ctx = check_ctx(ctx, "net.dial")
  if type(addr) ~= "string" then arg_error("net.dial", "addr", "string", addr) end
  lowbit._need_task("net.dial")
  local host, port = M.split_host_port(addr)
  if not host then return nil, errors.wrap(port, "dial tcp") end
  if ctx:err() then return nil, errors.wrap(ctx:err(), "dial tcp %s", addr) end
  if host == "" then host = "127.0.0.1" end
  local ips, rerr = resolve(ctx, host, "stream")
  if not ips then return nil, errors.wrap(rerr, "dial tcp %s", addr) end
  local last
  for _, ip in ipairs(ips) do
    local c, err = connect_one(ctx, ip, port)
    if c then return c end
    last = err
    if ctx:err() then break end
  end
  return nil, errors.wrap(last, "dial tcp %s", addr)
end

---------------------------------------------------------------------------
-- UDP
---------------------------------------------------------------------------

local Udp = {}
Udp.__index = Udp
M.Udp = Udp

--- Datagrams kept unread before new ones are dropped (UDP may lose them).
M.UDP_QUEUE = 1024

local function new_udp(h, peer)
  local u = setmetatable({ h = h, q = {}, qh = 1, qt = 0, closed = false, peer = peer, dropped = 0 }, Udp)
  return u
end

local function udp_start(u)
  if u.receiving then return true end
  local ok, err = uv.udp_recv_start(u.h, function(e, data, addr)
    if e then
      u.rerr = errors.from_uv(e, nil, "read udp")
    elseif data then
      if u.qt - u.qh + 1 >= M.UDP_QUEUE then
        u.dropped = u.dropped + 1
      else
        u.qt = u.qt + 1
        u.q[u.qt] = { data, addr and sockaddr_string(addr) }
      end
    else
      return -- nothing more (libuv's empty read)
    end
    local sel = u.rsel
    if sel then u.rsel = nil; fire(sel) end
  end)
  if not ok then return nil, errors.from_uv(err, nil, "read udp") end
  u.receiving = true
  return true
end

--- A UDP socket bound to "host:port". opts.broadcast allows sending to
--- broadcast addresses; opts.reuseaddr lets several sockets share the port.
function M.listen_udp(addr, opts)
  if type(addr) ~= "string" then arg_error("net.listen_udp", "addr", "string", addr) end
  opts = opts or {}
  local host, port = M.split_host_port(addr)
  if not host then return nil, errors.wrap(port, "listen udp") end
  local ips, rerr = resolve(nil, host, "dgram")
  if not ips then return nil, errors.wrap(rerr, "listen udp %s", addr) end
  local ip = ips[1]
  local h = uv.new_udp(ip:find(":", 1, true) and "inet6" or "inet")
  local ok, err = uv.udp_bind(h, ip, port, { reuseaddr = opts.reuseaddr and true or nil })
  if ok and opts.broadcast then ok, err = uv.udp_set_broadcast(h, true) end
  if not ok then
    uv.close(h)
    return nil, errors.from_uv(err, nil, "listen udp " .. addr)
  end
  return new_udp(h)
end

--- A UDP socket connected to "host:port": send(data) and recv() talk to that
--- peer only. opts.broadcast as for listen_udp.
function M.dial_udp(ctx, addr, opts)
  ctx = check_ctx(ctx, "net.dial_udp")
  if type(addr) ~= "string" then arg_error("net.dial_udp", "addr", "string", addr) end
  opts = opts or {}
  local host, port = M.split_host_port(addr)
  if not host then return nil, errors.wrap(port, "dial udp") end
  local ips, rerr = resolve(lowbit.current() and ctx or nil, host, "dgram")
  if not ips then return nil, errors.wrap(rerr, "dial udp %s", addr) end
  local ip = ips[1]
  local h = uv.new_udp(ip:find(":", 1, true) and "inet6" or "inet")
  local ok, err = true, nil
  if opts.broadcast then ok, err = uv.udp_set_broadcast(h, true) end
  if ok then ok, err = uv.udp_connect(h, ip, port) end
  if not ok then
    uv.close(h)
    return nil, errors.from_uv(err, nil, "dial udp " .. addr)
  end
  return new_udp(h, M.join_host_port(ip, port))
end

local function udp_send(u, data, host, port, fname)
  check_data(data, fname)
  if u.closed then return nil, CLOSED end
  local wd = u.wdeadline
  if wd and wd <= now() then return nil, TIMEOUT end
  local total = data_len(data)
  local n = uv.udp_try_send(u.h, data, host, port)
  if n == total then return total end
  local sel = new_sel(fname)
  local ok, err = uv.udp_send(u.h, data, host, port, function(e) fire(sel, e or false) end)
  if not ok then return nil, errors.from_uv(err, nil, "write udp") end
  local why, e = block(sel, nil, wd)
  if why == "timeout" then return nil, TIMEOUT end
  if u.closed then return nil, CLOSED end
  if e then return nil, errors.from_uv(e, nil, "write udp") end
  return total
end

--- Sends one datagram to "host:port" (an IP literal).
function Udp:send_to(data, addr)
  if type(addr) ~= "string" then arg_error("udp:send_to", "addr", "string", addr) end
  if self.peer then error("udp:send_to: socket is connected; use send", 2) end
  local host, port = M.split_host_port(addr)
  if not host then return nil, errors.wrap(port, "write udp") end
  return udp_send(self, data, host, port, "udp:send_to")
end

--- Sends one datagram to the connected peer.
function Udp:send(data)
  if not self.peer then error("udp:send: socket is not connected; use send_to", 2) end
  return udp_send(self, data, nil, nil, "udp:send")
end

--- Waits for one datagram: returns data, "ip:port" of the sender. With buf (a
--- string.buffer) the data is appended to it and its length returned
--- instead. ctx (optional) ends the wait early with nil, ctx:err().
function Udp:recv_from(buf, ctx)
  if buf ~= nil and type(buf) ~= "userdata" then arg_error("udp:recv_from", "buf", "string.buffer or nil", buf) end
  if ctx ~= nil then check_ctx(ctx, "udp:recv_from") end
  while true do
    if self.closed then return nil, CLOSED end
    if self.qh <= self.qt then
      local item = self.q[self.qh]
      self.q[self.qh] = nil
      self.qh = self.qh + 1
      if self.qh > self.qt then self.qh, self.qt = 1, 0 end
      if buf then buf:put(item[1]); return #item[1], item[2] end
      return item[1], item[2]
    end
    if self.rerr then local e = self.rerr; self.rerr = nil; return nil, e end
    if ctx and ctx:err() then return nil, ctx:err() end
    local rd = self.rdeadline
    if rd and rd <= now() then return nil, TIMEOUT end
    if self.rsel then error("udp:recv_from: another task is already reading", 2) end
    local ok, err = udp_start(self)
    if not ok then return nil, err end
    local sel = new_sel("udp:recv_from")
    self.rsel = sel
    local why = block(sel, ctx, rd)
    if self.rsel == sel then self.rsel = nil end
    if why == "timeout" then return nil, TIMEOUT end
    if why == "ctx" then return nil, ctx:err() end
  end
end

--- recv_from for a connected socket: returns data only.
function Udp:recv(buf, ctx)
  local d, err = self:recv_from(buf, ctx)
  return d, err
end

function Udp:set_read_deadline(t)
  check_deadline(t, "udp:set_read_deadline")
  self.rdeadline = t
  if self.rsel then sel_deadline(self.rsel, t) end
  return true
end

function Udp:set_write_deadline(t)
  check_deadline(t, "udp:set_write_deadline")
  self.wdeadline = t
  return true
end

function Udp:set_deadline(t)
  self:set_read_deadline(t)
  return self:set_write_deadline(t)
end

function Udp:set_broadcast(on)
  local ok, err = uv.udp_set_broadcast(self.h, on and true or false)
  if not ok then return nil, errors.from_uv(err) end
  return true
end

function Udp:local_addr()
  if self.laddr == nil and not self.closed then self.laddr = sockaddr_string(uv.udp_getsockname(self.h)) end
  return self.laddr
end

function Udp:remote_addr() return self.peer end

function Udp:close()
  if self.closed then return nil, CLOSED end
  self:local_addr()
  self.closed = true
  if not uv.is_closing(self.h) then uv.close(self.h) end
  local sel = self.rsel
  if sel then self.rsel = nil; fire(sel) end
  return true
end

function Udp:__tostring() return "udp " .. tostring(self:local_addr()) end

---------------------------------------------------------------------------
-- Prefixed conn: any conn, with bytes to return before its own.
---------------------------------------------------------------------------

--- Wraps conn so that reads first return prefix (bytes already read from
--- it elsewhere), then continue from conn. Every other call goes to conn.
function M.prefixed(conn, prefix)
  if type(conn) ~= "table" or type(conn.read) ~= "function" then arg_error("net.prefixed", "conn", "conn", conn) end
  if prefix ~= nil and type(prefix) ~= "string" then arg_error("net.prefixed", "prefix", "string or nil", prefix) end
  if prefix == nil or prefix == "" then return conn end
  if conn.unread then conn:unread(prefix); return conn end
  local buf = buffer.new()
  buf:put(prefix)
  local p = setmetatable({}, { __index = function(_, k)
    local v = conn[k]
    if type(v) == "function" then return function(_, ...) return v(conn, ...) end end
    return v
  end })
  p.read = function(_, max)
    if #buf > 0 then return buf:get(max) end
    return conn:read(max)
  end
  p.read_full = read_full
  p.unread = function(_, s) local rest = buf:get(); buf:put(s, rest) end
  p.buffered = function() return #buf end
  return p
end

---------------------------------------------------------------------------
-- In-memory pipe
---------------------------------------------------------------------------

local Pipe = {}
Pipe.__index = Pipe
M.Pipe = Pipe

--- Bytes a pipe end accepts before its writer waits for the reader.
M.PIPE_BUFFER = 64 * 1024

--- Two connected in-memory conns (for tests): what one writes, the other
--- reads. Same interface and errors as a TCP conn.
function M.pipe()
  local a = setmetatable({ rbuf = buffer.new(), name = "pipe-a" }, Pipe)
  local b = setmetatable({ rbuf = buffer.new(), name = "pipe-b" }, Pipe)
  a.peer, b.peer = b, a
  return a, b
end

local function pipe_notify_reader(p)
  local sel = p.rsel
  if sel then p.rsel = nil; fire(sel) end
end

local function pipe_notify_writers(p)
  local ws = p.wwait
  if ws then
    p.wwait = nil
    for i = 1, #ws do fire(ws[i]) end
  end
end

function Pipe:read(max)
  if max ~= nil and (type(max) ~= "number" or max < 1) then arg_error("conn:read", "max", "positive number or nil", max) end
  while true do
    if self.closed then return nil, CLOSED end
    if #self.rbuf > 0 then
      local s = self.rbuf:get(max)
      pipe_notify_writers(self)
      return s
    end
    if self.eof then return nil, EOF end
    local rd = self.rdeadline
    if rd and rd <= now() then return nil, TIMEOUT end
    if self.rsel then error("conn:read: another task is already reading this conn", 2) end
    local sel = new_sel("conn:read")
    self.rsel = sel
    local why = block(sel, nil, rd)
    if self.rsel == sel then self.rsel = nil end
    if why == "timeout" then return nil, TIMEOUT end
  end
end

Pipe.read_full = read_full

function Pipe:buffered() return #self.rbuf end

function Pipe:unread(s)
  if type(s) ~= "string" then arg_error("conn:unread", "s", "string", s) end
  if #s == 0 then return end
  local rest = self.rbuf:get()
  self.rbuf:put(s, rest)
end

function Pipe:write(data)
  check_data(data, "conn:write")
  local total = data_len(data)
  local peer = self.peer
  while true do
    if self.closed then return nil, CLOSED end
    if self.wclosed or peer.closed then return nil, errors.from_uv("EPIPE: broken pipe", "EPIPE", "write") end
    local wd = self.wdeadline
    if wd and wd <= now() then return nil, TIMEOUT end
    if #peer.rbuf < M.PIPE_BUFFER then break end
    local sel = new_sel("conn:write")
    peer.wwait = peer.wwait or {}
    peer.wwait[#peer.wwait + 1] = sel
    self.wsel = sel
    local why = block(sel, nil, wd)
    self.wsel = nil
    if why == "timeout" then return nil, TIMEOUT end
  end
  if type(data) == "table" then data = concat(data) end
  peer.rbuf:put(data)
  pipe_notify_reader(peer)
  return total
end

function Pipe:close_write()
  if self.closed then return nil, CLOSED end
  self.wclosed = true
  self.peer.eof = true
  pipe_notify_reader(self.peer)
  return true
end

function Pipe:close()
  if self.closed then return nil, CLOSED end
  self.closed = true
  self.wclosed = true
  local peer = self.peer
  peer.eof = true
  pipe_notify_reader(self)
  pipe_notify_reader(peer)
  pipe_notify_writers(self)
  pipe_notify_writers(peer)
  if self.wsel then fire(self.wsel) end
  return true
end

function Pipe:set_read_deadline(t)
  check_deadline(t, "conn:set_read_deadline")
  self.rdeadline = t
  if self.rsel then sel_deadline(self.rsel, t) end
  return true
end

function Pipe:set_write_deadline(t)
  check_deadline(t, "conn:set_write_deadline")
  self.wdeadline = t
  if self.wsel then sel_deadline(self.wsel, t) end
  return true
end

function Pipe:set_deadline(t)
  self:set_read_deadline(t)
  return self:set_write_deadline(t)
end

function Pipe:local_addr() return self.name end
function Pipe:remote_addr() return self.peer.name end
function Pipe:__tostring() return "pipe conn " .. self.name end

return M
