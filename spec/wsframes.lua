-- Shared by the websockets specs: client frames built by hand and a conn
-- that serves canned bytes.
local buffer = require "string.buffer"
local errors = require "lowbit.errors"
local char, byte, rep = string.char, string.byte, string.rep
local BINARY = 2

local M = {}

-- Client-side frame (masked with a fixed key unless key == false).
function M.frame(b0, payload, key, len_override)
  payload = payload or ""
  local n = len_override or #payload
  local hdr
  local mbit = key == false and 0 or 0x80
  if n < 126 then hdr = char(b0, mbit + n)
  elseif n < 65536 then hdr = char(b0, mbit + 126, bit.rshift(n, 8), bit.band(n, 255))
  else
    hdr = char(b0, mbit + 127)
    for i = 7, 0, -1 do hdr = hdr .. char(bit.band(math.floor(n / 2 ^ (8 * i)), 255)) end
  end
  if key == false then return hdr .. payload end
  key = key or "\1\2\3\4"
  local out = {}
  for i = 1, #payload do
    out[i] = char(bit.bxor(byte(payload, i), byte(key, (i - 1) % 4 + 1)))
  end
  return hdr .. key .. table.concat(out)
end

function M.canned_conn(data, sink)
  local rb = buffer.new()
  rb:put(data)
  return {
    read_buffer = function() return rb end,
    fill = function() return nil, errors.EOF end,
    read = function() return nil, errors.EOF end,
    write = function(_, s) if sink then sink[#sink + 1] = s end return #s end,
    close = function() return true end, close_write = function() return true end,
    set_deadline = function() return true end, set_read_deadline = function() return true end,
    set_write_deadline = function() return true end,
    rb = rb,
  }
end

--- n client frames of `size` bytes each (opcode op, BINARY by default).
function M.client_frames(n, size, op)
  local one = M.frame(0x80 + (op or BINARY), rep("m", size))
  return rep(one, n)
end

return M
