-- Memory stays flat under load: the Lua heap (after a full collection)
-- and the process RSS do not grow with the number of requests served.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local support = require "support"
local run = support.run

local function heap_kb()
  collectgarbage("collect"); collectgarbage("collect")
  return collectgarbage("count")
end

local function rss_kb()
  local f = io.open("/proc/self/statm")
  local pages = f and tonumber(f:read("*a"):match("^%d+%s+(%d+)")) or 0
  if f then f:close() end
  return pages * 4
end

local function serve()
  local srv, ln = support.http_server{
    handler = function(w) w:header():set("Content-Type", "text/plain"); w:write("hello world\n") end,
    read_header_timeout = 10, idle_timeout = 60 }
  return ln:addr(), srv
end

local REQ = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
local RESP_END = "hello world\n"

-- Sends n requests on one connection, in pipelined batches, and reads all
-- the responses.
local function keepalive_requests(addr, n)
  local c = assert(net.dial(nil, addr))
  local batch = string.rep(REQ, 100)
  local done = 0
  while done < n do
    c:write(batch)
    local seen, acc = 0, ""
    while seen < 100 do
      local d = assert(c:read())
      acc = acc .. d
      local _, k = acc:gsub(RESP_END, "")
      if k > 0 then
        seen = seen + k
        acc = acc:match(".*" .. RESP_END .. "(.*)$")
      end
    end
    done = done + 100
  end
  c:close()
end

local function short_connections(addr, n)
  for _ = 1, n do
    local c = assert(net.dial(nil, addr))
    c:write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while c:read() do end
    c:close()
  end
end

describe("http server memory", function()
  it("100k keep-alive requests on one connection leave the heap and RSS flat", function()
    run(function()
      local addr, srv = serve()
      keepalive_requests(addr, 5000) -- warm up: JIT traces, buffers, caches
      local h0, r0 = heap_kb(), rss_kb()
      keepalive_requests(addr, 100000)
      local h1, r1 = heap_kb(), rss_kb()
      srv:close()
      assert.is_true(h1 - h0 < 512, ("Lua heap grew by %.0f KiB"):format(h1 - h0))
      assert.is_true(r1 - r0 < 16 * 1024, ("RSS grew by %d KiB"):format(r1 - r0))
    end)
  end)

  it("10k short connections leave the heap and RSS flat, and no timers behind", function()
    run(function()
      local addr, srv = serve()
      short_connections(addr, 500)
      local h0, r0 = heap_kb(), rss_kb()
      short_connections(addr, 10000)
      lowbit.sleep(0.05) -- let the last server tasks finish
      local h1, r1 = heap_kb(), rss_kb()
      assert.equal(0, srv.nconns)
      srv:close()
      assert.is_true(h1 - h0 < 512, ("Lua heap grew by %.0f KiB"):format(h1 - h0))
      assert.is_true(r1 - r0 < 16 * 1024, ("RSS grew by %d KiB"):format(r1 - r0))
      assert.equal(0, lowbit._timer_count())
    end)
  end)
end)

describe("http server memory: one large w:write", function()
  local N = 10 * 1024 * 1024
  local big = string.rep("0123456789abcdef", N / 16) -- the handler's string, alive throughout

  -- Sends one GET on c (kept open) and reads the whole response.
  local function get_big(c)
    c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local got, head = 0, nil
    local acc = ""
    while not head do
      acc = acc .. assert(c:read())
      head = acc:match("^(.-\r\n\r\n)")
    end
    got = #acc - #head
    while got < N do got = got + #assert(c:read()) end
    assert.equal(N, got)
    return head
  end

  it("keeps no copy of a 10 MB response on the keep-alive connection", function()
    run(function()
      local srv, ln = support.http_server{ handler = function(w)
        w:header():set("Content-Length", tostring(#big))
        w:write(big)
      end }
      local c = assert(net.dial(nil, ln:addr()))
      c:set_deadline(lowbit.now() + 30)
      local h0 = heap_kb()
      local head = get_big(c)
      assert.matches("\r\nContent%-Length: " .. N .. "\r\n", head)
      local h1 = heap_kb()
      -- The old server kept the string twice in the connection's buffers.
      assert.is_true(h1 - h0 < 1024, ("the connection holds %.0f KiB after the response"):format(h1 - h0))
      c:close(); srv:close()
    end)
  end)

  it("a 10 MB chunked write blocked on a client that does not read holds no copy of it", function()
    run(function()
      local writing = lowbit.chan(1)
      local srv, ln = support.http_server{ handler = function(w)
        w:write("x") -- buffered: the big write below is a chunk of its own
        writing:send(true)
        w:write(big)
      end }
      local c = assert(net.dial(nil, ln:addr()))
      c:set_deadline(lowbit.now() + 30)
      local h0 = heap_kb()
      c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      writing:recv()
      lowbit.sleep(0.2) -- the socket buffers fill; the write waits
      local h1 = heap_kb()
      assert.is_true(h1 - h0 < N / 1024 / 4, ("%.0f KiB live while the write waits"):format(h1 - h0))
      -- Then the client reads it all, in order and framed.
      local acc = {}
      local total = 0
      while true do
        local d = c:read()
        if not d then break end
        acc[#acc + 1] = d
        total = total + #d
        if total > N and table.concat(acc, "", math.max(1, #acc - 2)):find("\r\n0\r\n\r\n$") then break end
      end
      local resp = table.concat(acc)
      local body = resp:match("\r\n\r\n(.*)$")
      assert.equal("1\r\nx\r\n" .. ("%x"):format(N) .. "\r\n" .. big .. "\r\n0\r\n\r\n", body)
      c:close(); srv:close()
    end)
  end)
end)
