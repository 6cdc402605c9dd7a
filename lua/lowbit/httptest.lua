-- lowbit.httptest: requests and a response recorder for testing handlers
-- without a server, like Go's net/http/httptest.
--
--   local r = httptest.new_request("GET", "/users/42?x=1", { headers = { Accept = "text/plain" } })
--   local w = httptest.new_recorder()
--   handler(w, r)            -- or h:serve_http(w, r)
--   w.status, w.body, w:header():get("Content-Type")
local headers = require "lowbit.http.headers"
local request = require "lowbit.http.request"
local url = require "lowbit.url"
local errors = require "lowbit.errors"

local M = {}

--- A server-side request as a handler would see it. target is a path
--- ("/a?b=1") or an absolute URL (its host becomes r.host). opts: headers
--- (table), body (string), host, remote_addr, ctx, proto.
function M.new_request(method, target, opts)
  if type(method) ~= "string" then error("bad argument 'method' to httptest.new_request: string expected, got " .. type(method), 2) end
  if type(target) ~= "string" then error("bad argument 'target' to httptest.new_request: string expected, got " .. type(target), 2) end
  opts = opts or {}
  local u = assert(url.parse(target))
  local h = headers.new(opts.headers)
  local host = opts.host or (u.host ~= "" and u.host) or h:get("Host") or "example.com"
  local body = opts.body or ""
  local r = request.new({
    method = method,
    url = u,
    request_uri = u:request_uri(),
    host = host,
    proto = opts.proto or "HTTP/1.1",
    proto_major = 1,
    proto_minor = (opts.proto == "HTTP/1.0") and 0 or 1,
    headers = h,
    body = request.string_body(body),
    content_length = #body,
    remote_addr = opts.remote_addr or "192.0.2.1:1234",
  })
  if opts.ctx then r.ctx = opts.ctx end
  return r
end

local Recorder = {}
Recorder.__index = Recorder

--- A ResponseWriter that records: w.status (200 when never set), w.body
--- (all bytes written), w.wrote_header, w.flushed, w:header().
function M.new_recorder()
  return setmetatable({ status = 200, body = "", wrote_header = false, flushed = false,
                        _h = headers.new() }, Recorder)
end

function Recorder:header() return self._h end

function Recorder:write_header(status)
  if type(status) ~= "number" or status < 100 or status > 999 then
    error("invalid WriteHeader code " .. tostring(status), 2)
  end
  if self.wrote_header then return end
  self.wrote_header = true
  self.status = status
  self.snapshot = self._h:clone()
end

function Recorder:write(s)
  if type(s) ~= "string" then error("bad argument 's' to w:write: string expected, got " .. type(s), 2) end
  if not self.wrote_header then self:write_header(200) end
  self.body = self.body .. s
  return #s
end

function Recorder:flush()
  if not self.wrote_header then self:write_header(200) end
  self.flushed = true
  return true
end

function Recorder:hijack() return nil, errors.new("httptest: recorder cannot be hijacked") end

return M
