-- The anchor of bench/ngx_ws.sh: a WebSocket echo in plain nginx Lua on
-- ngx.req.socket(true), as small as the protocol allows (no extensions, no
-- reassembly: fragments are echoed as they come). Debian has no
-- lua-resty-websocket, so this stands in for it.
--   content_by_lua_block { require("raw_ws")() }
local ffi = require "ffi"
local bit = require "bit"
local band, bxor, rshift = bit.band, bit.bxor, bit.rshift
local byte, char = string.byte, string.char

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
local cap = 65536
local buf = ffi.new("uint8_t[?]", cap)

-- The payload at byte off (0-based) of s, unmasked into buf.
local function unmask(s, off, n, m1, m2, m3, m4)
  if n > cap then cap = n; buf = ffi.new("uint8_t[?]", cap) end
  local src = ffi.cast("const uint8_t *", s) + off
  local m = ffi.new("uint8_t[4]", m1, m2, m3, m4)
  for i = 0, n - 1 do buf[i] = bxor(src[i], m[band(i, 3)]) end
  return ffi.string(buf, n)
end

-- A server frame head: b1 is FIN and opcode (fragments echo as they came).
local function head(b1, n)
  if n < 126 then return char(b1, n) end
  if n < 65536 then return char(b1, 126, rshift(n, 8), band(n, 255)) end
  local b = {}
  for k = 8, 1, -1 do b[k] = n % 256; n = (n - b[k]) / 256 end
  return char(b1, 127, b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8])
end

return function()
  local key = ngx.var.http_sec_websocket_key
  if not key then return ngx.exit(400) end
  -- The 101 written on the raw socket (nginx's header filters would
  -- treat it as the head of a chunked body).
  local sock = assert(ngx.req.socket(true))
  sock:send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
    .. ngx.encode_base64(ngx.sha1_bin(key .. GUID)) .. "\r\n\r\n")
  sock:settimeout(60000)
  -- Whole reads (receiveany) parsed here: receive(n) per frame field
  -- costs more than the rest of the echo.
  local pend, pos = "", 1
  local function need(k)
    while #pend - pos + 1 < k do
      local more = sock:receiveany(65536)
      if not more then return false end
      pend = pos > #pend and more or pend:sub(pos) .. more
      pos = 1
    end
    return true
  end
  while true do
    if not need(2) then return end
    local b1, b2 = byte(pend, pos, pos + 1)
    local op, n, hl = band(b1, 0x0f), band(b2, 0x7f), 2
    if n == 126 then
      if not need(4) then return end
      n = byte(pend, pos + 2) * 256 + byte(pend, pos + 3)
      hl = 4
    elseif n == 127 then
      if not need(10) then return end
      n = 0
      for k = 2, 9 do n = n * 256 + byte(pend, pos + k) end
      hl = 10
    end
    if not need(hl + 4 + n) then return end
    local m1, m2, m3, m4 = byte(pend, pos + hl, pos + hl + 3)
    local data = n > 0 and unmask(pend, pos + hl + 3, n, m1, m2, m3, m4) or ""
    pos = pos + hl + 4 + n
    if op == 8 then sock:send(head(0x88, #data) .. data); return end
    local rb1 = op == 9 and 0x8a or band(b1, 0x8f)
    if op ~= 10 and not sock:send({ head(rb1, #data), data }) then return end
  end
end
