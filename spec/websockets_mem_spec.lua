-- What a websocket connection holds once a large message has gone through
-- it (issue 10): nothing above BUFFER_KEEP per buffer, large payloads
-- written from the caller's string, and permessage-deflate without context
-- takeover on pooled zlib streams. Real TCP conns on 127.0.0.1:0.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local websockets = require "lowbit.websockets"
local buffer = require "string.buffer"
local ffi = require "ffi"
local run = require("support").run

local BINARY, KEEP = websockets.BINARY, websockets.BUFFER_KEEP or 16 * 1024
local MiB = 1024 * 1024

-- A connected pair: server-side and client-side websockets over TCP.
local function pair(opts)
  opts = opts or {}
  local ln = assert(net.listen("127.0.0.1:0"))
  local raw_s
  lowbit.go(function() raw_s = ln:accept() end)
  local raw_c = assert(net.dial(nil, ln:addr()))
  for _ = 1, 200 do if raw_s then break end lowbit.sleep(0.005) end
  ln:close()
  local function o(server)
    return { server = server, read_limit = 64 * MiB, compression = opts.compression,
             close_timeout = opts.close_timeout }
  end
  return assert(websockets.new(raw_s, o(true))), assert(websockets.new(raw_c, o(false)))
end

local function cap(b) return #b + select(2, b:reserve(0)) end

-- Every buffer the connection holds, by name, with its capacity.
local function held(c)
  local t = { ib = cap(c.ib), mb = cap(c.mb), ob = cap(c.ob) }
  if c.zb then t.zb = cap(c.zb) end
  if c.comp and c.comp.zin then
    t.zin, t.zout = tonumber(c.comp.zin[0].cap), tonumber(c.comp.zout[0].cap)
  end
  return t
end

local function assert_small(c, what)
  for name, n in pairs(held(c)) do
    assert(n <= KEEP, ("%s: %s %s holds %d bytes after the message"):format(what, c.server and "server" or "client", name, n))
  end
end

local function payload(n, seed)
  local b = buffer.new(n)
  local x = seed
  for _ = 1, n / 8 do
    x = (x * 1103515245 + 12345) % 2147483648
    b:put(string.char(x % 256, 97 + x % 7, 98, 99, 97 + x % 5, 100, 101, x % 251))
  end
  return b:tostring()
end

describe("websockets memory after large messages", function()
  for _, variant in ipairs{
    { name = "uncompressed" },
    { name = "deflate, no context takeover",
      compression = { server_no_context_takeover = true, client_no_context_takeover = true } },
    { name = "deflate, context takeover", compression = {} },
  } do
    it("leaves every buffer at most BUFFER_KEEP (" .. variant.name .. ")", function()
      run(function()
        local s, c = pair(variant)
        local big = payload(3 * MiB, 7)
        -- a whole message each way, read into new strings
        local got
        lowbit.go(function() got = s:read_message() end)
        assert(c:write_message(BINARY, big))
        for _ = 1, 400 do if got then break end lowbit.sleep(0.01) end
        assert.equal(#big, #got)
        assert.is_true(got == big)
        got = nil
        lowbit.go(function() assert(s:write_message(BINARY, big)) end)
        local back = c:read_message()
        assert.is_true(back == big)
        back = nil
        -- a fragmented one (reassembled), client to server
        lowbit.go(function() got = s:read_message() end)
        local pos = 1
        assert(c:stream_message(BINARY, { read = function(_, n)
          if pos > #big then return nil, require("lowbit.errors").EOF end
          local part = big:sub(pos, pos + n - 1); pos = pos + n; return part
        end }, 256 * 1024))
        for _ = 1, 400 do if got then break end lowbit.sleep(0.01) end
        assert.is_true(got == big)
        got = nil
        -- both go idle: each waits for the next message, and its grown
        -- reading buffers go after IDLE_RELEASE seconds
        lowbit.go(function() s:read_message() end)
        lowbit.go(function() c:read_message() end)
        lowbit.sleep((websockets.IDLE_RELEASE or 0) + 0.2)
        assert_small(s, variant.name)
        assert_small(c, variant.name)
        s:close()
      end)
    end)
  end

  it("releases the memory of the empty buffer given to read_message once idle, never its contents", function()
    run(function()
      local s, c = pair()
      local big = payload(3 * MiB, 13)
      local buf, kept = buffer.new(), buffer.new()
      local n = 0
      lowbit.go(function()
        while true do
          buf:reset()
          if not s:read_message(buf) then break end
          n = n + 1
          if n == 2 then kept:put(buf:tostring(), string.rep("k", 2 * MiB)) end
          if n == 3 then s:read_message(kept); break end -- waits with contents in kept

        end
      end)
      assert(c:write_message(BINARY, big))
      assert(c:write_message(BINARY, "second"))
      lowbit.sleep((websockets.IDLE_RELEASE or 0) + 0.2)
      assert.equal(2, n)
      assert.equal(0, #buf)
      assert.is_true(cap(buf) <= KEEP, ("the idle reader's buffer keeps %d bytes"):format(cap(buf)))
      assert(c:write_message(BINARY, "third"))
      lowbit.sleep((websockets.IDLE_RELEASE or 0) + 0.2)
      assert.equal(6 + 2 * MiB, #kept) -- a buffer with contents is left alone
      assert.equal("second", kept:get(6))
      c:close()
    end)
  end)

  it("writes a large payload from the caller's string, not from a copy", function()
    run(function()
      local s, c = pair()
      local big = payload(8 * MiB, 3)
      collectgarbage(); collectgarbage()
      local before = collectgarbage("count")
      local peak = 0
      local done = false
      -- nobody reads yet: the write blocks once the socket buffers are full
      lowbit.go(function() assert(s:write_message(BINARY, big)); done = true end)
      lowbit.sleep(0.1)
      peak = (collectgarbage("count") - before) * 1024
      assert.is_false(done)
      local got = c:read_message()
      assert.is_true(got == big)
      assert.is_true(done)
      -- a copy into a frame buffer would be 8 MiB; slices are 256 KiB
      assert.is_true(peak < 2 * MiB, ("%d bytes allocated while the write was blocked"):format(peak))
      c:close()
    end)
  end)

  it("sends large frames in parts over a conn without write_buffer (a pipe), both ways", function()
    run(function()
      for _, comp in ipairs{ false, { server_no_context_takeover = true, client_no_context_takeover = true } } do
        local a, b = net.pipe()
        local s = websockets.new(a, { server = true, read_limit = 64 * MiB, compression = comp })
        local c = websockets.new(b, { read_limit = 64 * MiB, compression = comp })
        local big = payload(2 * MiB + 5, 11)
        local sent = buffer.new():put(big) -- a string.buffer payload, not consumed
        lowbit.go(function() assert(s:write_message(BINARY, sent)) end)
        assert.is_true(c:read_message() == big)
        assert.equal(#big, #sent)
        lowbit.go(function() assert(c:write_message(BINARY, big)) end)
        assert.is_true(s:read_message() == big)
        lowbit.go(function() s:read_message() end)
        lowbit.go(function() c:read_message() end)
        lowbit.sleep((websockets.IDLE_RELEASE or 0) + 0.2)
        assert_small(s, "pipe")
        assert_small(c, "pipe")
        a:close(); b:close()
        lowbit.sleep(0.01)
      end
    end)
  end)

  it("answers a ping between the parts of a large frame, never inside it", function()
    run(function()
      local pongs = 0
      local s, c = pair()
      c.on_pong = function(p) assert.equal("p1", p); pongs = pongs + 1 end
      local big = payload(8 * MiB, 5)
      lowbit.go(function() s:read_message() end) -- the server reads (and answers pings)
      lowbit.go(function() assert(s:write_message(BINARY, big)) end)
      lowbit.sleep(0.05)
      assert(c:ping("p1")) -- arrives while the server's write is blocked
      lowbit.sleep(0.05)
      local got = c:read_message()
      assert.is_true(got == big)
      assert(c:write_message(BINARY, "x"))
      lowbit.sleep(0.05)
      assert(s:write_message(BINARY, "after"))
      assert.equal("after", c:read_message()) -- the pong was read on the way
      assert.equal(1, pongs)
      c:close()
    end)
  end)

  it("keeps reading while its large frame waits: a ping's pong is queued, not awaited", function()
    run(function()
      local pongs = 0
      local s, c = pair()
      c.on_pong = function(p) assert.equal("p2", p); pongs = pongs + 1 end
      local big, big2 = payload(8 * MiB, 17), payload(8 * MiB, 19)
      local got_s
      lowbit.go(function() got_s = s:read_message() end)
      lowbit.go(function() assert(s:write_message(BINARY, big)) end)
      lowbit.sleep(0.05)
      -- the client writes before it reads: the server must read meanwhile
      assert(c:ping("p2"))
      assert(c:write_message(BINARY, big2))
      for _ = 1, 500 do if got_s then break end lowbit.sleep(0.01) end
      assert.is_true(got_s == big2)
      assert.is_true(c:read_message() == big)
      assert(s:write_message(BINARY, "after"))
      assert.equal("after", c:read_message())
      assert.equal(1, pongs)
      c:close()
    end)
  end)

  it("close() during a large frame to a peer that does not read ends the connection", function()
    run(function()
      local s, c = pair{ close_timeout = 0.3 }
      local big = payload(16 * MiB, 9)
      local wrote, werr = "pending", nil
      lowbit.go(function() wrote, werr = s:write_message(BINARY, big) end)
      lowbit.sleep(0.05)
      assert.equal("pending", wrote) -- blocked: c reads nothing
      s:close() -- its Close cannot go inside the frame: it waits, then gives up
      for _ = 1, 200 do if wrote ~= "pending" then break end lowbit.sleep(0.01) end
      assert.is_nil(wrote)
      assert.is_not_nil(werr)
      c.conn:close()
    end)
  end)

  it("holds no zlib stream per connection without context takeover", function()
    pcall(ffi.cdef, [[struct lb_mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks,
      uordblks, fordblks, keepcost; }; struct lb_mallinfo2 mallinfo2(void);]])
    local function in_use()
      local mi = ffi.C.mallinfo2()
      return tonumber(mi.uordblks) + tonumber(mi.hblkhd)
    end
    local nct = { server_no_context_takeover = true, client_no_context_takeover = true }
    local keep = {}
    local function grow(params, n)
      collectgarbage(); collectgarbage()
      local before = in_use()
      for i = 1, n do
        local z = assert(websockets.new_compressor(params, true))
        -- one message each way, so that any lazily made state exists
        local p = assert(z:compress(("hello %d "):format(i):rep(50)))
        assert(z:decompress(p, 1e6))
        keep[#keep + 1] = z
      end
      return (in_use() - before) / n
    end
    local per_nct = grow(nct, 50)
    local per_takeover = grow({}, 20)
    keep = nil
    -- a zlib compressor alone is ~260 KiB; without takeover the streams are
    -- pooled and a connection holds its context and two lb_bufs of at most
    -- 4 KiB each
    assert.is_true(per_nct < 12 * 1024, ("%d bytes per connection without context takeover"):format(per_nct))
    assert.is_true(per_takeover > 64 * 1024, ("%d bytes per connection with context takeover"):format(per_takeover))
  end)
end)
