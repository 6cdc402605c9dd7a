-- lowbit.websockets: every rule of conformance/websocket.md over raw
-- sockets, the API, memory and JIT checks of the hot loop, and real peers
-- over loopback: Go's gorilla/websocket and Node's ws (client and server,
-- with and without permessage-deflate) and headless Chromium.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local websockets = require "lowbit.websockets"
local buffer = require "string.buffer"
local bit = require "bit"
local support = require "support"
local peers = require "wspeers"
local run = support.run

local TEXT, BINARY = websockets.TEXT, websockets.BINARY
local char, byte, rep = string.char, string.byte, string.rep

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

-- The echo server used throughout: echoes data messages; commands (text):
-- "ping-me" (pings "srv", answers the pong with "got-pong:<data>"),
-- "close-me:<code>" (closes with that code), "ext?" (the agreed
-- extensions). Records the close error of each connection in `closes`.
local function echo_handler(opts, closes)
  opts = opts or {}
  return function(w, r)
    local c
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.subprotocols = o.subprotocols or { "echo" }
    if not o.quiet_pongs then o.on_pong = function(p) c:write_message(TEXT, "got-pong:" .. p) end end
    c = websockets.accept(w, r, o)
    if not c then return end
    local buf = buffer.new()
    while true do
      buf:reset()
      local m, op = c:read_message(buf)
      if not m then
        if closes then closes[#closes + 1] = op end
        break
      end
      local s = op == TEXT and #buf < 64 and buf:tostring() or nil
      if s == "ping-me" then
        c:ping("srv")
      elseif s and s:match("^close%-me:") then
        c:close(tonumber(s:sub(10)), "done")
        if closes then closes[#closes + 1] = "closed-by-us" end
        break
      elseif s == "ext?" then
        local p = c:compression()
        c:write_message(TEXT, "ext:" .. (p and "permessage-deflate" or ""))
      else
        c:write_message(op, buf)
      end
    end
  end
end

local wsf = require "wsframes"
local frame, canned_conn, client_frames = wsf.frame, wsf.canned_conn, wsf.client_frames

local function serve(handler)
  local srv = http.server{ handler = handler }
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function() srv:serve(ln) end)
  return ln:addr(), srv
end


-- Parses server frames out of s: array of { fin, rsv, op, masked, payload }.
local function parse_frames(s)
  local frames, pos = {}, 1
  while pos + 1 <= #s do
    local b0, b1 = byte(s, pos, pos + 1)
    local n = bit.band(b1, 127)
    local hl = 2
    if n == 126 then n = byte(s, pos + 2) * 256 + byte(s, pos + 3); hl = 4
    elseif n == 127 then
      n = 0
      for i = 0, 7 do n = n * 256 + byte(s, pos + 2 + i) end
      hl = 10
    end
    local masked = bit.band(b1, 0x80) ~= 0
    if masked then hl = hl + 4 end
    if pos + hl + n - 1 > #s then break end
    frames[#frames + 1] = { fin = bit.band(b0, 0x80) ~= 0, rsv = bit.band(b0, 0x70), op = bit.band(b0, 15),
                            masked = masked, payload = s:sub(pos + hl, pos + hl + n - 1),
                            key = masked and s:sub(pos + hl - 4, pos + hl - 1) or nil }
    pos = pos + hl + n
  end
  return frames, s:sub(pos)
end

local function unmask(p, key)
  local out = {}
  for i = 1, #p do out[i] = char(bit.bxor(byte(p, i), byte(key, (i - 1) % 4 + 1))) end
  return table.concat(out)
end

local function close_code(f)
  if #f.payload < 2 then return nil end
  return byte(f.payload, 1) * 256 + byte(f.payload, 2)
end

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="

local function upgrade_request(extra)
  return "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
    "Sec-WebSocket-Key: " .. KEY .. "\r\nSec-WebSocket-Version: 13\r\n" .. (extra or "") .. "\r\n"
end

-- Opens a raw client: sends the upgrade request (+ early bytes), returns
-- the conn and the response head.
local function raw_client(addr, extra, early)
  local c = assert(net.dial(nil, addr))
  c:set_deadline(lowbit.now() + 5)
  c:write(upgrade_request(extra) .. (early or ""))
  local got = ""
  while not got:find("\r\n\r\n", 1, true) do
    local d = c:read()
    if not d then break end
    got = got .. d
  end
  local e = got:find("\r\n\r\n", 1, true)
  if e and #got > e + 3 then c:unread(got:sub(e + 4)) end
  return c, got:sub(1, (e or #got) + 3)
end

local read_all = require("support").read_all

-- Sends bytes on a fresh raw connection, returns the server's frames
-- until it closes TCP.
local function exchange(addr, bytes, extra)
  local c, head = raw_client(addr, extra)
  assert.matches("^HTTP/1.1 101 ", head)
  c:write(bytes)
  local frames = parse_frames(read_all(c))
  c:close()
  return frames, head
end

local function last_close(frames)
  local f = frames[#frames]
  assert.is_truthy(f, "no frame from the server")
  assert.equal(8, f.op)
  return close_code(f)
end

---------------------------------------------------------------------------
-- Handshake
---------------------------------------------------------------------------

describe("websockets handshake (server)", function()
  it("answers the RFC 6455 key vector and never masks its frames", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local c, head = raw_client(addr)
      assert.matches("^HTTP/1.1 101 Switching Protocols\r\n", head)
      assert.matches("\r\nSec%-WebSocket%-Accept: s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=\r\n", head)
      assert.matches("\r\nUpgrade: websocket\r\n", head)
      assert.matches("\r\nConnection: Upgrade\r\n", head)
      c:write(frame(0x81, "hi"))
      c:write(frame(0x88, "\3\232"))
      local frames = parse_frames(read_all(c))
      assert.equal(2, #frames)
      assert.same({ true, 1, false, "hi" }, { frames[1].fin, frames[1].op, frames[1].masked, frames[1].payload })
      assert.equal(1000, close_code(frames[2]))
      assert.is_false(frames[2].masked)
      c:close()
      srv:close()
    end)
  end)

  it("refuses a wrong version with 426 and Sec-WebSocket-Version: 13", function()
    run(function()
      local addr, srv = serve(echo_handler())
      for _, v in ipairs({ "8", "14", "" }) do
        local c = assert(net.dial(nil, addr))
        c:set_deadline(lowbit.now() + 5)
        c:write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Key: " .. KEY .. "\r\n" .. (v ~= "" and ("Sec-WebSocket-Version: " .. v .. "\r\n") or "") ..
          "Connection: close\r\n\r\n")
        local resp = read_all(c)
        assert.matches("^HTTP/1.1 426 ", resp)
        assert.matches("\r\nSec%-WebSocket%-Version: 13\r\n", resp)
        assert.matches("Sec%-WebSocket%-Version", resp:match("\r\n\r\n(.*)$"))
        c:close()
      end
      srv:close()
    end)
  end)

  it("refuses bad requests with 400/426 and a clear text body", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local cases = {
        { "POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " .. KEY ..
          "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n", 400, "GET" },
        { "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Key: " .. KEY ..
          "\r\nSec-WebSocket-Version: 13\r\n", 400, "Connection: upgrade" },
        { "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " .. KEY ..
          "\r\nSec-WebSocket-Version: 13\r\n", 426, "websocket" },
        { "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " .. KEY ..
          "\r\nSec-WebSocket-Version: 13\r\n", 426, "websocket" },
        { "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Version: 13\r\n", 400, "Sec%-WebSocket%-Key" },
        { "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\n" ..
          "Sec-WebSocket-Version: 13\r\n", 400, "Sec%-WebSocket%-Key" },
        { "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " .. KEY ..
          "\r\nSec-WebSocket-Key: " .. KEY .. "\r\nSec-WebSocket-Version: 13\r\n", 400, "Sec%-WebSocket%-Key" },
      }
      for _, case in ipairs(cases) do
        local c = assert(net.dial(nil, addr))
        c:set_deadline(lowbit.now() + 5)
        c:write(case[1] .. "Connection: close\r\n\r\n")
        local resp = read_all(c)
        assert.equal(case[2], tonumber(resp:match("^HTTP/1.1 (%d+)")))
        assert.matches("Content%-Type: text/plain", resp)
        assert.matches(case[3], resp:match("\r\n\r\n(.*)$"))
        if case[2] == 426 then assert.matches("\r\nUpgrade: websocket\r\n", resp) end
        c:close()
      end
      srv:close()
    end)
  end)

  it("picks at most one subprotocol, in the server's order of preference", function()
    run(function()
      local addr, srv = serve(echo_handler{ subprotocols = { "v2.chat", "v1.chat" } })
      local _, head = raw_client(addr, "Sec-WebSocket-Protocol: v1.chat, v2.chat\r\n")
      assert.matches("\r\nSec%-WebSocket%-Protocol: v2.chat\r\n", head)
      _, head = raw_client(addr, "Sec-WebSocket-Protocol: other\r\nSec-WebSocket-Protocol: v1.chat\r\n")
      assert.matches("\r\nSec%-WebSocket%-Protocol: v1.chat\r\n", head)
      _, head = raw_client(addr, "Sec-WebSocket-Protocol: other\r\n")
      assert.is_nil(head:find("Sec-WebSocket-Protocol", 1, true))
      srv:close()
    end)
  end)

  it("negotiates permessage-deflate: the first acceptable offer wins, invalid ones are declined", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local cases = {
        { "permessage-deflate; client_max_window_bits", "^permessage%-deflate" },
        { "x-webkit-deflate-frame, permessage-deflate", "^permessage%-deflate$" },
        { "permessage-deflate; server_max_window_bits=010, permessage-deflate; server_no_context_takeover",
          "^permessage%-deflate; server_no_context_takeover$" },
        { "permessage-deflate; foo=1", nil },
        { "permessage-deflate; client_no_context_takeover; client_no_context_takeover", nil },
        { "permessage-deflate; server_max_window_bits=\"12\"", "server_max_window_bits=12" },
      }
      for _, case in ipairs(cases) do
        local _, head = raw_client(addr, "Sec-WebSocket-Extensions: " .. case[1] .. "\r\n")
        local ext = head:match("\r\nSec%-WebSocket%-Extensions: ([^\r]*)\r\n")
        if case[2] then assert.matches(case[2], ext, 1, false, case[1]) else assert.is_nil(ext, case[1]) end
      end
      srv:close()
    end)
  end)

  it("does not negotiate deflate when compression = false", function()
    run(function()
      local addr, srv = serve(echo_handler{ compression = false })
      local _, head = raw_client(addr, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
      assert.is_nil(head:find("Sec-WebSocket-Extensions", 1, true))
      srv:close()
    end)
  end)

  it("keeps frames the client sent right after its request head", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local c = raw_client(addr, nil, frame(0x81, "early") .. frame(0x82, "bird"))
      local got = ""
      local frames
      repeat
        got = got .. assert(c:read())
        frames = parse_frames(got)
      until #frames >= 2
      assert.equal("early", frames[1].payload)
      assert.equal("bird", frames[2].payload)
      c:close()
      srv:close()
    end)
  end)

  it("the handler may have used r.ctx before accepting", function()
    run(function()
      local h = echo_handler()
      local addr, srv = serve(function(w, r)
        assert(r.ctx)
        return h(w, r)
      end)
      local frames = exchange(addr, frame(0x81, "ctx") .. frame(0x88, "\3\232"))
      assert.equal("ctx", frames[1].payload)
      srv:close()
    end)
  end)
end)

---------------------------------------------------------------------------
-- Framing rules (server side)
---------------------------------------------------------------------------

describe("websockets framing rules (server fails the connection)", function()
  local function expect_close(addr, bytes, code, extra, what)
    local frames = exchange(addr, bytes, extra)
    assert.equal(code, last_close(frames), what)
    return frames
  end

  it("unmasked client frame: 1002", function()
    run(function()
      local addr, srv = serve(echo_handler())
      expect_close(addr, frame(0x81, "x", false), 1002)
      srv:close()
    end)
  end)

  it("RSV bits without a negotiated extension: 1002", function()
    run(function()
      local addr, srv = serve(echo_handler())
      for _, b0 in ipairs({ 0xC1, 0xA1, 0x91 }) do expect_close(addr, frame(b0, "x"), 1002) end
      srv:close()
    end)
  end)

  it("reserved opcodes 0x3-0x7 and 0xB-0xF: 1002", function()
    run(function()
      local addr, srv = serve(echo_handler())
      for _, op in ipairs({ 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF }) do
        expect_close(addr, frame(0x80 + op, "x"), 1002, nil, "opcode " .. op)
      end
      srv:close()
    end)
  end)

  it("bad control frames: not FIN, or over 125 bytes: 1002", function()
    run(function()
      local addr, srv = serve(echo_handler())
      expect_close(addr, frame(0x09, "x"), 1002)
      expect_close(addr, frame(0x89, rep("p", 126)), 1002)
      expect_close(addr, frame(0x88, "\3\232" .. rep("r", 124)), 1002)
      srv:close()
    end)
  end)

  it("64-bit length with the top bit set: 1002", function()
    run(function()
      local addr, srv = serve(echo_handler())
      expect_close(addr, "\130\255\128\0\0\0\0\0\0\1\1\2\3\4", 1002)
      srv:close()
    end)
  end)

  it("close bodies: 1-byte body, codes not valid on the wire: 1002; bad UTF-8 reason: 1007", function()
    run(function()
      local addr, srv = serve(echo_handler())
      expect_close(addr, frame(0x88, "\3"), 1002)
      for _, code in ipairs({ 0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535 }) do
        expect_close(addr, frame(0x88, char(math.floor(code / 256), code % 256)), 1002, nil, "code " .. code)
      end
      expect_close(addr, frame(0x88, "\3\232\255\254"), 1007)
      srv:close()
    end)
  end)

  it("valid close codes are echoed, and the server ends TCP", function()
    run(function()
      local closes = {}
      local addr, srv = serve(echo_handler(nil, closes))
      for _, code in ipairs({ 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 4000, 4999 }) do
        local frames = exchange(addr, frame(0x88, char(math.floor(code / 256), code % 256) .. "why"))
        assert.equal(1, #frames)
        assert.equal(code, last_close(frames))
      end
      -- an empty Close is answered with an empty one
      local frames = exchange(addr, frame(0x88, ""))
      assert.equal(8, frames[1].op)
      assert.equal("", frames[1].payload)
      lowbit.sleep(0.05)
      assert.equal(1000, closes[1].code)
      assert.equal("why", closes[1].reason)
      assert.is_true(errors.is(closes[1], websockets.CLOSED))
      assert.equal(1005, closes[#closes].code)
      srv:close()
    end)
  end)

  it("invalid UTF-8 in text: 1007 (whole, across fragments, overlong, surrogates, > U+10FFFF)", function()
    run(function()
      local addr, srv = serve(echo_handler())
      for _, bad in ipairs({ "\255", "a\192\128", "\237\160\128", "\244\144\128\128", "\224\128\175", "abc\206" }) do
        expect_close(addr, frame(0x81, bad), 1007, nil, ("%q"):format(bad))
      end
      -- split across fragments: invalid continuation in the second fragment
      expect_close(addr, frame(0x01, "\206") .. frame(0x80, "a"), 1007)
      -- fails early: the first fragment is already invalid, the rest never comes
      expect_close(addr, frame(0x01, "\255"), 1007)
      -- a code point split across fragments is fine
      local frames = exchange(addr, frame(0x01, "caf\195") .. frame(0x00, "\169 \240\157") .. frame(0x80, "\132\158") ..
        frame(0x88, "\3\232"))
      assert.equal("caf\195\169 \240\157\132\158", frames[1].payload)
      srv:close()
    end)
  end)

  it("fragmentation errors: 1002", function()
    run(function()
      local addr, srv = serve(echo_handler())
      expect_close(addr, frame(0x80, "x"), 1002)                        -- continuation, nothing open
      expect_close(addr, frame(0x01, "a") .. frame(0x81, "b"), 1002)    -- new message while one is open
      expect_close(addr, frame(0x02, "a") .. frame(0x02, "b"), 1002)
      srv:close()
    end)
  end)

  it("control frames may interleave with fragments; pings get pongs, unsolicited pongs are ignored", function()
    run(function()
      local addr, srv = serve(echo_handler{ quiet_pongs = true })
      local frames = exchange(addr, frame(0x8A, "unsolicited") .. frame(0x01, "frag") .. frame(0x89, "ping!") ..
        frame(0x80, "ment") .. frame(0x89, "") .. frame(0x88, "\3\232"))
      assert.equal(4, #frames)
      assert.same({ 10, "ping!" }, { frames[1].op, frames[1].payload })
      assert.same({ 1, "fragment" }, { frames[2].op, frames[2].payload })
      assert.same({ 10, "" }, { frames[3].op, frames[3].payload })
      assert.equal(1000, close_code(frames[4]))
      srv:close()
    end)
  end)

  it("messages over the read limit: 1009 (one frame, fragments, inflated)", function()
    run(function()
      local addr, srv = serve(echo_handler{ read_limit = 1000 })
      expect_close(addr, frame(0x82, rep("a", 1001)), 1009)
      expect_close(addr, frame(0x02, rep("a", 600)) .. frame(0x80, rep("a", 401)), 1009)
      -- exactly at the limit is fine
      local frames = exchange(addr, frame(0x82, rep("a", 1000)) .. frame(0x88, "\3\232"))
      assert.equal(1000, #frames[1].payload)
      -- a deflate bomb: 1 MB of zeros in ~1 KB; fails without inflating it all
      local comp = websockets.new_compressor({}, false, 9)
      local bomb = assert(comp:compress(rep("\0", 1024 * 1024)))
      assert.is_true(#bomb < 2000)
      expect_close(addr, frame(0xC2, bomb), 1009, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
      srv:close()
    end)
  end)

  it("RSV1 on a continuation or a control frame, even with deflate: 1002", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
      expect_close(addr, frame(0x41, "\242\72\205") .. frame(0xC0, "\201\201\7\0"), 1002, ext)
      expect_close(addr, frame(0xC9, ""), 1002, ext)
      expect_close(addr, frame(0xA1, "x"), 1002, ext) -- RSV2 is never negotiated
      srv:close()
    end)
  end)

  it("corrupt deflate data: 1007", function()
    run(function()
      local addr, srv = serve(echo_handler())
      expect_close(addr, frame(0xC2, "\255\255\255"), 1007, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
      srv:close()
    end)
  end)
end)

---------------------------------------------------------------------------
-- permessage-deflate vectors on the wire
---------------------------------------------------------------------------

describe("websockets permessage-deflate on the wire", function()
  local ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"

  it("inflates the RFC 7692 vectors and compresses its replies the same way", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local frames, head = exchange(addr,
        frame(0xC1, "\242\72\205\201\201\7\0") ..                                  -- "Hello"
        frame(0xC1, "\243\72\205\201\201\7\0\0") ..                                -- BFINAL form
        frame(0xC1, "\242\72\5\0\0\0\255\255\202\201\201\7\0") ..                  -- two blocks
        frame(0x41, "\242\72\205") .. frame(0x80, "\201\201\7\0") ..               -- fragmented
        frame(0xC1, "\0") ..                                                      -- empty message
        frame(0x88, "\3\232"), ext)
      assert.matches("\r\nSec%-WebSocket%-Extensions: permessage%-deflate\r\n", head)
      assert.equal(6, #frames)
      -- the server's compressor keeps its context: "Hello" then back-references
      assert.same({ true, 0x40, 1, "\242\72\205\201\201\7\0" },
        { frames[1].fin, frames[1].rsv, frames[1].op, frames[1].payload })
      assert.equal("\242\0\17\0\0", frames[2].payload)
      local inflater = websockets.new_compressor({}, false)
      for i = 1, 4 do assert.equal("Hello", inflater:decompress(frames[i].payload, 100)) end
      assert.equal("\0", frames[5].payload)
      assert.equal(1000, close_code(frames[6]))
      srv:close()
    end)
  end)

  it("with server_no_context_takeover every reply is compressed alone", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local frames, head = exchange(addr,
        frame(0xC1, "\242\72\205\201\201\7\0") .. frame(0xC1, "\242\72\205\201\201\7\0") .. frame(0x88, "\3\232"),
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n")
      assert.matches("server_no_context_takeover", head)
      assert.equal("\242\72\205\201\201\7\0", frames[1].payload)
      assert.equal("\242\72\205\201\201\7\0", frames[2].payload)
      srv:close()
    end)
  end)
end)

---------------------------------------------------------------------------
-- Client side, against raw servers
---------------------------------------------------------------------------

-- A raw server: handshake by hand (`answer(key, req)` returns the response
-- head + early bytes), then `after(conn, req)`.
local function raw_server(answer, after)
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function()
    while true do
      local c = ln:accept()
      if not c then return end
      lowbit.go(function()
        c:set_deadline(lowbit.now() + 10)
        local req = ""
        while not req:find("\r\n\r\n", 1, true) do
          local d = c:read()
          if not d then c:close(); return end
          req = req .. d
        end
        local key = req:match("\r\nSec%-WebSocket%-Key: ([^\r]+)\r\n")
        c:write(answer(key, req))
        if after then after(c, req) end
        c:close()
      end)
    end
  end)
  return ln:addr(), ln
end

local function ok101(key, extra)
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
    "Sec-WebSocket-Accept: " .. websockets.accept_key(key) .. "\r\n" .. (extra or "") .. "\r\n"
end

describe("websockets client", function()
  it("masks every frame with a fresh key and reads frames sent right after the 101", function()
    run(function()
      local got = lowbit.chan(1)
      local addr, ln = raw_server(function(key) return ok101(key) .. frame(0x81, "early", false) end, function(c)
        local s = ""
        while true do
          local d = c:read()
          if not d then break end
          s = s .. d
          local frames = parse_frames(s)
          if #frames >= 4 then got:send(frames); break end
        end
      end)
      local c = assert(websockets.dial("ws://" .. addr .. "/", { compression = false }))
      assert.same({ "early", TEXT }, { c:read_message() })
      for i = 1, 4 do assert.is_true(c:write_message(BINARY, "same payload")) end
      local frames = got:recv()
      local keys = {}
      for i = 1, 4 do
        assert.is_true(frames[i].masked)
        assert.equal("same payload", unmask(frames[i].payload, frames[i].key))
        keys[frames[i].key] = true
      end
      local n = 0
      for _ in pairs(keys) do n = n + 1 end
      assert.equal(4, n)
      c:close()
      ln:close()
    end)
  end)

  it("verifies the 101: status, Accept, subprotocol, extensions", function()
    run(function()
      local cases = {
        { function() return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno" end, "status 200" },
        { function() return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n" end, "Accept mismatch" },
        { function(key) return ok101(key):gsub("Upgrade: websocket\r\n", "Upgrade: h2c\r\n") end, "not offered" },
        { function(key) return ok101(key):gsub("Connection: Upgrade\r\n", "") end, "Connection" },
        { function(key) return ok101(key, "Sec-WebSocket-Protocol: zzz\r\n") end, "subprotocol" },
        { function(key) return ok101(key, "Sec-WebSocket-Extensions: x-foo\r\n") end, "extension" },
        { function(key) return ok101(key, "Sec-WebSocket-Extensions: permessage-deflate\r\n") end, "not offered" },
      }
      for i, case in ipairs(cases) do
        local addr, ln = raw_server(case[1])
        local o = { subprotocols = { "a" } }
        if i == #cases then o.compression = false end
        local c, err = websockets.dial("ws://" .. addr .. "/", o)
        assert.is_nil(c)
        assert.is_true(errors.is(err, websockets.BAD_HANDSHAKE), tostring(err))
        assert.matches(case[2], tostring(err), 1, true)
        if i == 1 then assert.equal(200, err.status) end
        ln:close()
      end
    end)
  end)

  it("fails on a masked server frame (1002) and on bad UTF-8 (1007)", function()
    run(function()
      for _, case in ipairs({ { frame(0x81, "masked"), 1002 }, { frame(0x81, "\255", false), 1007 } }) do
        local got = lowbit.chan(1)
        local addr, ln = raw_server(function(key) return ok101(key) .. case[1] end, function(c)
          got:send(parse_frames(read_all(c)))
        end)
        local c = assert(websockets.dial("ws://" .. addr .. "/", { compression = false }))
        local m, err = c:read_message()
        assert.is_nil(m)
        assert.equal(case[2], err.code)
        local frames = got:recv()
        assert.equal(case[2], byte(unmask(frames[1].payload, frames[1].key), 1) * 256 +
          byte(unmask(frames[1].payload, frames[1].key), 2))
        ln:close()
      end
    end)
  end)

  it("stream_message reads ahead: the last data frame carries FIN, never an empty one", function()
    run(function()
      local got = lowbit.chan(1)
      local addr, ln = raw_server(function(key) return ok101(key) end, function(c)
        got:send(parse_frames(read_all(c)))
      end)
      local c = assert(websockets.dial("ws://" .. addr .. "/", { compression = false }))
      local function reader(s)
        local b = buffer.new():put(s)
        return { read = function(_, n) if #b == 0 then return nil, errors.EOF end return b:get(n) end }
      end
      assert.is_true(c:stream_message(BINARY, reader(rep("x", 10)), 4))   -- 4 + 4 + 2
      assert.is_true(c:stream_message(TEXT, reader(rep("y", 8)), 4))      -- 4 + 4, exact multiple
      assert.is_true(c:stream_message(TEXT, reader(""), 4))               -- empty message
      c:underlying():close_write()
      local frames = got:recv()
      local shape = {}
      for i, f in ipairs(frames) do shape[i] = ("%d%s%d"):format(f.op, f.fin and "F" or "-", #f.payload) end
      assert.same({ "2-4", "0-4", "0F2", "1-4", "0F4", "1F0" }, shape)
      c:underlying():close()
      ln:close()
    end)
  end)

  it("streamed compressed messages inflate back whole (lowbit both ends)", function()
    run(function()
      local addr, srv = serve(echo_handler{ read_limit = websockets.READ_LIMIT_LARGE })
      local c = assert(websockets.dial("ws://" .. addr .. "/ws", { read_limit = websockets.READ_LIMIT_LARGE }))
      assert.is_truthy(c:compression())
      local src = {}
      for i = 1, 20000 do src[i] = ("line %d of a streamed text message\n"):format(i) end
      src = table.concat(src)
      local b = buffer.new():put(src)
      assert.is_true(c:stream_message(TEXT, { read = function(_, n)
        if #b == 0 then return nil, errors.EOF end
        return b:get(n)
      end }, websockets.CHUNK_SIZE_BALANCED))
      local m, op = c:read_message()
      assert.equal(TEXT, op)
      assert.equal(#src, #m)
      assert.is_true(m == src)
      c:close()
      srv:close()
    end)
  end)
end)


---------------------------------------------------------------------------
-- API
---------------------------------------------------------------------------

-- A conn whose read buffer holds `data` already (no I/O, no waiting); what
-- is written goes to `sink` when given.

describe("websockets API", function()
  it("read_message(buf) appends to buf; write_message takes a string.buffer", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local c = assert(websockets.dial("ws://" .. addr .. "/ws", { subprotocols = { "echo" } }))
      assert.equal("echo", c:subprotocol())
      local out = buffer.new():put("from a buffer")
      assert.is_true(c:write_message(BINARY, out))
      assert.equal(13, #out) -- not consumed
      local buf = buffer.new():put(">")
      local m, op = c:read_message(buf)
      assert.equal(buf, m)
      assert.equal(BINARY, op)
      assert.equal(">from a buffer", buf:tostring())
      assert.is_true(c:close())
      srv:close()
    end)
  end)

  it("wrong argument types raise, naming the argument", function()
    run(function()
      local c = websockets.new(canned_conn(""), { server = true })
      local function raises(pat, fn, ...)
        local ok, err = pcall(fn, ...)
        assert.is_false(ok)
        assert.matches(pat, tostring(err), 1, true)
      end
      raises("'conn'", websockets.new, nil)
      raises("'opts.read_limit'", websockets.new, canned_conn(""), { read_limit = "big" })
      raises("'opts.compression'", websockets.new, canned_conn(""), { compression = 5 })
      raises("'op'", c.write_message, c, 99, "x")
      raises("'op'", c.write_message, c, websockets.CLOSE, "x")
      raises("'s'", c.write_message, c, TEXT, 5)
      raises("'s'", c.write_message, c, websockets.PING, rep("x", 126))
      raises("'buf'", c.read_message, c, "not a buffer")
      raises("'reader'", c.stream_message, c, TEXT, 5)
      raises("'op'", c.stream_message, c, websockets.PING, { read = function() end })
      raises("'s'", c.ping, c, {})
      raises("ws:close", c.close, c, 1005)
      raises("ws:close", c.close, c, 1000, rep("r", 124))
      raises("'code'", c.close, c, "1000")
      raises("'url'", websockets.dial, 5)
      raises("'opts.subprotocols'", websockets.dial, "ws://x/", { subprotocols = { "a b" } })
      raises("'w'", websockets.accept, nil, {})
      raises("'fn'", websockets.handler, nil)
    end)
  end)

  it("a closed conn returns errors at once, never hangs", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local c = assert(websockets.dial("ws://" .. addr .. "/ws"))
      assert.is_true(c:close(4000, "bye"))
      local t0 = lowbit.now()
      local ok, err = c:write_message(TEXT, "late")
      assert.is_nil(ok)
      assert.is_true(errors.is(err, websockets.CLOSED))
      local m, rerr = c:read_message()
      assert.is_nil(m)
      assert.is_true(errors.is(rerr, websockets.CLOSED))
      assert.is_nil((c:close()))
      assert.is_nil((c:ping()))
      assert.is_nil((c:stream_message(TEXT, { read = function() return nil, errors.EOF end })))
      assert.is_true(lowbit.now() - t0 < 1)
      srv:close()
    end)
  end)

  it("close() while another task reads: the reader gets CLOSED with the peer's code", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local c = assert(websockets.dial("ws://" .. addr .. "/ws"))
      local got = lowbit.chan(1)
      lowbit.go(function()
        local m, err = c:read_message()
        got:send({ m, err })
      end)
      lowbit.sleep(0.02)
      local t0 = lowbit.now()
      assert.is_true(c:close(1001, "going"))
      assert.is_true(lowbit.now() - t0 < 1)
      local r = got:recv()
      assert.is_nil(r[1])
      assert.is_true(errors.is(r[2], websockets.CLOSED))
      assert.equal(1001, r[2].code)
      srv:close()
    end)
  end)

  it("a peer that drops TCP without a Close gives code 1006 and errors.EOF", function()
    run(function()
      local addr, srv = serve(function(w, r)
        local c = websockets.accept(w, r)
        c:write_message(TEXT, "bye")
        c:underlying():close()
      end)
      local c = assert(websockets.dial("ws://" .. addr .. "/ws"))
      assert.equal("bye", (c:read_message()))
      local m, err = c:read_message()
      assert.is_nil(m)
      assert.equal(1006, err.code)
      assert.is_true(errors.is(err, errors.EOF))
      local _, again = c:read_message()
      assert.equal(err, again)
      srv:close()
    end)
  end)

  it("server-initiated close: the client gets the code and reason", function()
    run(function()
      local closes = {}
      local addr, srv = serve(echo_handler(nil, closes))
      local c = assert(websockets.dial("ws://" .. addr .. "/ws"))
      c:write_message(TEXT, "close-me:4321")
      local m, err = c:read_message()
      assert.is_nil(m)
      assert.equal(4321, err.code)
      assert.equal("done", err.reason)
      srv:close()
    end)
  end)

  it("works over any conn: a net.pipe, fragments and all", function()
    run(function()
      local a, b = net.pipe()
      local s = websockets.new(a, { server = true, compression = {} })
      local c = websockets.new(b, { server = false, compression = {} })
      lowbit.go(function()
        while true do
          local m, op = s:read_message()
          if not m then break end
          s:write_message(op, m)
        end
      end)
      local big = rep("0123456789abcdef", 50000)
      for _, msg in ipairs({ "short", big, "" }) do
        assert.is_true(c:write_message(TEXT, msg))
        assert.equal(msg, (c:read_message()))
      end
      local pos = 1
      assert.is_true(c:stream_message(BINARY, { read = function(_, n)
        if pos > #big then return nil, errors.EOF end
        local piece = big:sub(pos, pos + n - 1)
        pos = pos + #piece
        return piece
      end }, 1000))
      assert.equal(big, (c:read_message()))
      assert.is_true(c:close())
    end)
  end)

  it("an injected compressor is used both ways", function()
    run(function()
      local calls = { compress = 0, decompress = 0 }
      local function factory(params, server)
        local inner = websockets.new_compressor(params, server)
        return {
          compress = function(_, s) calls.compress = calls.compress + 1; return inner:compress(s) end,
          decompress = function(_, s, limit) calls.decompress = calls.decompress + 1; return inner:decompress(s, limit) end,
          reset = function() end,
        }
      end
      local addr, srv = serve(echo_handler{ compressor = factory })
      local c = assert(websockets.dial("ws://" .. addr .. "/ws", { compressor = factory }))
      for i = 1, 5 do
        c:write_message(TEXT, "message " .. i)
        assert.equal("message " .. i, (c:read_message()))
      end
      assert.equal(10, calls.compress)
      assert.equal(10, calls.decompress)
      c:close()
      srv:close()
    end)
  end)

  it("the client enforces its own read limit (1009)", function()
    run(function()
      local addr, srv = serve(echo_handler())
      local c = assert(websockets.dial("ws://" .. addr .. "/ws", { read_limit = 100, compression = false }))
      c:write_message(BINARY, rep("x", 100))
      assert.equal(100, #c:read_message())
      c:write_message(BINARY, rep("x", 101))
      local m, err = c:read_message()
      assert.is_nil(m)
      assert.equal(1009, err.code)
      assert.is_true(errors.is(err, websockets.MESSAGE_TOO_BIG))
      srv:close()
    end)
  end)

  it("dial honours ctx: a server that never answers", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local ctx = context.with_timeout(context.background(), 0.2)
      local t0 = lowbit.now()
      local c, err = websockets.dial("ws://" .. ln:addr() .. "/", { ctx = ctx })
      assert.is_nil(c)
      assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED), tostring(err))
      assert.is_true(lowbit.now() - t0 < 2)
      local _, uerr = websockets.dial("ftp://127.0.0.1/")
      assert.matches("unsupported scheme", tostring(uerr))
      ln:close()
    end)
  end)

  it("websockets.handler runs fn per connection and closes after it", function()
    run(function()
      local addr, srv = serve(websockets.handler(function(c)
        local m = c:read_message()
        c:write_message(TEXT, "re:" .. m)
      end))
      local c = assert(websockets.dial("ws://" .. addr .. "/ws"))
      c:write_message(TEXT, "x")
      assert.equal("re:x", (c:read_message()))
      local _, err = c:read_message()
      assert.equal(1000, err.code)
      srv:close()
    end)
  end)
end)

---------------------------------------------------------------------------
-- Memory and JIT
---------------------------------------------------------------------------

-- n masked client frames of `size` bytes.

describe("websockets hot path", function()
  it("an echo loop of 1 MB in 16-byte messages leaves the heap where it started", function()
    run(function()
      local addr, srv = serve(echo_handler{ compression = false })
      local c = assert(websockets.dial("ws://" .. addr .. "/ws", { compression = false }))
      local buf = buffer.new()
      local msg = rep("s", 16)
      local function loop(n)
        for _ = 1, n do
          c:write_message(BINARY, msg)
          buf:reset()
          assert(c:read_message(buf))
        end
      end
      loop(2000) -- warm up: JIT traces, buffers at size
      collectgarbage(); collectgarbage()
      local before = collectgarbage("count")
      loop(65536)
      collectgarbage(); collectgarbage()
      local grown = (collectgarbage("count") - before) * 1024
      assert.is_true(grown < 128 * 1024, ("heap grew by %d bytes"):format(grown))
      c:close()
      srv:close()
    end)
  end)


  it("the read/write loop runs compiled: no NYI aborts in websockets code (STYLE rule 14)", function()
    if not (jit and jit.status()) then return end
    run(function()
      local sink = {}
      local N = 30000
      local cc = canned_conn(client_frames(N, 16, TEXT), sink)
      local s = websockets.new(cc, { server = true, compression = false })
      local buf = buffer.new()
      local bad = support.jit_aborts("websockets.lua", function()
        for _ = 1, N do
          buf:reset()
          local m, op = s:read_message(buf)
          s:write_message(op, m)
          if #sink > 1000 then for i = #sink, 1, -1 do sink[i] = nil end end
        end
      end)
      assert.same({}, bad)
    end)
  end)
end)

---------------------------------------------------------------------------
-- Real peers
---------------------------------------------------------------------------

-- The payloads the peer programs use (spec/peers/*): text with 1- to
-- 4-byte UTF-8 sequences, binary bytes from a formula.
local function payload(n, text)
  local out, len = {}, 0
  if text then
    local parts = { "a", "\195\169", "\226\130\172", "\240\157\132\158", "z" }
    local i = 0
    while len < n do
      local p = parts[i % #parts + 1]
      i = i + 1
      if len + #p > n then p = "a" end
      out[#out + 1] = p
      len = len + #p
    end
    return table.concat(out)
  end
  local b = buffer.new(n)
  for i = 0, n - 1 do b:put(char(bit.band(i * 7 + math.floor(i / 251), 255))) end
  return b:tostring()
end

local SIZES = { 0, 1, 125, 126, 1000, 65535, 65536, 100000, 3 * 1024 * 1024 + 7 }

-- lowbit's client against a peer's echo server (ws_gorilla / ws_node
-- server mode).
local function client_checklist(u, z)
  local pongs = {}
  local c, resp = websockets.dial(u, { subprotocols = { "nope", "echo" }, compression = z,
                                       read_limit = websockets.READ_LIMIT_LARGE,
                                       on_pong = function(p) pongs[#pongs + 1] = p end })
  assert.is_truthy(c, tostring(resp))
  assert.equal("echo", c:subprotocol())
  assert.equal(z, c:compression() ~= nil)
  assert.equal(z, (resp.headers:get("Sec-WebSocket-Extensions") or ""):find("permessage-deflate", 1, true) ~= nil)
  for _, n in ipairs(SIZES) do
    for _, op in ipairs({ TEXT, BINARY }) do
      local p = payload(n, op == TEXT)
      assert.is_true(c:write_message(op, p))
      local m, mop = c:read_message()
      assert.equal(op, mop)
      assert.is_true(m == p, ("echo of %d bytes (op %d) differs"):format(n, op))
    end
  end
  -- a streamed (fragmented) message
  local big = payload(1024 * 1024, true)
  local pos = 1
  assert.is_true(c:stream_message(TEXT, { read = function(_, n)
    if pos > #big then return nil, errors.EOF end
    local piece = big:sub(pos, pos + n - 1)
    pos = pos + #piece
    return piece
  end }, 4096))
  assert.is_true((c:read_message()) == big)
  -- our ping comes back as a pong (seen while reading)
  assert.is_true(c:ping("p1"))
  c:write_message(TEXT, "after-ping")
  assert.equal("after-ping", (c:read_message()))
  assert.same({ "p1" }, pongs)
  -- the peer's ping is answered for us
  c:write_message(TEXT, "ping-me")
  assert.equal("got-pong:srv", (c:read_message()))
  -- the peer closes with a code
  c:write_message(TEXT, "close-me:4002")
  local m, err = c:read_message()
  assert.is_nil(m)
  assert.is_true(errors.is(err, websockets.CLOSED), tostring(err))
  assert.equal(4002, err.code)
  assert.equal("done", err.reason)
  -- and we close: the peer echoes our code
  local c2 = assert(websockets.dial(u, { compression = z }))
  c2:write_message(TEXT, "x")
  assert.equal("x", (c2:read_message()))
  assert.is_true(c2:close(3001, "client bye"))
  local _, err2 = c2:read_message()
  assert.equal(3001, err2.code)
end

local PEERS = {
  { name = "gorilla/websocket", argv = function(mode, where, z)
      return { peers.go_peer("ws_gorilla"), mode, where, z and "z" or "-" }
    end },
  { name = "Node ws", argv = function(mode, where, z)
      return { "env", "NODE_PATH=" .. peers.node_path(), "node", peers.root .. "/spec/peers/ws_node.js",
               mode, where, z and "z" or "-" }
    end },
}

for _, peer in ipairs(PEERS) do
  describe("websockets with " .. peer.name, function()
    for _, z in ipairs({ false, true }) do
      local zs = z and "with permessage-deflate" or "without compression"
      it(peer.name .. " client against lowbit's server, " .. zs, function()
        run(function()
          local closes = {}
          local addr, srv = serve(echo_handler({ read_limit = websockets.READ_LIMIT_LARGE, compression = z }, closes))
          local p = peers.spawn(peer.argv("client", "ws://" .. addr .. "/ws", z))
          local code, out = p.wait(90)
          assert.equal(0, code, out)
          for _, step in ipairs({ "handshake", "echo", "ping", "server-ping", "close" }) do
            assert.matches("ok " .. step, out, 1, true)
          end
          assert.equal(z, out:find("permessage-deflate", 1, true) ~= nil)
          lowbit.sleep(0.05)
          assert.equal(4001, closes[#closes].code)
          assert.equal("bye", closes[#closes].reason)
          srv:close()
        end)
      end)

      it("lowbit's client against a " .. peer.name .. " server, " .. zs, function()
        run(function()
          local port = support.free_port()
          local p = peers.spawn(peer.argv("server", "127.0.0.1:" .. port, z))
          assert.is_true(peers.wait_port("127.0.0.1:" .. port, 20), p.output())
          local ok, err = pcall(client_checklist, "ws://127.0.0.1:" .. port .. "/ws", z)
          p.kill()
          if not ok then error(err, 0) end
        end)
      end)
    end
  end)
end

describe("websockets with headless Chromium", function()
  local cdp = require "support.cdp"
  after_each(function() cdp.cleanup() end) -- a run cut short leaves no Chromium

  it("a page served by lowbit opens a WebSocket to it and gets its messages back", function()
    run(function()
      local report = lowbit.chan(1)
      local closes = {}
      local ws_h = echo_handler({}, closes)
      local page = [[<!doctype html><html><head><title>ws</title></head><body><script>
const ws = new WebSocket("ws://" + location.host + "/ws", ["echo"]);
ws.binaryType = "arraybuffer";
const text = "\u00e9\u20ac\ud834\udd1e".repeat(5000);
const bin = new Uint8Array(100000); for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) & 255;
const results = [];
let n = 0;
function report(s) { fetch("/report?r=" + encodeURIComponent(s)); }
ws.onopen = () => { results.push("proto:" + ws.protocol + ":" + ws.extensions); ws.send("hello from chromium"); ws.send(text); ws.send(bin); };
ws.onmessage = (e) => {
  n++;
  if (n === 1) results.push(e.data === "hello from chromium" ? "1:ok" : "1:bad");
  if (n === 2) results.push(e.data === text ? "2:ok" : "2:bad");
  if (n === 3) {
    const b = new Uint8Array(e.data);
    results.push(b.length === bin.length && b.every((v, i) => v === bin[i]) ? "3:ok" : "3:bad");
    ws.close(1000, "done");
  }
};
ws.onclose = (e) => { results.push("close:" + e.code + ":" + e.wasClean); report(results.join(" ")); };
ws.onerror = () => report("error " + results.join(" "));
</script></body></html>]]
      local addr, srv = serve(function(w, r)
        if r.url.path == "/page" then
          w:header():set("Content-Type", "text/html; charset=utf-8")
          w:write(page)
        elseif r.url.path == "/report" then
          report:try_send(r.url:query():get("r"))
          w:write("ok")
        elseif r.url.path == "/ws" then
          ws_h(w, r)
        else
          http.not_found(w, r)
        end
      end)
      local got
      cdp.with_browser({ timeout = 60 }, function(b)
        got = b:new_tab("http://" .. addr .. "/page"):receive(report, "the page's report")
      end)
      assert.matches("proto:echo:permessage%-deflate", got)
      assert.matches("1:ok 2:ok 3:ok close:1000:true", got, 1, true)
      lowbit.sleep(0.05)
      assert.equal(1000, closes[#closes].code)
      assert.equal("done", closes[#closes].reason)
      srv:close()
    end)
  end)
end)
