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
-- Names keep the spelling they were first given in, except that lower-case
-- or mixed spellings of a canonical name are written canonically
-- ("content-type" as "Content-Type", as Go does); lookups ignore case.
--
-- Layout (kept small: a set is made for every request and response): the
-- array part holds the lower-case names in insertion order, `_v` maps a
-- lower-case name to its value (a string, or an array for several), `n` is
-- the number of names. A set parsed from the wire starts as `_raw` (name,
-- value, name, value...) and is indexed on first use.
local M = {}

local type, error, setmetatable, lower, upper, find, gsub, tostring =
  type, error, setmetatable, string.lower, string.upper, string.find, string.gsub, tostring

local Headers = {}
Headers.__index = Headers
M.Headers = Headers

-- Canonical spelling: first letter and letters after "-" upper-cased.
local canon_cache, canon_n = {}, 0
local function up(c) return upper(c) end
local function canonical(lname)
  local c = canon_cache[lname]
  if c then return c end
  c = gsub(gsub(lname, "^%l", up), "%-%l", upper)
  if canon_n < 4096 then canon_n = canon_n + 1; canon_cache[lname] = c end
  return c
end
function M.canonical(name)
  if type(name) ~= "string" then error("bad argument 'name' to headers.canonical: string expected, got " .. type(name), 2) end
  return canonical(lower(name))
end

-- Field names are tokens (RFC 9110 5.1); values may not hold CR, LF or NUL
-- (that would let a value smuggle another header or a body into the wire).
-- Both caches (bounded) spare the checks, and string.lower's hashing of a
-- new string, for the names and short values a program sets again and again.
local valid_names, valid_n = {}, 0 -- name -> its lower-case form
local function check_name(name, fname)
  local lname = valid_names[name]
  if lname then return lname end
  if type(name) ~= "string" then
    error("bad argument 'name' to headers:" .. fname .. ": string expected, got " .. type(name), 3)
  end
  if name == "" or find(name, "[^%w!#$%%&'*+%-.^_`|~]") then
    error("bad argument 'name' to headers:" .. fname .. ": invalid header name " .. ("%q"):format(name), 3)
  end
  lname = lower(name)
  if valid_n < 4096 then valid_n = valid_n + 1; valid_names[name] = lname end
  return lname
end

local valid_values, valid_vn = {}, 0
local function check_value(v, fname)
  if valid_values[v] then return v end
  local t = type(v)
  if t == "number" then return tostring(v) end
  if t ~= "string" then
    error("bad argument 'value' to headers:" .. fname .. ": string expected, got " .. t, 3)
  end
  if find(v, "\r", 1, true) or find(v, "\n", 1, true) or find(v, "\0", 1, true) then
    error("bad argument 'value' to headers:" .. fname .. ": CR, LF or NUL in header value", 3)
  end
  if #v <= 64 and valid_vn < 4096 then valid_vn = valid_vn + 1; valid_values[v] = true end
  return v
end

-- name: the spelling given; kept (in _n, made on demand) only when it is
-- not the canonical one, so the common case costs no table.
local function raw_add(self, lname, value, name)
  local vals = self._v
  local cur = vals[lname]
  if cur == nil then
    vals[lname] = value
    local n = self.n + 1
    self.n = n
    self[n] = lname
    if name and name ~= lname and name ~= canonical(lname) then
      local names = self._n
      if not names then names = {}; self._n = names end
      names[lname] = name
    end
  elseif type(cur) == "table" then
    cur[#cur + 1] = value
  else
    vals[lname] = { cur, value }
  end
end

-- Builds the index of a set parsed from the wire.
local function index(self)
  local raw = self._raw
  self._raw = nil
  for i = 1, #raw, 2 do local name = raw[i]; raw_add(self, lower(name), raw[i + 1], name) end
  return self._v
end

--- A new header set; `init` may be a table { Name = "v" | {"v1","v2"} }.
function M.new(init)
  local h = setmetatable({ _v = {}, n = 0 }, Headers)
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

local new_tab = require "table.new"

--- A set with room for n names from the start: the server's response set,
--- made per connection, is not rehashed as its first fields are set (a
--- set from new() was, twice: its array part and _v grew from nothing).
--- Internal.
function M._new_sized(n)
  local h = new_tab(n, 2) -- _v, n (and room in the array part for n names)
  h._v, h.n = new_tab(0, n), 0
  local s = setmetatable(h, Headers) -- (not a tail call: see request.new)
  return s
end

--- Empties the set, keeping its memory (the server reuses one set per
--- connection for response headers). Internal.
local function drop(self, vals, names, i)
  local k = self[i]
  vals[k] = nil
  if names ~= nil then names[k] = nil end
  self[i] = nil
end
local function clear_names(self, vals, names, from, n)
  for i = from, n do drop(self, vals, names, i) end
end

function Headers:_reset()
  -- Every key of _v (and of _n) is one of the names in the array part:
  -- their values are set to nil, not the tables cleared. The keys stay in
  -- the hash (LuaJIT), so the next response's same names are stored in
  -- place, with no new key inserted (table.clear removed them all, and
  -- the spelling table _n, dropped, was made and rehashed anew per use).
  -- The names, unrolled for up to eight (as in _write): a loop here made
  -- every trace through it abort ("leaving loop in root trace") and run
  -- interpreted on each response.
  local vals, names = self._v, self._n
  local n = self.n
  if n > 0 then
    drop(self, vals, names, 1)
    if n > 1 then
      drop(self, vals, names, 2)
      if n > 2 then
        drop(self, vals, names, 3)
        if n > 3 then
          drop(self, vals, names, 4)
          if n > 4 then
            drop(self, vals, names, 5)
            if n > 5 then
              drop(self, vals, names, 6)
              if n > 6 then
                drop(self, vals, names, 7)
                if n > 7 then drop(self, vals, names, 8); if n > 8 then clear_names(self, vals, names, 9, n) end end
              end
            end
          end
        end
      end
    end
  end
  self.n = 0
  -- Only when present: storing nil under an absent key inserts it in
  -- LuaJIT, and a table that keeps doing so is rehashed again and again.
  if self._raw ~= nil then self._raw = nil end
  return self
end

--- A set over raw (name, value, name, value, ...) pairs already validated
--- by a parser; indexed lazily. Internal (the HTTP server and client).
function M.from_raw(raw)
  return setmetatable({ _v = {}, n = 0, _raw = raw }, Headers)
end

function M.is_headers(v) return getmetatable(v) == Headers end

local function spelling(self, lname)
  local names = self._n
  return names and names[lname] or canonical(lname)
end

local function vals_of(self)
  if self._raw then return index(self) end
  return self._v
end

local function name_arg(name, fname)
  if type(name) ~= "string" then
    error(("bad argument 'name' to headers:%s: string expected, got %s"):format(fname, type(name)), 3)
  end
end

--- The first value of name, or nil.
function Headers:get(name)
  name_arg(name, "get")
  local v = vals_of(self)[lower(name)]
  if type(v) == "table" then return v[1] end
  return v
end

--- All values of name (a new array; empty when absent).
function Headers:values(name)
  name_arg(name, "values")
  local v = vals_of(self)[lower(name)]
  if v == nil then return {} end
  if type(v) == "table" then
    local t = {}
    for i = 1, #v do t[i] = v[i] end
    return t
  end
  return { v }
end

function Headers:has(name)
  name_arg(name, "has")
  return vals_of(self)[lower(name)] ~= nil
end

--- Replaces every value of name with value.
function Headers:set(name, value)
  local lname = check_name(name, "set")
  value = check_value(value, "set")
  local vals = vals_of(self)
  if vals[lname] == nil then
    raw_add(self, lname, value, name)
  else
    vals[lname] = value
  end
  return self
end

--- Adds a value to name.
function Headers:add(name, value)
  local lname = check_name(name, "add")
  value = check_value(value, "add")
  vals_of(self)
  raw_add(self, lname, value, name)
  return self
end

--- Removes name.
function Headers:del(name)
  name_arg(name, "del")
  local lname = lower(name)
  local vals = vals_of(self)
  if vals[lname] == nil then return self end
  vals[lname] = nil
  if self._n then self._n[lname] = nil end
  local n = 0
  for i = 1, self.n do
    local k = self[i]
    self[i] = nil
    if k ~= lname then n = n + 1; self[n] = k end
  end
  self.n = n
  return self
end

--- Iterates (name, value) over every value, names canonical and in
--- first-set order.
function Headers:each()
  local vals = vals_of(self)
  local i, j, cur = 0, 0, nil
  return function()
    while true do
      if cur ~= nil then
        j = j + 1
        if j <= #cur then return spelling(self, self[i]), cur[j] end
        cur = nil
      end
      i = i + 1
      local lname = self[i]
      if lname == nil then return nil end
      local v = vals[lname]
      if type(v) ~= "table" then return spelling(self, lname), v end
      cur, j = v, 0
    end
  end
end

--- Number of distinct names.
function Headers:count()
  vals_of(self)
  return self.n
end

--- A deep copy.
function Headers:clone()
  local c = M.new()
  for name, v in self:each() do raw_add(c, lower(name), v, name) end
  return c
end

--- Reports whether the comma-separated list in name contains token
--- (case-insensitive), as for Connection: keep-alive, Upgrade.
function Headers:has_token(name, token)
  name_arg(name, "has_token")
  if type(token) ~= "string" then error("bad argument 'token' to headers:has_token: string expected, got " .. type(token), 2) end
  token = lower(token)
  local v = vals_of(self)[lower(name)]
  if v == nil then return false end
  local list = type(v) == "table" and v or { v }
  for i = 1, #list do
    for tok in list[i]:gmatch("[^,]+") do
      if lower(tok:match("^%s*(.-)%s*$")) == token then return true end
    end
  end
  return false
end

local function put_values(out, name, list)
  for j = 1, #list do out:put(name, ": ", list[j], "\r\n") end
end

-- One field of _write.
local function put_field(self, out, vals, lname, skip)
  if skip and skip[lname] then return end
  local v = vals[lname]
  local name = spelling(self, lname)
  if type(v) == "table" then put_values(out, name, v)
  else out:put(name, ": ", v, "\r\n") end
end

local function put_rest(self, out, vals, skip, from)
  for i = from, self.n do put_field(self, out, vals, self[i], skip) end
end

--- Writes "Name: value\r\n" for every value into a string.buffer; `skip`
--- (optional) maps lower-case names to leave out. Internal (the server).
-- Unrolled for up to eight fields, a loop only past them: the server
-- writes a head per response, and a loop here became a trace of its own
-- whose exit had to return through every caller (the handler's frames
-- included, where a pcall frame ends the trace and leaves the rest of the
-- response interpreted), while the trace of the caller aborted at it as
-- an inner loop.
function Headers:_write(out, skip)
  local vals = vals_of(self)
  local n = self.n
  if n == 0 then return end
  put_field(self, out, vals, self[1], skip)
  if n == 1 then return end
  put_field(self, out, vals, self[2], skip)
  if n == 2 then return end
  put_field(self, out, vals, self[3], skip)
  if n == 3 then return end
  put_field(self, out, vals, self[4], skip)
  if n == 4 then return end
  put_field(self, out, vals, self[5], skip)
  if n == 5 then return end
  put_field(self, out, vals, self[6], skip)
  if n == 6 then return end
  put_field(self, out, vals, self[7], skip)
  if n == 7 then return end
  put_field(self, out, vals, self[8], skip)
  if n == 8 then return end
  put_rest(self, out, vals, skip, 9)
end

function Headers:__tostring()
  local parts = {}
  for name, v in self:each() do parts[#parts + 1] = name .. ": " .. v end
  return table.concat(parts, "\r\n")
end

return M
