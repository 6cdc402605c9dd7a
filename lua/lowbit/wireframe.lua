-- lowbit.wireframe: a toolkit for binary protocols. Declare a frame format
-- (prefix, header fields, checksum, max payload), then encode, decode and
-- read frames from a stream; describe payloads with schemas.
--
--   local wireframe = require "lowbit.wireframe"
--   local frame, checksum = wireframe.frame, wireframe.checksum
--   local f = frame.format{ prefix = "\xAA\x55",
--     header = { frame.uint8("type"), frame.payload_length_le("length") },
--     checksum = checksum.crc32_ieee(), max_payload = 64 * 1024 }
--   local sr = wireframe.stream.new_reader(conn, f)
--   local payload, vals = sr:next()
--
-- Submodules: lowbit.wireframe.frame, .schema, .stream, .checksum. The
-- decode errors are here too: wireframe.INCOMPLETE, CHECKSUM, TOO_LARGE,
-- BAD_PREFIX (the same values as frame.*).
local frame = require "lowbit.wireframe.frame"

local M = {
  frame = frame,
  schema = require "lowbit.wireframe.schema",
  stream = require "lowbit.wireframe.stream",
  checksum = require "lowbit.wireframe.checksum",
  INCOMPLETE = frame.INCOMPLETE,
  CHECKSUM = frame.CHECKSUM,
  TOO_LARGE = frame.TOO_LARGE,
  BAD_PREFIX = frame.BAD_PREFIX,
  INVALID_VALUE = frame.INVALID_VALUE,
}

return M
