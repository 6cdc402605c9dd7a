-- lowbit.http.request: the Request object handlers receive (and the
-- client sends). Fields:
--   method, url (lowbit.url URL: path, raw_path, raw_query, query()),
--   request_uri (the target as sent), host, proto ("HTTP/1.1"),
--   proto_major, proto_minor, headers (lowbit.http.headers), body (reader:
--   read(n), read_all(limit), close()), content_length (-1 unknown),
--   remote_addr, ctx (a lowbit.context; the server cancels it when the
--   client goes away or on shutdown), pattern (set by routers).
-- Methods: r:path_value(name), r:set_path_value(name, value).
local context = require "lowbit.context"
local headers = require "lowbit.http.headers"
local URL = require("lowbit.url").URL

local char, tonumber, find, gsub = string.char, tonumber, string.find, string.gsub
-- No closure in here: a function that makes one cannot be compiled (UCLO).
local function hex_char(h) return char(tonumber(h, 16)) end
local function unescape_path(p)
  if not find(p, "%", 1, true) then return p end
  return (gsub(p, "%%(%x%x)", hex_char))
end

local M = {}

local Request = {}
M.Request = Request

local rawget, rawset, setmetatable = rawget, rawset, setmetatable

Request.__index = function(r, k)
  local m = Request[k]
  if m ~= nil then return m end
  -- A server that fills fields on first use (lowbit.ngx) sets _lazy: it
  -- returns the field, or nil after rawsetting what the code below needs.
  local lazy = rawget(r, "_lazy")
  if lazy ~= nil then
    local v = lazy(r, k)
    if v ~= nil then return v end
  end
  if k == "proto_major" then return 1 end
  if k == "url" then
    -- Made on first use from the target the parser split (server side).
    local raw_path = rawget(r, "_path")
    if raw_path == nil then return nil end
    local q = rawget(r, "_query")
    local u = setmetatable({ scheme = "", host = rawget(r, "host") or "", path = unescape_path(raw_path),
                             raw_path = raw_path, raw_query = q or "", fragment = "", force_query = q == "" }, URL)
    rawset(r, "url", u)
    return u
  end
  if k == "headers" then
    -- Made on first use from the raw pairs the parser left.
    local raw = rawget(r, "_raw")
    local h = raw and headers.from_raw(raw) or headers.new()
    rawset(r, "headers", h)
    return h
  end
  if k == "ctx" then
    -- Made on first use: most handlers never ask for it.
    local make = rawget(r, "_make_ctx")
    local ctx = make and make(r) or context.background()
    rawset(r, "ctx", ctx)
    return ctx
  end
  return nil
end

--- The value of the wildcard `name` of the matched pattern, "" when absent.
function Request:path_value(name)
  local pv = rawget(self, "_pv")
  if pv == nil then return "" end
  return pv[name] or ""
end

--- Sets a path value (routers do; tests and middleware may).
function Request:set_path_value(name, value)
  if type(name) ~= "string" then error("bad argument 'name' to request:set_path_value: string expected, got " .. type(name), 2) end
  if type(value) ~= "string" then error("bad argument 'value' to request:set_path_value: string expected, got " .. type(value), 2) end
  local pv = rawget(self, "_pv")
  if pv == nil then pv = {}; rawset(self, "_pv", pv) end
  pv[name] = value
end

--- A shallow copy with its own path values and the given ctx (as Go's
--- r.WithContext).
function Request:with_context(ctx)
  local c = {}
  for k, v in pairs(self) do c[k] = v end
  if rawget(self, "_pv") then
    local pv = {}
    for k, v in pairs(rawget(self, "_pv")) do pv[k] = v end
    c._pv = pv
  end
  c.ctx = ctx
  return setmetatable(c, Request)
end

-- (Not a tail call: a root trace of this function could not return
-- through setmetatable.)
function M.new(fields)
  local r = setmetatable(fields, Request)
  return r
end

function M.is_request(v) return getmetatable(v) == Request end

-- A body that is already all in memory (tests, small client bodies).
local StringBody = {}
StringBody.__index = StringBody

function M.string_body(s)
  return setmetatable({ s = s or "", pos = 1 }, StringBody)
end

function StringBody:read(n)
  local s, pos = self.s, self.pos
  if pos > #s then return nil, require("lowbit.errors").EOF end
  n = n or (#s - pos + 1)
  local chunk = s:sub(pos, pos + n - 1)
  self.pos = pos + #chunk
  return chunk
end

function StringBody:read_all(limit)
  local rest = self.s:sub(self.pos)
  if limit and #rest > limit then
    return nil, require("lowbit.errors").new("http: request body too large")
  end
  self.pos = #self.s + 1
  return rest
end

function StringBody:close() self.pos = #self.s + 1; return true end

return M
