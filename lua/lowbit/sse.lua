-- lowbit.sse: Server-Sent Events. The wire work (encoding events and
-- comments, the WHATWG parsing algorithm) is done by the lb_sse C core;
-- this module moves its bytes through an HTTP ResponseWriter (emitter), any
-- reader with read(n) (reader), and an HTTP client loop that reconnects
-- like the browser's EventSource (connect).
--
--   -- server
--   local e = sse.new_emitter(w)                   -- headers sent, flushed
--   local hctx, stop = context.with_cancel(r.ctx)
--   lowbit.go(e.serve_heartbeats, e, hctx, 15)     -- ":\n\n" every 15 s
--   local ok, err = e:send{ name = "tick", id = "7", data = "line 1\nline 2" }
--   stop()                                         -- before the handler returns
--
--   -- client
--   local rd = sse.new_reader(resp.body)           -- or any conn
--   local ev, err = rd:read()     --> { name = "tick", id = "7", data = "line 1\nline 2" }
--   local c = sse.connect("http://127.0.0.1:8082/events", { ctx = ctx })
--   local ev, err = c:read()      -- across reconnections; c:close() at the end
--
-- Errors: malformed events given to sse.event / e:send raise (misuse);
-- I/O failures return nil, err. Sentinels: sse.NO_CONTENT (the server
-- answered 204: stop reconnecting), sse.BAD_STATUS, sse.BAD_CONTENT_TYPE,
-- sse.EVENT_TOO_LARGE, sse.CLOSED (client closed).
local ffi = require "ffi"
local core = require "lowbit.core"
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"

local C = core.C
local ffi_new, ffi_string, ffi_cast, ffi_gc = ffi.new, ffi.string, ffi.cast, ffi.gc
local type, error, tostring, tonumber, setmetatable, pairs, next =
  type, error, tostring, tonumber, setmetatable, pairs, next
local find, lower, match, sort = string.find, string.lower, string.match, table.sort
local floor = math.floor

local EOF, TIMEOUT = errors.EOF, errors.TIMEOUT
local LB_ENOSPACE, LB_EINVAL, LB_ETOOLARGE = C.LB_ENOSPACE, C.LB_EINVAL, C.LB_ETOOLARGE

local M = {}

M.NO_CONTENT = errors.new("sse: server answered 204 No Content")
M.BAD_STATUS = errors.new("sse: unexpected response status")
M.BAD_CONTENT_TYPE = errors.new("sse: response Content-Type is not text/event-stream")
M.EVENT_TOO_LARGE = errors.new("sse: event too large")
M.CLOSED = errors.new("sse: client closed")

--- Reconnection time (ms) of a connect client before the server sets one.
M.DEFAULT_RETRY = 3000
--- Bytes a reader asks its source for per read.
M.READ_CHUNK = 64 * 1024

local function arg_error(fname, name, msg, level)
  error("bad argument '" .. name .. "' to " .. fname .. ": " .. msg, (level or 2) + 1)
end

---------------------------------------------------------------------------
-- Events
---------------------------------------------------------------------------

local Event = {}
Event.__index = Event
M.Event = Event

--- The value of the last extension field called name, or nil.
function Event:extension(name)
  local ext = self.extensions
  if ext == nil then return nil end
  if ext[1] == nil then return ext[name] end -- a map
  for i = #ext, 1, -1 do
    local f = ext[i]
    if (f.name or f[1]) == name then return f.value or f[2] end
  end
  return nil
end

local RESERVED = { event = true, data = true, id = true, retry = true }

-- Checks one extension (name, value) pair; raises naming the field.
local function check_ext(fname, where, n, v, level)
  if type(n) ~= "string" then arg_error(fname, where .. ".name", "string expected, got " .. type(n), level + 1) end
  if type(v) ~= "string" then arg_error(fname, where .. ".value", "string expected, got " .. type(v), level + 1) end
  if n == "" then arg_error(fname, where .. ".name", "must not be empty", level + 1) end
  if find(n, "[\r\n:]") then arg_error(fname, where .. ".name", "must not contain CR, LF or ':'", level + 1) end
  if RESERVED[n] then arg_error(fname, where .. ".name", ("%q is a standard field"):format(n), level + 1) end
  if find(v, "[\r\n]") then arg_error(fname, where .. ".value", "must not contain CR or LF", level + 1) end
end

-- Calls fn(name, value) for every extension of ext in wire order: an array
-- of { name, value } or { name = , value = } pairs, or a map name -> value
-- (written sorted by name, so the output does not depend on hashing).
local function each_ext(ext, fn)
  if ext[1] ~= nil or next(ext) == nil then
    for i = 1, #ext do
      local f = ext[i]
      if type(f) ~= "table" then return false, i end
      local n, v = f.name, f.value
      if n == nil then n, v = f[1], f[2] end
      fn(n, v, i)
    end
    return true
  end
  local names = {}
  for k in pairs(ext) do
    if type(k) ~= "string" then return false, k end
    names[#names + 1] = k
  end
  sort(names)
  for i = 1, #names do fn(names[i], ext[names[i]], names[i]) end
  return true
end

-- Full validation with messages (sse.event, and e:send when the core says
-- LB_EINVAL). Raises at `level` above the caller.
local function validate(ev, fname, level)
  level = level + 1
  if type(ev) ~= "table" then arg_error(fname, "ev", "table expected, got " .. type(ev), level) end
  local name, id, data, retry, ext = ev.name, ev.id, ev.data, ev.retry, ev.extensions
  if name ~= nil then
    if type(name) ~= "string" then arg_error(fname, "ev.name", "string expected, got " .. type(name), level) end
    if find(name, "[\r\n]") then arg_error(fname, "ev.name", "must not contain CR or LF", level) end
  end
  if id ~= nil then
    if type(id) ~= "string" then arg_error(fname, "ev.id", "string expected, got " .. type(id), level) end
    if find(id, "[%z\r\n]") then arg_error(fname, "ev.id", "must not contain CR, LF or NUL", level) end
  end
  if data ~= nil and type(data) ~= "string" then
    arg_error(fname, "ev.data", "string expected, got " .. type(data), level)
  end
  if retry ~= nil then
    if type(retry) ~= "number" or retry < 0 or retry ~= floor(retry) or retry >= 2 ^ 53 then
      arg_error(fname, "ev.retry", "non-negative integer (milliseconds) expected, got " .. tostring(retry), level)
    end
  end
  if ext ~= nil then
    if type(ext) ~= "table" then arg_error(fname, "ev.extensions", "table expected, got " .. type(ext), level) end
    local ok, at = each_ext(ext, function(n, v, i)
      check_ext(fname, "ev.extensions[" .. tostring(i) .. "]", n, v, level + 2)
    end)
    if not ok then
      arg_error(fname, "ev.extensions", "array of {name, value} pairs or map of strings expected (bad key "
        .. tostring(at) .. ")", level)
    end
  end
end

--- Makes an event, checking its fields: name (the event type; must not
--- contain CR/LF), id (must not contain CR/LF/NUL; "" resets the client's
--- last event id), retry (ms, non-negative integer), data (any string; its
--- CR, LF and CRLF line breaks become several data: lines; nil: no data
--- line, and a client dispatches nothing), extensions (an array of
--- {name, value} pairs, or a map name -> value; stored as an array of
--- { name = , value = }). Raises on a malformed field.
function M.event(t)
  validate(t, "sse.event", 2)
  local ev = setmetatable({ name = t.name, id = t.id, retry = t.retry, data = t.data }, Event)
  if t.extensions ~= nil then
    local ext = {}
    each_ext(t.extensions, function(n, v) ext[#ext + 1] = { name = n, value = v } end)
    if #ext > 0 then ev.extensions = ext end
  end
  return ev
end

---------------------------------------------------------------------------
-- Encoding (shared scratch: one event is encoded and copied out at a time)
---------------------------------------------------------------------------

local cev = ffi_new("lb_sse_event")
local SMALL = 16 * 1024
local out_cap = SMALL
local out = ffi_new("uint8_t[?]", out_cap)
local nfields = 8
local fields = ffi_new("lb_sse_field[?]", nfields)

local function grow_out(need)
  local cap = out_cap
  while cap < need do cap = cap * 2 end
  out = ffi_new("uint8_t[?]", cap)
  out_cap = cap
end

-- After a large event, give the memory back.
local function shrink_out()
  if out_cap > 1024 * 1024 then
    out = ffi_new("uint8_t[?]", SMALL)
    out_cap = SMALL
  end
end

local function fill_ext(ev, ext, fname)
  local n = 0
  local ok = each_ext(ext, function(name, value)
    if type(name) ~= "string" or type(value) ~= "string" then validate(ev, fname, 6) end
    n = n + 1
    if n > nfields then
      local nf = ffi_new("lb_sse_field[?]", nfields * 2)
      ffi.copy(nf, fields, nfields * ffi.sizeof("lb_sse_field"))
      fields, nfields = nf, nfields * 2
    end
    local f = fields[n - 1]
    f.name, f.name_len, f.value, f.value_len = name, #name, value, #value
  end)
  if not ok then validate(ev, fname, 4) end
  return n
end

-- Encodes ev; returns the wire bytes. Raises on a malformed event.
local function encode(ev, fname)
  if type(ev) ~= "table" then arg_error(fname, "ev", "table expected, got " .. type(ev), 3) end
  local name, id, data, retry, ext = ev.name, ev.id, ev.data, ev.retry, ev.extensions
  local tn, ti, td = type(name), type(id), type(data)
  if (tn ~= "string" and name ~= nil) or (ti ~= "string" and id ~= nil) or (td ~= "string" and data ~= nil)
    or (retry ~= nil and (type(retry) ~= "number" or retry < 0 or retry % 1 ~= 0))
    or (ext ~= nil and type(ext) ~= "table") then
    validate(ev, fname, 3)
  end
  local e = cev
  e.event = name
  e.event_len = name and #name or 0
  e.id = id
  e.id_len = id and #id or 0
  e.data = data
  e.data_len = data and #data or 0
  e.retry = retry or -1
  if ext ~= nil then
    e.n_ext = fill_ext(ev, ext, fname)
    e.ext = fields
  else
    e.n_ext = 0
    e.ext = nil
  end
  local n = C.lb_sse_encode(e, out, out_cap)
  if n == LB_ENOSPACE then
    grow_out(tonumber(C.lb_sse_event_max_len(e)))
    n = C.lb_sse_encode(e, out, out_cap)
  end
  if n < 0 then
    if n == LB_EINVAL then validate(ev, fname, 3) end
    error(fname .. ": cannot encode event: " .. core.strerror(tonumber(n)), 3)
  end
  local s = ffi_string(out, n)
  if out_cap > SMALL then shrink_out() end
  return s
end

--- The wire form of an event (what e:send writes), for callers that do
--- their own I/O. Raises on a malformed event.
function M.encode(ev)
  local s = encode(ev, "sse.encode")
  return s
end

local function encode_comment(text, fname)
  if text == nil then text = "" end
  if type(text) ~= "string" then arg_error(fname, "text", "string expected, got " .. type(text), 3) end
  local len = #text
  local n = C.lb_sse_encode_comment(text, len, out, out_cap)
  if n == LB_ENOSPACE then
    grow_out(tonumber(C.lb_sse_comment_max_len(text, len)))
    n = C.lb_sse_encode_comment(text, len, out, out_cap)
  end
  if n < 0 then error(fname .. ": cannot encode comment: " .. core.strerror(tonumber(n)), 3) end
  local s = ffi_string(out, n)
  if out_cap > SMALL then shrink_out() end
  return s
end

--- The wire form of a comment (each line of text prefixed by ": ").
function M.encode_comment(text)
  local s = encode_comment(text, "sse.encode_comment")
  return s
end

---------------------------------------------------------------------------
-- Emitter
---------------------------------------------------------------------------

local Emitter = {}
Emitter.__index = Emitter
M.Emitter = Emitter

--- Starts an event stream on w (a ResponseWriter): sets Content-Type:
--- text/event-stream, Cache-Control: no-cache and X-Accel-Buffering: no
--- (set any other header on w before), sends the head with status 200 and
--- flushes it, so the client sees the stream open at once. opts.ctx
--- (optional, e.g. r.ctx): once it ends, send and comment return
--- nil, ctx:err() without writing.
function M.new_emitter(w, opts)
  if type(w) ~= "table" or type(w.write) ~= "function" or type(w.header) ~= "function" then
    arg_error("sse.new_emitter", "w", "ResponseWriter expected, got " .. type(w))
  end
  if opts ~= nil and type(opts) ~= "table" then
    arg_error("sse.new_emitter", "opts", "table or nil expected, got " .. type(opts))
  end
  local ctx = opts and opts.ctx
  if ctx ~= nil and not context.is_context(ctx) then
    arg_error("sse.new_emitter", "opts.ctx", "context expected, got " .. type(ctx))
  end
  local h = w:header()
  h:set("Content-Type", "text/event-stream")
  h:set("Cache-Control", "no-cache")
  h:set("X-Accel-Buffering", "no")
  local e = setmetatable({ w = w, ctx = ctx }, Emitter)
  w:write_header(200)
  if type(w.flush) == "function" then
    local ok, err = w:flush()
    if not ok and err ~= nil then e.werr = err end
  end
  return e
end

-- Writes wire bytes and flushes; the first failure sticks.
local function emit(e, s)
  local err = e.werr
  if err ~= nil then return nil, err end
  local ctx = e.ctx
  if ctx ~= nil then
    err = ctx:err()
    if err ~= nil then return nil, err end
  end
  local w = e.w
  local ok
  ok, err = w:write(s)
  if ok and w.flush then ok, err = w:flush() end
  if not ok then
    err = err or errors.CLOSED
    e.werr = err
    return nil, err
  end
  e.sent = e.sent + 1
  return true
end
Emitter.sent = 0

--- Sends one event (an sse.event or a plain table with the same fields)
--- and flushes it. Returns true, or nil, err once the client is gone (the
--- error sticks: later calls return it too). Raises on a malformed event.
function Emitter:send(ev)
  local s = encode(ev, "e:send")
  return emit(self, s)
end

--- Sends a comment (clients ignore it; proxies see traffic) and flushes.
--- text may hold several lines; nil or "" sends ":" (a heartbeat).
function Emitter:comment(text)
  local s = encode_comment(text, "e:comment")
  return emit(self, s)
end

--- The error that ended the stream (a write failure), or nil.
function Emitter:err() return self.werr end

--- Sends a heartbeat comment every `seconds` until ctx ends (returns
--- nil, ctx:err()) or a write fails because the client went away (returns
--- nil, the write error), whichever comes first. Blocks: start it with
--- lowbit.go, with a ctx you cancel before the handler returns (a
--- heartbeat must not be written after the response ended).
function Emitter:serve_heartbeats(ctx, seconds)
  if not context.is_context(ctx) then arg_error("e:serve_heartbeats", "ctx", "context expected, got " .. type(ctx)) end
  if type(seconds) ~= "number" or not (seconds > 0) then
    arg_error("e:serve_heartbeats", "seconds", "positive number expected, got " .. tostring(seconds))
  end
  local hb = encode_comment("", "e:serve_heartbeats")
  while true do
    local ok, err = lowbit.sleep_ctx(ctx, seconds)
    if not ok then return nil, err end
    err = ctx:err() -- cancelled while this task was waiting to run
    if err ~= nil then return nil, err end
    ok, err = emit(self, hb)
    if not ok then return nil, err end
  end
end

---------------------------------------------------------------------------
-- Reader
---------------------------------------------------------------------------

local Reader = {}
Reader.__index = Reader
M.Reader = Reader

local parser_free = C.lb_sse_parser_free
local cast_ptr = "const uint8_t *"

local function new_parser(max_event)
  local p = ffi_gc(ffi_new("lb_sse_parser"), parser_free)
  if max_event then p.max_event = max_event end
  return p
end

--- A reader of events from src: an HTTP response body, a conn, or anything
--- with read(n) -> string | nil, errors.EOF | nil, err. opts: max_event
--- (bytes one event may hold while built; default 1 MiB), chunk (bytes per
--- src:read, default sse.READ_CHUNK).
function M.new_reader(src, opts)
  if type(src) ~= "table" or type(src.read) ~= "function" then
    arg_error("sse.new_reader", "src", "reader (table with read(n)) expected, got " .. type(src))
  end
  if opts ~= nil and type(opts) ~= "table" then arg_error("sse.new_reader", "opts", "table or nil expected, got " .. type(opts)) end
  local max_event, chunk = opts and opts.max_event, opts and opts.chunk
  if max_event ~= nil and (type(max_event) ~= "number" or max_event < 1) then
    arg_error("sse.new_reader", "opts.max_event", "positive number expected, got " .. tostring(max_event))
  end
  if chunk ~= nil and (type(chunk) ~= "number" or chunk < 1) then
    arg_error("sse.new_reader", "opts.chunk", "positive number expected, got " .. tostring(chunk))
  end
  return setmetatable({ src = src, p = new_parser(max_event), buf = "", pos = 0,
                        chunk = chunk or M.READ_CHUNK }, Reader)
end

-- The dispatched event, copied out of the parser's views.
local function take_event(p)
  local ev = setmetatable({
    name = ffi_string(p.type, p.type_len),
    id = ffi_string(p.id, p.id_len),
    data = ffi_string(p.data, p.data_len),
  }, Event)
  local r = p.event_retry
  if r >= 0 then ev.retry = tonumber(r) end
  local n = tonumber(p.n_ext)
  if n > 0 then
    local ext, f = {}, p.ext
    for i = 0, n - 1 do
      local x = f[i]
      ext[i + 1] = { name = ffi_string(x.name, x.name_len), value = ffi_string(x.value, x.value_len) }
    end
    ev.extensions = ext
  end
  return ev
end

local function parse_error(code)
  if code == LB_ETOOLARGE then return M.EVENT_TOO_LARGE end
  return errors.new("sse: " .. core.strerror(code))
end

--- The next event: { name (type, "message" by default), id (the stream's
--- last event id, "" when none), data, retry (ms, when this event's block
--- had a valid retry: line, else nil), extensions (nil, or an array of
--- { name = , value = } in stream order for fields browsers ignore; use
--- ev:extension(name) for the last value of one) }. At the end of the
--- stream nil, errors.EOF (data after the last blank line is dropped, as
--- the spec says); nil, err when src fails (a timeout can be retried) or
--- an event exceeds max_event (sse.EVENT_TOO_LARGE).
function Reader:read()
  local p = self.p
  if p == nil then error("sse reader: read after close", 2) end
  local err = self.err
  if err ~= nil then return nil, err end
  local buf, pos = self.buf, self.pos
  while true do
    local left = #buf - pos
    if left > 0 then
      local n = C.lb_sse_feed(p, ffi_cast(cast_ptr, buf) + pos, left)
      if n < 0 then
        err = parse_error(tonumber(n))
        self.err = err
        return nil, err
      end
      pos = pos + tonumber(n)
      if p.ready ~= 0 then
        self.pos = pos
        return take_event(p)
      end
    else
      local d
      d, err = self.src:read(self.chunk)
      if d == nil then
        self.buf, self.pos = "", 0
        if err == EOF or err == nil then
          local r = C.lb_sse_finish(p)
          err = r < 0 and parse_error(tonumber(r)) or EOF
          self.err = err
          return nil, err
        end
        if err ~= TIMEOUT then self.err = err end
        return nil, err
      end
      buf, pos = d, 0
      self.buf, self.pos = d, 0
    end
  end
end

--- The stream's last event id ("" at first): set at every blank line, also
--- one that dispatched nothing.
function Reader:last_event_id()
  local p = self.p
  if p == nil then return self.closed_id or "" end
  return ffi_string(p.id, p.id_len)
end

--- The latest valid reconnection time (ms) the stream set, or nil.
function Reader:retry()
  local p = self.p
  if p == nil or p.has_retry == 0 then return nil end
  return tonumber(p.retry)
end

-- Goes on with a new source, as after a reconnection: the partial event
-- is dropped, the last event id and reconnection time are kept.
function Reader:_restart(src)
  C.lb_sse_parser_reset(self.p)
  self.src, self.buf, self.pos, self.err = src, "", 0, nil
end

--- Releases the parser (the source is not closed). Reading afterwards
--- raises.
function Reader:close()
  local p = self.p
  if p == nil then return true end
  self.closed_id = ffi_string(p.id, p.id_len)
  self.p = nil
  ffi_gc(p, nil)
  parser_free(p)
  return true
end

---------------------------------------------------------------------------
-- Reconnecting client (EventSource)
---------------------------------------------------------------------------

local Client = {}
Client.__index = Client
M.Client = Client

local function is_event_stream(ct)
  if ct == nil then return false end
  local essence = match(ct, "^[ \t]*([^;]-)[ \t]*;") or match(ct, "^[ \t]*(.-)[ \t]*$")
  return lower(essence) == "text/event-stream"
end

--- A client that reads one event stream across reconnections, as the
--- browser's EventSource does. No I/O happens until the first c:read().
--- opts: ctx (cancelling it ends everything: reads return nil, ctx:err()),
--- headers (extra request headers: table or lowbit.http.headers), retry
--- (initial reconnection time in ms, default sse.DEFAULT_RETRY; a retry:
--- field from the server replaces it), last_event_id (sent on the first
--- request; as the spec says, each new stream starts with an empty id
--- buffer, so a stream without id: lines resets it at its first event),
--- max_retries (consecutive failed connection attempts before read gives
--- up with the last error; nil: never), timeout (seconds per
--- connection attempt up to the response head), max_event, tls (for
--- https, as http.request).
function M.connect(u, opts)
  if type(u) ~= "string" then arg_error("sse.connect", "url", "string expected, got " .. type(u)) end
  if opts ~= nil and type(opts) ~= "table" then arg_error("sse.connect", "opts", "table or nil expected, got " .. type(opts)) end
  opts = opts or {}
  if opts.ctx ~= nil and not context.is_context(opts.ctx) then
    arg_error("sse.connect", "opts.ctx", "context expected, got " .. type(opts.ctx))
  end
  local retry = opts.retry
  if retry ~= nil and (type(retry) ~= "number" or retry < 0) then
    arg_error("sse.connect", "opts.retry", "non-negative number (ms) expected, got " .. tostring(retry))
  end
  local seed = opts.last_event_id
  if seed ~= nil and (type(seed) ~= "string" or find(seed, "[%z\r\n]")) then
    arg_error("sse.connect", "opts.last_event_id", "string without CR, LF or NUL expected, got " .. tostring(seed))
  end
  if opts.max_retries ~= nil and type(opts.max_retries) ~= "number" then
    arg_error("sse.connect", "opts.max_retries", "number expected, got " .. type(opts.max_retries))
  end
  local headers = require "lowbit.http.headers"
  local h = opts.headers
  if h ~= nil then
    if headers.is_headers(h) then h = h:clone()
    elseif type(h) == "table" then h = headers.new(h)
    else arg_error("sse.connect", "opts.headers", "table expected, got " .. type(h)) end
  else
    h = headers.new()
  end
  if not h:has("Accept") then h:set("Accept", "text/event-stream") end
  if not h:has("Cache-Control") then h:set("Cache-Control", "no-cache") end
  local ctx, cancel = context.with_cancel(opts.ctx or context.background())
  local c = setmetatable({
    url = u, ctx = ctx, cancel = cancel, hdrs = h,
    retry = retry or M.DEFAULT_RETRY,
    last_event_id = opts.last_event_id or "",
    max_retries = opts.max_retries, timeout = opts.timeout, tls = opts.tls,
    rd = M.new_reader({ read = function() return nil, EOF end }, { max_event = opts.max_event }),
    connects = 0, failures = 0,
  }, Client)
  return c
end

-- Ends the current response (if any) and its ctx watcher.
local function drop_stream(c)
  local resp = c.resp
  if resp == nil then return end
  c.resp = nil
  if c.stop then c.stop:close(); c.stop = nil end
  resp.body:close()
end

-- Ends the client for good with err (every later read returns it).
local function fail(c, err)
  drop_stream(c)
  c.err = err
  c.cancel()
  return nil, err
end

-- One connection attempt. Returns true (streaming), or false, err for a
-- failure worth retrying, or nil, err for a final one.
local function open(c)
  local http = require "lowbit.http"
  local h = c.hdrs
  if c.last_event_id ~= "" then h:set("Last-Event-ID", c.last_event_id) else h:del("Last-Event-ID") end
  c.connects = c.connects + 1
  local resp, err = http.request{ url = c.url, headers = h, ctx = c.ctx, header_timeout = c.timeout, tls = c.tls }
  if not resp then return false, err end
  local status = resp.status
  c.status = status
  if status == 204 then
    resp.body:close()
    return nil, M.NO_CONTENT
  end
  if status ~= 200 then
    resp.body:close()
    return nil, errors.wrap(M.BAD_STATUS, "%s: %d %s", c.url, status, resp.status_text or "")
  end
  local ct = resp.headers:get("Content-Type")
  if not is_event_stream(ct) then
    resp.body:close()
    return nil, errors.wrap(M.BAD_CONTENT_TYPE, "%s: %s", c.url, tostring(ct))
  end
  c.resp = resp
  c.rd:_restart(resp.body)
  -- The body does not watch ctx: close it when ctx ends so a blocked read
  -- returns at once.
  local stop, ctx = lowbit.chan(0), c.ctx
  c.stop = stop
  lowbit.go(function()
    local i = lowbit.select{ ctx:done(), stop }
    if i == 1 then resp.body:close() end
  end)
  return true
end

local function ended(c)
  if c.closed then return M.CLOSED end
  return c.ctx:err()
end

--- The next event (same shape as rd:read()), connecting and reconnecting
--- as needed: after the stream ends or a connection fails it waits
--- c.retry ms and reconnects, sending Last-Event-ID when the last event id
--- is non-empty. Ends with nil, err: sse.NO_CONTENT (204), sse.BAD_STATUS
--- (any other non-200), sse.BAD_CONTENT_TYPE, sse.EVENT_TOO_LARGE,
--- ctx:err(), sse.CLOSED, or the last connection error after max_retries.
--- The end sticks: later reads return the same.
function Client:read()
  local err = self.err
  if err ~= nil then return nil, err end
  local rd = self.rd
  while true do
    err = ended(self)
    if err ~= nil then return fail(self, err) end
    if self.resp == nil then
      if self.connects > 0 then
        local ok = lowbit.sleep_ctx(self.ctx, self.retry / 1000)
        if not ok then return fail(self, ended(self)) end
      end
      local ok
      ok, err = open(self)
      if ok == nil then return fail(self, err) end
      if not ok then
        if ended(self) then return fail(self, ended(self)) end
        self.failures = self.failures + 1
        self.last_err = err
        if self.max_retries and self.failures > self.max_retries then return fail(self, err) end
      else
        self.failures = 0
      end
    end
    if self.resp ~= nil then
      local ev
      ev, err = rd:read()
      local r = rd:retry()
      if r then self.retry = r end
      self.last_event_id = rd:last_event_id()
      if ev then return ev end
      drop_stream(self)
      if err == M.EVENT_TOO_LARGE then return fail(self, err) end
      self.last_err = err
    end
  end
end

--- Stops the client: the connection is closed, a read in progress or
--- later returns nil, sse.CLOSED. Call it when done with a client (a
--- stream left open keeps a task watching its ctx).
function Client:close()
  if self.closed then return true end
  self.closed = true
  drop_stream(self)
  if self.err == nil then self.err = M.CLOSED end
  self.cancel()
  self.rd:close()
  return true
end

return M
