-- lowbit.webassets.compress: gzip (zlib) and brotli (libbrotlienc) through
-- the FFI, whole-buffer, for assets compressed once and kept in memory.
--
--   compress.gzip(s)   -> string | nil, err   (RFC 1952, level 9)
--   compress.brotli(s) -> string | nil, err   (quality 11, 9 past 256 KiB; text mode)
--   compress.sha256(s) -> 32 raw bytes (libcrypto), used for ETags and fingerprints
--
-- Each library is loaded on first use; a missing one makes its function
-- return nil, err (webassets then serves without that encoding).
local ffi = require "ffi"
local errors = require "lowbit.errors"

local M = {}

local ffi_new, ffi_string, tonumber, pcall = ffi.new, ffi.string, tonumber, pcall

pcall(ffi.cdef, [[
typedef struct lb_wa_z_stream {
  const unsigned char *next_in; unsigned avail_in; unsigned long total_in;
  unsigned char *next_out; unsigned avail_out; unsigned long total_out;
  const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
  int data_type; unsigned long adler; unsigned long reserved;
} lb_wa_z_stream;
int deflateInit2_(lb_wa_z_stream *strm, int level, int method, int windowBits, int memLevel,
                  int strategy, const char *version, int stream_size);
int deflate(lb_wa_z_stream *strm, int flush);
int deflateEnd(lb_wa_z_stream *strm);
unsigned long deflateBound(lb_wa_z_stream *strm, unsigned long sourceLen);
const char *zlibVersion(void);
int BrotliEncoderCompress(int quality, int lgwin, int mode, size_t input_size,
                          const uint8_t *input_buffer, size_t *encoded_size, uint8_t *encoded_buffer);
size_t BrotliEncoderMaxCompressedSize(size_t input_size);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
]])

local function load(names)
  for i = 1, #names do
    local ok, lib = pcall(ffi.load, names[i])
    if ok then return lib end
  end
  return false
end

local zlib, brotli, crypto
local function lib_z() if zlib == nil then zlib = load({ "z", "libz.so.1" }) end return zlib end
local function lib_br() if brotli == nil then brotli = load({ "brotlienc", "libbrotlienc.so.1" }) end return brotli end
local function lib_crypto() if crypto == nil then crypto = load({ "crypto", "libcrypto.so.3" }) end return crypto end

M.UNAVAILABLE = errors.new("webassets: compression library not available")
M.FAILED = errors.new("webassets: compression failed")

local Z_FINISH, Z_STREAM_END, Z_DEFLATED = 4, 1, 8

function M.gzip(s)
  if type(s) ~= "string" then error("bad argument 's' to compress.gzip: string expected, got " .. type(s), 2) end
  local z = lib_z()
  if not z then return nil, M.UNAVAILABLE end
  local strm = ffi_new("lb_wa_z_stream")
  -- windowBits 15 + 16: a gzip header and trailer around the deflate data.
  if z.deflateInit2_(strm, 9, Z_DEFLATED, 31, 9, 0, z.zlibVersion(), ffi.sizeof(strm)) ~= 0 then
    return nil, M.FAILED
  end
  local cap = tonumber(z.deflateBound(strm, #s)) + 32
  local out = ffi_new("unsigned char[?]", cap)
  strm.next_in, strm.avail_in = s, #s
  strm.next_out, strm.avail_out = out, cap
  local rc = z.deflate(strm, Z_FINISH)
  local n = tonumber(strm.total_out)
  z.deflateEnd(strm)
  if rc ~= Z_STREAM_END then return nil, M.FAILED end
  return ffi_string(out, n)
end

local BROTLI_MODE_TEXT = 1

function M.brotli(s)
  if type(s) ~= "string" then error("bad argument 's' to compress.brotli: string expected, got " .. type(s), 2) end
  local b = lib_br()
  if not b then return nil, M.UNAVAILABLE end
  local cap = tonumber(b.BrotliEncoderMaxCompressedSize(#s))
  if cap == 0 then cap = #s + 1024 end
  local out = ffi_new("uint8_t[?]", cap)
  local n = ffi_new("size_t[1]", cap)
  -- Quality 11 runs at about 1 MB/s: past 256 KiB, 9 (tens of MB/s) keeps
  -- a first request from holding the loop for long.
  local q = #s <= 256 * 1024 and 11 or 9
  if b.BrotliEncoderCompress(q, 22, BROTLI_MODE_TEXT, #s, s, n, out) == 0 then return nil, M.FAILED end
  return ffi_string(out, n[0])
end

local md = ffi_new("unsigned char[32]")

-- FNV-1a (64-bit, as two 32-bit halves) when libcrypto cannot be loaded:
-- still a content hash, only weaker.
local bit = require "bit"
local function fnv(s)
  local h1, h2 = 0x811c9dc5, 0x050c5d1f
  for i = 1, #s do
    local c = s:byte(i)
    h1 = bit.tobit(bit.bxor(h1, c) * 16777619)
    h2 = bit.tobit(bit.bxor(h2, c + i) * 16777619)
  end
  return ("%08x%08x"):format(h1 % 2^32, h2 % 2^32)
end

--- A hex content hash of s (SHA-256 when libcrypto loads; 64 digits), or
--- 16 digits of FNV-1a otherwise.
function M.hash_hex(s)
  local c = lib_crypto()
  if c then
    local ok = pcall(c.SHA256, s, #s, md)
    if ok then
      local raw = ffi_string(md, 32)
      return (raw:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end))
    end
  end
  return fnv(s)
end

return M
