-- lowbit.wireframe.stream: frames, one at a time, from any conn.
--
--   local sr = stream.new_reader(conn, f)          -- f: a format or f:bind(...)
--   while true do
--     local payload, vals = sr:next()
--     if not payload then
--       if vals == errors.EOF then break end      -- clean end at a frame boundary
--       return nil, vals                          -- UNEXPECTED_EOF, CHECKSUM, TOO_LARGE, I/O
--     end
--     handle(payload, vals.type)
--   end
--
-- conn is anything with read(max) (lowbit.net TCP conns, net.pipe(), TLS).
-- Bytes arrive in any split; next() buffers, decodes in place from its
-- string.buffer, and returns one payload (a string) and the values table,
-- which is reused: it is valid until the next call (copy what must live
-- longer).
--
-- Errors. errors.EOF when the conn ends with no bytes pending;
-- errors.UNEXPECTED_EOF when it ends inside a frame; the conn's own read
-- error otherwise. Framing errors depend on opts.resync:
--   resync = true (default): bytes that cannot start a frame (a bad prefix)
--     are skipped up to the next place the prefix occurs
--     (lb_frame_find_prefix) and counted in sr.skipped; a CHECKSUM or
--     TOO_LARGE frame is reported (nil, frame.CHECKSUM | frame.TOO_LARGE)
--     and the reader moves one byte past its start, so the next call
--     resynchronizes on the following prefix. (Without a prefix there is
--     nothing to resynchronize on: the next call decodes from the next byte.)
--   resync = false: the first BAD_PREFIX, CHECKSUM or TOO_LARGE is final:
--     it is returned by this and every later call.
local core = require "lowbit.core"
local errors = require "lowbit.errors"
local frame = require "lowbit.wireframe.frame"
local buffer = require "string.buffer"

local ffi = core.ffi
local C = core.C

local M = {}

local type, error, tonumber, setmetatable, getmetatable = type, error, tonumber, setmetatable, getmetatable
local ffi_string = ffi.string
local EOF, UNEXPECTED_EOF = errors.EOF, errors.UNEXPECTED_EOF

local LB_EAGAIN, LB_EPREFIX = C.LB_EAGAIN, C.LB_EPREFIX
local code_err = frame._code_err

--- Bytes asked of conn:read per call.
M.READ_SIZE = 64 * 1024
--- Frames decoded per C call (lb_frame_decode_batch).
M.BATCH = 64

local Reader = {}
Reader.__index = Reader
M.Reader = Reader

--- A reader of frames of format f (a frame.format or a typed format from
--- f:bind) from conn. opts: resync (default true), read_size (default
--- stream.READ_SIZE).
function M.new_reader(conn, f, opts)
  if type(conn) ~= "table" and type(conn) ~= "userdata" or type(conn.read) ~= "function" then
    error("bad argument 'conn' to stream.new_reader: conn with read(max) expected, got " .. type(conn), 2)
  end
  local mt = getmetatable(f)
  if mt ~= frame.Format and mt ~= frame.Typed then
    error("bad argument 'f' to stream.new_reader: frame format expected, got " .. type(f), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument 'opts' to stream.new_reader: table or nil expected, got " .. type(opts), 2)
  end
  opts = opts or {}
  local rs = opts.read_size or M.READ_SIZE
  if type(rs) ~= "number" or rs < 1 then
    error("bad argument 'opts.read_size' to stream.new_reader: positive number expected", 2)
  end
  local fmt = mt == frame.Typed and f.format or f
  fmt:validate()
  return setmetatable({
    conn = conn, f = f, fmt = fmt, vals = f:new_values(), buf = buffer.new(),
    resync = opts.resync ~= false, read_size = rs, skipped = 0, err = nil,
    -- Frames are decoded M.BATCH at a time (one C call) and handed out
    -- one per next(); the buffer is skipped past them once they are all out.
    batch = fmt:new_batch(M.BATCH), bi = 0, bn = 0, bused = 0,
  }, Reader)
end

-- Hands out frame bi of the current batch.
local function serve(self, b, bi)
  local payload = ffi_string(b:payload_ptr(bi))
  self.f:_store(self.vals, b.cvals, (bi - 1) * b.nfields)
  self.bi = bi
  if bi == self.bn then
    self.buf:skip(self.bused)
    self.bn, self.bi, self.bused = 0, 0, 0
  end
  return payload, self.vals
end

--- The next frame: payload, vals; or nil, err (see the module comment).
function Reader:next()
  local err = self.err
  if err then return nil, err end
  local bi = self.bi
  if bi < self.bn then return serve(self, self.batch, bi + 1) end
  local buf, fmt, conn, b = self.buf, self.fmt, self.conn, self.batch
  while true do
    local ptr, n = buf:ref()
    if n > 0 then
      local count, used = b:decode(ptr, n)
      if count > 0 then
        self.bn, self.bused = count, used
        return serve(self, b, 1)
      end
      -- No frame at the start of buf: the batch stopped there with the
      -- code lb_frame_decode would give.
      local r = b.stop[0]
      if r ~= LB_EAGAIN then
        local e = code_err[r] or errors.new("wireframe: " .. core.strerror(r))
        if not self.resync then self.err = e; return nil, e end
        if r == LB_EPREFIX then
          local skip = tonumber(C.lb_frame_find_prefix(fmt.cf, ptr, n))
          self.skipped = self.skipped + skip
          buf:skip(skip)
        else
          local skip = 1 + tonumber(C.lb_frame_find_prefix(fmt.cf, ptr + 1, n - 1))
          self.skipped = self.skipped + skip
          buf:skip(skip)
          return nil, e
        end
        goto continue
      end
    end
    do
      local data, rerr = conn:read(self.read_size)
      if not data then
        if rerr == EOF then
          -- the end is final; other read errors (a deadline) may pass
          rerr = #buf == 0 and EOF or UNEXPECTED_EOF
          self.err = rerr
        end
        return nil, rerr
      end
      buf:put(data)
    end
    ::continue::
  end
end

--- Bytes received and not yet returned as frames.
function Reader:buffered()
  local n = #self.buf
  if self.bi > 0 then
    local _, _, start, len = self.batch:span(self.bi)
    n = n - (start + len)
  end
  return n
end

return M
