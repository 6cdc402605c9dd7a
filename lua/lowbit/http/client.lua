-- lowbit.http.client: the HTTP/1.1 client (exposed as lowbit.http.request
-- and lowbit.http.get).
--
--   local resp, err = http.request{ method = "POST", url = "http://127.0.0.1:8080/x",
--                                   headers = { ["Content-Type"] = "text/plain" }, body = "hi" }
--   resp.status, resp.headers:get("Content-Type"), resp.body:read_all()
--
-- Connections are kept per scheme://host:port and TLS settings, and reused
-- (keep-alive) up to max_idle_per_host; a request on a reused connection
-- that fails before any response byte is sent again on a fresh one only
-- when it is idempotent and its body can be replayed. A connection whose
-- response left stray bytes behind (a 204 with a body, bytes past the
-- Content-Length), or that became readable or closed while idle, is never
-- reused.
--
-- Redirects (301, 302, 303, 307, 308) are followed as Go's http.Client
-- does, at most max_redirects (10) of them; check_redirect(req, via)
-- decides per redirect (see M.request). resp.request.url is the final URL.
--
--   local resp, err = http.get(u, { check_redirect = function(req, via)
--     if req.url:hostname() ~= "example.com" then return http.USE_LAST_RESPONSE end
--   end })
--   if errors.is(err, http.TOO_MANY_REDIRECTS) then ... end
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local net = require "lowbit.net"
local core = require "lowbit.core"
local url = require "lowbit.url"
local headers = require "lowbit.http.headers"
local body = require "lowbit.http.body"
local request = require "lowbit.http.request"
local buffer = require "string.buffer"

local C, ffi = core.C, core.ffi
local ffi_string = ffi.string
local type, error, tostring, tonumber, setmetatable, pcall = type, error, tostring, tonumber, setmetatable, pcall
local lower, upper, find, format = string.lower, string.upper, string.find, string.format
local concat, sort = table.concat, table.sort
local now = lowbit.now

local M = {}

M.MAX_IDLE_PER_HOST = 8
M.IDLE_TIMEOUT = 90
M.MAX_RESPONSE_HEADER_BYTES = 1024 * 1024
M.USER_AGENT = "lowbit/" .. lowbit.VERSION

M.BAD_RESPONSE = errors.new("http: malformed response")
M.SERVER_CLOSED_IDLE = errors.new("http: server closed idle connection")
-- More than MAX_1XX informational responses before the final one (Go's
-- bound: the 6th fails).
M.MAX_1XX = 5
M.TOO_MANY_1XX = errors.new("http: too many 1xx informational responses")
-- A request the client refuses to send: a bad method, header or
-- Content-Length, or a reader body whose length differs from the
-- Content-Length given.
M.BAD_REQUEST = errors.new("http: invalid request")

local EAGAIN = -1
local resp_hdrs = ffi.new("lb_http1_header[?]", 256)


local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, TRACE = true, PUT = true, DELETE = true }

---------------------------------------------------------------------------
-- Pool
---------------------------------------------------------------------------

local pool = {} -- key -> array of { conn, ib, idle_since }

-- Whether an idle pooled connection may carry a new request: nothing in
-- our buffer, and nothing arrived on the conn (net.idle_usable).
local function idle_usable(pc)
  return #pc.ib == 0 and net.idle_usable(pc.conn)
end

local function pool_get(key)
  local list = pool[key]
  if not list then return nil end
  while #list > 0 do
    local pc = table.remove(list)
    if now() - pc.idle_since < M.IDLE_TIMEOUT and idle_usable(pc) then return pc end
    pc.conn:close()
  end
  return nil
end

local function pool_put(key, pc, max_idle)
  local list = pool[key]
  if not list then list = {}; pool[key] = list end
  if #list >= (max_idle or M.MAX_IDLE_PER_HOST) then pc.conn:close(); return end
  pc.idle_since = now()
  if pc.conn.pooled then pc.conn:pooled() end -- (lowbit.ngx: clean and idle)
  -- Keep reading while idle, so that a close or stray bytes are seen.
  if pc.inplace then pc.conn:read_buffer() end
  list[#list + 1] = pc
end

-- Pool keys: scheme://host plus, for https, everything that changes what
-- a connection proves (Go keys by the transport's TLS config): a
-- tls.client_config by identity, an options table by its contents.
local config_ids = setmetatable({}, { __mode = "k" })
local next_config_id = 0
local function tls_key(t)
  if t == nil then return "" end
  local tls = require "lowbit.tls"
  if tls.is_config(t) then
    local id = config_ids[t]
    if not id then next_config_id = next_config_id + 1; id = next_config_id; config_ids[t] = id end
    return "|config#" .. id
  end
  local names = {}
  for k in pairs(t) do names[#names + 1] = tostring(k) end
  sort(names)
  local parts = {}
  for i = 1, #names do
    local k = names[i]
    local v = t[k]
    if type(v) == "table" then
      local l = {}
      for j = 1, #v do l[j] = format("%q", tostring(v[j])) end
      v = "{" .. concat(l, ",") .. "}"
    elseif type(v) == "string" then
      v = format("%q", v)
    else
      v = tostring(v)
    end
    parts[i] = k .. "=" .. v
  end
  return "|" .. concat(parts, ";")
end

local function pool_key(u, opts)
  local key = u.scheme .. "://" .. u.host
  if u.scheme == "https" then key = key .. tls_key(opts.tls) end
  return key
end

--- Closes every idle pooled connection.
function M.close_idle_connections()
  for key, list in pairs(pool) do
    for i = 1, #list do list[i].conn:close() end
    pool[key] = nil
  end
end

--- Number of idle pooled connections (for tests).
function M.idle_count(key)
  local n = 0
  for k, list in pairs(pool) do if key == nil or k == key then n = n + #list end end
  return n
end

---------------------------------------------------------------------------
-- Request
---------------------------------------------------------------------------

local Response = {}
Response.__index = Response
M.Response = Response

--- Reads the whole body (at most limit bytes) and closes it.
function Response:read_all(limit)
  local s, err = self.body:read_all(limit)
  self.body:close()
  return s, err
end

local function dial(ctx, u, opts)
  local host, port = u:hostname(), u:port()
  if port == "" then port = u.scheme == "https" and "443" or "80" end
  local addr = net.join_host_port(host, port)
  if u.scheme == "https" then
    local tls = require "lowbit.tls"
    -- opts.tls: a tls.client_config, or its options (verification on by
    -- default against the system CA store).
    local cfg = opts.tls
    if not tls.is_config(cfg) then
      local o = { alpn = { "http/1.1" } }
      if cfg then for k, v in pairs(cfg) do o[k] = v end end
      cfg = tls.client_config(o)
    end
    return tls.dial(ctx, addr, cfg)
  end
  -- pool: inside nginx (lowbit.ngx), the name of the keepalive pool the
  -- cosocket goes back to at the end of the request; luv's dial ignores it.
  return net.dial(ctx, addr, { pool = "lowbit-http " .. addr })
end

-- Writes the request: the head, then the body. Framing comes from the
-- body, never from the caller's headers (as Go): a string gets its
-- Content-Length; a reader is chunked, or sent with the length `declared`
-- (a caller's Content-Length) and must yield exactly that many bytes.
-- auth: an Authorization value to add (from the URL's user info).
-- Returns true, or nil, err.
local function write_request(conn, method, u, hdrs, body_s, host, declared, auth)
  local out = buffer.new()
  out:put(method, " ", u:request_uri(), " HTTP/1.1\r\n")
  local has_ua = false
  if hdrs then
    for name, v in hdrs:each() do
      local l = lower(name)
      if l == "host" then host = v
      elseif l ~= "content-length" and l ~= "transfer-encoding" then
        if l == "user-agent" then has_ua = true end
        out:put(name, ": ", v, "\r\n")
      end
    end
  end
  out:put("Host: ", host, "\r\n")
  if not has_ua then out:put("User-Agent: ", M.USER_AGENT, "\r\n") end
  if auth then out:put("Authorization: ", auth, "\r\n") end
  local streaming = body_s ~= nil and type(body_s) ~= "string"
  if type(body_s) == "string" then
    if #body_s > 0 or method == "POST" or method == "PUT" or method == "PATCH" then
      out:put("Content-Length: ", #body_s, "\r\n")
    end
  elseif streaming then
    if declared then out:put("Content-Length: ", declared, "\r\n")
    else out:put("Transfer-Encoding: chunked\r\n") end
  elseif method == "POST" or method == "PUT" or method == "PATCH" then
    out:put("Content-Length: 0\r\n")
  end
  out:put("\r\n")
  if type(body_s) == "string" then out:put(body_s) end
  local ok, err = conn:write(out:get())
  if not ok then return nil, err end
  if streaming then
    -- A reader: anything with read(n) -> string | nil, err (EOF ends).
    local sent = 0
    while true do
      local s, rerr = body_s:read(65536)
      if not s then
        if rerr ~= errors.EOF then return nil, rerr end
        break
      end
      if #s > 0 then
        sent = sent + #s
        if declared then
          if sent > declared then
            return nil, errors.wrap(M.BAD_REQUEST, "http: ContentLength=%d with Body length %d", declared, sent)
          end
          ok, err = conn:write(s)
        else
          ok, err = conn:write({ ("%x\r\n"):format(#s), s, "\r\n" })
        end
        if not ok then return nil, err end
      end
    end
    if declared then
      if sent ~= declared then
        return nil, errors.wrap(M.BAD_REQUEST, "http: ContentLength=%d with Body length %d", declared, sent)
      end
    else
      ok, err = conn:write("0\r\n\r\n")
      if not ok then return nil, err end
    end
  end
  return true
end

--- Reads a response head from src (a lowbit.http.body Source: the conn and
--- the bytes already read from it), skipping 1xx responses but 101 (at
--- most MAX_1XX of them, then nil, TOO_MANY_1XX).
--- Returns a table (status, status_text, proto, headers, content_length,
--- keep_alive, body_kind) and whether any byte arrived, or nil, err, got_any
--- (err wraps BAD_RESPONSE for a malformed head). The bytes after the head
--- stay in src.ib. Shared by the client and cooper.
function M.read_response_head(src, head_request, max_bytes)
  local presp = ffi.new("lb_http1_resp")
  presp.headers = resp_hdrs
  presp.max_headers = 256
  local ib = src.ib
  local got_any = #ib > 0
  local n1xx = 0
  while true do
    local p, len = ib:ref()
    local n = EAGAIN
    if len > 0 then n = C.lb_http1_parse_response(presp, p, len, max_bytes, head_request and 1 or 0) end
    if n > 0 then
      local status = presp.status
      local raw = {}
      for i = 0, tonumber(presp.num_headers) - 1 do
        local f = resp_hdrs[i]
        raw[2 * i + 1] = ffi_string(f.name, f.name_len)
        raw[2 * i + 2] = ffi_string(f.value, f.value_len)
      end
      local resp = {
        status = status,
        status_text = ffi_string(presp.reason, presp.reason_len),
        proto = "HTTP/1." .. presp.version_minor,
        headers = headers.from_raw(raw),
        content_length = tonumber(presp.content_length),
        keep_alive = presp.keep_alive ~= 0,
        body_kind = presp.body_kind,
      }
      ib:skip(tonumber(n))
      if status >= 100 and status < 200 and status ~= 101 then
        n1xx = n1xx + 1
        if n1xx > M.MAX_1XX then return nil, M.TOO_MANY_1XX, true end
        C.lb_http1_resp_reset(presp)
        got_any = #ib > 0
      else
        return resp, got_any
      end
    elseif n ~= EAGAIN then
      return nil, errors.wrap(M.BAD_RESPONSE, "%s", core.strerror(tonumber(n))), true
    else
      local ok, err = src:more()
      if not ok then return nil, err, got_any end
      got_any = true
    end
  end
end

local function read_head(pc, method, max_bytes)
  local resp, err, got_any = M.read_response_head(pc, method == "HEAD", max_bytes)
  if resp then setmetatable(resp, Response) end
  return resp, err, got_any
end

local function check_opts(opts, f)
  if type(opts) ~= "table" then error("bad argument 'opts' to " .. f .. ": table expected, got " .. type(opts), 3) end
  local function bad(name, want, v)
    error("bad argument 'opts." .. name .. "' to " .. f .. ": " .. want .. " expected, got " .. type(v), 4)
  end
  if type(opts.url) ~= "string" then bad("url", "string", opts.url) end
  if opts.method ~= nil and type(opts.method) ~= "string" then bad("method", "string", opts.method) end
  if opts.ctx ~= nil and not context.is_context(opts.ctx) then bad("ctx", "context", opts.ctx) end
  local b = opts.body
  if b ~= nil and type(b) ~= "string" and not (type(b) == "table" and type(b.read) == "function") then
    bad("body", "string or reader", b)
  end
  if opts.get_body ~= nil and type(opts.get_body) ~= "function" then bad("get_body", "function", opts.get_body) end
  if opts.timeout ~= nil and type(opts.timeout) ~= "number" then bad("timeout", "number", opts.timeout) end
  if opts.header_timeout ~= nil and type(opts.header_timeout) ~= "number" then
    bad("header_timeout", "number", opts.header_timeout)
  end
  if opts.check_redirect ~= nil and type(opts.check_redirect) ~= "function" then
    bad("check_redirect", "function", opts.check_redirect)
  end
  local m = opts.max_redirects
  if m ~= nil and (type(m) ~= "number" or m < 0 or m ~= math.floor(m)) then
    if type(m) == "number" then
      error("bad argument 'opts.max_redirects' to " .. f .. ": non-negative integer expected, got " .. m, 3)
    end
    bad("max_redirects", "non-negative integer", m)
  end
end

-- Checks a request target: the same rules for the first URL and every
-- redirect. Returns true or nil, err.
local function check_target(u)
  if u.scheme ~= "http" and u.scheme ~= "https" then
    return nil, errors.new("http: unsupported protocol scheme " .. ("%q"):format(u.scheme))
  end
  if u.host == "" then return nil, errors.new("http: no host in request URL") end
  return true
end

-- Closes conn when ctx ends before unwatch is called; nil when there is
-- nothing to watch.
local function watch(ctx, conn)
  if ctx:err() ~= nil or ctx == context.background() then return nil end
  local w = { ch = lowbit.chan(0), on = true }
  lowbit.go(function()
    local i = lowbit.select{ ctx:done(), w.ch }
    if i == 1 and w.on then conn:close() end
  end)
  return w
end

local function unwatch(w)
  if w and w.on then w.on = false; w.ch:close() end
end

-- A pooled connection is a body.Source whose reads report ctx's error
-- (DEADLINE_EXCEEDED, CANCELED) when ctx ended them: the deadline and the
-- watcher act on the conn, which only says TIMEOUT or CLOSED.
local PC = setmetatable({}, { __index = body.Source })
PC.__index = PC

function PC:more()
  local ok, err = body.Source.more(self)
  if not ok then
    local ctx = self.ctx
    if ctx and (err == errors.TIMEOUT or err == errors.CLOSED) then
      local cerr = ctx:err()
      if cerr == nil and err == errors.TIMEOUT then
        local d = ctx:deadline()
        if d and d <= now() + 0.001 then cerr = context.DEADLINE_EXCEEDED end
      end
      if cerr then err = cerr end
    end
  end
  return ok, err
end

local function new_pc(conn) return setmetatable(body.new_source(conn), PC) end

-- RFC 9110 token: what a method may be made of.
local function is_token(s) return s ~= "" and not find(s, "[^%w!#$%%&'*+%-.^_`|~]") end
-- A field value the client sends: no control byte but HTAB (as Go's
-- httpguts.ValidHeaderFieldValue).
local function bad_value(v) return find(v, "[%z\1-\8\10-\31\127]") ~= nil end

-- Checks the headers of one exchange: names tokens, values without
-- control bytes; returns the declared Content-Length (a number, or nil),
-- or nil, err.
local function check_headers(hdrs)
  local declared
  if not hdrs then return true end
  for name, v in hdrs:each() do
    if not is_token(name) then
      return nil, errors.wrap(M.BAD_REQUEST, "http: invalid header field name %q", name)
    end
    if bad_value(v) then
      return nil, errors.wrap(M.BAD_REQUEST, "http: invalid header field value for %q", name)
    end
    if lower(name) == "content-length" then
      local n = v:match("^[ \t]*(%d+)[ \t]*$")
      if not n or #n > 15 or (declared and declared ~= tonumber(n)) then
        return nil, errors.wrap(M.BAD_REQUEST, "http: invalid Content-Length %q", v)
      end
      declared = tonumber(n)
    end
  end
  return true, declared
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out, byte = {}, string.byte
  for i = 1, #s, 3 do
    local a, b2, c = byte(s, i, i + 2)
    local n = a * 65536 + (b2 or 0) * 256 + (c or 0)
    local q = { math.floor(n / 262144) % 64, math.floor(n / 4096) % 64, math.floor(n / 64) % 64, n % 64 }
    out[#out + 1] = B64:sub(q[1] + 1, q[1] + 1) .. B64:sub(q[2] + 1, q[2] + 1) ..
      (b2 and B64:sub(q[3] + 1, q[3] + 1) or "=") .. (c and B64:sub(q[4] + 1, q[4] + 1) or "=")
  end
  return concat(out)
end

-- The Authorization a URL's user info stands for ("Basic ..."), as Go's
-- client sends it when the request has none; nil without user info.
local function basic_auth(u, hdrs)
  local info = u.user
  if info == nil or (hdrs and hdrs:has("Authorization")) then return nil end
  local user, pass = info:match("^([^:]*):(.*)$")
  if not user then user, pass = info, "" end
  user = url.path_unescape(user) or user
  pass = url.path_unescape(pass) or pass
  return "Basic " .. base64(user .. ":" .. pass)
end

-- The URL as errors show it: a password replaced by "***" (Go's
-- stripPassword).
local function redact(u)
  local s = u:string()
  if u.user and find(u.user, ":", 1, true) then
    local name = u.user:match("^([^:]*)")
    local at = find(s, u.user .. "@", 1, true)
    if at then s = s:sub(1, at - 1) .. name .. ":***@" .. s:sub(at + #u.user + 1) end
  end
  return s
end
M._redact = redact

-- Whether a write failure may hide a response the server sent before it
-- stopped reading (a 413 to an upload): the peer went away, not us.
local EPIPE, ECONNRESET = errors.sys("EPIPE"), errors.sys("ECONNRESET")
local function peer_gone(err)
  return errors.is(err, EPIPE) or errors.is(err, ECONNRESET)
end

-- One exchange: sends req (method, url, headers) with body b and returns
-- the response once its head has arrived, or nil, err (wrapped with
-- "METHOD label", label defaulting to the URL). ctx bounds everything,
-- the response body included: its deadline stays on the connection and
-- its cancellation closes it until the body ends or is closed.
-- opts.header_timeout bounds the part up to the head only.
local function send(ctx, req, b, opts, label)
  local method, u, hdrs = req.method, req.url, req.headers
  label = label or redact(u)
  if ctx:err() then return nil, errors.wrap(ctx:err(), "%s %s", method, label) end
  local hok, declared = check_headers(hdrs)
  if not hok then return nil, errors.wrap(declared, "%s %s", method, label) end
  if b == nil or type(b) == "string" then declared = nil end
  local auth = basic_auth(u, hdrs)
  local key = pool_key(u, opts)
  local get_body = opts.get_body
  local replayable = b == nil or type(b) == "string" or get_body ~= nil
  -- The context of the part up to the response head.
  local hctx, hcancel = ctx, nil
  if opts.header_timeout then hctx, hcancel = context.with_timeout(ctx, opts.header_timeout) end
  local function fail(err)
    -- ctx's own error (read before cancelling hctx makes it CANCELED).
    if hctx:err() then err = hctx:err() end
    if hcancel then hcancel() end
    return nil, errors.wrap(err, "%s %s", method, label)
  end
  local resp, err
  for attempt = 1, 2 do
    if attempt == 2 and b ~= nil and type(b) ~= "string" then
      -- The first attempt may have consumed the reader: take a fresh one.
      local nb, gerr = get_body()
      if nb == nil then return fail(gerr or errors.new("http: get_body returned nil")) end
      b = nb
    end
    local pc = attempt == 1 and pool_get(key) or nil
    local reused = pc ~= nil
    if not pc then
      local conn, derr = dial(hctx, u, opts)
      if not conn then return fail(derr) end
      pc = new_pc(conn)
    end
    pc.ctx = hctx
    pc.conn:set_deadline(hctx:deadline())
    -- Watch ctx: cancelling it closes the connection under the exchange.
    local w = watch(hctx, pc.conn)
    local ok, werr = write_request(pc.conn, method, u, hdrs, b, u.host, declared, auth)
    local got_any = false
    local early = false
    if ok then
      resp, err, got_any = read_head(pc, method, opts.max_response_header_bytes or M.MAX_RESPONSE_HEADER_BYTES)
    elseif peer_gone(werr) and not hctx:err() then
      -- The server may have answered before it stopped reading (a 413
      -- to a large upload): that answer is what the caller wants.
      resp, err, got_any = read_head(pc, method, opts.max_response_header_bytes or M.MAX_RESPONSE_HEADER_BYTES)
      if resp then early = true else err = werr end
    else
      err = werr
    end
    if resp then
      if hcancel then
        -- From here on only ctx bounds the exchange.
        unwatch(w); hcancel(); hcancel = nil
        pc.ctx = ctx
        w = watch(ctx, pc.conn)
      end
      pc.conn:set_deadline(ctx:deadline())
      if early then resp.keep_alive = false end
      local kind = resp.body_kind
      local max_idle = opts.max_idle_per_host
      local released = false
      local function release(bd, keep)
        if released then return end
        released = true
        unwatch(w)
        pc.ctx = nil
        -- Bytes past the response's own framing are not a response to
        -- anything: the connection is not reused.
        if keep and not pc.conn.closed and resp.keep_alive and bd.done and not bd.err and kind ~= body.CLOSE
            and #pc.ib == 0 then
          pc.conn:set_deadline(nil)
          pool_put(key, pc, max_idle)
        else
          pc.conn:close()
        end
        resp._released = true
        local f = resp._on_release
        if f then resp._on_release = nil; f() end
      end
      resp.body = body.new(pc, kind, resp.content_length, { on_done = function(bd) release(bd, true) end })
      resp.body.on_close = function(bd) if not bd.done then release(bd, false) end end
      resp.conn = pc.conn
      resp.request = req
      return resp
    end
    unwatch(w)
    pc.conn:close()
    if hctx:err() then return fail(hctx:err()) end
    -- A reused connection the server had closed: retry once on a new one,
    -- but only when sending again cannot do harm.
    if not (reused and not got_any and IDEMPOTENT[method] and replayable) then break end
  end
  return fail(err)
end

---------------------------------------------------------------------------
-- Redirects (Go's Client.Do)
---------------------------------------------------------------------------

M.MAX_REDIRECTS = 10
-- At most this many bytes of a redirect's body are read so that its
-- connection can go back to the pool; a longer body closes it.
local DRAIN_MAX = 2048

-- Matches the error returned when a chain is longer than max_redirects
-- (its text: "stopped after 10 redirects").
M.TOO_MANY_REDIRECTS = errors.new("http: too many redirects")
-- check_redirect returns this to get the redirect response itself,
-- unread, instead of following it (Go's ErrUseLastResponse).
M.USE_LAST_RESPONSE = errors.new("http: use last response")

-- Dropped from a redirected request when its host is neither the first
-- request's host nor a subdomain of it (Go's list).
local SENSITIVE = { authorization = true, ["www-authenticate"] = true, cookie = true, cookie2 = true,
                    ["proxy-authorization"] = true, ["proxy-authenticate"] = true }

-- Go's isDomainOrSubdomain: sub is parent or ends in "." .. parent; never
-- for IPv6 literals.
local function is_domain_or_subdomain(sub, parent)
  if sub == parent then return true end
  if sub:find("[:%%]") then return false end
  return #sub > #parent + 1 and sub:sub(-#parent - 1) == "." .. parent
end

-- The Referer for a request to new made after one to last, as Go's
-- refererForURL: none from https to http; no user info nor fragment.
local function referer_for(last, new)
  if last.scheme == "https" and new.scheme == "http" then return nil end
  local r = last:clone()
  r.user, r.fragment = nil, ""
  return r:string()
end

-- Reads what is left of an intermediate response's body, at most
-- DRAIN_MAX bytes and within ctx, so that a kept-alive connection is
-- reused; then closes it.
local function drain(ctx, resp)
  local b = resp.body
  if not b.done and not b.closed and ctx:err() == nil and resp.keep_alive and b.kind ~= body.CLOSE
      and (resp.content_length < 0 or resp.content_length <= DRAIN_MAX) then
    b:discard(DRAIN_MAX) -- within ctx: its deadline and watcher are still on the conn
  end
  b:close()
end

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

local function do_request(ctx, method, u, hdrs, opts)
  local max = opts.max_redirects or M.MAX_REDIRECTS
  local check = opts.check_redirect
  local b = opts.body
  local first_host = lower(u:hostname())
  local host_override = hdrs and hdrs:get("Host") -- kept only across relative redirects
  local strip = false                             -- once true, stays true (Go)
  local req = request.new{ method = method, url = u, headers = hdrs or headers.new(), ctx = ctx }
  -- Errors name the first URL as given (a password in it redacted).
  local label = (u.user and find(u.user, ":", 1, true)) and redact(u) or opts.url
  local via = {}
  while true do
    local resp, err = send(ctx, req, b, opts, label)
    label = nil
    if not resp then return nil, err end
    local status = resp.status
    if not REDIRECT[status] or max == 0 then return resp end
    local loc = resp.headers:get("Location")
    if loc == nil or loc == "" then return resp end -- a 3xx without Location is an answer
    local nmethod, nbody = method, b
    if status <= 303 then
      -- 301/302/303: GET without a body (HEAD stays HEAD).
      if method ~= "GET" and method ~= "HEAD" then nmethod = "GET" end
      nbody = nil
    elseif b ~= nil and type(b) ~= "string" and not opts.get_body then
      -- 307/308 must re-send the body, and this one cannot be replayed:
      -- the redirect is the answer (Go, when GetBody is nil).
      return resp
    end
    local nu, perr = u:parse(loc)
    if not nu then
      resp.body:close()
      return nil, errors.wrap(errors.new(("http: failed to parse Location header %q: %s"):format(loc, tostring(perr))),
        "%s %s", method, u:string())
    end
    if nbody ~= nil and type(nbody) ~= "string" then
      local gerr
      nbody, gerr = opts.get_body()
      if nbody == nil then
        resp.body:close()
        return nil, errors.wrap(gerr or errors.new("http: get_body returned nil"), "%s %s", nmethod, nu:string())
      end
    end
    -- The next request's headers: the first request's, less the
    -- credentials once a redirect left its host (and subdomains), less
    -- the body's when there is no body, less Host unless the Location was
    -- relative; plus a Referer.
    if not strip and not is_domain_or_subdomain(lower(nu:hostname()), first_host) then strip = true end
    -- Go keeps a Host set by the caller across relative redirects only.
    if loc:match("^[%a][%w+%-.]*:") then host_override = nil end
    local nh = headers.new()
    if hdrs then
      for name, v in hdrs:each() do
        local l = lower(name)
        if not (l == "host" or (strip and SENSITIVE[l])
                or (nbody == nil and (l == "transfer-encoding" or l:sub(1, 8) == "content-"))) then
          nh:add(name, v)
        end
      end
    end
    if host_override then nh:set("Host", host_override) end
    if not nh:has("Referer") then
      local ref = referer_for(u, nu)
      if ref then nh:set("Referer", ref) end
    end
    local nreq = request.new{ method = nmethod, url = nu, headers = nh, ctx = ctx, response = resp }
    via[#via + 1] = req
    local cerr
    if #via > max then
      -- errors.is matches TOO_MANY_REDIRECTS; the text is Go's.
      cerr = setmetatable({ msg = ("stopped after %d redirects"):format(max), kind = M.TOO_MANY_REDIRECTS },
                          errors.Error)
    elseif check then
      local ok, r = pcall(check, nreq, via)
      if not ok then resp.body:close(); error(r, 0) end
      if r ~= nil and type(r) ~= "string" and type(r) ~= "table" then
        resp.body:close()
        error("http.request: check_redirect returned a " .. type(r) .. "; nil or an error expected", 0)
      end
      cerr = r
    end
    if cerr ~= nil and errors.is(cerr, M.USE_LAST_RESPONSE) then return resp end
    drain(ctx, resp)
    if cerr ~= nil then
      -- The response comes along (its body closed), as Go returns both.
      local e = errors.wrap(cerr, "%s %s", method, nu:string())
      e.response = resp
      return nil, e
    end
    local ok, terr = check_target(nu)
    if not ok then return nil, errors.wrap(terr, "%s %s", nmethod, nu:string()) end
    req, u, method, b = nreq, nu, nmethod, nbody
  end
end

--- Sends a request and returns the response once its head has arrived:
--- resp.status, resp.status_text, resp.headers, resp.body (a streaming
--- reader; read it to the end or close it so the connection can be
--- reused), resp.request (the request this response answers: method, url
--- (a lowbit.url URL: the final URL after redirects), headers, and
--- response, the redirect that led to it, if any).
---
--- opts: method ("GET"), url, headers (table or lowbit.http.headers), body
--- (string or reader), get_body (a function returning a fresh copy of a
--- reader body, as Go's GetBody: lets 307/308 redirects and the
--- reused-connection retry send it again), ctx, timeout (seconds, the
--- whole exchange, redirects and the final body included, as Go's
--- Client.Timeout; ctx too bounds the body), header_timeout (seconds per
--- exchange up to its response head: dial, request and head, as Go's
--- ResponseHeaderTimeout, the body not included), tls (lowbit.tls client
--- config or its options), max_idle_per_host, max_response_header_bytes,
--- max_redirects, check_redirect.
---
--- What is sent: the method must be an RFC 9110 token and header names
--- tokens, values without control bytes but HTAB (else nil, err matching
--- BAD_REQUEST, nothing sent). Framing comes from the body, as in Go: a
--- string gets its Content-Length, whatever the caller's Content-Length
--- or Transfer-Encoding say (they are dropped); a reader is sent chunked,
--- or, when the caller gives a Content-Length, with that length, and must
--- yield exactly that many bytes (else nil, err). User info in the URL
--- (user:pass@) becomes Authorization: Basic unless the request has an
--- Authorization (as Go); a password never shows in errors. At most
--- MAX_1XX (5) informational responses are skipped, then TOO_MANY_1XX. A
--- response the server sends before it stops reading the body (a 413 to
--- an upload, then close) is returned instead of the write error.
---
--- Redirects are followed as Go's http.Client does: 301, 302 and 303 with
--- a Location become GET without a body (HEAD stays HEAD); 307 and 308
--- keep the method and the body (a string is sent again; a reader needs
--- get_body, else the 307/308 itself is returned). The Location may be
--- relative. Each redirected request gets the first request's headers,
--- with Authorization, Cookie, Cookie2, Proxy-Authorization,
--- WWW-Authenticate and Proxy-Authenticate left out from the first
--- redirect to a host that is neither the first request's host nor a
--- subdomain of it (hosts compare without ports, as Go), Content-* and
--- Transfer-Encoding left out when the body is dropped, and a Referer.
--- At most max_redirects (10) are followed: the next one fails with
--- TOO_MANY_REDIRECTS ("stopped after 10 redirects"); max_redirects = 0
--- returns 3xx responses as they are. check_redirect(req, via) is called
--- before each one is followed, with the next request (it may change
--- req.headers) and the requests made so far, oldest first: nil follows,
--- USE_LAST_RESPONSE returns the redirect response unread, any other
--- error stops with that error (err.response is the redirect, its body
--- closed). The bodies of followed redirects are read (up to 2 KiB) and
--- closed so their connections are reused. A redirect to another scheme
--- than http or https fails; https to http is allowed. Errors: nil, err.
function M.request(opts)
  check_opts(opts, "http.request")
  lowbit._need_task("http.request")
  local method = upper(opts.method or "GET")
  if not is_token(method) then
    return nil, errors.wrap(M.BAD_REQUEST, "net/http: invalid method %q", opts.method)
  end
  local u, perr = url.parse(opts.url)
  if not u then return nil, errors.new("http: invalid URL: " .. tostring(perr)) end
  local ok, terr = check_target(u)
  if not ok then return nil, terr end
  local hdrs = opts.headers
  if hdrs ~= nil and not headers.is_headers(hdrs) then
    -- A plain table: strings that may not go on the wire are nil, err
    -- here, as for a header set (headers.new would raise on CR/LF/NUL).
    for k, v in pairs(hdrs) do
      local vs = type(v) == "table" and v or { v }
      if type(k) == "string" and not is_token(k) then
        return nil, errors.wrap(M.BAD_REQUEST, "http: invalid header field name %q", k)
      end
      for i = 1, #vs do
        if type(vs[i]) == "string" and bad_value(vs[i]) then
          return nil, errors.wrap(M.BAD_REQUEST, "http: invalid header field value for %q", tostring(k))
        end
      end
    end
    hdrs = headers.new(hdrs)
  end
  local ctx = opts.ctx or context.background()
  local cancel
  if opts.timeout then ctx, cancel = context.with_timeout(ctx, opts.timeout) end
  local resp, err = do_request(ctx, method, u, hdrs, opts)
  -- The timeout covers the body too: it ends when the body does.
  if cancel then
    if resp and not resp._released then resp._on_release = cancel else cancel() end
  end
  return resp, err
end

--- http.request with method GET.
function M.get(u, opts)
  if type(u) ~= "string" then error("bad argument 'url' to http.get: string expected, got " .. type(u), 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument 'opts' to http.get: table expected, got " .. type(opts), 2)
  end
  local o = {}
  if opts then for k, v in pairs(opts) do o[k] = v end end
  o.method, o.url = "GET", u
  check_opts(o, "http.get")
  return M.request(o)
end

return M
