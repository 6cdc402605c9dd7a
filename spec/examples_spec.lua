-- The examples named in the README run as documented.
local uv = require "luv"
local support = require "support"
local proc = require "support.proc"
local sh, host = support.sh, support.host

-- Runs `lowbit example 127.0.0.1:port` in the background until it
-- answers, calls fn(base_url), then sends SIGINT and returns "exited" (or
-- "running" when it still runs 5 s later) and the seconds it took to exit.
-- The example is stopped by pid whatever happens.
local function with_server(example, fn)
  local base = "http://127.0.0.1:" .. support.free_port()
  local state, secs
  proc.with({ host, example, base:match("//(.*)") }, { ready = function() return proc.answers(base .. "/") end },
    function(p)
      fn(base)
      local t0 = uv.hrtime()
      state = p.stop("INT", 5) and "exited" or "running"
      secs = (uv.hrtime() - t0) / 1e9
    end)
  return state, secs
end

describe("examples", function()
  it("hello.lua serves hello world and stops on Ctrl-C", function()
    local state = with_server("examples/hello.lua", function(base)
      assert.equal("hello world\n", (sh("curl -sf " .. base .. "/")))
    end)
    assert.equal("exited", state)
  end)

  it("hello_muxx.lua routes and stops on Ctrl-C", function()
    local state = with_server("examples/hello_muxx.lua", function(base)
      assert.equal("hello world\n", (sh("curl -sf " .. base .. "/")))
      assert.equal("user 7\n", (sh("curl -sf " .. base .. "/users/7")))
      assert.equal("404", (sh("curl -s -o /dev/null -w '%{http_code}' " .. base .. "/nope")))
    end)
    assert.equal("exited", state)
  end)

  it("supervisor.lua serves the cache and Ctrl-C shuts both services down within the timeout", function()
    local state, secs = with_server("examples/supervisor.lua", function(base)
      local body
      for _ = 1, 40 do
        body = sh("curl -s " .. base .. "/quote")
        if body:find("quote #") then break end
        sh("sleep 0.05")
      end
      assert.matches("^quote #%d+ %(", body)
    end)
    assert.equal("exited", state)
    assert.is_true(secs < 4, "took " .. tostring(secs) .. " s")
  end)

  it("device.lua answers discovery and speaks its framed protocol (--demo)", function()
    local out, rc = sh(("cd %s && %s examples/device.lua 127.0.0.1:%d --demo 2>/dev/null"):format(support.root, host, support.free_port()))
    assert.equal(0, rc)
    assert.matches("discovered: device demo%-1 tcp 127%.0%.0%.1:%d+", out)
    assert.matches("reply command 1: demo%-1 temperature=[%d.]+ reading=1\n", out)
    assert.matches("reply command 2: ping\n", out)
    assert.matches("reply command 255: unknown command 9\n", out)
  end)

  it("signed_download.lua issues links that serve the file, and refuses tampered ones", function()
    local state = with_server("examples/signed_download.lua", function(base)
      local link = sh("curl -sf '" .. base .. "/links?file=report.txt'"):gsub("%s+$", "")
      assert.matches("/files/report%.txt%?exp=%d+&sig=%x+$", link)
      assert.equal("quarterly report: all numbers went up\n", (sh("curl -sf '" .. link .. "'")))
      local tampered = link:gsub("report%.txt", "notes.md")
      assert.equal("403", (sh("curl -s -o /dev/null -w '%{http_code}' '" .. tampered .. "'")))
      local unsigned = base .. "/files/report.txt"
      assert.equal("403", (sh("curl -s -o /dev/null -w '%{http_code}' '" .. unsigned .. "'")))
      local problem = sh("curl -s '" .. base .. "/links?file=nope'")
      assert.matches('"status":404', problem)
      -- Query keys named like url.Values methods are plain keys (issue 10).
      link = sh("curl -sf '" .. base .. "/links?get=1&set=2&file=notes.md'"):gsub("%s+$", "")
      assert.matches("/files/notes%.md%?exp=%d+&sig=%x+$", link)
      assert.equal("403", (sh("curl -s -o /dev/null -w '%{http_code}' '" .. link .. "&get=1'")))
    end)
    assert.equal("exited", state)
  end)

  it("chat.lua broadcasts WebSocket messages and feeds joins and leaves over SSE", function()
    local state = with_server("examples/chat.lua", function(base)
      assert.matches("<title>lowbit chat</title>", (sh("curl -sf " .. base .. "/")))
      local script = support.tmpfile(([[
local lowbit = require "lowbit"
local http = require "lowbit.http"
local sse = require "lowbit.sse"
local websockets = require "lowbit.websockets"
local base = "%s"
local resp = assert(http.get(base .. "/events"))
local feed = sse.new_reader(resp.body)
local function ev() local e = assert(feed:read()); return e.name .. "=" .. e.data end
print(ev())                                          -- members=[]
local ann = assert(websockets.dial(base:gsub("^http", "ws") .. "/ws?name=ann"))
print(ev())                                          -- join=ann
local bob = assert(websockets.dial(base:gsub("^http", "ws") .. "/ws?name=bob"))
print(ev())                                          -- join=bob
ann:write_message(websockets.TEXT, "hi bob")
print((bob:read_message()))                          -- ann: hi bob
print((ann:read_message()))                          -- ann: hi bob (echoed to all)
ann:close()
print(ev())                                          -- leave=ann
bob:close()
print(ev())                                          -- leave=bob
resp.body:close()
]]):format(base), ".lua")
      local out, rc = sh(host .. " " .. script .. " 2>&1")
      os.remove(script)
      assert.equal(0, rc, out)
      assert.equal("members=[]\njoin=ann\njoin=bob\nann: hi bob\nann: hi bob\nleave=ann\nleave=bob\n", out)
    end)
    assert.equal("exited", state)
  end)

  it("ws_echo.lua echoes WebSocket messages at /ws", function()
    local state = with_server("examples/ws_echo.lua", function(base)
      local script = support.tmpfile(([[
local websockets = require "lowbit.websockets"
local c = assert(websockets.dial("%s/ws"))
c:write_message(websockets.TEXT, "echo me")
c:write_message(websockets.BINARY, string.rep("b", 70000))
local a, op1 = c:read_message()
local b, op2 = c:read_message()
print(a, op1 == websockets.TEXT, #b, op2 == websockets.BINARY)
c:close()
]]):format(base:gsub("^http", "ws")), ".lua")
      local out, rc = sh(host .. " " .. script .. " 2>&1")
      os.remove(script)
      assert.equal(0, rc, out)
      assert.equal("echo me\ttrue\t70000\ttrue\n", out)
    end)
    assert.equal("exited", state)
  end)
end)

describe("examples on a port that is already taken", function()
  -- Each server example exits 1 at once and names the address and the
  -- cause; none keeps running with nothing to serve.
  for _, ex in ipairs({ "hello", "hello_muxx", "ws_echo", "chat", "sse", "signed_download", "api", "showcase/main" }) do
    it(ex .. ".lua exits 1 and says the address is in use", function()
      local state = with_server("examples/hello.lua", function(base)
        local addr = base:gsub("^http://", "")
        local out, rc = sh(("cd %s && timeout 10 %s examples/%s.lua %s 2>&1"):format(support.root, host, ex, addr))
        assert.equal(1, rc, out)
        assert.matches("listen tcp " .. addr:gsub("%.", "%%.") .. ": EADDRINUSE: address already in use", out)
      end)
      assert.equal("exited", state)
    end)
  end
  it("pages.lua serves a layout with partials, a minimal layout and an HTMX fragment route", function()
    local state = with_server("examples/pages.lua", function(base)
      local home = sh("curl -sf '" .. base .. "/?msg=%3Cb%3Ehi%3C/b%3E'")
      assert.truthy(home:find("<title>Home - lowbit pages</title>", 1, true), home)
      assert.truthy(home:find('<a href="/" class="current">Home</a>', 1, true), home)
      assert.truthy(home:find('<div class="alert" role="status">&lt;b&gt;hi&lt;/b&gt;</div>', 1, true), home)
      local items = sh("curl -sf '" .. base .. "/items?q=c%22%3Cx%3E'")
      assert.truthy(items:find('value="c&#34;&lt;x&gt;"', 1, true), items)
      assert.truthy(items:find('var initialQuery = "c\\"\\u003cx\\u003e";', 1, true), items)
      local rows = sh("curl -sf '" .. base .. "/items/rows?q=ca'")
      assert.is_nil(rows:find("<html>", 1, true))
      assert.truthy(rows:find('<a href="/items?q=Candles%20%3cscented%3e">Candles &lt;scented&gt;</a>', 1, true), rows)
      assert.truthy(rows:find("<td>$9.99</td>", 1, true), rows)
      local full = sh("curl -sf '" .. base .. "/items?q=ca'")
      assert.truthy(full:find(rows, 1, true), "the fragment is the same rows the full page holds")
      local about = sh("curl -sf " .. base .. "/about")
      assert.truthy(about:find("<title>About</title></head><body><h1>About</h1>", 1, true), about)
    end)
    assert.equal("exited", state)
  end)
end)
