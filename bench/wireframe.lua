-- Decode throughput of lowbit.wireframe through the Lua API for CRC-32
-- framed payloads of 64 B, 1 KiB and 64 KiB, each next to its anchor: the
-- raw CRC-32 of the same covered bytes (checksum.crc32_ieee():sum, one call
-- per frame), the floor of this work. "vs raw" = decode rate / raw rate.
--   frame:decode   one frame per call: payload copied out as a Lua string
--                  (compared with the expected one, so it is really made),
--                  header values stored into a reused table;
--   batch:decode   f:new_batch(): every complete frame of a buffer in one
--                  C call, each frame's payload taken as a view
--                  (b:payload_ptr) and a header value read (b:value).
-- Then the stream reader over an in-memory pipe. Each figure is the best of
-- ROUNDS runs, the cases interleaved (the machine is shared).
--   build/bin/lowbit bench/wireframe.lua [seconds per case, default 0.5]
local lowbit = require "lowbit"
local net = require "lowbit.net"
local buffer = require "string.buffer"
local wireframe = require "lowbit.wireframe"
local frame, checksum, stream = wireframe.frame, wireframe.checksum, wireframe.stream
local R = dofile("bench/report.lua").suite("wireframe")

local SECONDS = tonumber(arg and arg[1]) or 0.5
local ROUNDS = 3

local f = frame.format{
  prefix = "\xAA\x55",
  header = { frame.uint8("version"), frame.uint16_be("type"), frame.payload_length32_le("length") },
  checksum = checksum.crc32_ieee(),
  max_payload = 64 * 1024,
}
local crc = checksum.crc32_ieee()

-- Runs fn(n) (n operations, or as many as it returns) with growing n until
-- it takes SECONDS / ROUNDS; returns ops/s.
local function rate(fn)
  fn(100)
  local n, limit = 100, SECONDS / ROUNDS
  while true do
    collectgarbage()
    local t0 = lowbit.now()
    local done = fn(n) or n
    local dt = lowbit.now() - t0
    if dt >= limit then return done / dt end
    n = n * (dt < limit / 8 and 8 or 2)
  end
end

print(("%-9s %-14s %14s %8s %16s %8s %7s"):format("payload", "api", "frames/s", "GB/s", "raw crc32 /s", "GB/s", "vs raw"))
for _, size in ipairs{ 64, 1024, 64 * 1024 } do
  local payload = ("x"):rep(size)
  local wire = assert(f:encode(payload, { version = 1, type = 7 }))
  local covered = wire:sub(3, #wire - 4)
  local vals = f:new_values()
  -- The batch source: the same frame back to back (about 1 MiB at most).
  local per = math.max(4, math.min(256, math.floor(1024 * 1024 / #wire)))
  local many = buffer.new()
  for _ = 1, per do many:put(wire) end
  many = many:tostring()
  local b = f:new_batch(per)

  local cases = {
    function(n)   -- raw CRC-32 of the covered bytes
      local x = 0
      for _ = 1, n do x = x + crc:sum(covered) end
      assert(x > 0)
    end,
    function(n)   -- frame:decode
      local total = 0
      for _ = 1, n do
        local p = f:decode(wire, vals)
        -- p is compared with the payload: the string is really made (with
        -- only #p used, the JIT may drop it and return just the length).
        if p ~= payload then error("bad payload") end
        total = total + #p
      end
      assert(total == n * size)
    end,
    function(n)   -- batch:decode, n rounded up to whole buffers
      local total, types, rounds = 0, 0, math.ceil(n / per)
      for _ = 1, rounds do
        local count = b:decode(many)
        for i = 1, count do
          local _, len = b:payload_ptr(i)
          total = total + len
          types = types + b:value(i, "type")
        end
      end
      assert(total == rounds * per * size and types == rounds * per * 7)
      return rounds * per
    end,
  }
  local best = { 0, 0, 0 }
  for _ = 1, ROUNDS do
    for i, fn in ipairs(cases) do
      best[i] = math.max(best[i], rate(fn))
    end
  end
  local raw = best[1]
  for i, name in ipairs{ "frame:decode", "batch:decode" } do
    local dec = best[i + 1]
    print(("%-9s %-14s %14.0f %8.2f %16.0f %8.2f %6.0f%%"):format(size .. " B", name, dec, dec * #wire / 1e9,
      raw, raw * #covered / 1e9, dec / raw * 100))
    -- The anchor is the floor of this work: one raw CRC-32 call per frame body.
    local case = ("%s, %d B payload"):format(name, size)
    R:line{ case = case, metric = "frames_per_s", value = dec, unit = "frames/s", better = "higher" }
    R:line{ case = case, metric = "frames_per_s", impl = "raw crc32", value = raw, unit = "frames/s", better = "higher" }
  end
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
    R:line{ case = ("stream reader over net.pipe, %d B payload"):format(size), metric = "frames_per_s", value = got / dt,
      unit = "frames/s", better = "higher" }
  end
end
