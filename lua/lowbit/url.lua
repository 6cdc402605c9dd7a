-- lowbit.url: URL parsing and escaping, in the shape of Go's net/url.
--
--   local u = assert(url.parse("https://example.com:8443/a%2Fb/c?x=1&y=2#top"))
--   u.scheme, u.host, u.path, u.raw_path, u.raw_query, u.fragment
--   --> "https", "example.com:8443", "/a/b/c", "/a%2Fb/c", "x=1&y=2", "top"
--   u:hostname(), u:port()   --> "example.com", "8443"
--   u:query():get("x")       --> "1"  (Values: get, values, set, add, del, has,
--                                      keys, clone, encode; keys never shadow them)
--   url.encode_query{ b = "2", a = { "1", "x y" } }   --> "a=1&a=x+y&b=2"
local M = {}

local type, error, tonumber, setmetatable, byte, char, format, find, sub, gsub, upper =
  type, error, tonumber, setmetatable, string.byte, string.char, string.format, string.find,
  string.sub, string.gsub, string.upper
local concat, sort, unpack = table.concat, table.sort, unpack
local getmetatable, rawget, pairs, ipairs, tostring = getmetatable, rawget, pairs, ipairs, tostring

M.INVALID = setmetatable({}, { __tostring = function() return "invalid URL escape" end })

---------------------------------------------------------------------------
-- Escaping
---------------------------------------------------------------------------

local function hex_byte(c) return format("%%%02X", byte(c)) end

--- Escapes s for a query component: space becomes "+", everything but
--- unreserved characters (A-Z a-z 0-9 - _ . ~) is %XX.
function M.query_escape(s)
  if type(s) ~= "string" then error("bad argument 's' to url.query_escape: string expected, got " .. type(s), 2) end
  s = gsub(s, "[^%w%-_%.~ ]", hex_byte)
  return (gsub(s, " ", "+"))
end

--- Escapes s for a path segment (also escapes "/").
function M.path_escape(s)
  if type(s) ~= "string" then error("bad argument 's' to url.path_escape: string expected, got " .. type(s), 2) end
  return (gsub(s, "[^%w%-_%.~!$&'()*+,;=:@]", hex_byte))
end

-- Escapes what may not appear in a path, leaving "/" and existing valid
-- escapes alone.
local function escape_path_keep_slash(s)
  return (gsub(s, "[^%w%-_%.~!$&'()*+,;=:@/]", hex_byte))
end
function M.escape_path(s)
  if type(s) ~= "string" then error("bad argument 's' to url.escape_path: string expected, got " .. type(s), 2) end
  return escape_path_keep_slash(s)
end

local function unescape(s, plus)
  if not find(s, "%", 1, true) then
    if plus then return (gsub(s, "+", " ")) end
    return s
  end
  -- Reject "%" not followed by two hex digits (Go does too).
  local i = 1
  while true do
    local p = find(s, "%", i, true)
    if not p then break end
    if not find(sub(s, p + 1, p + 2), "^%x%x$") then return nil, "invalid URL escape " .. format("%q", sub(s, p, p + 2)) end
    i = p + 3
  end
  if plus then s = gsub(s, "+", " ") end
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

--- Decodes %XX escapes and "+" (as space). Returns nil, err for a bad escape.
function M.query_unescape(s)
  if type(s) ~= "string" then error("bad argument 's' to url.query_unescape: string expected, got " .. type(s), 2) end
  return unescape(s, true)
end

--- Decodes %XX escapes ("+" stays "+"). Returns nil, err for a bad escape.
function M.path_unescape(s)
  if type(s) ~= "string" then error("bad argument 's' to url.path_unescape: string expected, got " .. type(s), 2) end
  return unescape(s, false)
end

---------------------------------------------------------------------------
-- Query values
---------------------------------------------------------------------------

-- A Values object keeps its data in an inner table under a key no query
-- can name (a table, not a string), so a parameter called "get", "set",
-- "__index" or anything else never shadows a method: the methods live only
-- in the metatable. Read and change it through the methods.
local DATA = setmetatable({}, { __tostring = function() return "url.Values data" end })

local Values = {}
Values.__index = Values
Values.__newindex = function(_, k)
  error("bad assignment to url.Values field " .. format("%q", tostring(k)) .. ": use v:set(key, value)", 2)
end
M.Values = Values

local function new_values() return setmetatable({ [DATA] = {} }, Values) end

local function is_values(t) return getmetatable(t) == Values end

-- The data table of self, checking self and key (raises at the caller of
-- the method).
local function data_of(self, fname, key, no_key)
  local data = is_values(self) and rawget(self, DATA)
  if not data then
    error("bad argument 'self' to url.Values:" .. fname .. ": Values expected, got " .. type(self) .. " (use ':' to call)", 3)
  end
  if not no_key and type(key) ~= "string" then
    error("bad argument 'key' to url.Values:" .. fname .. ": string expected, got " .. type(key), 3)
  end
  return data
end

local function check_value(fname, value)
  local t = type(value)
  if t == "number" then return tostring(value) end
  if t ~= "string" then
    error("bad argument 'value' to url.Values:" .. fname .. ": string or number expected, got " .. t, 3)
  end
  return value
end

--- An empty Values; with t ({ key = "v" | {"v1", "v2"} }), a copy of it.
function M.new_values(t)
  if t ~= nil and type(t) ~= "table" then
    error("bad argument 't' to url.new_values: table or nil expected, got " .. type(t), 2)
  end
  local v = new_values()
  if t == nil then return v end
  local data = v[DATA]
  if is_values(t) then
    for k, l in pairs(t[DATA]) do data[k] = { unpack(l) } end
    return v
  end
  for k, val in pairs(t) do
    if type(k) ~= "string" then
      error("bad argument 't' to url.new_values: string keys expected, got " .. type(k), 2)
    end
    if type(val) == "table" then
      local l = {}
      for i = 1, #val do l[i] = tostring(val[i]) end
      data[k] = l
    else
      data[k] = { tostring(val) }
    end
  end
  return v
end

--- Parses a query string into Values (name -> list of values). Pairs
--- with bad escapes are skipped; the second result reports the first one.
function M.parse_query(s)
  if s ~= nil and type(s) ~= "string" then error("bad argument 's' to url.parse_query: string or nil expected, got " .. type(s), 2) end
  local v = new_values()
  local first_err
  if s == nil or s == "" then return v end
  local data = v[DATA]
  for pair in s:gmatch("[^&]+") do
    local k, val = pair:match("^([^=]*)=(.*)$")
    if not k then k, val = pair, "" end
    local dk, e1 = unescape(k, true)
    local dv, e2 = unescape(val, true)
    if dk and dv then
      local list = data[dk]
      if list then list[#list + 1] = dv else data[dk] = { dv } end
    else
      first_err = first_err or (e1 or e2)
    end
  end
  return v, first_err
end

--- The first value for key, or nil.
function Values:get(key)
  local l = data_of(self, "get", key)[key]
  return l and l[1]
end

--- Every value for key, in order: a new list ({} when there is none).
function Values:values(key)
  local l = data_of(self, "values", key)[key]
  return l and { unpack(l) } or {}
end

--- Replaces the values of key with value (a string or a number).
function Values:set(key, value)
  local data = data_of(self, "set", key)
  data[key] = { check_value("set", value) }
  return self
end

--- Appends value (a string or a number) to the values of key.
function Values:add(key, value)
  local data = data_of(self, "add", key)
  value = check_value("add", value)
  local l = data[key]
  if l then l[#l + 1] = value else data[key] = { value } end
  return self
end

--- Removes key and its values.
function Values:del(key) data_of(self, "del", key)[key] = nil; return self end

--- Whether key is there (with a value, maybe "").
function Values:has(key) return data_of(self, "has", key)[key] ~= nil end

--- The keys, sorted.
function Values:keys()
  local keys = {}
  for k in pairs(data_of(self, "keys", nil, true)) do keys[#keys + 1] = k end
  sort(keys)
  return keys
end

--- A copy that may be changed without changing v.
function Values:clone()
  data_of(self, "clone", nil, true)
  return M.new_values(self)
end

--- Encodes values as "a=1&b=2", sorted by key (values keep their order).
--- Accepts Values or a plain table { key = "v" | {"v1", "v2"} }.
function M.encode_query(values)
  if type(values) ~= "table" then error("bad argument 'values' to url.encode_query: table expected, got " .. type(values), 2) end
  if is_values(values) then values = values[DATA] end
  local keys = {}
  for k in pairs(values) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = values[k]
    local ek = M.query_escape(k)
    if type(v) == "table" then
      for i = 1, #v do parts[#parts + 1] = ek .. "=" .. M.query_escape(tostring(v[i])) end
    else
      parts[#parts + 1] = ek .. "=" .. M.query_escape(tostring(v))
    end
  end
  return concat(parts, "&")
end

--- The query string of v (as url.encode_query).
function Values:encode()
  data_of(self, "encode", nil, true)
  return M.encode_query(self)
end
Values.__tostring = Values.encode

---------------------------------------------------------------------------
-- URLs
---------------------------------------------------------------------------

local URL = {}
URL.__index = URL
M.URL = URL

--- Parses an absolute URL ("http://h/p?q#f") or a reference ("/p?q").
--- Returns a URL, or nil, err.
function M.parse(s)
  if type(s) ~= "string" then error("bad argument 's' to url.parse: string expected, got " .. type(s), 2) end
  if find(s, "[%z\1-\31\127]") then return nil, "invalid control character in URL" end
  local u = setmetatable({ scheme = "", host = "", path = "", raw_path = "", raw_query = "", fragment = "" }, URL)
  local rest = s
  local hash = find(rest, "#", 1, true)
  if hash then
    local f, err = unescape(sub(rest, hash + 1), false)
    if not f then return nil, err end
    u.fragment = f
    rest = sub(rest, 1, hash - 1)
  end
  local scheme, after = rest:match("^([%a][%w+%-.]*):(.*)$")
  if scheme then
    u.scheme = scheme:lower()
    rest = after
  end
  local q = find(rest, "?", 1, true)
  if q then
    u.raw_query = sub(rest, q + 1)
    u.force_query = u.raw_query == ""
    rest = sub(rest, 1, q - 1)
  end
  if sub(rest, 1, 2) == "//" then
    local auth_end = find(rest, "/", 3, true) or (#rest + 1)
    local auth = sub(rest, 3, auth_end - 1)
    rest = sub(rest, auth_end)
    local at = auth:match("^.*()@")
    if at then
      u.user = sub(auth, 1, at - 1)
      auth = sub(auth, at + 1)
    end
    if find(auth, "[%s%%]") and not auth:match("^%[") then return nil, "invalid character in host " .. format("%q", auth) end
    if auth:match("^%[") and not auth:match("^%[[%x:.%%%w]+%](:?%d*)$") then
      return nil, "invalid IPv6 host " .. format("%q", auth)
    end
    if not auth:match("^%[") and not auth:match("^[^:]*:?%d*$") then
      return nil, "invalid port in host " .. format("%q", auth)
    end
    u.host = auth
  elseif scheme and sub(rest, 1, 1) ~= "/" and rest ~= "" then
    u.opaque = rest
    return u
  end
  local p, err = unescape(rest, false)
  if not p then return nil, err end
  u.path = p
  u.raw_path = rest
  return u
end

--- Host without the port ("[::1]:80" -> "::1").
function URL:hostname()
  local h = self.host
  local v6 = h:match("^%[(.*)%]")
  if v6 then return v6 end
  return (h:gsub(":%d*$", ""))
end

--- The port as a string, or "" when none is given.
function URL:port()
  return self.host:match(":(%d+)$") or ""
end

--- The query parsed into Values.
function URL:query() return (M.parse_query(self.raw_query)) end

--- The escaped path: raw_path when it is a valid encoding of path (only
--- characters a path may hold, as Go's validEncoded: no space, no control
--- or non-ASCII byte), else path escaped ("/a b" -> "/a%20b").
function URL:escaped_path()
  local rp = self.raw_path
  if rp ~= "" and not find(rp, "[^%w%-_%.~!$&'()*+,;=:@/%%%[%]]") and unescape(rp, false) == self.path then
    return rp
  end
  if self.path == "*" then return "*" end
  return escape_path_keep_slash(self.path)
end

--- Path plus "?query" when there is one: what goes on a request line.
function URL:request_uri()
  local p = self.opaque or self:escaped_path()
  if p == "" then p = "/" end
  if self.raw_query ~= "" or self.force_query then p = p .. "?" .. self.raw_query end
  return p
end

function URL:string()
  local parts = {}
  if self.scheme ~= "" then parts[#parts + 1] = self.scheme .. ":" end
  if self.opaque then
    parts[#parts + 1] = self.opaque
  else
    if self.host ~= "" or self.scheme ~= "" then
      parts[#parts + 1] = "//"
      if self.user then parts[#parts + 1] = self.user .. "@" end
      parts[#parts + 1] = self.host
    end
    local p = self:escaped_path()
    if p ~= "" and sub(p, 1, 1) ~= "/" and self.host ~= "" then p = "/" .. p end
    parts[#parts + 1] = p
  end
  if self.raw_query ~= "" or self.force_query then parts[#parts + 1] = "?" .. self.raw_query end
  if self.fragment ~= "" then parts[#parts + 1] = "#" .. escape_path_keep_slash(self.fragment) end
  return concat(parts)
end
URL.__tostring = URL.string

--- A copy whose fields may be changed freely.
function URL:clone()
  local c = {}
  for k, v in pairs(self) do c[k] = v end
  return setmetatable(c, URL)
end

-- RFC 3986 5.2: merges an escaped reference path into an escaped base
-- path and removes dot segments (as Go's resolvePath).
local function resolve_path(base, ref)
  local full
  if ref == "" then
    full = base
  elseif sub(ref, 1, 1) ~= "/" then
    full = (base:match("^(.*/)") or "") .. ref
  else
    full = ref
  end
  if full == "" then return "" end
  local out, elem = {}, nil
  for e in (full .. "/"):gmatch("([^/]*)/") do
    elem = e
    if e == ".." then
      out[#out] = nil
    elseif e ~= "." then
      out[#out + 1] = e
    end
  end
  -- "a/.." and "a/." name a directory: keep the trailing slash.
  if elem == "." or elem == ".." then out[#out + 1] = "" end
  -- The split of the leading "/" left an empty first element: drop it.
  if out[1] == "" then table.remove(out, 1) end
  return "/" .. concat(out, "/")
end

local function set_path(u, escaped)
  u.raw_path = escaped
  u.path = unescape(escaped, false) or escaped
end

--- Resolves ref (a URL, usually a reference such as "../x" or "/y?z")
--- against u, as RFC 3986 section 5.2 and Go's URL.ResolveReference: a
--- new absolute URL; neither input is changed.
function URL:resolve_reference(ref)
  if getmetatable(ref) ~= URL then
    error("bad argument 'ref' to url:resolve_reference: URL expected, got " .. type(ref), 2)
  end
  local r = ref:clone()
  if r.scheme == "" then r.scheme = self.scheme end
  if ref.scheme ~= "" or ref.host ~= "" or ref.user ~= nil then
    set_path(r, resolve_path(ref:escaped_path(), ""))
    return r
  end
  if ref.opaque then
    r.user, r.host, r.path, r.raw_path = nil, "", "", ""
    return r
  end
  if ref.path == "" and not ref.force_query and ref.raw_query == "" then
    r.raw_query, r.force_query = self.raw_query, self.force_query
    if ref.fragment == "" then r.fragment = self.fragment end
  end
  r.host, r.user = self.host, self.user
  set_path(r, resolve_path(self:escaped_path(), ref:escaped_path()))
  return r
end

--- Parses s in the context of u (as Go's u.Parse): s may be absolute or
--- relative. Returns a new URL, or nil, err.
function URL:parse(s)
  local ref, err = M.parse(s)
  if not ref then return nil, err end
  return self:resolve_reference(ref)
end

return M
