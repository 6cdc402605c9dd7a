-- lowbit.wireframe.checksum: the checksums a frame format may carry, each
-- usable on its own.
--
--   local checksum = require "lowbit.wireframe.checksum"
--   local ck = checksum.crc32_ieee()
--   ck:sum("123456789")                  --> 0xCBF43926 (a number)
--   local h = ck:new()                   -- incremental
--   h:update("1234"); h:update("56789")
--   h:sum()                              --> 0xCBF43926
--   ck:update(ck:update(ck.init, "1234"), "56789")   -- the same, functional
--
-- Kinds (the C core's table, lb_frame.h): crc32_ieee, crc32c (Castagnoli),
-- crc64_iso, crc64_ecma, adler32, crc16_modbus, crc16_ccitt (FALSE, a.k.a.
-- IBM-3740), crc16_kermit, crc16_xmodem. 16- and 32-bit sums are Lua
-- numbers; 64-bit sums are uint64_t cdata (compare with 0x...ULL).
-- Input is a string, a string.buffer, or a pointer and a length.
local core = require "lowbit.core"
local ffi = core.ffi
local C = core.C

local M = {}

local type, error, setmetatable, getmetatable = type, error, setmetatable, getmetatable

-- Returns pointer, length for a string / string.buffer / (cdata, n).
local function bytes(s, n, fname)
  local t = type(s)
  if t == "string" then return s, #s end
  if t == "cdata" then
    if type(n) ~= "number" or n < 0 then
      error("bad argument 'n' to " .. fname .. ": length expected with a pointer, got " .. type(n), 3)
    end
    return s, n
  end
  if t == "userdata" and s.ref then return s:ref() end
  error("bad argument 's' to " .. fname .. ": string, string.buffer or pointer expected, got " .. t, 3)
end
M._bytes = bytes

local Checksum = {}
Checksum.__index = Checksum
M.Checksum = Checksum

--- update(prev, s[, n]): the checksum of everything fed so far (prev, as
--- returned by the previous call or ck.init) followed by s.
function Checksum:update(prev, s, n)
  local p, len = bytes(s, n, "checksum:update")
  return self._update(prev, p, len)
end

--- sum(s[, n]): the one-shot checksum of s.
function Checksum:sum(s, n)
  local p, len = bytes(s, n, "checksum:sum")
  return self._update(self.init, p, len)
end

--- The checksum of s as lower-case hex, width*2 digits.
function Checksum:hex(s, n)
  local v = self:sum(s, n)
  return ("%0" .. (self.width * 2) .. "x"):format(v)
end

function Checksum:__tostring() return "checksum " .. self.name end

local State = {}
State.__index = State

--- An incremental state: st:update(s[, n]) (returns st), st:sum(), st:reset().
function Checksum:new()
  return setmetatable({ ck = self, value = self.init }, State)
end

function State:update(s, n)
  local p, len = bytes(s, n, "state:update")
  self.value = self.ck._update(self.value, p, len)
  return self
end

function State:sum() return self.value end

function State:reset()
  self.value = self.ck.init
  return self
end

local function kind(name, k, width, init, update)
  local ck = setmetatable({ name = name, kind = k, width = width, init = init, _update = update }, Checksum)
  M[name] = function() return ck end
  return ck
end

-- 16/32-bit results come back from the FFI as numbers; 64-bit as uint64_t.
kind("crc32_ieee", C.LB_FRAME_CK_CRC32, 4, 0, function(c, p, n) return C.lb_crc32_update(c, p, n) end)
kind("crc32c", C.LB_FRAME_CK_CRC32C, 4, 0, function(c, p, n) return C.lb_crc32c_update(c, p, n) end)
kind("crc64_iso", C.LB_FRAME_CK_CRC64_ISO, 8, ffi.new("uint64_t", 0),
  function(c, p, n) return C.lb_crc64_iso_update(c, p, n) end)
kind("crc64_ecma", C.LB_FRAME_CK_CRC64_ECMA, 8, ffi.new("uint64_t", 0),
  function(c, p, n) return C.lb_crc64_ecma_update(c, p, n) end)
kind("adler32", C.LB_FRAME_CK_ADLER32, 4, 1, function(c, p, n) return C.lb_adler32_update(c, p, n) end)
kind("crc16_modbus", C.LB_FRAME_CK_CRC16_MODBUS, 2, 0xFFFF,
  function(c, p, n) return C.lb_crc16_modbus_update(c, p, n) end)
kind("crc16_ccitt", C.LB_FRAME_CK_CRC16_CCITT_FALSE, 2, 0xFFFF,
  function(c, p, n) return C.lb_crc16_ccitt_false_update(c, p, n) end)
kind("crc16_kermit", C.LB_FRAME_CK_CRC16_KERMIT, 2, 0, function(c, p, n) return C.lb_crc16_kermit_update(c, p, n) end)
kind("crc16_xmodem", C.LB_FRAME_CK_CRC16_XMODEM, 2, 0, function(c, p, n) return C.lb_crc16_xmodem_update(c, p, n) end)

-- Aliases under the CRC catalogue's names.
M.crc16_ccitt_false = M.crc16_ccitt
M.crc16_ibm_3740 = M.crc16_ccitt

--- 1 when CRC-32C runs on the CPU's crc32 instruction.
function M.crc32c_hardware() return C.lb_crc32c_hardware() == 1 end

--- True for checksum objects.
function M.is_checksum(v) return getmetatable(v) == Checksum end

return M
