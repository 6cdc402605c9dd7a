-- The HTTP server's work per new connection: the request ctx it makes
-- (cancelled when the handler returns, released from the server's), and
-- the path a connection takes (accept, first request, close) compiled by
-- LuaJIT: no closure made per connection or per request, which LuaJIT
-- cannot compile (NYI: bytecode 51, FNEW) and which kept that path and
-- what it called interpreted (STYLE rule 14).
local lowbit = require "lowbit"
local net = require "lowbit.net"
local context = require "lowbit.context"
local support = require "support"
local run = support.run

-- One request on a new connection (Connection: close); the response.
local function one_request(addr, path)
  local c = assert(net.dial(nil, addr))
  c:set_deadline(lowbit.now() + 5)
  c:write("GET " .. path .. " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
  local resp = support.read_all(c)
  c:close()
  return resp
end

describe("http server per connection", function()
  it("gives each request its own ctx, cancelled when the handler returns and released", function()
    run(function()
      local ctxs = {}
      local srv, ln = support.http_server{ handler = function(w, r)
        ctxs[#ctxs + 1] = r.ctx
        assert(r.ctx:err() == nil, "live during the handler")
        w:write("ok")
      end }
      local addr = ln:addr()
      -- Two requests on one keep-alive connection, then one on a new one.
      local c = assert(net.dial(nil, addr))
      c:set_deadline(lowbit.now() + 5)
      c:write("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      local resp = support.read_all(c)
      c:close()
      local _, n = resp:gsub("HTTP/1%.1 200 OK", "")
      assert.equal(2, n)
      assert.matches("HTTP/1%.1 200 OK", one_request(addr, "/3"))
      assert.equal(3, #ctxs)
      assert.are_not.equal(ctxs[1], ctxs[2])
      for i = 1, 3 do
        assert.is_true(context.is_context(ctxs[i]))
        assert.equal(context.CANCELED, ctxs[i]:err())
      end
      assert.equal(0, context._children(srv.base_ctx))
      srv:close()
    end)
  end)

  it("gives a request whose ctx is first asked for after its handler returned a cancelled one, and leaves the next request's alone", function()
    run(function()
      local kept, second_ctx
      local asked = lowbit.chan(1)
      local srv, ln = support.http_server{ handler = function(w, r)
        if r.url.path == "/1" then
          kept = r -- kept by the app; its ctx not asked for yet
        else
          second_ctx = r.ctx
          asked:send(true) -- let the test read the first request's ctx now
          lowbit.sleep(0.05)
          assert(r.ctx:err() == nil, "the second request's ctx stays live")
        end
        w:write("ok")
      end }
      local c = assert(net.dial(nil, ln:addr()))
      c:set_deadline(lowbit.now() + 5)
      c:write("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      local late_err, second_err = "unset", "unset"
      lowbit.go(function()
        asked:recv()
        late_err = kept.ctx:err()
        second_err = second_ctx:err()
      end)
      local resp = support.read_all(c)
      c:close()
      local _, n = resp:gsub("HTTP/1%.1 200 OK", "")
      assert.equal(2, n)
      assert.equal(context.CANCELED, late_err)
      assert.is_nil(second_err)
      assert.equal(context.CANCELED, second_ctx:err())
      assert.equal(0, context._children(srv.base_ctx))
      srv:close()
    end)
  end)

  it("sends the body of one write, of several, and of writes past the buffer whole, on one connection", function()
    run(function()
      local big = string.rep("b", 5000)
      local srv, ln = support.http_server{ handler = function(w, r)
        local p = r.url.path
        if p == "/one" then w:write("<html>one")
        elseif p == "/two" then w:write("ab"); w:write("cd"); w:write("")
        elseif p == "/past" then w:write("<html>x"); w:write(big)
        elseif p == "/flush" then w:write("a"); w:write("b"); w:flush(); w:write("c")
        end
      end }
      local c = assert(net.dial(nil, ln:addr()))
      c:set_deadline(lowbit.now() + 5)
      c:write("GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n" ..
        "HEAD /two HTTP/1.1\r\nHost: a\r\n\r\nGET /past HTTP/1.1\r\nHost: a\r\n\r\n" ..
        "GET /flush HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      local resp = support.read_all(c)
      c:close()
      local heads, bodies, pos = {}, {}, 1
      while pos <= #resp do
        local e = assert(resp:find("\r\n\r\n", pos, true))
        local head = resp:sub(pos, e + 1)
        pos = e + 4
        local cl = head:match("\r\nContent%-Length: (%d+)\r\n")
        local body
        if #heads == 2 then body = "" -- HEAD
        elseif cl then body = resp:sub(pos, pos + tonumber(cl) - 1); pos = pos + tonumber(cl)
        else
          assert.matches("\r\nTransfer%-Encoding: chunked\r\n", head)
          local parts = {}
          while true do
            local le = assert(resp:find("\r\n", pos, true))
            local n = tonumber(resp:sub(pos, le - 1), 16)
            pos = le + 2
            if n == 0 then pos = pos + 2; break end
            parts[#parts + 1] = resp:sub(pos, pos + n - 1)
            pos = pos + n + 2
          end
          body = table.concat(parts)
        end
        heads[#heads + 1], bodies[#bodies + 1] = head, body
      end
      assert.equal(6, #heads)
      assert.same({ "<html>one", "abcd", "", "<html>x" .. big, "abc", "abcd" }, bodies)
      assert.matches("Content%-Type: text/html", heads[1])
      assert.matches("Content%-Length: 4\r\n", heads[3]) -- HEAD: the length of the body it would get
      assert.matches("Content%-Type: text/html", heads[4])
      srv:close()
    end)
  end)

  it("compiles the new-connection path: no closure made per connection or request", function()
    if not (jit and jit.status()) then return end
    local served = 0
    local bad = support.jit_aborts({ "lowbit/http/", "lowbit/context.lua" }, function()
      run(function()
        local srv, ln = support.http_server{ handler = function(w, r)
          served = served + 1
          local ctx = r.ctx -- (the request ctx is made: its path is covered too)
          w:header():set("Content-Type", "text/plain")
          w:write(ctx and "hello" or "")
        end }
        local addr = ln:addr()
        for _ = 1, 1500 do one_request(addr, "/") end
        srv:close()
      end)
    end, { reasons = { "NYI: bytecode 51" } })
    assert.equal(1500, served)
    assert.same({}, bad)
  end)
end)
