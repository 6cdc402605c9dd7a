local lowbit = require "lowbit"
local net = require "lowbit.net"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local buffer = require "string.buffer"
local run = require("support").run

local bg = context.background()

-- Starts an echo server; returns its address and the listener.
local function echo_server()
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function()
    while true do
      local c = ln:accept()
      if not c then return end
      lowbit.go(function()
        while true do
          local d = c:read()
          if not d then break end
          c:write(d)
        end
        c:close()
      end)
    end
  end)
  return ln:addr(), ln
end

describe("lowbit.net TCP", function()
  it("listens on a free port and echoes through a dialed conn", function()
    run(function()
      local addr, ln = echo_server()
      assert.matches("^127%.0%.0%.1:%d+$", addr)
      assert.is_true(ln:port() > 0)
      local c = assert(net.dial(bg, addr))
      assert.equal(5, c:write("hello"))
      assert.equal("hello", c:read_full(5))
      assert.equal(6, c:write({ "wor", "ld", "!" }))
      assert.equal("world!", c:read_full(6))
      assert.equal(addr, c:remote_addr())
      assert.matches("^127%.0%.0%.1:%d+$", c:local_addr())
      c:close()
      ln:close()
    end)
  end)

  it("works over IPv6 loopback", function()
    run(function()
      local ln = assert(net.listen("[::1]:0"))
      assert.matches("^%[::1%]:%d+$", ln:addr())
      lowbit.go(function() local c = ln:accept(); c:write("six"); c:close() end)
      local c = assert(net.dial(bg, ln:addr()))
      assert.equal("six", c:read_full(3))
      assert.same({ nil, errors.EOF }, { c:read() })
      c:close(); ln:close()
    end)
  end)

  it("resolves names through the loop", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() local c = ln:accept(); c:close() end)
      local c = assert(net.dial(bg, "localhost:" .. ln:port()))
      c:close(); ln:close()
    end)
  end)

  it("reads EOF after the peer closes, and UNEXPECTED_EOF mid read_full", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() local c = ln:accept(); c:write("abc"); c:close() end)
      local c = assert(net.dial(bg, ln:addr()))
      local s, err = c:read_full(10)
      assert.is_nil(s)
      assert.equal(errors.UNEXPECTED_EOF, err)
      assert.same({ nil, errors.EOF }, { c:read() })
      c:close(); ln:close()
    end)
  end)

  it("close_write half-closes: the peer reads EOF and can still answer", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function()
        local c = ln:accept()
        local all = {}
        while true do local d = c:read(); if not d then break end; all[#all + 1] = d end
        c:write("got " .. table.concat(all)); c:close()
      end)
      local c = assert(net.dial(bg, ln:addr()))
      c:write("ping")
      assert.is_true(c:close_write())
      assert.equal("got ping", c:read_full(8))
      c:close(); ln:close()
    end)
  end)

  it("dialing a closed port fails with ECONNREFUSED", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local addr = ln:addr()
      ln:close()
      local c, err = net.dial(bg, addr)
      assert.is_nil(c)
      assert.is_true(errors.is(err, errors.sys("ECONNREFUSED")), tostring(err))
      assert.matches("dial tcp " .. addr:gsub("%.", "%%."), tostring(err))
    end)
  end)

  it("listening on a used port fails with EADDRINUSE", function()
    local ln = assert(net.listen("127.0.0.1:0"))
    local ln2, err = net.listen(ln:addr())
    assert.is_nil(ln2)
    assert.is_true(errors.is(err, errors.sys("EADDRINUSE")), tostring(err))
    ln:close()
  end)

  it("rejects malformed addresses with an error value", function()
    local ln, err = net.listen("nonsense")
    assert.is_nil(ln)
    assert.matches("invalid address", tostring(err))
    run(function()
      local c, derr = net.dial(bg, "127.0.0.1:99999")
      assert.is_nil(c)
      assert.matches("invalid port", tostring(derr))
    end)
  end)

  it("a cancelled ctx stops dial and accept", function()
    run(function()
      local ctx, cancel = context.with_cancel(bg)
      cancel()
      local c, err = net.dial(ctx, "127.0.0.1:1")
      assert.is_nil(c)
      assert.is_true(errors.is(err, context.CANCELED))
      local ln = assert(net.listen("127.0.0.1:0"))
      local actx = context.with_timeout(bg, 0.01)
      local a, aerr = ln:accept(actx)
      assert.is_nil(a)
      assert.equal(context.DEADLINE_EXCEEDED, aerr)
      ln:close()
    end)
  end)

  it("accepts after accept waits that ended by a connection, a ctx or another task accepting at once", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local got = lowbit.chan(8)
      for round = 1, 3 do
        -- two tasks wait in accept at once, then a ctx ends a third wait
        for _ = 1, 2 do lowbit.go(function() got:send(assert(ln:accept())) end) end
        lowbit.sleep(0.005)
        local clients = {}
        for i = 1, 2 do
          clients[i] = assert(net.dial(nil, ln:addr()))
          clients[i]:write("r" .. round .. "c" .. i)
        end
        local seen = {}
        for _ = 1, 2 do
          local c = got:recv()
          seen[#seen + 1] = assert(c:read())
          c:close()
        end
        table.sort(seen)
        assert.same({ "r" .. round .. "c1", "r" .. round .. "c2" }, seen)
        for i = 1, 2 do clients[i]:close() end
        local a, aerr = ln:accept(context.with_timeout(bg, 0.005))
        assert.is_nil(a)
        assert.equal(context.DEADLINE_EXCEEDED, aerr)
      end
      ln:close()
    end)
  end)

  it("closing the listener wakes a blocked accept with CLOSED", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() lowbit.sleep(0.005); ln:close() end)
      assert.same({ nil, errors.CLOSED }, { ln:accept() })
      assert.same({ nil, errors.CLOSED }, { ln:accept() })
      assert.same({ nil, errors.CLOSED }, { ln:close() })
    end)
  end)

  -- Descriptors this process holds (a connection the listener took from
  -- the kernel is one more).
  local function nfds()
    local p = io.popen("ls /proc/" .. require("luv").os_getpid() .. "/fd")
    local n = #p:read("*a"):gsub("[^\n]", "")
    p:close()
    return n
  end

  it("takes no connection from the kernel while nobody accepts; accept then hands them out in order", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local base = nfds()
      local cs = {}
      for i = 1, 3 do
        cs[i] = assert(net.dial(bg, ln:addr()))
        cs[i]:write(tostring(i))
      end
      lowbit.sleep(0.05)
      -- the clients' ends, and the one libuv takes to see that one came
      assert.equal(base + 4, nfds())
      for i = 1, 3 do
        local c = assert(ln:accept())
        assert.equal(tostring(i), c:read_full(1))
        c:close()
      end
      for i = 1, 3 do cs[i]:close() end
      ln:close()
    end)
  end)

  it("while a task accepts, takes arriving connections ahead (at most ACCEPT_AHEAD); close ends them", function()
    local ahead = net.ACCEPT_AHEAD
    net.ACCEPT_AHEAD = 2
    local ok, err = pcall(run, function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local base = nfds()
      local first = lowbit.chan(1)
      lowbit.go(function() first:send(ln:accept()) end) -- one accept, then nobody
      lowbit.sleep(0.01)
      local cs = {}
      for i = 1, 6 do cs[i] = assert(net.dial(bg, ln:addr())) end
      local c1 = assert(first:recv())
      lowbit.sleep(0.05)
      -- 6 client ends, the accepted one, at most 2 taken ahead
      local held = nfds() - base
      assert.is_true(held >= 7 and held <= 9, "descriptors: " .. held)
      ln:close()
      c1:close()
      -- every client ends: EOF (closed here) or a reset (from the backlog)
      for i = 1, 6 do
        cs[i]:set_read_deadline(lowbit.now() + 5)
        local d, rerr = cs[i]:read()
        assert.is_nil(d)
        assert.is_true(rerr == errors.EOF or errors.is(rerr, errors.sys("ECONNRESET")), tostring(rerr))
        cs[i]:close()
      end
      lowbit.sleep(0.05) -- (libuv closes descriptors on its next pass)
      assert.equal(base - 1, nfds()) -- (the listener's is gone too)
    end)
    net.ACCEPT_AHEAD = ahead
    assert(ok, err)
  end)

  it("read deadline gives TIMEOUT, can be moved while blocked, and cleared", function()
    run(function()
      local addr, ln = echo_server()
      local c = assert(net.dial(bg, addr))
      c:set_read_deadline(lowbit.now() + 0.01)
      local t0 = lowbit.now()
      assert.same({ nil, errors.TIMEOUT }, { c:read() })
      assert.is_true(lowbit.now() - t0 >= 0.009)
      -- moving the deadline earlier from another task wakes the reader
      c:set_read_deadline(lowbit.now() + 10)
      lowbit.go(function() lowbit.sleep(0.005); c:set_read_deadline(lowbit.now()) end)
      t0 = lowbit.now()
      assert.same({ nil, errors.TIMEOUT }, { c:read() })
      assert.is_true(lowbit.now() - t0 < 5)
      c:set_deadline(nil)
      c:write("x")
      assert.equal("x", c:read())
      c:close(); ln:close()
    end)
  end)

  it("closing a conn wakes its blocked reader with CLOSED; a closed conn refuses use", function()
    run(function()
      local addr, ln = echo_server()
      local c = assert(net.dial(bg, addr))
      lowbit.go(function() lowbit.sleep(0.005); c:close() end)
      assert.same({ nil, errors.CLOSED }, { c:read() })
      assert.same({ nil, errors.CLOSED }, { c:write("x") })
      assert.same({ nil, errors.CLOSED }, { c:close() })
      assert.same({ nil, errors.CLOSED }, { c:close_write() })
      ln:close()
    end)
  end)

  it("a peer that vanishes mid-read gives EOF or a reset, never a hang", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function()
        local c = ln:accept()
        c:write(string.rep("x", 100))
        c:close()
      end)
      local c = assert(net.dial(bg, ln:addr()))
      c:set_read_deadline(lowbit.now() + 5)
      local total, err = 0, nil
      while true do
        local d, e = c:read()
        if not d then err = e; break end
        total = total + #d
      end
      assert.equal(100, total)
      assert.is_true(err == errors.EOF or errors.is(err, errors.sys("ECONNRESET")), tostring(err))
      c:close(); ln:close()
    end)
  end)

  it("reads apply backpressure: the socket is not read past the high-water mark", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local size = 48 * 1024 * 1024
      local sent
      lowbit.go(function()
        local c = ln:accept()
        sent = c:write(string.rep("y", size))
        c:close()
      end)
      local c = assert(net.dial(bg, ln:addr()))
      assert.equal(1, #c:read(1))
      lowbit.sleep(0.05)
      assert.is_true(c:buffered() <= net.READ_HIGH_WATER + 256 * 1024, "buffered " .. c:buffered())
      assert.is_nil(sent) -- the writer is still waiting for us
      local got = 1
      while true do local d = c:read(); if not d then break end; got = got + #d end
      assert.equal(size, got)
      assert.equal(size, sent)
      c:close(); ln:close()
    end)
  end)

  it("a conn dropped without close, with unread bytes, is collected safely", function()
    -- Reads are buffered in C on behalf of the conn; when the conn is
    -- garbage, its buffer goes with it and later reads on new conns (which
    -- may reuse the descriptor's slot) are not confused.
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local served = lowbit.chan(8)
      lowbit.go(function()
        for _ = 1, 2 do
          local c = ln:accept()
          c:write(string.rep("z", 300 * 1024)) -- past the high-water mark
          served:send(c)
        end
      end)
      do
        local c = assert(net.dial(bg, ln:addr()))
        assert.equal(1, #c:read(1))
        lowbit.sleep(0.05) -- reading pauses at the high-water mark
        c = nil -- dropped, never closed
      end
      collectgarbage(); collectgarbage()
      local s1 = served:recv()
      s1:close()
      local c2 = assert(net.dial(bg, ln:addr()))
      local got = 0
      while got < 300 * 1024 do
        local d = assert(c2:read())
        assert.is_nil(d:find("[^z]"))
        got = got + #d
      end
      assert.equal(300 * 1024, got)
      c2:close(); served:recv():close(); ln:close()
    end)
  end)

  it("conns dropped unclosed after reading, many times over, leave later conns on their descriptors reading right", function()
    -- A conn's reader struct has no finalizer: one dropped unclosed may
    -- leave lb_uvread's entry for its descriptor behind. The descriptors
    -- (and the structs' memory) are reused by the next conns, which must
    -- read their own bytes only.
    run(function()
      local addr, ln = echo_server()
      local ln2 = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function()
        for i = 1, 20 do
          local c = ln2:accept()
          c:write("d" .. (i % 10))
          c:close()
        end
      end)
      for i = 1, 20 do
        do
          local c = assert(net.dial(bg, ln2:addr()))
          assert.equal("d" .. (i % 10), c:read_full(2))
          lowbit.sleep(0.005) -- the EOF arrives: reading stops
          c = nil -- dropped, never closed
        end
        if i % 5 == 0 then collectgarbage(); collectgarbage() end
      end
      collectgarbage(); collectgarbage()
      for i = 1, 5 do
        local c = assert(net.dial(bg, addr))
        local msg = ("conn %d "):format(i) .. string.rep("x", 1000 * i)
        assert.equal(#msg, c:write(msg))
        assert.equal(msg, c:read_full(#msg))
        c:close()
      end
      ln:close(); ln2:close()
    end)
  end)

  it("knows each conn's descriptor and whether its handle is closing, also once lb_uvread tells instead of luv", function()
    run(function()
      local uv = require "luv"
      local addr, ln = echo_server()
      local conns = {}
      for i = 1, 6 do
        local c = assert(net.dial(bg, addr))
        assert.equal(uv.fileno(c.h), c.fd)
        assert.equal(3, c:write("x" .. i .. "y")) -- (the first read tells lb_uvread luv's layout)
        assert.equal("x" .. i .. "y", c:read_full(3))
        conns[i] = c
      end
      -- A handle closed behind the conn's back is not closed twice.
      uv.close(conns[1].h)
      assert.is_true(uv.is_closing(conns[1].h))
      for _, c in ipairs(conns) do assert.is_true(c:close()) end
      for _, c in ipairs(conns) do assert.is_true(uv.is_closing(c.h)) end
      ln:close()
    end)
  end)

  it("names both ends, IPv4 and IPv6, as host:port (brackets for IPv6)", function()
    run(function()
      for _, a in ipairs({ "127.0.0.1:0", "[::1]:0" }) do
        local ln = assert(net.listen(a))
        local got = lowbit.chan(1)
        lowbit.go(function()
          local c = ln:accept()
          got:send({ c:local_addr(), c:remote_addr() })
          c:close()
        end)
        local c = assert(net.dial(bg, ln:addr()))
        local s = got:recv()
        assert.equal(ln:addr(), s[1])
        assert.equal(ln:addr(), c:remote_addr())
        assert.equal(c:local_addr(), s[2])
        assert.matches(a:sub(1, 1) == "[" and "^%[::1%]:%d+$" or "^127%.0%.0%.1:%d+$", c:local_addr())
        c:close(); ln:close()
        -- A closed conn keeps what it knew, and asks nothing more.
        assert.equal(s[1], c:remote_addr())
      end
    end)
  end)

  it("writes wait under backpressure and honour the write deadline", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local held
      lowbit.go(function() held = ln:accept() end) -- accepts, never reads
      local c = assert(net.dial(bg, ln:addr()))
      c:set_write_deadline(lowbit.now() + 0.05)
      local chunk = string.rep("z", 1024 * 1024)
      local n, err
      for _ = 1, 64 do
        n, err = c:write(chunk)
        if not n then break end
      end
      assert.is_nil(n)
      assert.equal(errors.TIMEOUT, err)
      c:close(); held:close(); ln:close()
    end)
  end)

  it("serves many concurrent clients", function()
    run(function()
      local addr, ln = echo_server()
      local wg = lowbit.waitgroup()
      local ok = 0
      for i = 1, 50 do
        wg:add(1)
        lowbit.go(function()
          local c = assert(net.dial(bg, addr))
          local msg = ("msg-%03d"):format(i)
          c:write(msg)
          if c:read_full(#msg) == msg then ok = ok + 1 end
          c:close()
          wg:done()
        end)
      end
      wg:wait()
      assert.equal(50, ok)
      ln:close()
    end)
  end)

  it("rejects bad arguments with the argument named", function()
    assert.has_error(function() net.listen(42) end, "bad argument 'addr' to net.listen: string expected, got number")
    run(function()
      assert.has_error(function() net.dial("x", "127.0.0.1:1") end, "bad argument 'ctx' to net.dial: context expected, got string")
      local addr, ln = echo_server()
      local c = assert(net.dial(bg, addr))
      assert.has_error(function() c:write(42) end, "bad argument 'data' to conn:write: string or array of strings expected, got number")
      assert.has_error(function() c:write({ "a", 1 }) end)
      assert.has_error(function() c:read(0) end)
      assert.has_error(function() c:read_full(-1) end)
      assert.has_error(function() c:set_deadline("soon") end)
      c:close(); ln:close()
    end)
  end)

  it("unread puts bytes back in front", function()
    run(function()
      local addr, ln = echo_server()
      local c = assert(net.dial(bg, addr))
      c:write("world")
      assert.equal("wor", c:read_full(3))
      c:unread("hello ")
      assert.equal("hello ld", c:read_full(8))
      c:close(); ln:close()
    end)
  end)
end)

describe("lowbit.net UDP", function()
  it("sends and receives datagrams with the sender's address", function()
    run(function()
      local a = assert(net.listen_udp("127.0.0.1:0"))
      local b = assert(net.listen_udp("127.0.0.1:0"))
      assert.equal(4, b:send_to("ping", a:local_addr()))
      local d, from = a:recv_from()
      assert.equal("ping", d)
      assert.equal(b:local_addr(), from)
      local buf = buffer.new()
      a:send_to("pong", from)
      local n, from2 = b:recv_from(buf)
      assert.equal(4, n); assert.equal("pong", buf:tostring()); assert.equal(a:local_addr(), from2)
      a:close(); b:close()
    end)
  end)

  it("dial_udp talks to one peer", function()
    run(function()
      local srv = assert(net.listen_udp("127.0.0.1:0"))
      local c = assert(net.dial_udp(bg, srv:local_addr()))
      c:send("hi")
      local d, from = srv:recv_from()
      assert.equal("hi", d)
      srv:send_to("back", from)
      assert.equal("back", c:recv())
      assert.equal(srv:local_addr(), c:remote_addr())
      assert.has_error(function() c:send_to("x", "127.0.0.1:1") end)
      assert.has_error(function() srv:send("x") end)
      c:close(); srv:close()
    end)
  end)

  it("recv_from honours deadlines and ctx, and close", function()
    run(function()
      local u = assert(net.listen_udp("127.0.0.1:0", { broadcast = true }))
      u:set_read_deadline(lowbit.now() + 0.01)
      assert.same({ nil, errors.TIMEOUT }, { u:recv_from() })
      u:set_read_deadline(nil)
      local ctx = context.with_timeout(bg, 0.01)
      assert.same({ nil, context.DEADLINE_EXCEEDED }, { u:recv_from(nil, ctx) })
      lowbit.go(function() lowbit.sleep(0.005); u:close() end)
      assert.same({ nil, errors.CLOSED }, { u:recv_from() })
      assert.same({ nil, errors.CLOSED }, { u:send_to("x", "127.0.0.1:9") })
    end)
  end)

  it("reports a used port and bad arguments", function()
    local a = assert(net.listen_udp("127.0.0.1:0"))
    local b, err = net.listen_udp(a:local_addr())
    assert.is_nil(b)
    assert.is_true(errors.is(err, errors.sys("EADDRINUSE")), tostring(err))
    assert.has_error(function() a:recv_from("buf") end)
    assert.has_error(function() net.listen_udp(nil) end)
    a:close()
  end)
end)

describe("lowbit.net pipe", function()
  it("connects two in-memory conns", function()
    run(function()
      local a, b = net.pipe()
      lowbit.go(function() a:write("hello"); a:close_write() end)
      assert.equal("hello", b:read_full(5))
      assert.same({ nil, errors.EOF }, { b:read() })
      b:write("back")
      assert.equal("back", a:read())
      a:close()
      assert.same({ nil, errors.CLOSED }, { a:read() })
      assert.is_nil(b:write("x"))
    end)
  end)

  it("writes wait for the reader past the pipe buffer", function()
    run(function()
      local a, b = net.pipe()
      local done = false
      lowbit.go(function() a:write(string.rep("x", net.PIPE_BUFFER)); a:write("more"); done = true end)
      lowbit.sleep(0.005)
      assert.is_false(done)
      assert.equal(net.PIPE_BUFFER, #b:read_full(net.PIPE_BUFFER))
      assert.equal("more", b:read_full(4))
      lowbit.sleep(0)
      assert.is_true(done)
    end)
  end)

  it("has deadlines", function()
    run(function()
      local a, b = net.pipe()
      b:set_read_deadline(lowbit.now() + 0.005)
      assert.same({ nil, errors.TIMEOUT }, { b:read() })
      a:close(); b:close()
    end)
  end)
end)
