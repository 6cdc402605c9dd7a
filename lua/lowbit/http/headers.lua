-- lowbit.http.headers: an HTTP header set, case-insensitive and
-- multi-valued, like Go's http.Header.
--
--   local h = headers.new()
--   h:set("Content-Type", "text/plain")
--   h:add("Set-Cookie", "a=1"); h:add("set-cookie", "b=2")
--   h:get("content-type")        --> "text/plain"
--   h:values("Set-Cookie")       --> { "a=1", "b=2" }
--   for name, value in h:each() do ... end   -- in insertion order
--
-- Names keep the spelling they were first given in; lookups ignore case.
local M = {}

local type, error, setmetatable, lower, find = type, error, setmetatable, string.lower, string.find

local Headers = {}
Headers.__index = Headers
M.Headers = Headers

-- Field names are tokens (RFC 9110 5.1); values may not hold CR, LF or NUL
-- (that would let a value smuggle another header or a body into the wire).
local function check_name(name, fname)
  if type(name) ~= "string" then
    error("bad argument 'name' to headers:" .. fname .. ": string expected, got " .. type(name), 3)
  end
  if name == "" or find(name, "[^%w!#$%%&'*+%-.^_`|~]") then
    error("bad argument 'name' to headers:" .. fname .. ": invalid header name " .. ("%q"):format(name), 3)
  end
end

local function check_value(v, fname)
  local t = type(v)
  if t == "number" then return tostring(v) end
  if t ~= "string" then
    error("bad argument 'value' to headers:" .. fname .. ": string expected, got " .. t, 3)
  end
  if find(v, "[\r\n%z]") then
    error("bad argument 'value' to headers:" .. fname .. ": CR, LF or NUL in header value", 3)
  end
  return v
end

--- A new header set; `init` may be a table { Name = "v" | {"v1","v2"} }.
function M.new(init)
  local h = setmetatable({ _v = {}, _n = {}, _order = {}, _count = 0 }, Headers)
  if init ~= nil then
    if type(init) ~= "table" then error("bad argument 'init' to headers.new: table expected, got " .. type(init), 2) end
    for k, v in pairs(init) do
      if type(v) == "table" then
        for i = 1, #v do h:add(k, v[i]) end
      else
        h:add(k, v)
      end
    end
  end
  return h
end

function M.is_headers(v) return getmetatable(v) == Headers end

-- Internal: add without validation (the HTTP parser already checked).
function Headers:_raw_add(name, lname, value)
  local vals = self._v
  local cur = vals[lname]
  if cur == nil then
    vals[lname] = value
    self._n[lname] = name
    local c = self._count + 1
    self._count = c
    self._order[c] = lname
  elseif type(cur) == "table" then
    cur[#cur + 1] = value
  else
    vals[lname] = { cur, value }
  end
end

--- The first value of name, or nil.
function Headers:get(name)
  local v = self._v[lower(name)]
  if type(v) == "table" then return v[1] end
  return v
end

--- All values of name (a new array; empty when absent).
function Headers:values(name)
  local v = self._v[lower(name)]
  if v == nil then return {} end
  if type(v) == "table" then
    local t = {}
    for i = 1, #v do t[i] = v[i] end
    return t
  end
  return { v }
end

function Headers:has(name) return self._v[lower(name)] ~= nil end

--- Replaces every value of name with value.
function Headers:set(name, value)
  check_name(name, "set")
  value = check_value(value, "set")
  local lname = lower(name)
  if self._v[lname] == nil then
    self:_raw_add(name, lname, value)
  else
    self._v[lname] = value
  end
  return self
end

--- Adds a value to name.
function Headers:add(name, value)
  check_name(name, "add")
  value = check_value(value, "add")
  self:_raw_add(name, lower(name), value)
  return self
end

--- Removes name.
function Headers:del(name)
  local lname = lower(name)
  if self._v[lname] == nil then return self end
  self._v[lname] = nil
  self._n[lname] = nil
  local order, n = self._order, 0
  for i = 1, self._count do
    local k = order[i]
    order[i] = nil
    if k ~= lname then n = n + 1; order[n] = k end
  end
  self._count = n
  return self
end

--- Iterates (name, value) over every value, names in first-set order.
function Headers:each()
  local order, vals, names = self._order, self._v, self._n
  local i, j, cur = 0, 0, nil
  return function()
    while true do
      if cur ~= nil and type(cur) == "table" then
        j = j + 1
        if j <= #cur then return names[order[i]], cur[j] end
      end
      i = i + 1
      local lname = order[i]
      if lname == nil then return nil end
      cur = vals[lname]
      if type(cur) ~= "table" then
        local v = cur
        cur = nil
        return names[lname], v
      end
      j = 0
    end
  end
end

--- Number of distinct names.
function Headers:count() return self._count end

--- A deep copy.
function Headers:clone()
  local c = M.new()
  for name, v in self:each() do c:_raw_add(name, lower(name), v) end
  return c
end

--- Reports whether the comma-separated list in name contains token
--- (case-insensitive), as for Connection: keep-alive, Upgrade.
function Headers:has_token(name, token)
  token = lower(token)
  local v = self._v[lower(name)]
  if v == nil then return false end
  local list = type(v) == "table" and v or { v }
  for i = 1, #list do
    for tok in list[i]:gmatch("[^,]+") do
      if lower(tok:match("^%s*(.-)%s*$")) == token then return true end
    end
  end
  return false
end

function Headers:__tostring()
  local parts = {}
  for name, v in self:each() do parts[#parts + 1] = name .. ": " .. v end
  return table.concat(parts, "\r\n")
end

return M
