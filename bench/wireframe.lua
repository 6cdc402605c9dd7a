-- Decode throughput of lowbit.wireframe through the Lua API (f:decode, the
-- payload copied out as a Lua string, header values stored into a reused
-- table) for CRC-32 framed payloads of 64 B, 1 KiB and 64 KiB, next to the
-- raw CRC-32 of the same covered bytes (checksum.crc32_ieee():sum) and a
-- stream reader over an in-memory pipe.
--   build/bin/lowbit bench/wireframe.lua [seconds per case, default 0.5]
local lowbit = require "lowbit"
local net = require "lowbit.net"
local buffer = require "string.buffer"
local wireframe = require "lowbit.wireframe"
local frame, checksum, stream = wireframe.frame, wireframe.checksum, wireframe.stream

local SECONDS = tonumber(arg and arg[1]) or 0.5

local f = frame.format{
  prefix = "\xAA\x55",
  header = { frame.uint8("version"), frame.uint16_be("type"), frame.payload_length32_le("length") },
  checksum = checksum.crc32_ieee(),
  max_payload = 64 * 1024,
}
local crc = checksum.crc32_ieee()

-- Runs fn(n) with growing n until it takes SECONDS; returns ops/s.
local function rate(fn)
  fn(100)
  local n = 100
  while true do
    collectgarbage()
    local t0 = lowbit.now()
    fn(n)
    local dt = lowbit.now() - t0
    if dt >= SECONDS then return n / dt end
    n = n * (dt < SECONDS / 8 and 8 or 2)
  end
end

print(("%-10s %14s %10s %16s %10s %9s"):format("payload", "decode fr/s", "GB/s", "raw crc32 /s", "GB/s", "decode/raw"))
for _, size in ipairs{ 64, 1024, 64 * 1024 } do
  local payload = ("x"):rep(size)
  local wire = assert(f:encode(payload, { version = 1, type = 7 }))
  local covered = wire:sub(3, #wire - 4)
  local vals = f:new_values()
  local dec = rate(function(n)
    local total = 0
    for _ = 1, n do
      local p = f:decode(wire, vals)
      total = total + #p
    end
    assert(total == n * size)
  end)
  local raw = rate(function(n)
    local x = 0
    for _ = 1, n do x = x + crc:sum(covered) end
    assert(x > 0)
  end)
  print(("%-10s %14.0f %10.2f %16.0f %10.2f %8.0f%%"):format(
    size .. " B", dec, dec * #wire / 1e9, raw, raw * #covered / 1e9, dec / raw * 100))
end

-- The stream reader: frames written to an in-memory pipe in 64 KiB chunks.
-- (The host runs this script as a task, so the reader may block.)
do
  for _, size in ipairs{ 64, 1024 } do
    local b = buffer.new()
    local count = math.floor(4 * 1024 * 1024 / size)
    for _ = 1, count do f:encode(("y"):rep(size), { type = 1 }, b) end
    local data = b:tostring()
    local a, z = net.pipe()
    lowbit.go(function()
      for i = 1, #data, 65536 do a:write(data:sub(i, i + 65535)) end
      a:close_write()
    end)
    local sr = stream.new_reader(z, f)
    local t0 = lowbit.now()
    local got = 0
    while sr:next() do got = got + 1 end
    local dt = lowbit.now() - t0
    assert(got == count)
    print(("stream reader over net.pipe, %5d B payloads: %10.0f frames/s %6.2f GB/s"):format(
      size, got / dt, #data / dt / 1e9))
  end
end
