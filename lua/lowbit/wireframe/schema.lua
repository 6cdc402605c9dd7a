-- lowbit.wireframe.schema: the structure inside a payload.
--
--   local schema = require "lowbit.wireframe.schema"
--   local s = schema.new(
--     schema.uint8("command"),
--     schema.uint16_be("seq"),
--     schema.var_bytes("data", "seq"))    -- data's length is written in "seq"
--   local bytes = assert(s:encode{ command = 1, data = "hello" })  -- seq = 5
--   local vals, used = s:decode(bytes)    -- vals.command, vals.seq, vals.data
--
-- Fields, in wire order: uint8, uint16_be/le, uint32_be/le, uint64_be/le
-- (64-bit values decode to uint64_t cdata, the others to numbers),
-- bytes(name, n) (exactly n bytes), var_bytes(name, len_field) (as many
-- bytes as the integer field len_field, declared before it, says; encode
-- writes #data into len_field, whatever vals holds there).
-- schema and frame are independent: use one, both or neither (schema only
-- borrows frame's record-shape check).
local core = require "lowbit.core"
local errors = require "lowbit.errors"
local frame = require "lowbit.wireframe.frame"
local buffer = require "string.buffer"

local ffi = core.ffi

local M = {}

local type, error, tostring, tonumber, setmetatable, getmetatable, pairs, ipairs, select =
  type, error, tostring, tonumber, setmetatable, getmetatable, pairs, ipairs, select
local floor = math.floor
local format = string.format
local ffi_string, ffi_cast, ffi_istype = ffi.string, ffi.cast, ffi.istype

--- decode: src ends before the schema's last field.
M.SHORT = errors.new("wireframe schema: payload too short")
--- encode: a value is missing, negative, fractional or too wide, or a
--- var_bytes value is longer than its length field can express.
M.INVALID_VALUE = errors.new("wireframe schema: invalid value")

local Field = {}
Field.__index = Field

local MAXV = { [1] = 0xFF, [2] = 0xFFFF, [4] = 0xFFFFFFFF }

local function check_name(ctor, name)
  if type(name) ~= "string" or name == "" then
    error(format("bad argument 'name' to schema.%s: non-empty string expected, got %s", ctor, type(name)), 3)
  end
end

local function int_ctor(tname, width, le)
  M[tname] = function(name)
    check_name(tname, name)
    return setmetatable({ name = name, type = tname, int = true, width = width, le = le }, Field)
  end
end
int_ctor("uint8", 1, false)
int_ctor("uint16_be", 2, false)
int_ctor("uint16_le", 2, true)
int_ctor("uint32_be", 4, false)
int_ctor("uint32_le", 4, true)
int_ctor("uint64_be", 8, false)
int_ctor("uint64_le", 8, true)

--- Exactly n bytes.
function M.bytes(name, n)
  check_name("bytes", name)
  if type(n) ~= "number" or n < 0 or n ~= floor(n) then
    error("bad argument 'n' to schema.bytes: non-negative integer expected, got " .. tostring(n), 2)
  end
  return setmetatable({ name = name, type = "bytes", fixed = n }, Field)
end

--- Bytes whose count is the value of the integer field len_field.
function M.var_bytes(name, len_field)
  check_name("var_bytes", name)
  if type(len_field) ~= "string" or len_field == "" then
    error("bad argument 'len_field' to schema.var_bytes: non-empty string expected, got " .. type(len_field), 2)
  end
  return setmetatable({ name = name, type = "var_bytes", len_field = len_field }, Field)
end

local Schema = {}
Schema.__index = Schema
M.Schema = Schema

--- A schema from fields in wire order. Raises on a bad declaration:
--- duplicate names, a var_bytes whose length field is unknown, not an
--- integer, declared after it, or shared by two var_bytes.
function M.new(...)
  local n = select("#", ...)
  local fields, index, used_len = {}, {}, {}
  for i = 1, n do
    local fd = select(i, ...)
    if getmetatable(fd) ~= Field then
      error(format("bad argument #%d to schema.new: field expected (schema.uint8(name), ...), got %s", i, type(fd)), 2)
    end
    if index[fd.name] then error(format("schema.new: duplicate field name %q", fd.name), 2) end
    if fd.len_field then
      local li = index[fd.len_field]
      if not li then
        error(format("schema.new: var_bytes %q: length field %q must be declared before it", fd.name, fd.len_field), 2)
      end
      if not fields[li].int then
        error(format("schema.new: var_bytes %q: length field %q is not an integer field", fd.name, fd.len_field), 2)
      end
      if used_len[li] then
        error(format("schema.new: length field %q used by two var_bytes fields", fd.len_field), 2)
      end
      used_len[li] = i
    end
    fields[i] = fd
    index[fd.name] = i
  end
  return setmetatable({ fields = fields, index = index, len_of = used_len, scratch = buffer.new() }, Schema)
end

function M.is_schema(v) return getmetatable(v) == Schema end

-- Writes an unsigned integer of width bytes.
local function put_int(buf, v, width, le)
  local p = buf:reserve(width)
  if width == 8 then
    local u = ffi.new("uint64_t", v)
    for k = 0, 7 do
      local b = tonumber(u % 256)
      u = u / 256
      if le then p[k] = b else p[7 - k] = b end
    end
  else
    for k = 0, width - 1 do
      local b = v % 256
      v = (v - b) / 256
      if le then p[k] = b else p[width - 1 - k] = b end
    end
  end
  buf:commit(width)
end

local function get_int(p, pos, width, le)
  if width == 8 then
    local u = 0ULL
    for k = 0, 7 do
      local b = le and p[pos + 7 - k] or p[pos + k]
      u = u * 256 + b
    end
    return u
  end
  local v = 0
  for k = 0, width - 1 do
    local b = le and p[pos + width - 1 - k] or p[pos + k]
    v = v * 256 + b
  end
  return v
end

local function check_int(v, fd)
  local t = type(v)
  if t == "number" then
    local m = MAXV[fd.width]
    if v < 0 or v ~= floor(v) or (m and v > m) or v >= 18446744073709551616 then return false end
    return true
  elseif t == "cdata" and (ffi_istype("uint64_t", v) or ffi_istype("int64_t", v)) then
    if ffi_istype("int64_t", v) and v < 0 then return false end
    local m = MAXV[fd.width]
    return not (m and v > m)
  end
  return nil
end

local function encode_with(self, vals, dst, fname, get)
  if dst ~= nil and not (type(dst) == "userdata" and dst.reserve) then
    error(format("bad argument 'dst' to %s: string.buffer or nil expected, got %s", fname, type(dst)), 3)
  end
  local fields, len_of = self.fields, self.len_of
  local out = dst or self.scratch
  if not dst then out:reset() end
  local mark = #out
  for i = 1, #fields do
    local fd = fields[i]
    local v
    if fd.int then
      local vi = len_of[i]
      if vi then
        local data = get(vals, fields[vi].name)
        if type(data) ~= "string" then
          error(format("bad argument 'vals' to %s: field %q must be a string, got %s", fname, fields[vi].name, type(data)), 3)
        end
        v = #data
        local m = MAXV[fd.width]
        if m and v > m then
          if dst then dst:set(dst:get(mark)) end
          return nil, errors.wrap(M.INVALID_VALUE, "field %q: %d bytes do not fit length field %q", fields[vi].name, v, fd.name)
        end
      else
        v = get(vals, fd.name)
        if v == nil then v = 0 end
        local ok = check_int(v, fd)
        if ok == nil then
          error(format("bad argument 'vals' to %s: field %q must be an integer, got %s", fname, fd.name, type(v)), 3)
        end
        if not ok then
          if dst then dst:set(dst:get(mark)) end
          return nil, errors.wrap(M.INVALID_VALUE, "field %q = %s", fd.name, tostring(v))
        end
      end
      put_int(out, v, fd.width, fd.le)
    else
      v = get(vals, fd.name)
      if v == nil then v = "" end
      if type(v) ~= "string" then
        error(format("bad argument 'vals' to %s: field %q must be a string, got %s", fname, fd.name, type(v)), 3)
      end
      if fd.fixed and #v ~= fd.fixed then
        if dst then dst:set(dst:get(mark)) end
        return nil, errors.wrap(M.INVALID_VALUE, "field %q: %d bytes, want %d", fd.name, #v, fd.fixed)
      end
      out:put(v)
    end
  end
  if dst then return dst end
  return out:get()
end

local function get_plain(vals, k) return vals[k] end

--- Encodes vals (table by field name). With dst (a string.buffer) appends
--- and returns dst, else returns a string. nil, INVALID_VALUE for values
--- that do not fit (dst is left as it was).
function Schema:encode(vals, dst)
  if type(vals) ~= "table" then error("bad argument 'vals' to schema:encode: table expected, got " .. type(vals), 2) end
  return encode_with(self, vals, dst, "schema:encode", get_plain)
end

local function decode_with(self, src, n, vals, fname, keymap)
  local p, len
  local t = type(src)
  if t == "string" then p, len = ffi_cast("const uint8_t *", src), #src
  elseif t == "userdata" and src.ref then p, len = src:ref()
  elseif t == "cdata" then
    if type(n) ~= "number" or n < 0 then error("bad argument 'len' to " .. fname .. ": length expected after a pointer", 3) end
    p, len = ffi_cast("const uint8_t *", src), n
  else
    error(format("bad argument 'src' to %s: string, string.buffer or pointer expected, got %s", fname, t), 3)
  end
  local fields = self.fields
  local pos = 0
  local lens = {}
  for i = 1, #fields do
    local fd = fields[i]
    local key = keymap and keymap[fd.name] or fd.name
    if fd.int then
      if pos + fd.width > len then return nil, M.SHORT end
      local v = get_int(p, pos, fd.width, fd.le)
      pos = pos + fd.width
      vals[key] = v
      lens[fd.name] = v
    else
      local cnt = fd.fixed or lens[fd.len_field]
      if type(cnt) ~= "number" then cnt = tonumber(cnt) end
      if pos + cnt > len then return nil, M.SHORT end
      vals[key] = ffi_string(p + pos, cnt)
      pos = pos + cnt
    end
  end
  return vals, pos
end

--- Decodes from the start of src (string, string.buffer, or pointer and
--- length: s:decode(ptr, len, vals)). Returns vals (filled in place, or a
--- new table), bytes used; or nil, SHORT. Bytes after the last field are
--- left alone (compare `used` with the length to reject them).
function Schema:decode(src, a, b)
  local n, vals
  if type(src) == "cdata" then n, vals = a, b else vals = a end
  if vals ~= nil and type(vals) ~= "table" then
    error("bad argument 'vals' to schema:decode: table or nil expected, got " .. type(vals), 2)
  end
  return decode_with(self, src, n, vals or {}, "schema:decode", nil)
end

---------------------------------------------------------------------------
-- Typed schemas: bound to a record shape, as frame's f:bind.
---------------------------------------------------------------------------

local Typed = {}
Typed.__index = Typed
M.Typed = Typed

--- Binds the schema to { record_key = "wire field", ... } (nil: each field
--- under its own name). Every field must be mapped once; raises otherwise.
function Schema:bind(shape)
  local names = {}
  for i, fd in ipairs(self.fields) do names[i] = fd.name end
  local to_key = frame._check_shape("schema:bind", shape, names, self.index)
  return setmetatable({
    schema = self, to_key = to_key, strict = frame._strict("wireframe schema record"),
    get = function(rec, wire) return rec[to_key[wire]] end,
  }, Typed)
end

--- A strict record (ints 0, bytes "") with init's values.
function Typed:new(init)
  if init ~= nil and type(init) ~= "table" then
    error("bad argument 'init' to typed:new: table or nil expected, got " .. type(init), 2)
  end
  local rec = {}
  for _, fd in ipairs(self.schema.fields) do rec[self.to_key[fd.name]] = fd.int and 0 or "" end
  if init then
    for k, v in pairs(init) do
      if rec[k] == nil then error(format("bad argument 'init' to typed:new: no field %q in the shape", tostring(k)), 2) end
      rec[k] = v
    end
  end
  return setmetatable(rec, self.strict)
end

function Typed:encode(rec, dst)
  if type(rec) ~= "table" then error("bad argument 'rec' to typed:encode: table expected, got " .. type(rec), 2) end
  return encode_with(self.schema, rec, dst, "typed:encode", self.get)
end

function Typed:decode(src, a, b)
  local n, rec
  if type(src) == "cdata" then n, rec = a, b else rec = a end
  if rec ~= nil and type(rec) ~= "table" then
    error("bad argument 'rec' to typed:decode: table or nil expected, got " .. type(rec), 2)
  end
  return decode_with(self.schema, src, n, rec or self:new(), "typed:decode", self.to_key)
end

return M
