-- lowbit.wireframe.frame: declare a binary frame format, encode and decode
-- frames. The byte work is the C core's (lb_frame.h); this module holds the
-- declarations, the field names and the error values.
--
--   local frame, checksum = require "lowbit.wireframe.frame", require "lowbit.wireframe.checksum"
--   local f = frame.format{
--     prefix = "\xAA\x55",
--     header = { frame.uint8("version"), frame.uint8("type"), frame.payload_length_le("length") },
--     checksum = checksum.crc32_ieee(),     -- optional; big-endian unless checksum_order = "le"
--     max_payload = 64 * 1024,              -- optional; default: what the length field can hold
--   }
--   local wire = f:encode("hello", { version = 1, type = 0x42 })
--   local vals = f:new_values()
--   local payload, used = f:decode(wire, vals)     -- vals.type == 0x42, vals.length == 5
--
-- On the wire: prefix | header fields | payload | checksum; the checksum
-- covers everything after the prefix up to the end of the payload.
local core = require "lowbit.core"
local errors = require "lowbit.errors"
local checksum = require "lowbit.wireframe.checksum"
local buffer = require "string.buffer"

local ffi = core.ffi
local C = core.C

local M = {}

local type, error, tostring, tonumber, setmetatable, getmetatable, pairs, ipairs =
  type, error, tostring, tonumber, setmetatable, getmetatable, pairs, ipairs
local floor = math.floor
local ffi_string, ffi_new, ffi_copy, ffi_istype = ffi.string, ffi.new, ffi.copy, ffi.istype
local format = string.format

---------------------------------------------------------------------------
-- Errors (returned as values, never wrapped, so `err == frame.CHECKSUM`
-- works as well as errors.is)
---------------------------------------------------------------------------

--- src holds the start of a frame but not all of it: read more, call again.
M.INCOMPLETE = errors.new("wireframe: incomplete frame")
--- The checksum does not match the frame's bytes.
M.CHECKSUM = errors.new("wireframe: checksum mismatch")
--- The payload length exceeds the format's max_payload.
M.TOO_LARGE = errors.new("wireframe: payload too large")
--- src does not start with the format's prefix.
M.BAD_PREFIX = errors.new("wireframe: bad prefix")
--- encode: a header value is negative, fractional or too wide for its field.
M.INVALID_VALUE = errors.new("wireframe: header value out of range")

local LB_EAGAIN, LB_EPREFIX, LB_ECHECKSUM, LB_ETOOLARGE =
  C.LB_EAGAIN, C.LB_EPREFIX, C.LB_ECHECKSUM, C.LB_ETOOLARGE
local code_err = {
  [LB_EAGAIN] = M.INCOMPLETE, [LB_EPREFIX] = M.BAD_PREFIX,
  [LB_ECHECKSUM] = M.CHECKSUM, [LB_ETOOLARGE] = M.TOO_LARGE,
}
M._code_err = code_err

---------------------------------------------------------------------------
-- Fields
---------------------------------------------------------------------------

local Field = {}
Field.__index = Field
Field.__tostring = function(fd) return format("field %s %q", fd.type, fd.name) end

-- max: the largest value (as a number; 64-bit fields accept any uint64).
local function field_ctor(tname, kind, width, is_len)
  M[tname] = function(name)
    if type(name) ~= "string" or name == "" then
      error(format("bad argument 'name' to frame.%s: non-empty string expected, got %s", tname,
        type(name) == "string" and "empty string" or type(name)), 2)
    end
    return setmetatable({ name = name, type = tname, kind = kind, width = width, is_length = is_len }, Field)
  end
end

field_ctor("uint8", C.LB_FRAME_U8, 1, false)
field_ctor("uint16_be", C.LB_FRAME_U16BE, 2, false)
field_ctor("uint16_le", C.LB_FRAME_U16LE, 2, false)
field_ctor("uint32_be", C.LB_FRAME_U32BE, 4, false)
field_ctor("uint32_le", C.LB_FRAME_U32LE, 4, false)
field_ctor("uint64_be", C.LB_FRAME_U64BE, 8, false)
field_ctor("uint64_le", C.LB_FRAME_U64LE, 8, false)
-- Payload-length fields: exactly one per format. payload_length_be/_le are
-- 16-bit, as in the seed (PayloadLengthBE/LE); 8 and 32-bit variants too.
field_ctor("payload_length8", C.LB_FRAME_LEN8, 1, true)
field_ctor("payload_length_be", C.LB_FRAME_LEN16BE, 2, true)
field_ctor("payload_length_le", C.LB_FRAME_LEN16LE, 2, true)
field_ctor("payload_length32_be", C.LB_FRAME_LEN32BE, 4, true)
field_ctor("payload_length32_le", C.LB_FRAME_LEN32LE, 4, true)
M.payload_length16_be, M.payload_length16_le = M.payload_length_be, M.payload_length_le

function M.is_field(v) return getmetatable(v) == Field end

local MAX_BY_WIDTH = { [1] = 0xFF, [2] = 0xFFFF, [4] = 0xFFFFFFFF }

---------------------------------------------------------------------------
-- Formats
---------------------------------------------------------------------------

local Format = {}
Format.__index = Format
M.Format = Format

local function argerr(fname, name, msg) error(format("bad argument '%s' to %s: %s", name, fname, msg), 3) end

--- Declares a format. Argument types are checked here (misuse raises);
--- consistency (one payload-length field, sizes, names) is checked by
--- f:validate(), which encode and decode call on first use.
function M.format(spec)
  local fname = "frame.format"
  if type(spec) ~= "table" then argerr(fname, "spec", "table expected, got " .. type(spec)) end
  local prefix = spec.prefix
  if prefix == nil then prefix = "" end
  if type(prefix) ~= "string" then argerr(fname, "prefix", "string expected, got " .. type(prefix)) end
  local header = spec.header
  if type(header) ~= "table" then argerr(fname, "header", "table of fields expected, got " .. type(header)) end
  for i, fd in ipairs(header) do
    if getmetatable(fd) ~= Field then
      argerr(fname, "header", format("entry %d is not a field (use frame.uint8(name), ...), got %s", i, type(fd)))
    end
  end
  local ck = spec.checksum
  if ck ~= nil and not checksum.is_checksum(ck) then
    argerr(fname, "checksum", "checksum object (checksum.crc32_ieee(), ...) or nil expected, got " .. type(ck))
  end
  local order = spec.checksum_order
  if order ~= nil and order ~= "be" and order ~= "le" then
    argerr(fname, "checksum_order", "\"be\", \"le\" or nil expected, got " .. tostring(order))
  end
  local maxp = spec.max_payload
  if maxp ~= nil and (type(maxp) ~= "number" or maxp < 0 or maxp ~= floor(maxp)) then
    argerr(fname, "max_payload", "non-negative integer or nil expected, got " .. tostring(maxp))
  end
  local fields = {}
  for i, fd in ipairs(header) do fields[i] = fd end
  return setmetatable({
    prefix = prefix, fields = fields, checksum = ck, checksum_order = order or "be",
    max_payload = maxp, valid = false,
  }, Format)
end

function M.is_format(v) return getmetatable(v) == Format end

local function invalid(msg) error("wireframe: invalid format: " .. msg, 3) end

-- store(vals, cv, base) for one list of keys: vals[keys[i]] = the value of
-- field i, cv[base + i - 1] (a number; uint64_t cdata for the 64-bit
-- fields in wide). Generated straight-line code with constant keys: a
-- decode has no loop of its own, so the caller's loop traces through it
-- (a loop here would start traces of its own) and every store is a
-- guarded slot store instead of a hash lookup.
-- Generated chunks by source: formats often share a key list. Weak, so
-- formats made and dropped at run time do not pile up chunks here.
local store_makers = setmetatable({}, { __mode = "v" })
local function make_store(keys, wide)
  local p = { "local tonumber = ...\nreturn function(v, cv, b)\n" }
  for i, key in ipairs(keys) do
    if wide[i] then
      p[#p + 1] = format("  v[%q] = cv[b + %d] + 0ULL\n", key, i - 1)
    else
      p[#p + 1] = format("  v[%q] = tonumber(cv[b + %d])\n", key, i - 1)
    end
  end
  p[#p + 1] = "end\n"
  local src = table.concat(p)
  local make = store_makers[src]
  if not make then
    make = assert(load(src, "=wireframe.store"))
    store_makers[src] = make
  end
  return make(tonumber)
end
M._make_store = make_store

--- Checks the format and prepares it (idempotent). Raises with the reason
--- when it is inconsistent. Returns the format.
function Format:validate()
  if self.valid then return self end
  local fields = self.fields
  if #self.prefix > C.LB_FRAME_MAX_PREFIX then
    invalid(format("prefix is %d bytes, at most %d allowed", #self.prefix, C.LB_FRAME_MAX_PREFIX))
  end
  if #fields > C.LB_FRAME_MAX_FIELDS then
    invalid(format("%d header fields, at most %d allowed", #fields, C.LB_FRAME_MAX_FIELDS))
  end
  local index, names, kinds = {}, {}, {}
  for i, fd in ipairs(fields) do
    if index[fd.name] then invalid(format("field %d: duplicate field name %q", i, fd.name)) end
    index[fd.name] = i
    names[i] = fd.name
  end
  local cf = ffi_new("lb_frame_format")
  ffi_copy(cf.prefix, self.prefix, #self.prefix)
  cf.prefix_len = #self.prefix
  cf.nfields = #fields
  for i, fd in ipairs(fields) do cf.fields[i - 1] = fd.kind; kinds[i] = fd end
  cf.checksum = self.checksum and self.checksum.kind or C.LB_FRAME_CK_NONE
  cf.checksum_order = self.checksum_order == "le" and C.LB_FRAME_LITTLE_ENDIAN or C.LB_FRAME_BIG_ENDIAN
  cf.max_payload = self.max_payload or 0
  local fi = ffi_new("int[1]")
  local reason = C.lb_frame_validate_reason(cf, fi)
  if reason ~= nil then
    local msg = ffi_string(reason)
    local i = fi[0]
    if i >= 0 and fields[i + 1] then msg = format("%s (field %d %q)", msg, i + 1, fields[i + 1].name) end
    if self.max_payload and msg:find("max_payload", 1, true) then
      msg = msg .. format(" (max_payload = %d)", self.max_payload)
    end
    invalid(msg)
  end
  local len_index
  for i, fd in ipairs(fields) do if fd.is_length then len_index = i end end
  -- The decoders use the format compiled once (lb_frame_compile): no
  -- validation or layout work per frame.
  local cc = ffi_new("lb_frame_compiled")
  if C.lb_frame_compile(cf, cc) ~= 0 then invalid("lb_frame_compile failed") end
  self.cf = cf
  self.cc = cc
  self.head = tonumber(cc.prefix_len + cc.header_len)   -- the payload's offset in a frame
  self.names = names
  self.index = index
  self.nfields = #fields
  self.len_index = len_index
  self.len_name = names[len_index]
  self._overhead = tonumber(C.lb_frame_overhead(cf))
  self.cvals = ffi_new("uint64_t[16]")      -- scratch for encode/decode
  self.scratch = buffer.new()
  local wide = {}
  for i, fd in ipairs(fields) do wide[i] = fd.width == 8 end
  self.wide = wide
  self.store = make_store(names, wide)
  local maxv = {}
  for i, fd in ipairs(fields) do maxv[i] = MAX_BY_WIDTH[fd.width] or false end
  self.maxv = maxv
  self.valid = true
  return self
end

--- Bytes of fixed overhead per frame (prefix + header + checksum).
function Format:overhead()
  if not self.valid then self:validate() end
  return self._overhead
end

--- The encoded size of a frame with an n-byte payload, or nil, TOO_LARGE.
function Format:encoded_len(n)
  if not self.valid then self:validate() end
  if type(n) ~= "number" or n < 0 then argerr("format:encoded_len", "n", "non-negative number expected, got " .. type(n)) end
  local r = tonumber(C.lb_frame_encoded_len(self.cf, n))
  if r < 0 then return nil, M.TOO_LARGE end
  return r
end

--- A values table with every header field set to 0, to pass to decode
--- (filled in place) and encode. 64-bit fields hold uint64_t cdata after
--- a decode; the others hold numbers.
function Format:new_values()
  if not self.valid then self:validate() end
  local v = {}
  for i = 1, self.nfields do v[self.names[i]] = 0 end
  return v
end

-- Copies vals (table by name, or nil) into the C array. Returns true, or
-- nil, INVALID_VALUE wrapped with the field's name.
local function load_values(self, vals, fname, getter)
  local cv, names, maxv, len_index = self.cvals, self.names, self.maxv, self.len_index
  for i = 1, self.nfields do
    local v = 0
    if i ~= len_index then
      if getter then v = getter(vals, i) elseif vals ~= nil then v = vals[names[i]] end
      if v == nil then v = 0 end
      local tv = type(v)
      if tv == "number" then
        local m = maxv[i]
        if v < 0 or v ~= floor(v) or (m and v > m) or v >= 18446744073709551616 then
          return nil, errors.wrap(M.INVALID_VALUE, "field %q = %s", names[i], tostring(v))
        end
      elseif tv == "cdata" and (ffi_istype("uint64_t", v) or ffi_istype("int64_t", v)) then
        local m = maxv[i]
        if (ffi_istype("int64_t", v) and v < 0) or (m and v > m) then
          return nil, errors.wrap(M.INVALID_VALUE, "field %q = %s", names[i], tostring(v))
        end
      elseif tv == "boolean" then
        v = v and 1 or 0
      else
        error(format("bad argument 'vals' to %s: field %q must be an integer, got %s", fname, names[i], tv), 3)
      end
    end
    cv[i - 1] = v
  end
  return true
end
M._load_values = load_values

local function payload_bytes(payload, fname)
  local t = type(payload)
  if t == "string" then return payload, #payload end
  if payload == nil then return nil, 0 end
  if t == "userdata" and payload.ref then return payload:ref() end
  error(format("bad argument 'payload' to %s: string or string.buffer expected, got %s", fname, t), 3)
end

local function encode_with(self, payload, vals, dst, fname, getter)
  if not self.valid then self:validate() end
  local p, n = payload_bytes(payload, fname)
  if dst ~= nil and not (type(dst) == "userdata" and dst.reserve) then
    error(format("bad argument 'dst' to %s: string.buffer or nil expected, got %s", fname, type(dst)), 3)
  end
  if getter == nil and vals ~= nil and type(vals) ~= "table" then
    error(format("bad argument 'vals' to %s: table or nil expected, got %s", fname, type(vals)), 3)
  end
  local ok, err = load_values(self, vals, fname, getter)
  if not ok then return nil, err end
  local need = tonumber(C.lb_frame_encoded_len(self.cf, n))
  if need < 0 then return nil, M.TOO_LARGE end
  local out = dst or self.scratch
  if not dst then out:reset() end
  local ptr = out:reserve(need)
  local r = tonumber(C.lb_frame_encode(self.cf, self.cvals, p, n, ptr, need))
  if r < 0 then
    if r == LB_ETOOLARGE then return nil, M.TOO_LARGE end
    return nil, errors.wrap(M.INVALID_VALUE, "%s", core.strerror(r))
  end
  out:commit(r)
  if dst then return dst end
  return out:get()
end
M._encode_with = encode_with

--- Encodes one frame. payload: string or string.buffer (nil = empty);
--- vals: table by field name (missing fields are 0; the payload-length
--- field is filled in). With dst (a string.buffer) the frame is appended
--- to it and dst returned; otherwise the frame is returned as a string.
--- Fails with nil, TOO_LARGE or nil, INVALID_VALUE.
function Format:encode(payload, vals, dst)
  return encode_with(self, payload, vals, dst, "format:encode")
end

-- Source bytes: string, string.buffer, or (pointer, length).
local function src_bytes(src, n, fname)
  local t = type(src)
  if t == "string" then return src, #src end
  if t == "userdata" and src.ref then return src:ref() end
  if t == "cdata" then
    if type(n) ~= "number" or n < 0 then
      error(format("bad argument 'len' to %s: length expected after a pointer, got %s", fname, type(n)), 3)
    end
    return src, n
  end
  error(format("bad argument 'src' to %s: string, string.buffer or pointer expected, got %s", fname, t), 3)
end
M._src_bytes = src_bytes

--- Low level: decodes the frame at ptr[0..n) into the format's scratch
--- values. Returns used (> 0), payload offset, payload length, or the
--- negative LB_E* code.
function Format:_decode_raw(ptr, n)
  if not self.valid then self:validate() end
  local r = tonumber(C.lb_frame_decode_compiled(self.cc, ptr, n, self.cvals, nil, nil))
  if r < 0 then return r end
  return r, self.head, tonumber(self.cvals[self.len_index - 1])
end

-- Copies decoded values into the table vals: from cv[base ..] (a batch's
-- row), or from the format's scratch values.
function Format:_store(vals, cv, base)
  if not cv then cv, base = self.cvals, 0 end
  self.store(vals, cv, base)
end

--- Decodes the frame at the start of src (a string, a string.buffer, or a
--- pointer and a length: f:decode(ptr, len, vals)). Returns payload (a
--- string), bytes used, vals; or nil, INCOMPLETE | CHECKSUM | TOO_LARGE |
--- BAD_PREFIX. vals (from f:new_values(), or any table) is filled in place;
--- without it a new table is made. src is not consumed: skip `used` bytes
--- (buf:skip(used)) before the next decode.
function Format:decode(src, a, b)
  local n, vals
  if type(src) == "cdata" then n, vals = a, b else vals = a end
  local p, len = src_bytes(src, n, "format:decode")
  if vals ~= nil and type(vals) ~= "table" then
    error("bad argument 'vals' to format:decode: table or nil expected, got " .. type(vals), 2)
  end
  if not self.valid then self:validate() end
  local cv = self.cvals
  local r = tonumber(C.lb_frame_decode_compiled(self.cc, p, len, cv, nil, nil))
  if r < 0 then return nil, code_err[r] or errors.new("wireframe: " .. core.strerror(r)) end
  vals = vals or {}
  self.store(vals, cv, 0)
  -- The payload follows the header; its length is the length field's value.
  local off, plen = self.head, tonumber(cv[self.len_index - 1])
  local payload
  if type(p) == "string" then
    payload = p:sub(off + 1, off + plen)
  else
    payload = ffi_string(ffi.cast("const uint8_t *", p) + off, plen)
  end
  return payload, r, vals
end

--- Offset of the next place a frame may start in src (for resynchronizing
--- after BAD_PREFIX): src[i..] starts with the prefix or a proper beginning
--- of it; #src when none.
function Format:find_prefix(src, n)
  if not self.valid then self:validate() end
  local p, len = src_bytes(src, n, "format:find_prefix")
  return tonumber(C.lb_frame_find_prefix(self.cf, p, len))
end

function Format:__tostring()
  local names = {}
  for i, fd in ipairs(self.fields) do names[i] = fd.type .. " " .. fd.name end
  return "wireframe format {" .. table.concat(names, ", ") .. "}"
end

---------------------------------------------------------------------------
-- Typed formats: the codec bound to a record shape.
---------------------------------------------------------------------------
--
--   local Msg = f:bind{ version = "version", kind = "type", length = "length" }
--   -- (record key = wire field name); f:bind() maps every field to its own name
--   local rec = Msg:new{ version = 1, kind = 0x42 }
--   local wire = Msg:encode("hello", rec)
--   local payload, used = Msg:decode(wire, rec)      -- rec.length == 5
--
-- bind checks the mapping at once: every wire field of the format mapped
-- exactly once, no unknown wire name, so a typo ("vesrion") raises at
-- startup, not on the first frame. Records made by T:new() are strict:
-- reading or writing a key outside the shape raises.

local Typed = {}
Typed.__index = Typed
M.Typed = Typed

-- Checks a record shape { key = "wire field" } against the wire field
-- names (each mapped exactly once; nil maps every field to its own name)
-- and returns wire name -> key. Raises at the caller of `fname`'s caller
-- (level 3). Shared with wireframe.schema.
function M._check_shape(fname, shape, names, index)
  if shape == nil then
    shape = {}
    for _, name in ipairs(names) do shape[name] = name end
  end
  if type(shape) ~= "table" then
    error(("bad argument 'shape' to %s: table { key = \"wire field\" } expected, got %s"):format(fname, type(shape)), 3)
  end
  local to_key = {}
  for k, wire in pairs(shape) do
    if type(k) ~= "string" or type(wire) ~= "string" then
      error(("bad argument 'shape' to %s: string keys and wire field names expected"):format(fname), 3)
    end
    if not index[wire] then
      error(format("bad argument 'shape' to %s: key %q maps to unknown wire field %q", fname, k, wire), 3)
    end
    if to_key[wire] then
      error(format("bad argument 'shape' to %s: wire field %q mapped twice (%q and %q)", fname, wire, to_key[wire], k), 3)
    end
    to_key[wire] = k
  end
  for _, name in ipairs(names) do
    if not to_key[name] then error(format("bad argument 'shape' to %s: wire field %q is not mapped", fname, name), 3) end
  end
  return to_key
end

-- A metatable under which a record raises on any field it does not have.
function M._strict(what)
  return {
    __index = function(_, k) error(format("%s: no field %q", what, tostring(k)), 2) end,
    __newindex = function(_, k) error(format("%s: no field %q", what, tostring(k)), 2) end,
  }
end

--- Binds format f to a record shape { record_key = "wire_name", ... }
--- (nil: every wire field under its own name). Raises on a bad mapping.
function Format:bind(shape)
  self:validate()
  local to_key = M._check_shape("format:bind", shape, self.names, self.index)
  local keys = {}
  for i, name in ipairs(self.names) do keys[i] = to_key[name] end
  local t = setmetatable({ format = self, keys = keys, strict = M._strict("wireframe record"),
    store = make_store(keys, self.wide) }, Typed)
  t.getter = function(rec, i) return rec[keys[i]] end
  return t
end

--- frame.typed(f, shape): the same as f:bind(shape).
function M.typed(f, shape)
  if getmetatable(f) ~= Format then error("bad argument 'f' to frame.typed: format expected, got " .. type(f), 2) end
  return f:bind(shape)
end

--- A strict record with every key of the shape (0 unless init gives it).
function Typed:new(init)
  if init ~= nil and type(init) ~= "table" then
    error("bad argument 'init' to typed:new: table or nil expected, got " .. type(init), 2)
  end
  local rec = {}
  for _, k in pairs(self.keys) do rec[k] = 0 end
  if init then
    for k, v in pairs(init) do
      if rec[k] == nil then error(format("bad argument 'init' to typed:new: no field %q in the shape", tostring(k)), 2) end
      rec[k] = v
    end
  end
  return setmetatable(rec, self.strict)
end

--- Encodes payload with the header taken from rec. As format:encode.
function Typed:encode(payload, rec, dst)
  if type(rec) ~= "table" then error("bad argument 'rec' to typed:encode: table expected, got " .. type(rec), 2) end
  return encode_with(self.format, payload, rec, dst, "typed:encode", self.getter)
end

function Typed:_store(rec, cv, base)
  if not cv then cv, base = self.format.cvals, 0 end
  self.store(rec, cv, base)
end

function Typed:_decode_raw(ptr, n) return self.format:_decode_raw(ptr, n) end
function Typed:find_prefix(src, n) return self.format:find_prefix(src, n) end

--- Decodes into rec (made by T:new() when nil). Returns payload, used, rec
--- or nil, err as format:decode.
function Typed:decode(src, a, b)
  local n, rec
  if type(src) == "cdata" then n, rec = a, b else rec = a end
  local p, len = src_bytes(src, n, "typed:decode")
  if rec ~= nil and type(rec) ~= "table" then
    error("bad argument 'rec' to typed:decode: table or nil expected, got " .. type(rec), 2)
  end
  local f = self.format
  local cv = f.cvals
  local r = tonumber(C.lb_frame_decode_compiled(f.cc, p, len, cv, nil, nil))
  if r < 0 then return nil, code_err[r] or errors.new("wireframe: " .. core.strerror(r)) end
  rec = rec or self:new()
  self.store(rec, cv, 0)
  local off, plen = f.head, tonumber(cv[f.len_index - 1])
  local payload
  if type(p) == "string" then payload = p:sub(off + 1, off + plen)
  else payload = ffi_string(ffi.cast("const uint8_t *", p) + off, plen) end
  return payload, r, rec
end

function Typed:new_values() return self:new() end


---------------------------------------------------------------------------
-- Batches: every complete frame in a buffer with one C call
---------------------------------------------------------------------------
--
--   local b = f:new_batch(64)                  -- up to 64 frames per call
--   local count, used, stop = b:decode(buf)    -- string, string.buffer or ptr, len
--   for i = 1, count do
--     local ptr, len = b:payload_ptr(i)        -- a view into buf: no copy
--     local kind = b:value(i, "type")
--   end
--   buf:skip(used)
--
-- decode gives the same frames, in order, as calling f:decode again and
-- again after skipping each frame, and stops where that loop would:
-- stop is nil when max_frames frames were decoded (call again after
-- skipping used bytes: there may be more), INCOMPLETE when the rest of src
-- (perhaps nothing) is the start of a frame, or BAD_PREFIX | CHECKSUM |
-- TOO_LARGE for the frame at offset used. Nothing is allocated per frame:
-- the spans and header values live in the batch's C arrays, and are valid
-- until its next decode; payload views are valid while src is unchanged.

local Batch = {}
Batch.__index = Batch
M.Batch = Batch

local MAX_BATCH = 65536

local function new_batch(fmt, store_to, max, fname)
  if max == nil then max = 64 end
  if type(max) ~= "number" or max < 1 or max > MAX_BATCH or max ~= floor(max) then
    error(format("bad argument 'max_frames' to %s: integer in 1..%d expected, got %s", fname, MAX_BATCH,
      tostring(max)), 3)
  end
  if not fmt.valid then fmt:validate() end
  return setmetatable({
    format = fmt, store_to = store_to, max = max, nfields = fmt.nfields, count = 0,
    spans = ffi_new("lb_frame_span[?]", max), cvals = ffi_new("uint64_t[?]", max * fmt.nfields),
    cnt = ffi_new("size_t[1]"), stop = ffi_new("int[1]"), src = false, base = false,
  }, Batch)
end

--- A batch decoder for this format holding up to max_frames (default 64)
--- frames per decode.
function Format:new_batch(max_frames)
  return new_batch(self, self, max_frames, "format:new_batch")
end

--- The same for a typed format: b:values(i, rec) fills records by key.
function Typed:new_batch(max_frames)
  return new_batch(self.format, self, max_frames, "typed:new_batch")
end

--- Decodes the complete frames at the start of src (a string, a
--- string.buffer, or a pointer and a length). Returns count, used, stop
--- (see above).
function Batch:decode(src, n)
  local p, len = src_bytes(src, n, "batch:decode")
  local f = self.format
  local used = tonumber(C.lb_frame_decode_batch_compiled(f.cc, p, len, self.max, self.spans, self.cvals, self.cnt,
    self.stop))
  local count = tonumber(self.cnt[0])
  self.count = count
  self.src = src                    -- keeps a string alive while views exist
  self.base = ffi.cast("const uint8_t *", p)
  local stop = self.stop[0]
  if stop == 0 then return count, used, nil end
  return count, used, code_err[stop] or errors.new("wireframe: " .. core.strerror(stop))
end

local function frame_index(self, i, fname)
  if type(i) ~= "number" or i < 1 or i > self.count or i ~= floor(i) then
    error(format("bad argument 'i' to %s: frame index in 1..%d expected, got %s", fname, self.count, tostring(i)), 3)
  end
  return i - 1
end

--- The payload of frame i (1..count) as a string (a copy).
function Batch:payload(i)
  local sp = self.spans[frame_index(self, i, "batch:payload")]
  return ffi_string(self.base + sp.payload_off, sp.payload_len)
end

--- The payload of frame i as a pointer into src and a length (no copy).
function Batch:payload_ptr(i)
  local sp = self.spans[frame_index(self, i, "batch:payload_ptr")]
  return self.base + sp.payload_off, tonumber(sp.payload_len)
end

--- Where frame i lies in src (0-based offsets): payload_off, payload_len,
--- frame start, frame length.
function Batch:span(i)
  local sp = self.spans[frame_index(self, i, "batch:span")]
  return tonumber(sp.payload_off), tonumber(sp.payload_len), tonumber(sp.start), tonumber(sp.len)
end

--- The header field `name` of frame i: a number (uint64_t cdata for 64-bit
--- fields).
function Batch:value(i, name)
  local k = frame_index(self, i, "batch:value")
  local f = self.format
  local j = f.index[name]
  if not j then
    error(format("bad argument 'name' to batch:value: no header field %s", type(name) == "string"
      and format("%q", name) or type(name)), 2)
  end
  local v = self.cvals[k * self.nfields + j - 1]
  if f.wide[j] then return v + 0ULL end
  return tonumber(v)
end

--- Fills vals (a table; a new one when nil) with frame i's header values,
--- as format:decode does (by field name; by record key for a typed
--- format's batch). Returns vals.
function Batch:values(i, vals)
  local k = frame_index(self, i, "batch:values")
  if vals ~= nil and type(vals) ~= "table" then
    error("bad argument 'vals' to batch:values: table or nil expected, got " .. type(vals), 2)
  end
  local to = self.store_to
  vals = vals or to:new_values()
  to:_store(vals, self.cvals, k * self.nfields)
  return vals
end

return M
