-- lowbit.http.client: the HTTP/1.1 client (exposed as lowbit.http.request
-- and lowbit.http.get).
--
--   local resp, err = http.request{ method = "POST", url = "http://127.0.0.1:8080/x",
--                                   headers = { ["Content-Type"] = "text/plain" }, body = "hi" }
--   resp.status, resp.headers:get("Content-Type"), resp.body:read_all()
--
-- Connections are kept per scheme://host:port and reused (keep-alive) up to
-- max_idle_per_host; a request on a reused connection that fails before
-- any response byte is sent again on a fresh one only when it is
-- idempotent and its body can be replayed.
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
local lower, upper = string.lower, string.upper
local now = lowbit.now

local M = {}

M.MAX_IDLE_PER_HOST = 8
M.IDLE_TIMEOUT = 90
M.MAX_RESPONSE_HEADER_BYTES = 1024 * 1024
M.USER_AGENT = "lowbit/" .. lowbit.VERSION

M.BAD_RESPONSE = errors.new("http: malformed response")
M.SERVER_CLOSED_IDLE = errors.new("http: server closed idle connection")

local EAGAIN = -1
local resp_hdrs = ffi.new("lb_http1_header[?]", 256)

-- A pooled connection: a body.Source (conn plus the bytes read past the
-- last response).
local new_pc = body.new_source

local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, TRACE = true, PUT = true, DELETE = true }

---------------------------------------------------------------------------
-- Pool
---------------------------------------------------------------------------

local pool = {} -- key -> array of { conn, ib, idle_since }

local function pool_get(key)
  local list = pool[key]
  if not list then return nil end
  while #list > 0 do
    local pc = table.remove(list)
    if now() - pc.idle_since < M.IDLE_TIMEOUT and not pc.conn.closed then return pc end
    pc.conn:close()
  end
  return nil
end

local function pool_put(key, pc, max_idle)
  local list = pool[key]
  if not list then list = {}; pool[key] = list end
  if #list >= (max_idle or M.MAX_IDLE_PER_HOST) then pc.conn:close(); return end
  pc.idle_since = now()
  list[#list + 1] = pc
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
  return net.dial(ctx, addr)
end

local function write_request(conn, method, u, hdrs, body_s, host)
  local out = buffer.new()
  out:put(method, " ", u:request_uri(), " HTTP/1.1\r\n")
  local has_host, has_ua, has_cl, has_te = false, false, false, false
  if hdrs then
    for name, v in hdrs:each() do
      local l = lower(name)
      if l == "host" then has_host = true; host = v end
      if l == "user-agent" then has_ua = true end
      if l == "content-length" then has_cl = true end
      if l == "transfer-encoding" then has_te = true end
      if l ~= "host" then out:put(name, ": ", v, "\r\n") end
    end
  end
  out:put("Host: ", host, "\r\n")
  if not has_ua then out:put("User-Agent: ", M.USER_AGENT, "\r\n") end
  local streaming = body_s ~= nil and type(body_s) ~= "string"
  if type(body_s) == "string" then
    if not has_cl and (#body_s > 0 or method == "POST" or method == "PUT" or method == "PATCH") then
      out:put("Content-Length: ", #body_s, "\r\n")
    end
  elseif streaming and not has_cl and not has_te then
    out:put("Transfer-Encoding: chunked\r\n")
  end
  out:put("\r\n")
  if type(body_s) == "string" then out:put(body_s) end
  local ok, err = conn:write(out:get())
  if not ok then return nil, err end
  if streaming then
    -- A reader: anything with read(n) -> string | nil, err (EOF ends).
    while true do
      local s, rerr = body_s:read(65536)
      if not s then
        if rerr ~= errors.EOF then return nil, rerr end
        break
      end
      if #s > 0 then
        ok, err = conn:write({ ("%x\r\n"):format(#s), s, "\r\n" })
        if not ok then return nil, err end
      end
    end
    ok, err = conn:write("0\r\n\r\n")
    if not ok then return nil, err end
  end
  return true
end

--- Reads a response head from src (a lowbit.http.body Source: the conn and
--- the bytes already read from it), skipping 1xx responses but 101.
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

-- Closes conn when ctx ends before the returned channel is closed; nil
-- when there is nothing to watch.
local function watch(ctx, conn)
  if ctx:err() ~= nil or ctx == context.background() then return nil end
  local stop = lowbit.chan(0)
  lowbit.go(function()
    local i = lowbit.select{ ctx:done(), stop }
    if i == 1 then conn:close() end
  end)
  return stop
end

-- One exchange: sends req (method, url, headers) with body b and returns
-- the response once its head has arrived, or nil, err (wrapped with
-- "METHOD label", label defaulting to the URL). ctx bounds everything up
-- to the head.
local function send(ctx, req, b, opts, label)
  local method, u, hdrs = req.method, req.url, req.headers
  label = label or u:string()
  if ctx:err() then return nil, errors.wrap(ctx:err(), "%s %s", method, label) end
  local key = u.scheme .. "://" .. u.host
  local get_body = opts.get_body
  local replayable = b == nil or type(b) == "string" or get_body ~= nil
  local resp, err
  for attempt = 1, 2 do
    if attempt == 2 and b ~= nil and type(b) ~= "string" then
      -- The first attempt may have consumed the reader: take a fresh one.
      local nb, gerr = get_body()
      if nb == nil then return nil, errors.wrap(gerr or errors.new("http: get_body returned nil"), "%s %s", method, label) end
      b = nb
    end
    local pc = attempt == 1 and pool_get(key) or nil
    local reused = pc ~= nil
    if not pc then
      local conn, derr = dial(ctx, u, opts)
      if not conn then return nil, errors.wrap(derr, "%s %s", method, label) end
      pc = new_pc(conn)
    end
    pc.conn:set_deadline(ctx:deadline())
    -- Watch ctx: cancelling it closes the connection under the exchange.
    local stop = watch(ctx, pc.conn)
    local ok, werr = write_request(pc.conn, method, u, hdrs, b, u.host)
    local got_any = false
    if ok then
      resp, err, got_any = read_head(pc, method, opts.max_response_header_bytes or M.MAX_RESPONSE_HEADER_BYTES)
    else
      err = werr
    end
    if stop then stop:close() end
    if resp then
      pc.conn:set_deadline(nil)
      local kind = resp.body_kind
      local max_idle = opts.max_idle_per_host
      local released = false
      local function release(bd)
        if released then return end
        released = true
        if resp.keep_alive and bd.done and not bd.err and kind ~= body.CLOSE then
          pool_put(key, pc, max_idle)
        else
          pc.conn:close()
        end
      end
      resp.body = body.new(pc, kind, resp.content_length, { on_done = function(bd) release(bd) end })
      resp.body.on_close = function(bd) if not bd.done then released = true; pc.conn:close() end end
      resp.conn = pc.conn
      resp.request = req
      return resp
    end
    pc.conn:close()
    if ctx:err() then return nil, errors.wrap(ctx:err(), "%s %s", method, label) end
    -- A reused connection the server had closed: retry once on a new one,
    -- but only when sending again cannot do harm.
    if not (reused and not got_any and IDEMPOTENT[method] and replayable) then break end
  end
  return nil, errors.wrap(err, "%s %s", method, label)
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
    local conn = resp.conn
    conn:set_deadline(ctx:deadline())
    local stop = watch(ctx, conn)
    b:discard(DRAIN_MAX)
    if stop then stop:close() end
    if not conn.closed then conn:set_deadline(nil) end
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
  local label = opts.url -- errors name the first URL as given
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
--- whole exchange up to the final head, redirects included), tls
--- (lowbit.tls client config or its options), max_idle_per_host,
--- max_response_header_bytes, max_redirects, check_redirect.
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
  local u, perr = url.parse(opts.url)
  if not u then return nil, errors.new("http: invalid URL: " .. tostring(perr)) end
  local ok, terr = check_target(u)
  if not ok then return nil, terr end
  local hdrs = opts.headers
  if hdrs ~= nil and not headers.is_headers(hdrs) then hdrs = headers.new(hdrs) end
  local ctx = opts.ctx or context.background()
  local cancel
  if opts.timeout then ctx, cancel = context.with_timeout(ctx, opts.timeout) end
  local resp, err = do_request(ctx, method, u, hdrs, opts)
  if cancel then cancel() end
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
