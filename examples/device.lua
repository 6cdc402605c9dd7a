-- A device: answers UDP discovery (beacon) and speaks a framed binary
-- protocol over TCP (wireframe).
--
--   build/bin/lowbit examples/device.lua 127.0.0.1:9750          (runs until Ctrl-C)
--   build/bin/lowbit examples/device.lua 127.0.0.1:9750 --demo   (finds itself, queries, exits)
--
-- Discovery: a probe "LOWBIT-DISCOVER" on UDP ADDR is answered with
-- "device <name> tcp <ip:port>". Protocol on TCP ADDR: frames
-- AA 55 | version u8 | command u8 | length u16le | payload | CRC-32 (BE).
-- Commands: 1 = read sensor (reply: the reading as text), 2 = echo,
-- anything else: an error frame (command 255).
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local net = require "lowbit.net"
local beacon = require "lowbit.beacon"
local buffer = require "string.buffer"
local wireframe = require "lowbit.wireframe"
local frame, stream = wireframe.frame, wireframe.stream

local PROBE = "LOWBIT-DISCOVER"
local proto = frame.format{
  prefix = "\xAA\x55",
  header = { frame.uint8("version"), frame.uint8("command"), frame.payload_length_le("length") },
  checksum = wireframe.checksum.crc32_ieee(),
  max_payload = 4096,
}

-- A client silent for IDLE seconds is dropped, and so is one that does not
-- take a reply within WRITE seconds; on Ctrl-C the open connections get
-- GRACE seconds, then are closed.
local IDLE, WRITE, GRACE = 60, 10, 5
local conns = {}      -- the open connections
local closing = nil   -- when they end, once Ctrl-C came

local function serve_client(conn, name)
  conns[conn] = true
  local sr = stream.new_reader(conn, proto)
  local out = buffer.new()
  local readings = 0
  while true do
    local t = lowbit.now() + IDLE
    conn:set_read_deadline(closing and closing < t and closing or t)
    local payload, vals = sr:next()
    if not payload then break end -- EOF, or a framing error we do not recover from
    local cmd, reply = vals.command, nil
    if cmd == 1 then
      readings = readings + 1
      reply = ("%s temperature=%.1f reading=%d"):format(name, 20 + (readings % 7) * 0.5, readings)
    elseif cmd == 2 then
      reply = payload
    else
      cmd, reply = 255, "unknown command " .. cmd
    end
    out:reset()
    proto:encode(reply, { version = 1, command = cmd }, out)
    conn:set_write_deadline(lowbit.now() + WRITE)
    if not conn:write(out:tostring()) then break end
  end
  conns[conn] = nil
  conn:close()
end

local function run_device(ctx, addr, name)
  local ln = assert(net.listen(addr))
  local tcp_addr = ln:addr()
  lowbit.go(function()
    local err = beacon.serve(ctx, addr, buffer.new(), function(probe) return probe == PROBE end,
      ("device %s tcp %s"):format(name, tcp_addr))
    if err and not errors.is(err, context.CANCELED) then io.stderr:write("device: discovery stopped: ", tostring(err), "\n") end
  end)
  lowbit.go(function()
    ctx:wait()
    ln:close()                                 -- stop accepting
    closing = lowbit.now() + GRACE
    for c in pairs(conns) do c:set_read_deadline(closing) end
    while next(conns) and lowbit.now() < closing do lowbit.sleep(0.05) end
    for c in pairs(conns) do c:close() end     -- then cut what is left
  end)
  io.stderr:write("device ", name, ": discovery on udp ", addr, ", protocol on tcp ", tcp_addr, "\n")
  while true do
    local conn = ln:accept(ctx)
    if not conn then break end
    lowbit.go(serve_client, conn, name)
  end
end

-- A client: discover the device, then query it twice.
local function demo(ctx, addr)
  local sctx, cancel = context.with_timeout(ctx, 2)
  local buf = buffer.new()
  local n, from = beacon.seek(sctx, addr, PROBE, buf)
  cancel()
  if not n then error("discovery failed: " .. tostring(from)) end
  local answer = buf:tostring()
  print("discovered: " .. answer .. " (from " .. from .. ")")
  local tcp = answer:match("tcp (%S+)$")
  local conn = assert(net.dial(ctx, tcp))
  local out = buffer.new()
  proto:encode("", { version = 1, command = 1 }, out)
  proto:encode("ping", { version = 1, command = 2 }, out)
  proto:encode("", { version = 1, command = 9 }, out)
  conn:write(out:tostring())
  local sr = stream.new_reader(conn, proto)
  for _ = 1, 3 do
    local payload, vals = assert(sr:next())
    print(("reply command %d: %s"):format(vals.command, payload))
  end
  conn:close()
end

return function(root, addr, mode)
  addr = addr or "127.0.0.1:9750"
  if mode == "--demo" then
    local ctx, stop = context.with_cancel(root)
    lowbit.go(run_device, ctx, addr, "demo-1")
    lowbit.sleep(0.05)
    demo(root, addr)
    stop()
    return 0
  end
  run_device(root, addr, "sensor-1")
end
