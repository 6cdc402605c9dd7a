-- lowbit.http.server: the HTTP/1.1 server (exposed as lowbit.http.server).
--
-- One task per connection: read until the C core (lb_http1) finds a whole
-- request head, build the Request, call the handler, frame the response
-- (Content-Length when the handler's output fits the buffer and was not
-- flushed, chunked otherwise), then loop for the next request (keep-alive,
-- pipelining in order). Limits and timeouts follow conformance/http1.md.
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local net = require "lowbit.net"
local core = require "lowbit.core"
local headers = require "lowbit.http.headers"
local request = require "lowbit.http.request"
local body = require "lowbit.http.body"
local log = require "lowbit.log"
local buffer = require "string.buffer"

local C, ffi = core.C, core.ffi
local ffi_string = ffi.string
local type, error, tostring, tonumber, setmetatable, pcall, xpcall =
  type, error, tostring, tonumber, setmetatable, pcall, xpcall
local find, lower, sub, min = string.find, string.lower, string.sub, math.min
local format, byte, gsub = string.format, string.byte, string.gsub
local now, go_at = lowbit.now, lowbit._go_at
local new_ctx, cancel_ctx = context._child, context._cancel
local traceback = debug.traceback

local M = {}

M.SERVER_CLOSED = errors.new("http: Server closed")
M.HIJACKED = errors.new("http: connection has been hijacked")
M.BODY_NOT_ALLOWED = errors.new("http: request method or response status code does not allow body")
M.CONTENT_LENGTH = errors.new("http: wrote more than the declared Content-Length")
M.ABORT_HANDLER = errors.new("http: abort handler")

M.DEFAULT_MAX_HEADER_BYTES = 1024 * 1024
M.MAX_HEADERS = 256
local BUFFER_SIZE = 4096                 -- response bytes held for Content-Length
local MAX_DISCARD = 256 * 1024           -- unread request body drained for keep-alive
local BIG_WRITE = 64 * 1024              -- w:write strings past this go out from the caller's string
local WAIT_PIECE = 16 * 1024             -- what such a write queues when the socket is full
local OUT_KEEP = 128 * 1024              -- a head buffer grown past this is freed after use
local OUT_SIZE = 256                     -- a head buffer's first size (grown 32, 64, 128, 256 otherwise)
-- Seconds the server drains a request body the handler left unread (at
-- most MAX_DISCARD bytes) before it gives up the connection.
M.DISCARD_TIMEOUT = 5
-- Seconds a connection lingers after the server stops reading a body it
-- will not read: our side is shut first, so that the client reads the
-- response rather than a reset (as Go does).
M.LINGER = 0.5
-- Seconds a response write may stay blocked (the client does not read)
-- once shutdown has cancelled the request's ctx; then it ends.
M.WRITE_STALL = 1

local EAGAIN = -1

---------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------

local reason_cache = {}
local function reason(status)
  local r = reason_cache[status]
  if r == nil then
    local p = C.lb_http1_reason(status)
    r = p ~= nil and ffi_string(p) or ""
    reason_cache[status] = r
  end
  return r
end
function M.status_text(code)
  if type(code) ~= "number" then
    error("bad argument 'code' to http.status_text: number expected, got " .. type(code), 2)
  end
  return reason(code)
end

local status_lines = {}
local function status_line(status)
  local l = status_lines[status]
  if l == nil then
    l = "HTTP/1.1 " .. status .. " " .. reason(status) .. "\r\n"
    status_lines[status] = l
  end
  return l
end

local date_buf = ffi.new("char[32]")
local date_sec, date_str = -1, nil
-- The wall clock through the FFI: os.time is a C function the JIT cannot
-- record, so a trace would end (stitch) at it on every response, and the
-- code after it, up to the next trace, ran interpreted.
pcall(ffi.cdef, "int64_t lb_time_now(void *) __asm__(\"time\");")
local ok_time, c_time = pcall(function() return ffi.C.lb_time_now end)
-- (Not a tail call: a root trace of it could not return through tonumber.)
local wall = ok_time and function() local t = tonumber(c_time(nil)); return t end or os.time
local date_line_str = nil
local function http_date()
  local t = wall()
  if t ~= date_sec then
    local n = C.lb_http1_format_date(date_buf, t)
    date_str = ffi_string(date_buf, n)
    date_line_str = "Date: " .. date_str .. "\r\n"
    date_sec = t
  end
  return date_str
end
M.http_date = http_date
-- "Date: <now>\r\n", made once a second with the date.
local function date_line()
  http_date()
  return date_line_str
end

-- What Go's DetectContentType would say for the common cases.
local function sniff(s)
  local head = s:sub(1, 512)
  local t = head:match("^[\t\n\f\r ]*(.*)$")
  local l = lower(t:sub(1, 14))
  if l:find("^<!doctype html") or l:find("^<html") or l:find("^<head") or l:find("^<body")
    or l:find("^<script") or l:find("^<title") or l:find("^<div") or l:find("^<p[ >]")
    or l:find("^<h1") or l:find("^<table") or l:find("^<a[ >]") or l:find("^<br") then
    return "text/html; charset=utf-8"
  end
  if t:find("^<%?xml") then return "text/xml; charset=utf-8" end
  if head:find("^%%PDF%-") then return "application/pdf" end
  if head:find("^\137PNG\r\n\26\n") then return "image/png" end
  if head:find("^\255\216\255") then return "image/jpeg" end
  if head:find("^GIF8[79]a") then return "image/gif" end
  if head:find("[%z\1-\8\11\14-\26\28-\31]") then return "application/octet-stream" end
  return "text/plain; charset=utf-8"
end
function M.detect_content_type(data)
  if type(data) ~= "string" then
    error("bad argument 'data' to http.detect_content_type: string expected, got " .. type(data), 2)
  end
  return sniff(data)
end

-- A handler is a function, a table with serve_http, or a callable table
-- (what check_handler accepts).
local function call_handler(h, w, r)
  if type(h) == "table" and h.serve_http then return h:serve_http(w, r) end
  return h(w, r)
end

local function check_handler(h, fname)
  local t = type(h)
  if t == "function" then return end
  if t == "table" and type(h.serve_http) == "function" then return end
  local mt = getmetatable(h)
  if mt and mt.__call then return end
  error("bad argument 'handler' to " .. fname .. ": function or table with serve_http expected, got " .. t, 3)
end
M.check_handler = check_handler
M.call_handler = call_handler

---------------------------------------------------------------------------
-- ResponseWriter
---------------------------------------------------------------------------

local W = {}
W.__index = W
M.ResponseWriter = W

function W:header()
  local h = self.hdr
  if not h then
    -- The set is the connection's, made on its first use (a handler that
    -- sets no field, or answers with write_prebuilt, never makes one).
    local rh = self.resp_h
    if not rh then rh = headers._new_sized(4); self.resp_h = rh end
    h = rh:_reset()
    self.hdr = h
  end
  return h
end

local function body_allowed(status)
  return not ((status >= 100 and status < 200) or status == 204 or status == 304)
end

local SKIP_TE = { ["transfer-encoding"] = true }

-- Decided before the head is written, as Go does: a request body the
-- handler left unread is drained after the response only when it is
-- small; when its length says MAX_DISCARD or more remain, or the body can
-- no longer be read, the response says Connection: close and the
-- connection closes once it is sent.
local function check_unread(w, cs)
  local b = w.req.body
  if b.done or cs.close_after then return end
  if b.closed or b.err or (cs.expect and not w.sent_continue) then
    cs.close_after = true
  elseif b.kind == body.LENGTH and b.remaining >= MAX_DISCARD then
    cs.close_after = true
    cs.linger = true -- the client may still be sending it
  end
end

-- The Connection field and the end of a head: close after this response
-- (asked for, shutting down, an HTTP/1.1 client's "close"), or keep an
-- HTTP/1.0 client's keep-alive when the body's end is known (framed).
local function put_connection(out, cs, r, framed, has_conn_close)
  if cs.close_after or cs.srv.shutting_down or (not cs.keep_alive and r.proto_minor == 1) then
    cs.close_after = true
    if not has_conn_close then out:put("Connection: close\r\n") end
  elseif r.proto_minor == 0 and cs.keep_alive then
    if framed then out:put("Connection: keep-alive\r\n")
    else cs.close_after = true end
  end
  out:put("\r\n")
end

-- The response body held until the head goes: the only write so far as
-- it was given (w.pend, a string), or, from a second write on, the
-- writer's buffer (w.buf, made then and kept for the connection). Most
-- handlers write once: their response needs no buffer of its own.
local function held_len(w)
  local p = w.pend
  if p then return #p end
  local b = w.buf
  return b and #b or 0
end

local function held_str(w)
  local p = w.pend
  if p then return p end
  local b = w.buf
  return b and b:tostring() or ""
end

-- Appends the held bytes to out, and forgets them.
local function put_held(out, w)
  local p = w.pend
  if p then out:put(p); w.pend = false; return end
  local b = w.buf
  if b and #b > 0 then out:put(b); b:reset() end
end

local function drop_held(w)
  if w.pend then w.pend = false end
  local b = w.buf
  if b then b:reset() end
end

-- Holds s after what is held (the caller checked that all fits).
local function hold(w, s)
  local p, b = w.pend, w.buf
  if not p and (not b or #b == 0) then w.pend = s; return end
  if not b then b = buffer.new(); w.buf = b end
  if p then b:put(p); w.pend = false end
  b:put(s)
end

-- "Content-Length: n\r\n" for the lengths a held body can have (at most
-- BUFFER_SIZE), each made once: formatting the number cost more per
-- response than the rest of the line.
local cl_lines = {}
local function cl_line(n)
  local l = cl_lines[n]
  if l == nil then
    l = "Content-Length: " .. n .. "\r\n"
    if n <= BUFFER_SIZE then cl_lines[n] = l end
  end
  return l
end

-- Serializes the head into out (a string.buffer). Decides the framing.
-- sample: the first body bytes when they are not in w.buf (for sniffing).
local function build_head(w, out, final, sample)
  local status = w.status
  local cs = w.cs
  local h = w.hdr
  local r = w.req
  check_unread(w, cs)
  out:put(status_line(status))
  local has_date, has_ctype, has_conn_close = false, false, false
  local declared_cl = nil
  if h then
    if h._raw then h:count() end -- index a set built from raw pairs
    local vals = h._v
    has_date = vals.date ~= nil
    has_ctype = vals["content-type"] ~= nil
    local cl = vals["content-length"]
    if cl ~= nil then
      if type(cl) == "table" then cl = cl[1] end
      -- The connection's last Content-Length string and its number: a
      -- handler sending the same response again skips the number scan.
      if cl == cs.cl_s then declared_cl = cs.cl_n
      else declared_cl = tonumber(cl); cs.cl_s, cs.cl_n = cl, declared_cl end
    end
    local conn_v = vals.connection
    if conn_v ~= nil and find(lower(type(conn_v) == "table" and table.concat(conn_v, ",") or conn_v), "close", 1, true) then
      has_conn_close = true
    end
    h:_write(out, final and SKIP_TE or nil)
  end
  if not has_date then out:put(date_line()) end
  local allowed = body_allowed(status)
  local blen = held_len(w)
  if allowed and not has_ctype and (blen > 0 or sample) then
    out:put("Content-Type: ", sniff(sample or held_str(w)), "\r\n")
  end
  if has_conn_close then cs.close_after = true end
  if allowed and status ~= 101 then
    if declared_cl then
      w.declared = declared_cl
    elseif final then
      if not w.head_req or blen > 0 then out:put(cl_line(blen)) end
    elseif r.proto_minor >= 1 then
      w.chunked = true
      out:put("Transfer-Encoding: chunked\r\n")
    else
      cs.close_after = true -- HTTP/1.0: the body ends when the connection does
    end
  end
  put_connection(out, cs, r, declared_cl or final or not allowed, has_conn_close)
end

-- A failed write: the response is over, and so is the connection. A write
-- that shutdown ended (see cut_stalled) reports the request ctx's error.
local function write_failed(w, err)
  local cs = w.cs
  if cs.cut and err == errors.TIMEOUT then err = context.CANCELED end
  w.werr = err
  cs.close_after = true
  return nil, err
end

pcall(ffi.cdef, "ssize_t write(int, const void *, size_t);")
local libc_write = ffi.C.write
local cast = ffi.cast

-- The buffer heads are built in for conns with a descriptor of their own
-- (TCP): one for all connections, never held across a wait (a head is
-- built and written, or what is left of it copied out, with no yield in
-- between: net's Conn:write_buffer), so that a connection needs no buffer of
-- its own. It is no object a handler is given. Other conns (TLS: its
-- writes keep the buffer until sent) get one of their own, w.out, made on
-- their first response.
local scratch = buffer.new(OUT_SIZE)

local function head_buf(w)
  local conn = w.cs.conn
  if conn.fd and conn.write_buffer then scratch:reset(); return scratch end
  local out = w.out
  if not out then out = buffer.new(OUT_SIZE); w.out = out else out:reset() end
  return out
end

-- Writes and empties the string.buffer out (a head, and what fitted with
-- it); a buffer that grew large for it gives its memory back. last: the
-- connection closes after it, and a conn that can (TLS) sends its
-- close_notify in the same write.
local function conn_write_buf(w, out, last)
  local cs = w.cs
  local conn = cs.conn
  local large = #out > OUT_KEEP
  local ok, err
  cs.wn, cs.wbusy = cs.wn + 1, true
  if last and conn.write_buffer_close then ok, err = conn:write_buffer_close(out)
  elseif conn.write_buffer then ok, err = conn:write_buffer(out)
  else ok, err = conn:write(out:get()) end
  cs.wbusy = false
  if large then out:free() end
  if not ok then return write_failed(w, err) end
  return ok
end

local function conn_write(w, data)
  local cs = w.cs
  cs.wn, cs.wbusy = cs.wn + 1, true
  local ok, err = cs.conn:write(data)
  cs.wbusy = false
  if not ok then return write_failed(w, err) end
  return ok
end

-- Writes a large string from its own bytes, with no copy of it: write(2)
-- takes what the socket accepts; when the socket is full, conn:write
-- queues the next small piece and waits until it is sent (deadlines, close
-- and errors as for any write), and the rest goes on directly. Conns with
-- no descriptor of their own (TLS) are given the string whole: they
-- encrypt it record by record from the caller's string.
local function write_string(w, s)
  local conn = w.cs.conn
  local fd = conn.fd
  if not fd or not conn.write_buffer then return conn_write(w, s) end
  local n, off = #s, 0
  local p = cast("const char *", s) -- s stays referenced: the bytes do not move
  while off < n do
    if not conn.closed and not conn.werr and not conn.wpending then
      local k = tonumber(libc_write(fd, p + off, n - off))
      if k > 0 then off = off + k end
    end
    if off < n then
      local e = min(off + WAIT_PIECE, n)
      local ok, err = conn_write(w, sub(s, off + 1, e))
      if not ok then return nil, err end
      off = e
    end
  end
  return true
end

--- Sends the status line and headers (later header changes are ignored).
--- status must be 100..999; 1xx (but 101) are sent at once and may repeat.
function W:write_header(status)
  if type(status) ~= "number" or status < 100 or status > 999 or status % 1 ~= 0 then
    error("invalid WriteHeader code " .. tostring(status), 2)
  end
  if self.hijacked then return nil, M.HIJACKED end
  if self.status then return end -- superfluous: the first one counts
  if status >= 100 and status < 200 and status ~= 101 then
    local out = buffer.new()
    out:put(status_line(status))
    if self.hdr then self.hdr:_write(out) end
    out:put("\r\n")
    if status == 100 then self.sent_continue = true end
    return conn_write(self, out:tostring())
  end
  self.status = status
end

pcall(ffi.cdef, "struct iovec { void *iov_base; size_t iov_len; };") -- (may be declared already)
pcall(ffi.cdef, "ssize_t writev(int, const struct iovec *, int);")
local libc_writev = ffi.C.writev
local iov2 = ffi.new("struct iovec[2]")

-- Sends the head in out and the body string s in one writev(2), s from its
-- own bytes (no copy of it into out). When the socket does not take both
-- whole (or cannot be written directly now), what is left goes through
-- conn_write_buf as before: the same bytes, the same results.
local function write_head_body(w, out, s)
  local conn = w.cs.conn
  local fd = conn.fd
  local wd = conn.wdeadline
  if fd and conn.write_buffer and not conn.closed and not conn.werr and not conn.wpending
     and not (wd and wd <= now()) then
    local p, hn = out:ref()
    local n = #s
    iov2[0].iov_base, iov2[0].iov_len = p, hn
    iov2[1].iov_base, iov2[1].iov_len = cast("void *", cast("const char *", s)), n
    local k = tonumber(libc_writev(fd, iov2, 2))
    if k == hn + n then
      local cs = w.cs
      cs.wn = cs.wn + 1
      out:reset()
      return hn + n
    end
    if k > 0 then
      if k >= hn then out:reset(); s = sub(s, k - hn + 1)
      else out:skip(k) end
    end
  end
  out:put(s)
  return conn_write_buf(w, out)
end

-- Sends the head (and what is buffered, and `more` when given: a body
-- string of at most BIG_WRITE bytes) now; the body goes on streamed.
-- sample: the body's first bytes when w.buf does not hold them.
local function send_head(w, sample, more)
  local out = head_buf(w)
  build_head(w, out, false, sample)
  w.head_sent = true
  local blen = held_len(w)
  if not w.head_req and body_allowed(w.status) then
    if blen > 0 then
      if w.chunked then
        out:put(("%x\r\n"):format(blen))
        put_held(out, w)
        out:put("\r\n")
      else put_held(out, w) end
    end
    if more and blen == 0 and not w.chunked then
      drop_held(w)
      return write_head_body(w, out, more)
    end
    if more then
      if w.chunked then out:put(("%x\r\n"):format(#more), more, "\r\n")
      else out:put(more) end
    end
  end
  drop_held(w)
  return conn_write_buf(w, out)
end

--- Sends a whole response whose header fields the caller built once (a
--- cached file's): status (200..599, one with a body: not 204), fields
--- ("Name: value\r\n" lines, valid names and values, with a
--- Content-Length equal to #body and no Date, Connection or
--- Transfer-Encoding), and body. The server adds what it adds to any
--- response (the status line, Date, Connection: close or HTTP/1.0's
--- keep-alive, the same decisions as for a head built from w:header()),
--- leaves the body out for HEAD, and sends head and body in one write.
--- Only for a response not begun: when a status or a header field was
--- already set on w (a middleware's), it does nothing and returns false,
--- and the caller answers through w:header() and w:write as usual.
--- Returns true when sent, or nil, err.
function W:write_prebuilt(status, fields, body)
  if type(status) ~= "number" or status < 200 or status > 599 or status % 1 ~= 0 or not body_allowed(status) then
    error("bad argument 'status' to w:write_prebuilt: 200..599 with a body expected, got " .. tostring(status), 2)
  end
  if type(fields) ~= "string" then
    error("bad argument 'fields' to w:write_prebuilt: string expected, got " .. type(fields), 2)
  end
  if type(body) ~= "string" then
    error("bad argument 'body' to w:write_prebuilt: string expected, got " .. type(body), 2)
  end
  if self.hijacked then return nil, M.HIJACKED end
  if self.werr then return nil, self.werr end
  if self.status then return false end
  local h = self.hdr
  if h and h.n > 0 then return false end
  local cs = self.cs
  check_unread(self, cs)
  local out = head_buf(self)
  out:put(status_line(status), fields, date_line())
  put_connection(out, cs, self.req, true, false)
  local n = #body
  self.status, self.head_sent, self.declared, self.written = status, true, n, n
  local ok, err
  if self.head_req or n == 0 then ok, err = conn_write_buf(self, out)
  elseif n < BIG_WRITE then ok, err = write_head_body(self, out, body)
  else
    ok, err = conn_write_buf(self, out)
    if ok then ok, err = write_string(self, body) end
  end
  if not ok then return nil, err end
  return true
end

-- Writes body bytes after the head: small strings in one write with their
-- chunk framing, large ones from the caller's string.
local function write_body(w, s, n)
  if n < BIG_WRITE then
    if w.chunked then return conn_write(w, { ("%x\r\n"):format(n), s, "\r\n" }) end
    return conn_write(w, s)
  end
  local ok, err
  if w.chunked then
    ok, err = conn_write(w, ("%x\r\n"):format(n))
    if not ok then return nil, err end
  end
  ok, err = write_string(w, s)
  if not ok then return nil, err end
  if w.chunked then return conn_write(w, "\r\n") end
  return ok
end

--- Writes body bytes. Returns #s, or nil, err.
function W:write(s)
  if type(s) ~= "string" then error("bad argument 's' to w:write: string expected, got " .. type(s), 2) end
  if self.hijacked then return nil, M.HIJACKED end
  if self.werr then return nil, self.werr end
  if not self.status then self:write_header(200) end
  local n = #s
  if not body_allowed(self.status) then return nil, M.BODY_NOT_ALLOWED end
  self.written = self.written + n
  if self.declared and self.written > self.declared then
    self.written = self.written - n
    return nil, M.CONTENT_LENGTH
  end
  if self.head_req then
    if not self.head_sent and held_len(self) + n <= BUFFER_SIZE then hold(self, s) end
    return n
  end
  if not self.head_sent then
    local blen = held_len(self)
    if blen + n <= BUFFER_SIZE then hold(self, s); return n end
    -- The buffer holds only what fits: s goes out after the head (with
    -- it when small), never copied into the buffer.
    local sample = blen > 0 and held_str(self) .. sub(s, 1, 512) or s
    local ok, err = send_head(self, sample, n < BIG_WRITE and s or nil)
    if not ok then return nil, err end
    if n < BIG_WRITE then return n end
  end
  if n == 0 then return 0 end
  local ok, err = write_body(self, s, n)
  if not ok then return nil, err end
  return n
end

--- Sends the head (status 200 if none) and anything buffered now; from
--- then on the response is chunked (HTTP/1.1) unless a Content-Length was
--- set.
function W:flush()
  if self.hijacked then return nil, M.HIJACKED end
  if self.werr then return nil, self.werr end
  if not self.status then self:write_header(200) end
  if not self.head_sent then return send_head(self) end
  return true
end

--- Takes the connection over: the server forgets it (no deadlines, no
--- response). The conn first returns every byte already read past the
--- request head. A second hijack, or writing to w afterwards, fails.
local stop_watch -- defined below (the client-gone watcher)

function W:hijack()
  if self.hijacked then return nil, M.HIJACKED end
  local cs = self.cs
  stop_watch(cs) -- a watcher reading the conn must stop before it changes hands
  self.hijacked = true
  cs.hijacked = true
  local conn = cs.conn
  conn:set_deadline(nil)
  if not cs.inplace then
    -- Bytes read past the head go back in front of the conn's own.
    conn = net.prefixed(conn, cs.ib:get())
  end
  return conn
end

-- Ends the response after the handler returned.
local function finish_response(w)
  if w.hijacked then return end
  if w.werr then return end
  if not w.status then w.status = 200 end
  local cs = w.cs
  if not w.head_sent then
    local out = head_buf(w)
    build_head(w, out, true)
    if not w.head_req and body_allowed(w.status) then put_held(out, w) end
    drop_held(w)
    if w.declared and w.written < w.declared and not w.head_req then cs.close_after = true end
    -- The connection's last response (see end_request): its close_notify
    -- goes with it.
    conn_write_buf(w, out, cs.close_after or not cs.keep_alive)
    return
  end
  if w.chunked then
    conn_write(w, "0\r\n\r\n")
  elseif w.declared and w.written < w.declared then
    cs.close_after = true -- the client would wait for bytes that never come
  end
end

---------------------------------------------------------------------------
-- Raw error responses (the request never reaches a handler)
---------------------------------------------------------------------------

local function raw_error(conn, status, msg)
  local body_s = msg or (status .. " " .. reason(status))
  conn:write({ status_line(status),
    "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nDate: ", http_date(),
    "\r\nContent-Length: ", tostring(#body_s), "\r\n\r\n", body_s })
end

---------------------------------------------------------------------------
-- Connection loop
---------------------------------------------------------------------------

local shared_hdrs = ffi.new("lb_http1_header[?]", M.MAX_HEADERS)

local Server = {}
Server.__index = Server
M.Server = Server

local function positive(x) return type(x) == "number" and x > 0 and x or nil end

-- Builds the Request from a parsed head (must run before ib changes).
local new_tab = require "table.new"

-- The usual methods by the parser's method_id (lb_http1.h), so that their
-- strings are constants and not made from the bytes per request.
local METHOD_BY_ID = { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH" }
local function method_of(preq)
  local m = METHOD_BY_ID[preq.method_id]
  if m then return m end
  return ffi_string(preq.method, preq.method_len)
end

-- RFC 9112 6.1: a request framed by Transfer-Encoding that also has a
-- Content-Length is read as chunked, its Content-Length is dropped (a
-- handler that forwards the headers must not forward the pair), and the
-- connection closes after the response, as must one of an HTTP/1.0
-- request with a Transfer-Encoding (its framing is faulty).
local function framing_conflict(cs, raw, minor, kind)
  local drop = minor == 1 and kind == body.CHUNKED and "content-length"
    or (minor == 0 and "transfer-encoding")
  local j = 0
  for i = 1, #raw, 2 do
    local name = raw[i]
    if #name == #drop and lower(name) == drop then
      cs.close_after = true
      if minor == 0 then return raw end -- (framed by its Content-Length; kept as sent)
    else
      raw[j + 1], raw[j + 2] = name, raw[i + 1]
      j = j + 2
    end
  end
  for i = #raw, j + 1, -1 do raw[i] = nil end
  return raw
end

-- Field i of the parsed head into raw (name, value as strings). r.host
-- is the Host field's value (the same bytes) unless the target named the
-- host: that string is made once, not twice; returns it when field i is
-- that one, else host.
local function put_field(raw, i, host_p, host)
  local f = shared_hdrs[i]
  raw[2 * i + 1] = ffi_string(f.name, f.name_len)
  local v = ffi_string(f.value, f.value_len)
  raw[2 * i + 2] = v
  if f.value == host_p then return v end
  return host
end

local function put_fields_from(raw, from, n, host_p, host)
  for i = from, n - 1 do host = put_field(raw, i, host_p, host) end
  return host
end

-- Builds the Request from a parsed head (must run before ib changes).
-- The fields are unrolled for up to eight, a loop only past them: a loop
-- here made the root traces of every caller (serve_one, start_request,
-- ...) abort ("inner loop in root trace") unless LuaJIT chose to unroll it.
local function make_request(cs, preq)
  local n = tonumber(preq.num_headers)
  local raw = new_tab(2 * n, 0)
  local host_p, host = preq.host, nil
  if n > 0 then host = put_field(raw, 0, host_p, host) end
  if n > 1 then host = put_field(raw, 1, host_p, host) end
  if n > 2 then host = put_field(raw, 2, host_p, host) end
  if n > 3 then host = put_field(raw, 3, host_p, host) end
  if n > 4 then host = put_field(raw, 4, host_p, host) end
  if n > 5 then host = put_field(raw, 5, host_p, host) end
  if n > 6 then host = put_field(raw, 6, host_p, host) end
  if n > 7 then host = put_field(raw, 7, host_p, host) end
  if n > 8 then host = put_fields_from(raw, 8, n, host_p, host) end
  if host == nil then host = host_p ~= nil and ffi_string(host_p, preq.host_len) or "" end
  local minor = preq.version_minor
  local kind = preq.body_kind
  if (kind == body.CHUNKED or minor == 0) and n > 0 then raw = framing_conflict(cs, raw, minor, kind) end
  local raw_path = ffi_string(preq.path, preq.path_len)
  local has_query = preq.query ~= nil
  local raw_query = has_query and ffi_string(preq.query, preq.query_len) or ""
  -- The target is the path (and query) as sent, unless the client used the
  -- absolute form: then it is its own string.
  local target
  if preq.target_len == preq.path_len and not has_query then target = raw_path
  else target = ffi_string(preq.target, preq.target_len) end
  -- Twelve fields: the hash part has room for the four a handler may add
  -- (url, headers, pattern and path values, ctx) without a rehash.
  local r = request.new({
    method = method_of(preq),
    _path = raw_path, _query = has_query and raw_query or false, -- r.url is made from these on first use
    request_uri = target,
    host = host,
    proto = minor == 1 and "HTTP/1.1" or "HTTP/1.0",
    proto_minor = minor,
    _raw = raw, -- r.headers is made from these on first use
    content_length = kind == body.LENGTH and tonumber(preq.content_length) or (kind == body.NONE and 0 or -1),
    remote_addr = cs.remote,
    body = false,
    _make_ctx = cs, -- (callable: make_req_ctx)
  })
  return r
end

-- The client-gone watcher: once the request body is consumed, a task reads
-- the connection (keeping any pipelined bytes) and cancels the request's
-- ctx when the peer goes away. It is stopped by a read deadline in the past.
-- The watcher's task (a function of its own, started with cs: no closure
-- made per request).
local function watch(cs)
  while not cs.stop_watch do
    local ok, err = cs:more()
    if ok then
      if #cs.ib > 64 * 1024 then break end -- enough pipelined; stop reading
    else
      if err ~= errors.TIMEOUT or not cs.stop_watch then
        cs.peer_gone = true
        if cs.cancel_req then cancel_ctx(cs.cancel_req) end
      end
      break
    end
  end
  cs.watch_done:send(true)
end

local function start_watch(cs)
  if cs.watching or cs.hijacked or not cs.cancel_req then return end
  cs.watching = true
  cs.watch_done = lowbit.chan(1)
  lowbit.go(watch, cs)
end

function stop_watch(cs)
  if not cs.watching then return end
  cs.stop_watch = true
  if not cs.hijacked then cs.conn:set_read_deadline(now() - 1) end
  cs.watch_done:recv()
  cs.watching, cs.stop_watch = false, false
  cs.conn:set_read_deadline(nil)
end

local function send_continue(b)
  local w = b.data
  if not w.status and not w.sent_continue then
    w.sent_continue = true
    w.cs.conn:write("HTTP/1.1 100 Continue\r\n\r\n")
  end
end

local function body_done(b)
  local cs = b.src
  if cs.cancel_req then start_watch(cs) end
end

-- The loop below resumes from a yield (waiting for bytes) on every request,
-- and LuaJIT runs what follows a resume interpreted until it enters a
-- compiled function. So the work of a request is done in functions (each
-- compiled from its entry) and the loop itself is only glue: FFI calls and
-- cdata field reads are slow in the interpreter.

-- Parses the head buffered in ib: the parser's result as a Lua number
-- (EAGAIN while the head is incomplete).
local function parse_head(ib, preq, max_hb)
  local p, len = ib:ref() -- (an empty buffer parses as EAGAIN: no branch here)
  -- Not a tail call: a root trace from this entry could not return into
  -- the caller's loop through tonumber, and the parse would stay interpreted.
  local n = tonumber(C.lb_http1_parse_request(preq, p, len, max_hb))
  return n
end

-- Answers a head the parser refused (n < 0).
local function refuse_head(conn, preq, n)
  C.lb_http1_req_reset(preq)
  local status = C.lb_http1_status_for(n)
  local msg = nil
  if status == 400 then msg = "400 Bad Request: " .. core.strerror(n) end
  raw_error(conn, status, msg)
end

-- Makes the request from a parsed head of n bytes and readies the writer.
-- Returns w, r; or nil when the request was refused (and answered).
local function start_request(srv, cs, preq, n, start)
  local conn, ib = cs.conn, cs.ib
  local r = make_request(cs, preq)
  cs.keep_alive = preq.keep_alive ~= 0
  ib:skip(n)
  local kind = preq.body_kind
  if preq.expect_other ~= 0 then
    raw_error(conn, 417)
    return nil
  end
  if r.proto_minor == 1 and r.method ~= "CONNECT" and r.host == "" and r.headers:get("Host") == nil then
    raw_error(conn, 400, "400 Bad Request: missing required Host header")
    return nil
  end
  -- One writer per connection, reset for each request: a handler must
  -- not use w after it returns (as in Go), so nothing sees the reuse.
  local w = cs.w
  drop_held(w)
  w.req, w.written, w.head_req = r, 0, r.method == "HEAD"
  w.status, w.hdr, w.head_sent, w.chunked, w.declared = false, false, false, false, false
  w.werr, w.hijacked, w.sent_continue = false, false, false
  local expect = preq.expect_continue ~= 0 and kind ~= body.NONE
  cs.expect = expect
  if kind == body.NONE then
    r.body = body.NO_BODY
  else
    -- (made on the first request with a body: most connections have none)
    local bo = cs.body_opts
    if not bo then bo = { on_done = body_done }; cs.body_opts = bo end
    bo.limit, bo.data = srv.max_body_bytes, w
    bo.on_first_read = expect and send_continue or nil
    r.body = body.new(cs, kind, tonumber(preq.content_length), bo)
  end
  local rt, wt = srv.read_timeout, srv.write_timeout
  local rdl = rt and start + rt or false
  cs.rdl = rdl
  conn:set_read_deadline(rdl or nil)
  if wt then cs.wdl = now() + wt; conn:set_write_deadline(cs.wdl) end
  return w, r
end

-- After the handler, returned or raised: the request's ctx ends.
local function leave_handler(srv, cs)
  cs.in_handler = false
  srv.active = srv.active - 1
  stop_watch(cs)
  if cs.cancel_req then cancel_ctx(cs.cancel_req); cs.cancel_req = nil end
end

-- Drains what is left of a request body (check_unread found it small)
-- within DISCARD_TIMEOUT (or the request's read deadline when earlier).
-- True when the body ended.
local function discard_rest(cs, b)
  local conn = cs.conn
  local t = now() + M.DISCARD_TIMEOUT
  local rdl = cs.rdl
  if rdl and rdl < t then t = rdl end
  conn:set_read_deadline(t)
  cs.state = "draining" -- (shutdown closes it like an idle one)
  local ok = b:discard(MAX_DISCARD)
  if cs.conn.closed then return false end
  cs.state = "active"
  conn:set_read_deadline(rdl or nil)
  return ok
end

-- Ends the response; true when the connection may carry another request.
local function end_request(srv, cs, w, r)
  finish_response(w)
  if w.werr or cs.close_after or cs.peer_gone then return false end
  if not cs.keep_alive then return false end
  local b = r.body
  if not b.done then
    if srv.shutting_down or b.closed or b.err or (cs.expect and not w.sent_continue) then return false end
    if not discard_rest(cs, b) then return false end
  end
  if srv.write_timeout then cs.wdl = false; cs.conn:set_write_deadline(nil) end
  return true
end

-- Closing a connection with request bytes unread makes the kernel reset
-- it, and a reset may destroy the response before the client reads it:
-- our side is shut first, then what still arrives is dropped for at most
-- LINGER seconds.
local function linger(cs)
  local conn = cs.conn
  if conn.closed or not conn.close_write then return end
  conn:set_deadline(now() + M.LINGER)
  if not conn:close_write() then return end
  cs.state = "draining"
  while conn:read() do end -- until EOF, the deadline or close
end

-- Readies the connection for the next head (state, deadlines) and parses
-- what is buffered. Returns the parser's result (EAGAIN while the head is
-- incomplete) and the time the wait for the head began; nil when the
-- server is shutting down.
local function next_head(srv, cs, preq, first)
  if first then
    -- Accepted, nothing read yet: even during shutdown it gets
    -- read_header_timeout for its first request (golang/go#22682).
    cs.state = "new"
  else
    cs.state = "idle"
    if srv.shutting_down then return nil end
  end
  local conn, ib = cs.conn, cs.ib
  local start = now()
  local rht, it = srv.read_header_timeout, srv.idle_timeout
  if first then
    if rht then conn:set_read_deadline(start + rht) end
  elseif #ib == 0 and it then
    conn:set_read_deadline(start + it)
  elseif rht then
    conn:set_read_deadline(start + rht)
  end
  return parse_head(ib, preq, srv.max_header_bytes), start
end

-- One read and parse of await_head: the parser's result, nil at EOF,
-- timeout or error. got_bytes: the connection had bytes before this read.
local function await_more(srv, cs, preq, first, got_bytes)
  if not cs:more() then return nil end
  if not got_bytes then
    cs.state = "active"
    local rht = srv.read_header_timeout
    if not first and rht then cs.conn:set_read_deadline(now() + rht) end
  end
  return parse_head(cs.ib, preq, srv.max_header_bytes)
end

-- A head that came in several reads (rare): the loop, apart from the
-- common case so that await_head has none (see serve_requests).
local function await_rest(srv, cs, preq, first)
  local n = EAGAIN
  while n == EAGAIN do n = await_more(srv, cs, preq, first, true) end
  return n
end

-- Reads until the head is whole. Returns the parser's result, or nil at
-- EOF, timeout or error before a whole head.
local function await_head(srv, cs, preq, first)
  local n = await_more(srv, cs, preq, first, #cs.ib > 0)
  if n == EAGAIN then n = await_rest(srv, cs, preq, first) end
  return n
end

-- What serve_one tells the loop.
local NEXT, STOP, HIJACKED = 1, 2, 3

-- `OPTIONS *` asks about the server, not a resource: the server answers it
-- (200, empty), as Go does; it never reaches the handler.
local function options_star(w)
  w:header():set("Content-Length", "0")
end

-- Serves the request whose head (n bytes, or refused when n < 0) was parsed.
local function serve_one(srv, cs, preq, n, start)
  cs.state = "active"
  if n < 0 then refuse_head(cs.conn, preq, n); return STOP end
  local w, r = start_request(srv, cs, preq, n, start)
  if not w then return STOP end
  srv.active = srv.active + 1
  cs.in_handler = true
  local h = srv.handler
  if r.request_uri == "*" and r.method == "OPTIONS" then h = options_star end
  call_handler(h, w, r)
  leave_handler(srv, cs)
  if w.hijacked then return HIJACKED end
  if not end_request(srv, cs, w, r) then
    if cs.linger and not w.werr and not r.body.done then linger(cs) end
    return STOP
  end
  return NEXT
end

-- The request loop of one connection. It returns true when the handler
-- hijacked the conn (it is the handler's now), false when the conn is to
-- be closed. A handler that raises ends it by an error, caught once per
-- connection in serve_conn (no pcall frame per request: LuaJIT cannot
-- compile a return into one, and would leave the handler interpreted).
--
-- The loop resumes from a yield (waiting for bytes) on most requests, and
-- LuaJIT runs what follows a resume interpreted until it calls a compiled
-- function. So the loop is only glue around three calls (each compiled
-- from its entry), and a request on a keep-alive connection whose head has
-- arrived costs one call to next_head and one to serve_one.
-- The request ctx maker: r._make_ctx is the connection's state itself,
-- callable through its metatable (ConnState.__call below), so that no
-- closure is made per connection (making one cannot be compiled: the
-- function doing it ran interpreted, and so did what it called).
local function make_req_ctx(cs, r)
  local ctx = new_ctx(cs.srv.base_ctx)
  -- First asked for after its handler returned (a task kept r): the
  -- request is over, so its ctx is born cancelled, as Go's is by then. It
  -- must not take the cancel slot of the connection's next request.
  if not cs.in_handler or cs.w.req ~= r then cancel_ctx(ctx); return ctx end
  cs.cancel_req = ctx -- (cancelled by cancel_ctx: no closure made per request)
  if r.body.done then start_watch(cs) end
  return ctx
end

-- The per-connection state's metatable: a body.Source that is callable.
local ConnState = { __index = body.Source, __call = make_req_ctx }

-- Parser states of finished connections, for the next ones (a cdata of
-- 168 bytes per connection less for the GC). A state is zeroed when taken,
-- as ffi.new makes it: nothing of the previous connection's head is left.
-- Only the connection loop ever holds one.
local preq_pool, preq_n, PREQ_POOL_MAX = {}, 0, 256
local PREQ_SIZE = ffi.sizeof("lb_http1_req")

local function take_preq()
  local preq
  if preq_n > 0 then
    preq = preq_pool[preq_n]
    preq_pool[preq_n] = nil
    preq_n = preq_n - 1
    ffi.fill(preq, PREQ_SIZE)
  else
    preq = ffi.new("lb_http1_req")
  end
  preq.headers = shared_hdrs
  preq.max_headers = M.MAX_HEADERS
  return preq
end

local function give_preq(preq)
  if preq_n < PREQ_POOL_MAX then
    preq_n = preq_n + 1
    preq_pool[preq_n] = preq
  end
end

-- The first request is served apart from the loop: a connection that
-- carries one request (Connection: close) never enters the loop, and a
-- root trace from the entry of this function (or of its callers) can be
-- compiled, which it cannot when it meets an inner loop.
local function serve_loop(srv, cs, preq)
  local n, start = next_head(srv, cs, preq, true)
  if n == nil then return false end -- shutting down
  if n == EAGAIN then
    n = await_head(srv, cs, preq, true)
    if n == nil then return false end
  end
  local st = serve_one(srv, cs, preq, n, start)
  while st == NEXT do
    n, start = next_head(srv, cs, preq, false)
    if n == nil then return false end
    if n == EAGAIN then
      n = await_head(srv, cs, preq, false)
      if n == nil then return false end
    end
    st = serve_one(srv, cs, preq, n, start)
  end
  return st == HIJACKED
end

-- A stop for traces. A side trace that starts in a request's code (at a
-- guard that failed: another type, another branch) records on through the
-- returns of serve_one, serve_loop and serve_requests, up to the xpcall in
-- serve_conn, where LuaJIT cannot return ("NYI: return to lower frame").
-- After a few such aborts the exit falls back to the interpreter for good,
-- and the rest of every connection that takes it runs interpreted (seen:
-- 48k -> 68k instructions per new connection in such a run). A call to a
-- C function the JIT does not compile ends such a trace (a stitch) first;
-- in the interpreter it costs a plain call.
local trace_stop = coroutine.running

-- (A handler's error leaves the state to the GC: it is not pooled.)
local function serve_requests(srv, cs)
  local preq = take_preq()
  local hijacked = serve_loop(srv, cs, preq)
  give_preq(preq)
  trace_stop()
  return hijacked
end

-- " (GET /path HTTP/1.1)" for the log line of a handler's panic: which
-- request it was (a long target is cut).
local MAX_LOG_TARGET = 256
local function request_line(r)
  if not r then return "" end
  local target = r.request_uri or ""
  if #target > MAX_LOG_TARGET then target = sub(target, 1, MAX_LOG_TARGET) .. "..." end
  return " (" .. tostring(r.method) .. " " .. target .. " " .. tostring(r.proto) .. ")"
end

-- The message of a handler's panic often carries what a client sent (a
-- decoded path, a header): its control bytes are escaped (\n -> \x0a) so
-- that a client cannot forge log lines; the traceback after it keeps its
-- lines.
local function escape_ctl(c) return format("\\x%02x", byte(c)) end
local function panic_trace(e)
  if type(e) == "string" then e = gsub(e, "[%z\1-\8\10-\31\127]", escape_ctl) end
  return traceback(e, 2)
end

-- The end of a connection the handler did not panic on (a function of its
-- own: what follows the xpcall in serve_conn runs interpreted, this runs
-- compiled).
local function end_conn(srv, cs, conn, hijacked)
  srv.conns[cs] = nil
  srv.nconns = srv.nconns - 1
  if not hijacked then conn:close() end
end

local function serve_conn(srv, conn)
  -- Per-connection state: a body.Source (ib: bytes read and not yet
  -- parsed) plus what the loop keeps across requests. Sixteen fields with
  -- conn, inplace, ib and w: a hash part of 16 (one of 32 cost more to copy,
  -- sweep and traverse). Fields of rarer cases are added when they arise:
  -- linger, peer_gone, body_opts, cl_s and cl_n, cancel_req and the
  -- watcher's, cut and stall_n/stall_t (shutdown); read as nil = false.
  local cs = body.new_source(conn, { srv = srv, state = "new", born = now(), remote = conn:remote_addr(),
                                     in_handler = false, expect = false, keep_alive = false,
                                     close_after = false, rdl = false, wdl = false, wn = 0, wbusy = false },
                             ConnState)
  -- Every field the writer may set is present from the start: adding keys
  -- to a table later costs a rehash. out: the buffer heads are built in
  -- when the conn needs one of its own (see head_buf); resp_h: the
  -- response header set, made by w:header(), reset for each request.
  cs.w = setmetatable({ cs = cs, req = false, pend = false, buf = false, written = 0, head_req = false,
                        status = false, hdr = false, head_sent = false, chunked = false, declared = false,
                        werr = false, hijacked = false, sent_continue = false,
                        out = false, resp_h = false }, W)
  srv.conns[cs] = true
  srv.nconns = srv.nconns + 1
  local ok, res = xpcall(serve_requests, panic_trace, srv, cs)
  if ok then end_conn(srv, cs, conn, res); return end
  local panicked = cs.in_handler
  if panicked then
    -- As Go does: the panic is logged, the request gets a 500 if nothing
    -- was sent yet, and the connection is closed (unless hijacked).
    leave_handler(srv, cs)
    if not (type(res) == "string" and find(res, tostring(M.ABORT_HANDLER), 1, true)) then
      srv:log_error("http: panic serving " .. tostring(cs.remote) .. request_line(cs.w.req) .. ": " .. tostring(res),
        cs.remote)
    end
    local w = cs.w
    if not w.head_sent and not w.hijacked and not w.werr then
      raw_error(conn, 500, "Internal Server Error")
    end
  end
  end_conn(srv, cs, conn, panicked and cs.w.hijacked)
  -- A fault of the server itself, not of a handler: the task reports it.
  if not panicked then error(res, 0) end
end

---------------------------------------------------------------------------
-- Server
---------------------------------------------------------------------------

--- A server. opts: handler (required), addr, tls (a lowbit.tls server
--- config), read_timeout, read_header_timeout, write_timeout, idle_timeout
--- (seconds; read_header and idle fall back to read_timeout),
--- max_header_bytes (1 MiB), max_body_bytes (none), error_log
--- (function(msg); default: lowbit.on_error), base_ctx.
function M.server(opts)
  if type(opts) ~= "table" then error("bad argument 'opts' to http.server: table expected, got " .. type(opts), 2) end
  check_handler(opts.handler, "http.server")
  for _, k in ipairs({ "read_timeout", "read_header_timeout", "write_timeout", "idle_timeout", "max_header_bytes", "max_body_bytes" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "number" then
      error("bad argument 'opts." .. k .. "' to http.server: number expected, got " .. type(opts[k]), 2)
    end
  end
  local base, cancel = context.with_cancel(opts.base_ctx or context.background())
  local rt = positive(opts.read_timeout)
  return setmetatable({
    handler = opts.handler,
    addr = opts.addr,
    tls = opts.tls,
    read_timeout = rt,
    read_header_timeout = positive(opts.read_header_timeout) or rt,
    write_timeout = positive(opts.write_timeout),
    idle_timeout = positive(opts.idle_timeout) or rt,
    max_header_bytes = positive(opts.max_header_bytes) or M.DEFAULT_MAX_HEADER_BYTES,
    max_body_bytes = positive(opts.max_body_bytes),
    error_log = opts.error_log,
    hs_timeout = false, -- (set by serve)
    base_ctx = base, cancel_base = cancel,
    conns = {}, nconns = 0, active = 0, listeners = {},
    shutting_down = false,
  }, Server)
end

-- Logs msg through error_log or lowbit.on_error, neither of which may block
-- the loop. With `peer` (a remote address, or a key such as "accept"), the
-- lines a peer causes are rate-limited (lowbit.log.limit).
function Server:log_error(msg, peer)
  if type(peer) == "string" then
    msg = log.limit(peer, tostring(msg))
    if msg == nil then return end
  end
  if self.error_log then
    local ok = pcall(self.error_log, msg)
    if ok then return end
  end
  lowbit.on_error(msg, msg)
end

local function handshake_timeout(srv)
  local t
  for _, v in ipairs({ srv.read_header_timeout, srv.read_timeout, srv.write_timeout }) do
    if v and (not t or v < t) then t = v end
  end
  return t
end

-- lowbit.tls, loaded by the first server with a TLS config.
local tls

-- The task of an accepted TLS connection: the handshake (bounded by the
-- shortest timeout), then the requests. (A function of its own, not a
-- closure per connection: making one cannot be compiled, and left the
-- accept loop interpreted. Two arguments, not four: the accept loop runs
-- compiled when connections wait in the listener, and a task started with
-- four arguments there cost some 60 table allocations of the trace per
-- connection, against none with two.)
local function serve_tls(self, raw)
  local tls_cfg = self.tls
  -- The peer's address is read now (serve_conn needs it anyway): once a
  -- client has reset the connection it has none, and the log line of its
  -- failed handshake would name no one and escape the per-peer limit.
  local peer = raw:remote_addr()
  local hs = self.hs_timeout
  if hs then raw:set_deadline(now() + hs) end
  local tc, herr = tls.server(raw, tls_cfg)
  if tc then
    local ok, e = tc:handshake()
    if not ok then
      if errors.is(e, tls.PLAIN_HTTP) then
        -- As Go does: an answer the client can read, no log line.
        raw:write("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
      else
        self:log_error("http: TLS handshake error from " .. (peer or "an unknown address") .. ": " .. tostring(e),
          peer or "unknown")
      end
      tc:close()
      return
    end
    raw:set_deadline(nil) -- (tc has none of its own: no fields added to it)
    serve_conn(self, tc)
  else
    self:log_error("http: TLS setup failed: " .. tostring(herr))
    raw:close()
  end
end

--- Accepts connections on listener and serves each in its own task until
--- shutdown; then returns nil, http.SERVER_CLOSED.
function Server:serve(ln)
  if type(ln) ~= "table" or type(ln.accept) ~= "function" then
    error("bad argument 'listener' to server:serve: listener expected, got " .. type(ln), 2)
  end
  if self.shutting_down then return nil, M.SERVER_CLOSED end
  self.listeners[ln] = true
  if self.tls then tls = tls or require("lowbit.tls") end
  -- The TLS handshake's bound, found once here rather than per connection
  -- (a table and a loop each time: the loop kept serve_tls interpreted).
  self.hs_timeout = handshake_timeout(self)
  -- Where connection tasks start, for their error reports: noted once,
  -- not by a debug.getinfo per connection.
  local site = lowbit.trace_spawn_sites and debug.getinfo(1, "Sl") or nil
  while true do
    local conn, err = ln:accept()
    if not conn then
      self.listeners[ln] = nil
      if self.shutting_down or err == errors.CLOSED then return nil, M.SERVER_CLOSED end
      -- Transient accept errors (EMFILE...): back off a little, go on.
      self:log_error("http: accept error: " .. tostring(err), "accept")
      lowbit.sleep(0.01)
    else
      if self.tls then
        go_at(site, serve_tls, self, conn)
      else
        go_at(site, serve_conn, self, conn)
      end
    end
  end
end

--- Listens on addr (or opts.addr, default ":80") and serves.
function Server:listen_and_serve(addr)
  addr = addr or self.addr or (self.tls and "0.0.0.0:443" or "0.0.0.0:80")
  local ln, err = net.listen(addr)
  if not ln then return nil, err end
  self.listener = ln
  return self:serve(ln)
end

-- How long shutdown waits for the first request of a connection accepted
-- before it, when the server has no read_header_timeout (Go: 5 s).
M.NEW_CONN_WAIT = 5

--- Stops the server gracefully: closes listeners (serve returns
--- SERVER_CLOSED), closes idle connections (a connection accepted but not
--- yet read still gets read_header_timeout, or NEW_CONN_WAIT seconds, for
--- its first request, answered with Connection: close), cancels request contexts, lets
--- in-flight requests finish (their responses get Connection: close), and
--- waits until none remain or ctx ends (then returns nil, ctx:err()).
-- A response write blocked since the last look at least WRITE_STALL ago
-- (the client does not read) ends: the request's ctx was cancelled, and a
-- stalled client must not keep the handler, and shutdown, waiting.
local function cut_stalled(cs, t)
  if not cs.wbusy or cs.hijacked then cs.stall_n = false; return end
  if cs.stall_n ~= cs.wn then cs.stall_n, cs.stall_t = cs.wn, t; return end
  if t - cs.stall_t < M.WRITE_STALL then return end
  cs.cut = true
  local conn = cs.conn
  conn:set_write_deadline(t - 1) -- ends the writes waiting now...
  conn:set_write_deadline(cs.wdl or nil) -- ...and only those
end

function Server:shutdown(ctx)
  ctx = ctx or context.background()
  self.shutting_down = true
  for ln in pairs(self.listeners) do ln:close() end
  self.cancel_base()
  local delay = 0.001
  while true do
    local t = now()
    for cs in pairs(self.conns) do
      local st = cs.state
      if st == "idle" or st == "draining" then cs.conn:close()
      elseif st == "new" then
        -- Its first request may still come (its response will say
        -- Connection: close), within read_header_timeout or NEW_CONN_WAIT.
        if t - cs.born >= (self.read_header_timeout or M.NEW_CONN_WAIT) then cs.conn:close() end
      else cut_stalled(cs, t) end
    end
    if self.nconns == 0 then return true end
    local ok, err = lowbit.sleep_ctx(ctx, delay)
    if not ok then return nil, err end
    delay = math.min(delay * 2, 0.5)
  end
end

--- Closes listeners and every connection at once.
function Server:close()
  self.shutting_down = true
  for ln in pairs(self.listeners) do ln:close() end
  self.cancel_base()
  for cs in pairs(self.conns) do cs.conn:close() end
  return true
end

return M
