-- wireframe: a framed TCP echo, then a Modbus RTU style frame.
--
--   build/bin/lowbit examples/wireframe.lua
--
-- The server reads frames with a stream reader and echoes each payload back
-- upper-cased in a frame of the same format; the client sends three
-- frames in one write (the reader splits them) and reads the replies.
-- Finishes on its own.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local errors = require "lowbit.errors"
local buffer = require "string.buffer"
local wireframe = require "lowbit.wireframe"
local frame, checksum, stream, schema = wireframe.frame, wireframe.checksum, wireframe.stream, wireframe.schema

local f = frame.format{
  prefix = "\xAA\x55",
  header = { frame.uint8("version"), frame.uint8("type"), frame.payload_length_le("length") },
  checksum = checksum.crc32_ieee(),
  max_payload = 4096,
}

return function(ctx)
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function()
    local c = ln:accept()
    if not c then return end
    local sr = stream.new_reader(c, f)
    local out = buffer.new()
    while true do
      local payload, vals = sr:next()
      if not payload then
        if vals ~= errors.EOF then print("server: " .. tostring(vals)) end
        break
      end
      out:reset()
      f:encode(payload:upper(), { version = vals.version, type = vals.type + 1 }, out)
      c:write(out:tostring())
    end
    c:close()
  end)

  local c = assert(net.dial(ctx, ln:addr()))
  local batch = buffer.new()
  for i, word in ipairs{ "hello", "framed", "world" } do
    f:encode(word, { version = 1, type = i * 2 }, batch)
  end
  c:write(batch:tostring())
  c:close_write()
  local sr = stream.new_reader(c, f)
  while true do
    local payload, vals = sr:next()
    if not payload then assert(vals == errors.EOF, tostring(vals)); break end
    print(("echo: type %d, %d bytes: %s"):format(vals.type, vals.length, payload))
  end
  c:close()
  ln:close()

  -- A Modbus RTU style frame: no prefix, CRC-16/MODBUS sent low byte first;
  -- the payload described with a schema.
  local rtu = frame.format{
    header = { frame.uint8("address"), frame.uint8("function"), frame.payload_length8("count") },
    checksum = checksum.crc16_modbus(), checksum_order = "le",
  }
  local regs = schema.new(schema.uint16_be("start"), schema.uint16_be("quantity"))
  local wire = assert(rtu:encode(regs:encode{ start = 0, quantity = 10 }, { address = 1, ["function"] = 3 }))
  print("modbus frame: " .. wire:gsub(".", function(ch) return ("%02X "):format(ch:byte()) end))
  local vals = rtu:new_values()
  local payload = assert(rtu:decode(wire, vals))
  local req = regs:decode(payload)
  print(("modbus decoded: address %d, function %d, start %d, quantity %d"):format(
    vals.address, vals["function"], req.start, req.quantity))
  local bad = wire:sub(1, -2) .. "\0"
  print("modbus corrupted: " .. tostring(select(2, rtu:decode(bad))))
end
