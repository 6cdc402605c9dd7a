-- The HTTP client against lowbit's server and against curl-checked
-- behaviour: keep-alive pooling, framing, timeouts, the retry rule.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local support = require "support"
local run = support.run

local function serve(handler, opts)
  opts = opts or {}
  opts.handler = handler
  local srv, ln = support.http_server(opts)
  return "http://" .. ln:addr(), srv
end

describe("http client", function()
  after_each(function() http.close_idle_connections() end)

  it("GETs a response with status, headers and a streaming body", function()
    run(function()
      local base, srv = serve(function(w, r)
        w:header():set("X-Path", r.url.path)
        w:header():set("X-Query", r.url:query():get("q") or "")
        w:write("hello")
      end)
      local resp = assert(http.get(base .. "/a%20b?q=1"))
      assert.equal(200, resp.status)
      assert.equal("OK", resp.status_text)
      assert.equal("/a b", resp.headers:get("x-path"))
      assert.equal("1", resp.headers:get("X-Query"))
      assert.equal("hello", resp:read_all())
      srv:close()
    end)
  end)

  it("POSTs string and streaming (chunked) bodies", function()
    run(function()
      local base, srv = serve(function(w, r)
        w:write(r.method .. " " .. tostring(r.content_length) .. " " .. r.body:read_all())
      end)
      local resp = assert(http.request{ method = "POST", url = base .. "/", body = "abc",
                                        headers = { ["Content-Type"] = "text/plain" } })
      assert.equal("POST 3 abc", resp:read_all())
      local reader = require("lowbit.http.request").string_body(string.rep("x", 100000))
      resp = assert(http.request{ method = "PUT", url = base .. "/", body = reader })
      assert.equal("PUT -1 " .. string.rep("x", 100000), resp:read_all())
      srv:close()
    end)
  end)

  it("reuses kept-alive connections", function()
    run(function()
      local conns = {}
      local base, srv = serve(function(w, r) conns[r.remote_addr] = true; w:write("x") end)
      for _ = 1, 5 do assert.equal("x", assert(http.get(base .. "/")):read_all()) end
      local n = 0
      for _ in pairs(conns) do n = n + 1 end
      assert.equal(1, n)
      assert.equal(1, http.close_idle_connections and require("lowbit.http.client").idle_count() or 1)
      srv:close()
    end)
  end)

  it("reads chunked and close-delimited responses, and HEAD bodies are empty", function()
    run(function()
      local base, srv = serve(function(w, r)
        w:write("part1;"); w:flush(); w:write("part2")
      end)
      assert.equal("part1;part2", assert(http.get(base .. "/")):read_all())
      local resp = assert(http.request{ method = "HEAD", url = base .. "/" })
      assert.equal("", resp:read_all())
      srv:close()
      -- close-delimited, from a raw server
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function()
        local c = ln:accept()
        c:read()
        c:write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close")
        c:close()
      end)
      assert.equal("until close", assert(http.get("http://" .. ln:addr() .. "/")):read_all())
      ln:close()
    end)
  end)

  it("times out and honours ctx", function()
    run(function()
      local base, srv = serve(function(w) lowbit.sleep(1); w:write("late") end)
      local t0 = lowbit.now()
      local resp, err = http.get(base .. "/", { timeout = 0.05 })
      assert.is_nil(resp)
      assert.is_true(errors.is(err, context.DEADLINE_EXCEEDED), tostring(err))
      assert.is_true(lowbit.now() - t0 < 0.9)
      local ctx, cancel = context.with_cancel(context.background())
      lowbit.go(function() lowbit.sleep(0.02); cancel() end)
      resp, err = http.get(base .. "/", { ctx = ctx })
      assert.is_nil(resp)
      assert.is_true(errors.is(err, context.CANCELED), tostring(err))
      srv:close()
    end)
  end)

  it("reports connection refused and malformed responses as errors", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      local addr = ln:addr()
      ln:close()
      local resp, err = http.get("http://" .. addr .. "/")
      assert.is_nil(resp)
      assert.is_true(errors.is(err, errors.sys("ECONNREFUSED")), tostring(err))
      ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() local c = ln:accept(); c:read(); c:write("NOT HTTP AT ALL\r\n\r\n"); c:close() end)
      resp, err = http.get("http://" .. ln:addr() .. "/")
      assert.is_nil(resp)
      assert.is_true(errors.is(err, http.BAD_RESPONSE), tostring(err))
      ln:close()
    end)
  end)

  -- A server that answers the first request on each connection, then
  -- closes without answering the second.
  local function one_shot_server()
    local ln = assert(net.listen("127.0.0.1:0"))
    local seen = { n = 0 }
    lowbit.go(function()
      while true do
        local c = ln:accept()
        if not c then return end
        lowbit.go(function()
          local buf = ""
          while not buf:find("\r\n\r\n") do
            local d = c:read(); if not d then return end; buf = buf .. d
          end
          seen.n = seen.n + 1
          seen[#seen + 1] = buf:match("^(%u+)")
          c:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
          -- read the next request, then hang up without answering it
          local d = c:read()
          if d then seen.n = seen.n + 1; seen[#seen + 1] = d:match("^(%u+)") end
          c:close()
        end)
      end
    end)
    return "http://" .. ln:addr(), ln, seen
  end

  it("re-sends an idempotent request once when a reused connection was closed", function()
    run(function()
      local base, ln, seen = one_shot_server()
      assert.equal("ok", assert(http.get(base .. "/")):read_all())
      local resp = assert(http.get(base .. "/"))
      assert.equal("ok", resp:read_all())
      assert.equal(3, seen.n) -- the lost GET and its retry both reached a server
      http.close_idle_connections()
      ln:close()
    end)
  end)

  it("never re-sends a non-idempotent request that may have reached the server", function()
    run(function()
      local base, ln, seen = one_shot_server()
      assert.equal("ok", assert(http.get(base .. "/")):read_all())
      local resp, err = http.request{ method = "POST", url = base .. "/", body = "charge card" }
      assert.is_nil(resp)
      assert.is_not_nil(err)
      assert.equal(2, seen.n)
      assert.same({ "GET", "POST" }, { seen[1], seen[2] })
      http.close_idle_connections()
      ln:close()
    end)
  end)

  it("rejects bad arguments and URLs", function()
    assert.has_error(function() http.get(42) end, "bad argument 'url' to http.get: string expected, got number")
    run(function()
      assert.has_error(function() http.request{ url = 5 } end)
      assert.has_error(function() http.request{ url = "http://x/", body = 42 } end)
      local r, err = http.get("ftp://example.com/")
      assert.is_nil(r)
      assert.matches("unsupported protocol scheme", tostring(err))
      r, err = http.get("http:///nohost")
      assert.is_nil(r)
      assert.matches("no host", tostring(err))
    end)
  end)
end)
