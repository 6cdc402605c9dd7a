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
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local net = require "lowbit.net"
local core = require "lowbit.core"
local url = require "lowbit.url"
local headers = require "lowbit.http.headers"
local body = require "lowbit.http.body"
local buffer = require "string.buffer"

local C, ffi = core.C, core.ffi
local ffi_string = ffi.string
local type, error, tostring, tonumber, setmetatable = type, error, tostring, tonumber, setmetatable
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

local function check_opts(opts)
  if type(opts) ~= "table" then error("bad argument 'opts' to http.request: table expected, got " .. type(opts), 3) end
  if type(opts.url) ~= "string" then error("bad argument 'opts.url' to http.request: string expected, got " .. type(opts.url), 3) end
  if opts.method ~= nil and type(opts.method) ~= "string" then
    error("bad argument 'opts.method' to http.request: string expected, got " .. type(opts.method), 3)
  end
  if opts.ctx ~= nil and not context.is_context(opts.ctx) then
    error("bad argument 'opts.ctx' to http.request: context expected, got " .. type(opts.ctx), 3)
  end
  local b = opts.body
  if b ~= nil and type(b) ~= "string" and not (type(b) == "table" and type(b.read) == "function") then
    error("bad argument 'opts.body' to http.request: string or reader expected, got " .. type(b), 3)
  end
end

--- Sends a request and returns the response once its head has arrived:
--- resp.status, resp.status_text, resp.headers, resp.body (a streaming
--- reader; read it to the end or close it so the connection can be reused).
--- opts: method ("GET"), url, headers (table or lowbit.http.headers), body
--- (string or reader), ctx, timeout (seconds, whole exchange up to the
--- head), tls (lowbit.tls client config or its options), max_idle_per_host,
--- max_response_header_bytes. Errors: nil, err.
function M.request(opts)
  check_opts(opts)
  lowbit._need_task("http.request")
  local method = upper(opts.method or "GET")
  local u, perr = url.parse(opts.url)
  if not u then return nil, errors.new("http: invalid URL: " .. tostring(perr)) end
  if u.scheme ~= "http" and u.scheme ~= "https" then
    return nil, errors.new("http: unsupported protocol scheme " .. ("%q"):format(u.scheme))
  end
  if u.host == "" then return nil, errors.new("http: no host in request URL") end
  local hdrs = opts.headers
  if hdrs ~= nil and not headers.is_headers(hdrs) then hdrs = headers.new(hdrs) end
  local ctx = opts.ctx or context.background()
  local cancel
  if opts.timeout then ctx, cancel = context.with_timeout(ctx, opts.timeout) end
  local key = u.scheme .. "://" .. u.host
  local replayable = opts.body == nil or type(opts.body) == "string"
  local resp, err
  for attempt = 1, 2 do
    local pc = attempt == 1 and pool_get(key) or nil
    local reused = pc ~= nil
    if not pc then
      local conn, derr = dial(ctx, u, opts)
      if not conn then
        if cancel then cancel() end
        return nil, errors.wrap(derr, "%s %s", method, opts.url)
      end
      pc = new_pc(conn)
    end
    local dl = ctx:deadline()
    pc.conn:set_deadline(dl)
    -- Watch ctx: cancelling it closes the connection under the exchange.
    local watching = ctx:err() == nil and ctx ~= context.background()
    local stop
    if watching then
      stop = lowbit.chan(0)
      lowbit.go(function()
        local i = lowbit.select{ ctx:done(), stop }
        if i == 1 then pc.conn:close() end
      end)
    end
    local ok, werr = write_request(pc.conn, method, u, hdrs, opts.body, u.host)
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
      local function release(b)
        if released then return end
        released = true
        if resp.keep_alive and b.done and not b.err and kind ~= body.CLOSE then
          pool_put(key, pc, max_idle)
        else
          pc.conn:close()
        end
      end
      resp.body = body.new(pc, kind, resp.content_length, { on_done = function(b) release(b) end })
      resp.body.on_close = function(b) if not b.done then released = true; pc.conn:close() end end
      resp.conn = pc.conn
      if cancel then cancel() end
      return resp
    end
    pc.conn:close()
    if ctx:err() then
      if cancel then cancel() end
      return nil, errors.wrap(ctx:err(), "%s %s", method, opts.url)
    end
    -- A reused connection the server had closed: retry once on a new one,
    -- but only when sending again cannot do harm.
    if not (reused and not got_any and IDEMPOTENT[method] and replayable) then break end
  end
  if cancel then cancel() end
  return nil, errors.wrap(err, "%s %s", method, opts.url)
end

--- http.request with method GET.
function M.get(u, opts)
  if type(u) ~= "string" then error("bad argument 'url' to http.get: string expected, got " .. type(u), 2) end
  local o = {}
  if opts then for k, v in pairs(opts) do o[k] = v end end
  o.method, o.url = "GET", u
  return M.request(o)
end

return M
