-- lowbit.cooper: the HTTP/1.1 "101 Switching Protocols" handshake on both
-- ends, handing back a plain conn (lowbit.net's interface).
--
--   -- server
--   mux:handle("/stream", cooper.hijack(function(conn, proto, r)
--     conn:write("hello over " .. proto)
--     conn:close()
--   end, { protocols = { "myproto/1" } }))
--
--   -- client
--   local conn, resp = cooper.dial({ url = "http://127.0.0.1:8080/stream",
--                                    headers = { Upgrade = "myproto/1" } })
--
-- Nothing read past a handshake head is lost: the server's conn first
-- returns the bytes the client sent right after its request head, the
-- client's conn the bytes the server sent right after the 101 head.
-- Cooper knows nothing of the protocol it switches to; websockets builds on
-- its two hooks (response_headers, response_validator).
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local net = require "lowbit.net"
local core = require "lowbit.core"
local url = require "lowbit.url"
local headers = require "lowbit.http.headers"
local body = require "lowbit.http.body"
local client = require "lowbit.http.client"
local buffer = require "string.buffer"

local C, ffi = core.C, core.ffi
local type, error, tostring, tonumber, ipairs, pcall, setmetatable =
  type, error, tostring, tonumber, ipairs, pcall, setmetatable
local lower, concat = string.lower, table.concat

local M = {}

--- The handshake failed: the peer's answer was not a valid 101 (the error
--- has fields status and response when a response head arrived), or a
--- validator refused it.
M.BAD_HANDSHAKE = errors.new("cooper: bad handshake")
--- The URL cannot be dialed (scheme not http/https/ws/wss, no host).
M.BAD_URL = errors.new("cooper: bad URL")

--- Largest response head accepted by dial/upgrade.
M.MAX_RESPONSE_HEADER_BYTES = 64 * 1024

local function arg_error(fname, name, expected, v)
  error(("bad argument '%s' to %s: %s expected, got %s"):format(name, fname, expected, type(v)), 3)
end

-- The comma-separated tokens of every value of header `name`, trimmed.
local function tokens(h, name)
  local out = {}
  local vals = h:values(name)
  for i = 1, #vals do
    for tok in vals[i]:gmatch("[^,]+") do
      tok = tok:match("^%s*(.-)%s*$")
      if tok ~= "" then out[#out + 1] = tok end
    end
  end
  return out
end
M._tokens = tokens

local function check_protocols(p, fname, name)
  if p == nil then return end
  if type(p) == "string" then return { p } end
  if type(p) ~= "table" then arg_error(fname, name, "array of strings", p) end
  for i = 1, #p do
    if type(p[i]) ~= "string" or p[i] == "" or p[i]:find("[%c,]") then
      error(("bad argument '%s' to %s: element %d is not a protocol token"):format(name, fname, i), 3)
    end
  end
  return p
end

---------------------------------------------------------------------------
-- Server side
---------------------------------------------------------------------------

--- Checks that r asks to switch to one of `protocols` (any protocol when
--- nil). Returns the chosen protocol (the client's most preferred one we
--- speak, spelled as in `protocols`), or nil, status, message, extra headers
--- (a table) for the refusal: 400 for a method other than GET, HTTP/1.0 or
--- no "Connection: upgrade"; 426 (with "Upgrade: <protocols>") when the
--- Upgrade header names none of them.
function M.check_request(r, protocols)
  if type(r) ~= "table" then arg_error("cooper.check_request", "r", "request", r) end
  if r.method ~= "GET" then
    return nil, 400, "400 Bad Request: a protocol upgrade must use GET, not " .. tostring(r.method)
  end
  if (r.proto_minor or 1) < 1 and (r.proto_major or 1) <= 1 then
    return nil, 400, "400 Bad Request: a protocol upgrade needs HTTP/1.1"
  end
  if not r.headers:has_token("Connection", "upgrade") then
    return nil, 400, "400 Bad Request: missing \"Connection: upgrade\""
  end
  local offered = tokens(r.headers, "Upgrade")
  local want = protocols and concat(protocols, ", ") or nil
  if #offered == 0 then
    return nil, 426, "426 Upgrade Required: missing Upgrade header" ..
      (want and (" (this endpoint speaks " .. want .. ")") or ""), want and { Upgrade = want } or nil
  end
  if not protocols then return offered[1] end
  for i = 1, #offered do
    local o = lower(offered[i])
    for j = 1, #protocols do
      if lower(protocols[j]) == o then return protocols[j] end
    end
  end
  return nil, 426, "426 Upgrade Required: this endpoint speaks " .. want .. ", not " .. concat(offered, ", "),
    { Upgrade = want }
end

--- Writes a plain-text refusal (status, message, extra headers) to w.
function M.refuse(w, status, msg, extra)
  if type(w) ~= "table" or type(w.header) ~= "function" then arg_error("cooper.refuse", "w", "response writer", w) end
  if type(status) ~= "number" then arg_error("cooper.refuse", "status", "number", status) end
  if msg ~= nil and type(msg) ~= "string" then arg_error("cooper.refuse", "msg", "string or nil", msg) end
  local h = w:header()
  h:del("Content-Length")
  h:set("Content-Type", "text/plain; charset=utf-8")
  h:set("X-Content-Type-Options", "nosniff")
  if extra then
    for k, v in pairs(extra) do h:set(k, v) end
  end
  w:write_header(status)
  w:write(msg .. "\n")
end

-- Appends "Name: value\r\n" lines of hs (a table or lowbit.http.headers).
local function put_headers(out, hs, fname)
  if hs == nil then return end
  if not headers.is_headers(hs) then
    if type(hs) ~= "table" then
      error(("%s: response_headers must return a table or headers, got %s"):format(fname, type(hs)), 0)
    end
    hs = headers.new(hs) -- validates names and values
  end
  for name, v in hs:each() do
    local l = lower(name)
    if l ~= "upgrade" and l ~= "connection" then out:put(name, ": ", v, "\r\n") end
  end
end

--- The server handshake inside a handler: validates r (see check_request;
--- a refusal is written to w and returned as nil, err matching
--- BAD_HANDSHAKE, with err.status), hijacks the connection, writes the 101
--- with opts.response_headers(r, proto) (a table { Name = value | {...} }
--- or lowbit.http.headers; it may return nil, status, message to refuse)
--- and returns conn, proto. The conn first yields any bytes the client
--- sent right after its request head.
function M.accept(w, r, opts)
  if type(w) ~= "table" or type(w.header) ~= "function" then arg_error("cooper.accept", "w", "response writer", w) end
  if type(r) ~= "table" then arg_error("cooper.accept", "r", "request", r) end
  if opts ~= nil and type(opts) ~= "table" then arg_error("cooper.accept", "opts", "table or nil", opts) end
  opts = opts or {}
  local protocols = check_protocols(opts.protocols, "cooper.accept", "opts.protocols")
  local rh = opts.response_headers
  if rh ~= nil and type(rh) ~= "function" then arg_error("cooper.accept", "opts.response_headers", "function", rh) end
  local proto, status, msg, extra = M.check_request(r, protocols)
  local hs
  if proto and rh then
    local h2, s2, m2 = rh(r, proto)
    if h2 == nil and s2 ~= nil then
      proto, status, msg = nil, s2, m2 or (s2 .. " handshake refused")
    end
    hs = h2
  end
  if not proto then
    M.refuse(w, status, msg, extra)
    local e = errors.wrap(M.BAD_HANDSHAKE, "%s", msg)
    e.status = status
    return nil, e
  end
  local out = buffer.new()
  out:put("HTTP/1.1 101 Switching Protocols\r\nUpgrade: ", proto, "\r\nConnection: Upgrade\r\n")
  put_headers(out, hs, "cooper.accept")
  out:put("\r\n")
  local conn, herr = w:hijack()
  if not conn then return nil, herr end
  local ok, err = conn:write(out:get())
  if not ok then
    conn:close()
    return nil, errors.wrap(err, "cooper: writing 101")
  end
  return conn, proto
end

--- A handler (function(w, r)) that runs the server handshake (see accept;
--- opts: protocols, response_headers) and calls fn(conn, proto, r) with the
--- switched conn. The conn is fn's to close (as with Go's Hijack); it is
--- closed for fn when fn raises.
function M.hijack(fn, opts)
  if type(fn) ~= "function" then arg_error("cooper.hijack", "fn", "function", fn) end
  if opts ~= nil and type(opts) ~= "table" then arg_error("cooper.hijack", "opts", "table or nil", opts) end
  opts = opts or {}
  local o = { protocols = check_protocols(opts.protocols, "cooper.hijack", "opts.protocols"),
              response_headers = opts.response_headers }
  if o.response_headers ~= nil and type(o.response_headers) ~= "function" then
    arg_error("cooper.hijack", "opts.response_headers", "function", o.response_headers)
  end
  return function(w, r)
    local conn, proto = M.accept(w, r, o)
    if not conn then return end
    local ok, err = pcall(fn, conn, proto, r)
    if not ok then
      conn:close()
      error(err, 0)
    end
  end
end

---------------------------------------------------------------------------
-- Client side
---------------------------------------------------------------------------

local DEFAULT_PORTS = { http = "80", ws = "80", https = "443", wss = "443" }
local SECURE = { https = true, wss = true }

local function check_req(req, fname)
  if type(req) ~= "table" then arg_error(fname, "req", "table", req) end
  if type(req.url) ~= "string" then arg_error(fname, "req.url", "string", req.url) end
  if req.method ~= nil and type(req.method) ~= "string" then arg_error(fname, "req.method", "string or nil", req.method) end
  if req.headers ~= nil and type(req.headers) ~= "table" then
    arg_error(fname, "req.headers", "table or headers", req.headers)
  end
end

local function check_opts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then arg_error(fname, "opts", "table or nil", opts) end
  if opts.ctx ~= nil and not context.is_context(opts.ctx) then arg_error(fname, "opts.ctx", "context", opts.ctx) end
  if opts.response_validator ~= nil and type(opts.response_validator) ~= "function" then
    arg_error(fname, "opts.response_validator", "function", opts.response_validator)
  end
  check_protocols(opts.protocols, fname, "opts.protocols")
  return opts
end

local function parse_url(s)
  local u, perr = url.parse(s)
  if not u then return nil, errors.wrap(M.BAD_URL, "%s", tostring(perr)) end
  if not DEFAULT_PORTS[u.scheme] then
    return nil, errors.wrap(M.BAD_URL, "unsupported scheme %q in %s", u.scheme, s)
  end
  if u.host == "" then return nil, errors.wrap(M.BAD_URL, "no host in %s", s) end
  return u
end

-- Reads a response head from conn. Returns resp, conn (wrapped when bytes
-- past the head had to be read into our own buffer), or nil, err.
local function read_response(conn, max_bytes)
  local src = body.new_source(conn)
  local resp, err = client.read_response_head(src, false, max_bytes)
  if not resp then
    if errors.is(err, client.BAD_RESPONSE) then
      return nil, errors.wrap(M.BAD_HANDSHAKE, "malformed response: %s", tostring(err))
    end
    return nil, err
  end
  if not src.inplace then conn = net.prefixed(conn, src.ib:get()) end
  return resp, conn
end

local function handshake_error(resp, fmt, ...)
  local e = errors.wrap(M.BAD_HANDSHAKE, fmt, ...)
  e.status, e.response = resp.status, resp
  return e
end

--- The client handshake over an existing conn (TCP, TLS, a pipe...).
--- req: url (its host and path are used), headers (table or
--- lowbit.http.headers; must name an Upgrade unless opts.protocols is
--- given), method ("GET"). opts: protocols (the Upgrade tokens to offer
--- when req has no Upgrade header), ctx (bounds the handshake),
--- response_validator(req, resp) (return nil/false, err to refuse),
--- max_response_header_bytes. Returns conn, resp (status, status_text,
--- proto, headers, protocol = the Upgrade token agreed); bytes the server
--- sent right after its 101 head are read first from conn. On failure:
--- nil, err (matching BAD_HANDSHAKE for a refused or invalid answer, with
--- err.status and err.response); the conn is closed then.
function M.upgrade(conn, req, opts)
  if type(conn) ~= "table" or type(conn.read) ~= "function" or type(conn.write) ~= "function" then
    arg_error("cooper.upgrade", "conn", "conn", conn)
  end
  check_req(req, "cooper.upgrade")
  opts = check_opts(opts, "cooper.upgrade")
  local u, uerr = url.parse(req.url)
  if not u then conn:close(); return nil, errors.wrap(M.BAD_URL, "%s", tostring(uerr)) end
  local hdrs = req.headers
  if hdrs == nil then hdrs = headers.new()
  elseif headers.is_headers(hdrs) then hdrs = hdrs:clone()
  else hdrs = headers.new(hdrs) end
  local protocols = check_protocols(opts.protocols, "cooper.upgrade", "opts.protocols")
  if not hdrs:has("Upgrade") then
    if not protocols or #protocols == 0 then
      error("bad argument 'req.headers' to cooper.upgrade: an Upgrade header (or opts.protocols) is required", 2)
    end
    hdrs:set("Upgrade", concat(protocols, ", "))
  end
  local offered = tokens(hdrs, "Upgrade")
  if not hdrs:has_token("Connection", "upgrade") then hdrs:set("Connection", "Upgrade") end
  local method = req.method or "GET"
  local out = buffer.new()
  out:put(method, " ", u:request_uri(), " HTTP/1.1\r\n")
  local host = u.host
  for name, v in hdrs:each() do
    if lower(name) == "host" then host = v else out:put(name, ": ", v, "\r\n") end
  end
  out:put("Host: ", host, "\r\n\r\n")

  local ctx = opts.ctx or context.background()
  if ctx:err() then conn:close(); return nil, ctx:err() end
  local dl = ctx:deadline()
  if dl then conn:set_deadline(dl) end
  local stop
  if ctx ~= context.background() then
    stop = lowbit.chan(0)
    lowbit.go(function()
      local i = lowbit.select{ ctx:done(), stop }
      if i == 1 then conn:close() end
    end)
  end
  local function finish(...)
    if stop then stop:close() end
    return ...
  end
  local ok, werr = conn:write(out:get())
  if not ok then
    conn:close()
    return finish(nil, ctx:err() or errors.wrap(werr, "cooper: writing request"))
  end
  local resp, rconn = read_response(conn, opts.max_response_header_bytes or M.MAX_RESPONSE_HEADER_BYTES)
  if not resp then
    conn:close()
    if ctx:err() then return finish(nil, ctx:err()) end
    if errors.is(rconn, errors.TIMEOUT) then return finish(nil, context.DEADLINE_EXCEEDED) end
    return finish(nil, errors.wrap(rconn, "cooper: reading response"))
  end
  if stop then stop:close(); stop = nil end
  if dl then conn:set_deadline(nil) end
  local err
  if resp.status ~= 101 then
    err = handshake_error(resp, "status %d %s", resp.status, resp.status_text)
  elseif not resp.headers:has_token("Connection", "upgrade") then
    err = handshake_error(resp, "101 without \"Connection: upgrade\"")
  else
    local got = tokens(resp.headers, "Upgrade")
    if #got ~= 1 then
      err = handshake_error(resp, "101 must name exactly one Upgrade protocol")
    else
      for i = 1, #offered do
        if lower(offered[i]) == lower(got[1]) then resp.protocol = offered[i] end
      end
      if not resp.protocol then
        err = handshake_error(resp, "server switched to %q, which was not offered", got[1])
      end
    end
  end
  if not err and opts.response_validator then
    local vok, verr = opts.response_validator(req, resp)
    if not vok then
      err = errors.with_kind(M.BAD_HANDSHAKE, verr or "response refused by validator")
      err.status, err.response = resp.status, resp
    end
  end
  if err then
    conn:close()
    return nil, err
  end
  return rconn, resp
end

--- Dials req.url (http/ws over TCP, https/wss over lowbit.tls with the URL
--- host as SNI and verified name) and runs upgrade over the new conn.
--- opts as for upgrade, plus tls (a lowbit.tls client config or its
--- options). Returns conn, resp or nil, err.
function M.dial(req, opts)
  check_req(req, "cooper.dial")
  opts = check_opts(opts, "cooper.dial")
  lowbit._need_task("cooper.dial")
  local u, err = parse_url(req.url)
  if not u then return nil, err end
  local port = u:port()
  if port == "" then port = DEFAULT_PORTS[u.scheme] end
  local addr = net.join_host_port(u:hostname(), port)
  local ctx = opts.ctx or context.background()
  local conn, derr
  if SECURE[u.scheme] then
    local tls = require "lowbit.tls"
    conn, derr = tls.dial(ctx, addr, opts.tls or {})
  else
    conn, derr = net.dial(ctx, addr)
  end
  if not conn then return nil, errors.wrap(derr, "cooper: dial %s", addr) end
  return M.upgrade(conn, req, opts)
end

return M
