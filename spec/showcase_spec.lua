-- The showcase (examples/showcase) as a person and an attacker meet it: the
-- real host binary on a free port, every entry point fed hostile values,
-- then checked to be still serving with no Lua traceback on its stderr.
local cjson = require "cjson.safe"
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local net = require "lowbit.net"
local sse = require "lowbit.sse"
local websockets = require "lowbit.websockets"
local support = require "support"
local proc = require "support.proc"
local sh, run = support.sh, support.run

local MAIN = "examples/showcase/main.lua"
local EVIL_NAME = "<script>alert(1)</script>"
local EVIL_TEXT = "javascript:alert(1) <img src=x onerror=alert(2)> \"quoted\" & 'single'"

local read, q, sleep = proc.read, proc.quote, proc.sleep

-- Starts the app as a child process (support.proc) and waits for its
-- "showcase listening on" line(s). opts.env: { NAME = value }; opts.workers
-- = N: `lowbit -w N -l 127.0.0.1:0 main.lua` (no address argument).
-- Returns the process with app.base added, and app.stop(signal) -> exit
-- status, raising when it has not exited 20 s after the signal.
local function start(opts)
  opts = opts or {}
  local env = { SHOWCASE_STEP_SECONDS = "0.05" }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local cmd = opts.workers and { support.host, "-w", opts.workers, "-l", "127.0.0.1:0", MAIN }
    or { support.host, MAIN, "127.0.0.1:0" }
  local app = proc.start(cmd, { env = env, ready = function(p)
    local out = p.stdout()
    local _, n = out:gsub("showcase listening on ", "")
    return n >= (opts.workers or 1) and out:match("showcase listening on (http://[%d.]+:%d+)/")
  end })
  app.base = app.ready
  local stop = app.stop
  function app.stop(signal)
    local rc = stop(signal or "TERM", 20)
    if not rc then error("the app did not exit after SIG" .. (signal or "TERM") .. "; stderr:\n" .. app.stderr()) end
    return rc
  end
  return app
end

-- Runs fn(app) with a started app (start(opts)), stopped by pid afterwards
-- whatever happens; a failure carries its stderr.
local function with_app(opts, fn) return proc.using(start(opts), fn) end

-- curl with `args` (already quoted): status, content type, body, headers text.
local function fetch(args)
  local bodyf, headf = os.tmpname(), os.tmpname()
  local meta = sh(("curl -s -o %s -D %s -w '%%{http_code} %%{content_type}' %s"):format(bodyf, headf, args))
  local body, head = read(bodyf) or "", read(headf) or ""
  os.remove(bodyf)
  os.remove(headf)
  local code, ctype = meta:match("^(%d+) ?(.*)$")
  return tonumber(code), ctype, body, head
end

-- POSTs the exact bytes `body` to url (more curl arguments in `extra`).
local function post(url, body, ctype, extra)
  local f = support.tmpfile(body)
  local code, rtype, rbody, head = fetch(("-X POST --data-binary @%s -H %s %s %s")
    :format(f, q("Content-Type: " .. (ctype or "application/json")), extra or "", q(url)))
  os.remove(f)
  return code, rtype, rbody, head
end

local function assert_problem(status, code, ctype, body, what)
  assert.equal(status, code, what .. ": " .. tostring(body))
  assert.equal("application/problem+json", ctype, what)
  local p = cjson.decode(body)
  assert.is_table(p, what .. ": " .. tostring(body))
  assert.equal(status, p.status, what)
end

local function assert_page(status, data_page, code, ctype, body, what)
  assert.equal(status, code, what)
  assert.equal("text/html; charset=utf-8", ctype, what)
  assert.truthy(body:find('<main id="page" data-page="' .. data_page .. '">', 1, true), what .. ": " .. body)
end

local function ws_url(app) return (app.base:gsub("^http", "ws")) .. "/ws/chat" end

-- Reads feed events until one named `name` passes `pred(data)`; its data.
local function wait_event(feed, name, pred)
  for _ = 1, 200 do
    local ev = assert(feed:read())
    local d = cjson.decode(ev.data)
    if ev.name == name and (not pred or pred(d)) then return d, ev end
  end
  error("no " .. name .. " event")
end

describe("the showcase", function()
  local app
  lazy_setup(function() app = start{ env = { SHOWCASE_LINK_TTL = "2" } } end)
  lazy_teardown(function() if app then app.cleanup() end end)

  it("serves each page of the contract, with fingerprinted, compressed assets", function()
    local code, ctype, body, head = fetch(q(app.base .. "/"))
    assert_page(200, "home", code, ctype, body, "/")
    assert.matches("Content%-Security%-Policy: default%-src 'self'", head)
    assert.falsy(body:find("<script>", 1, true), "no inline script")
    assert.falsy(body:find("<style", 1, true), "no inline style")
    for _, path in ipairs({ "/board", "/jobs", "/downloads" }) do
      assert.truthy(body:find('<a href="' .. path .. '"', 1, true), path)
      local c, t, b = fetch(q(app.base .. path))
      assert_page(200, path:sub(2), c, t, b, path)
    end
    local _, _, board = fetch(q(app.base .. "/board"))
    for _, id in ipairs({ "chat-form", "chat-name", "chat-text", "chat-send", "chat-log", "events", "ws-state", "sse-state" }) do
      assert.truthy(board:find('id="' .. id .. '"', 1, true), id)
    end
    local css = body:match('href="(/assets/css/site%.%x+%.css)"')
    local js = body:match('src="(/assets/app%.%x+%.js)"')
    assert.truthy(css, body)
    assert.truthy(js, body)
    local c, t, b, head = fetch("-H 'Accept-Encoding: br' " .. q(app.base .. js))
    assert.equal(200, c)
    assert.equal("text/javascript; charset=utf-8", t)
    assert.matches("[Cc]ontent%-[Ee]ncoding: br", head)
    assert.matches("immutable", head)
    c, _, b = fetch(q(app.base .. js))
    assert.truthy(b:find("textContent", 1, true))
    assert.falsy(b:find("innerHTML", 1, true))
    assert.falsy(b:find("\n  ", 1, true), "minified")
    c, _, _, head = fetch("-H 'Accept-Encoding: gzip' " .. q(app.base .. css))
    assert.equal(200, c)
    assert.matches("[Cc]ontent%-[Ee]ncoding: gzip", head)
    -- The bundle's sources are private; unknown pages are the 404 page.
    assert.equal(403, (fetch(q(app.base .. "/assets/_js/board.js"))))
    code, ctype, body = fetch(q(app.base .. "/nope/<script>x"))
    assert_page(404, "not-found", code, ctype, body, "unknown page")
    assert.falsy(body:find("<script>x", 1, true))
  end)

  it("sends a chat message over the WebSocket to a second tab and the SSE feed, escaped in the page", function()
    run(function()
      local ctx, cancel = context.with_timeout(context.background(), 20)
      local feed = sse.connect(app.base .. "/events", { ctx = ctx, max_retries = 0 })
      assert.equal("hello", assert(feed:read()).name)
      local a = assert(websockets.dial(ws_url(app), { ctx = ctx }))
      local b = assert(websockets.dial(ws_url(app), { ctx = ctx }))
      wait_event(feed, "chat.join", function(d) return d.online == 2 end)
      assert(a:write_message(websockets.TEXT, cjson.encode{ name = EVIL_NAME, text = EVIL_TEXT }))
      for _, c in ipairs({ b, a }) do -- every tab, the sender too
        c:set_read_deadline(lowbit.now() + 10)
        local data, op = assert(c:read_message())
        assert.equal(websockets.TEXT, op)
        local m = cjson.decode(data)
        assert.equal(EVIL_NAME, m.name)
        assert.equal(EVIL_TEXT, m.text)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT", m.at)
      end
      local d = wait_event(feed, "chat.message")
      assert.equal(EVIL_NAME, d.name)
      assert.equal(EVIL_TEXT, d.text)
      a:close()
      wait_event(feed, "chat.leave")
      b:close()
      feed:close()
      cancel()
    end)
    local _, _, page = fetch(q(app.base .. "/board"))
    assert.truthy(page:find("&lt;script&gt;alert(1)&lt;/script&gt;", 1, true), page)
    assert.truthy(page:find("javascript:alert(1) &lt;img src=x onerror=alert(2)&gt; &#34;quoted&#34; &amp; &#39;single&#39;", 1, true))
    assert.falsy(page:find("<script>alert", 1, true))
    assert.falsy(page:find("<img src=x", 1, true))
    local code, ctype, body = fetch(q(app.base .. "/api/messages"))
    assert.equal(200, code)
    assert.equal("application/json", ctype)
    local list = cjson.decode(body).messages
    assert.equal(EVIL_NAME, list[#list].name)
  end)

  it("runs a job started through the API, its progress arriving on /events until it completes", function()
    run(function()
      local ctx, cancel = context.with_timeout(context.background(), 20)
      local feed = sse.connect(app.base .. "/events", { ctx = ctx, max_retries = 0 })
      assert.equal("hello", assert(feed:read()).name)
      local resp = assert(http.request{ method = "POST", url = app.base .. "/api/jobs", body = '{"steps":4}',
                                        headers = { ["Content-Type"] = "application/json" }, ctx = ctx })
      assert.equal(202, resp.status)
      local id = cjson.decode((resp:read_all())).id
      assert.equal("/api/jobs/" .. id, resp.headers:get("Location"))
      local mine = function(d) return d.id == id end
      assert.equal("waiting", wait_event(feed, "job.queued", mine).state)
      local seen = {}
      while true do
        local ev = assert(feed:read())
        local d = cjson.decode(ev.data)
        if d.id == id then
          seen[#seen + 1] = ev.name .. " " .. d.progress .. " " .. d.state
          if ev.name ~= "job.progress" then break end
        end
      end
      assert.same({ "job.progress 0 active", "job.progress 25 active", "job.progress 50 active",
                    "job.progress 75 active", "job.completed 100 completed" }, seen)
      resp = assert(http.get(app.base .. "/api/jobs/" .. id, { ctx = ctx }))
      local job = cjson.decode((resp:read_all()))
      assert.equal("completed", job.state)
      assert.equal(100, job.progress)
      feed:close()
      cancel()
    end)
    -- The jobs page lists it, as the contract's markup.
    local _, _, page = fetch(q(app.base .. "/jobs"))
    assert.matches('<li class="job" data%-job%-id="[%w-]+">', page)
    assert.matches('<span class="job%-progress">100%%</span> <span class="job%-state">completed</span>', page)
  end)

  it("answers every bad API input with problem+json", function()
    local api = app.base .. "/api"
    local cases = {
      { "/messages", "{bad", 400 }, { "/messages", "[1,2]", 400 }, { "/messages", '"text"', 400 },
      { "/messages", "null", 400 }, { "/messages", "", 400 }, { "/messages", ("["):rep(5000), 400 },
      { "/messages", '{"name":5,"text":"x"}', 422 }, { "/messages", '{"name":"a"}', 422 },
      { "/messages", '{"name":"","text":"x"}', 422 }, { "/messages", '{"name":"   ","text":"x"}', 422 },
      { "/messages", cjson.encode{ name = ("n"):rep(33), text = "x" }, 422 },
      { "/messages", cjson.encode{ name = "a", text = ("t"):rep(501) }, 422 },
      { "/messages", '{"name":"a\\u0000b","text":"x"}', 422 }, { "/messages", '{"name":"a\\u001bb","text":"x"}', 422 },
      { "/messages", '{"name":"\255\254","text":"x"}', 422 }, { "/messages", '{"name":{"$gt":""},"text":"x"}', 422 },
      { "/jobs", '{"steps":0}', 422 }, { "/jobs", '{"steps":21}', 422 }, { "/jobs", '{"steps":2.5}', 422 },
      { "/jobs", '{"steps":"5"}', 422 }, { "/jobs", '{"steps":-1}', 422 }, { "/jobs", '{"steps":1e400}', 422 },
      { "/jobs", '{"steps":NaN}', 422 }, { "/jobs", '{"steps":null}', 422 }, { "/jobs", "{}", 422 },
      { "/jobs", '{"steps":[5]}', 422 }, { "/jobs", '{"steps":true}', 422 },
      { "/links", '{"file":"../../etc/passwd"}', 422 }, { "/links", '{"file":"/etc/passwd"}', 422 },
      { "/links", '{"file":null}', 422 }, { "/links", '{"file":"report.txt/../../x"}', 422 },
      { "/links", '{"file":".hidden"}', 422 },
    }
    for _, c in ipairs(cases) do
      local code, ctype, body = post(api .. c[1], c[2])
      assert_problem(c[3], code, ctype, body, c[1] .. " " .. c[2]:sub(1, 60))
    end
    -- Too large: by Content-Length and chunked.
    local big = cjson.encode{ name = "a", text = ("x"):rep(20000) }
    local code, ctype, body = post(api .. "/messages", big)
    assert_problem(413, code, ctype, body, "large body")
    local f = support.tmpfile(big)
    code, ctype, body = fetch(("-X POST -H 'Transfer-Encoding: chunked' --data-binary @%s %s"):format(f, q(api .. "/messages")))
    os.remove(f)
    assert_problem(413, code, ctype, body, "large chunked body")
    code, ctype, body = post(api .. "/messages", ("x"):rep(3 * 1024 * 1024))
    assert.is_true(code == 413, "3 MiB: " .. tostring(code))
    -- Unknown routes and methods under /api are 404 problems, not text.
    for _, args in ipairs({ "/nope", "/", "", "/messages/1", "/jobs/", "/jobs/nope", "/jobs/..%2f..%2fetc",
                            "/<script>", "/health/x" }) do
      code, ctype, body = fetch(q(api .. args))
      assert_problem(404, code, ctype, body, "GET /api" .. args) -- JSON, whatever the path holds
    end
    code, ctype, body = fetch("-X DELETE " .. q(api .. "/messages"))
    assert_problem(404, code, ctype, body, "DELETE /api/messages")
    code, ctype, body = fetch("-X PUT " .. q(api .. "/health"))
    assert_problem(404, code, ctype, body, "PUT /api/health")
    for _, s in ipairs({ "abc", "nan", "11", "-1", "inf", "0x" }) do
      code, ctype, body = fetch(q(api .. "/slow?seconds=" .. s))
      assert_problem(422, code, ctype, body, "slow " .. s)
    end
    -- Links are signed for the Host the client sent, whatever it is.
    for _, h in ipairs({ "a b", 'evil"><script>', "[::1", "x:99999", "", ("h"):rep(300) }) do
      local c1 = fetch("-H " .. q("Host: " .. h) .. " " .. q(app.base .. "/downloads"))
      local c2, t2 = post(app.base .. "/api/links", '{"file":"report.txt"}', nil, "-H " .. q("Host: " .. h))
      assert.is_true(c1 == 200 or c1 == 400, h .. ": " .. tostring(c1))
      assert.is_true(c2 == 200 or c2 == 400, h .. ": " .. tostring(c2) .. " " .. tostring(t2))
    end
    -- A hostile request id is replaced; a plain one is echoed.
    local _, _, _, head = fetch("-H 'X-Request-Id: <script>alert(1)</script>' " .. q(api .. "/health"))
    assert.falsy(head:find("<script>", 1, true))
    assert.matches("X%-Request%-Id: [%w._-]+", head)
    _, _, _, head = fetch("-H 'X-Request-Id: abc-123' " .. q(api .. "/health"))
    assert.matches("X%-Request%-Id: abc%-123\r\n", head)
    assert.matches("X%-Content%-Type%-Options: nosniff\r\n", head)
  end)

  it("answers bad form input with a friendly page", function()
    local form = "application/x-www-form-urlencoded"
    local cases = {
      { "/board", "name=&text=hi", 422 }, { "/board", "name=ann", 422 }, { "/board", "", 422 },
      { "/board", "name=" .. ("a"):rep(40) .. "&text=hi", 422 }, { "/board", "name=a%00b&text=hi", 422 },
      { "/board", "name=a&text=%ff%fe", 422 }, { "/board", "name=%zz&text=%", 422 },
      { "/jobs", "steps=abc", 422 }, { "/jobs", "steps=0", 422 }, { "/jobs", "steps=99999999999999999999", 422 },
      { "/jobs", "steps=", 422 }, { "/jobs", "steps=1.5", 422 },
    }
    for _, c in ipairs(cases) do
      local code, ctype, body = post(app.base .. c[1], c[2], form)
      assert_page(c[3], "problem", code, ctype, body, c[1] .. " " .. c[2])
    end
    local code, ctype, body = post(app.base .. "/board", "name=a&text=" .. ("x"):rep(9000), form)
    assert_page(413, "problem", code, ctype, body, "large form")
    -- Good forms redirect back; the message shows escaped.
    local head
    code, _, _, head = post(app.base .. "/board", "name=%3Cb%3Eform%3C%2Fb%3E&text=javascript%3Aalert(3)", form)
    assert.equal(303, code)
    assert.matches("Location: /board\r\n", head)
    code = post(app.base .. "/jobs", "steps=2", form)
    assert.equal(303, code)
    local _, _, page = fetch(q(app.base .. "/board"))
    assert.truthy(page:find('<span class="who">&lt;b&gt;form&lt;/b&gt;</span> <span class="text">javascript:alert(3)</span>', 1, true))
  end)

  it("serves files only through valid signed links: 403 and 410 pages otherwise", function()
    local _, _, page = fetch(q(app.base .. "/downloads"))
    local link = page:match('<a class="download" href="([^"]+)">report%.txt</a>'):gsub("&amp;", "&")
    local expired = page:match('<a id="expired%-link" href="([^"]+)"'):gsub("&amp;", "&")
    local code, ctype, body, head = fetch(q(app.base .. link))
    assert.equal(200, code)
    assert.equal("text/plain; charset=utf-8", ctype)
    assert.matches('Content%-Disposition: attachment; filename="report%.txt"', head)
    assert.matches("signed link", body)
    code, ctype, body = fetch(q(app.base .. expired))
    assert_page(410, "link-expired", code, ctype, body, "expired link")
    local bad = {
      -- the signature's first digit changed (to 1 when it is 0: "sig=0" alone would leave one in 16 links valid)
      link:gsub("sig=(%x)", function(d) return d == "0" and "sig=1" or "sig=0" end), link:gsub("report", "notes"), link:gsub("exp=(%d+)", function(e) return "exp=" .. e + 1 end),
      link .. "&extra=1", "/files/report.txt", "/files/report.txt?exp=99999999999&sig=abc", "/files/report.txt?sig=<script>",
      "/files/..%2F..%2Fetc%2Fpasswd", "/files/%2e%2e%2fmain.lua" .. link:match("%?.*$"), "/files/.hidden?exp=1&sig=x",
    }
    for _, l in ipairs(bad) do
      code, ctype, body = fetch(q(app.base .. l))
      assert_page(403, "link-invalid", code, ctype, body, l)
    end
    -- ../ in the path is cleaned by the router first: a redirect, then no such page.
    code, ctype, body = fetch("--path-as-is -L " .. q(app.base .. "/files/../../etc/passwd"))
    assert_page(404, "not-found", code, ctype, body, "dot segments")
    -- An API link (valid 2 s here, SHOWCASE_LINK_TTL) works, then expires.
    code, ctype, body = post(app.base .. "/api/links", '{"file":"notes.md"}')
    assert.equal(200, code)
    local url = cjson.decode(body).url
    assert.matches("^http://127%.0%.0%.1:%d+/files/notes%.md%?exp=%d+&sig=%x+$", url)
    assert.equal(200, (fetch(q(url))))
    sleep(3.2)
    code, ctype, body = fetch(q(url))
    assert_page(410, "link-expired", code, ctype, body, "API link after its ttl")
  end)

  it("refuses bad WebSocket frames and handshakes without raising", function()
    run(function()
      local ctx, cancel = context.with_timeout(context.background(), 20)
      local c = assert(websockets.dial(ws_url(app), { ctx = ctx }))
      c:set_read_deadline(lowbit.now() + 10)
      for _, junk in ipairs({ "not json", "[]", "{}", '{"name":"","text":"x"}', '{"name":"a","text":""}',
                              cjson.encode{ name = ("n"):rep(33), text = "x" }, '{"name":"a\\u0007","text":"x"}' }) do
        assert(c:write_message(websockets.TEXT, junk))
        local reply = cjson.decode((assert(c:read_message())))
        assert.is_string(reply.error, junk)
      end
      assert(c:write_message(websockets.BINARY, "\0\1\2"))
      local data, err = c:read_message()
      assert.is_nil(data)
      assert.equal(1003, err.code)
      -- A message over the 4 KiB limit fails the connection (1009).
      c = assert(websockets.dial(ws_url(app), { ctx = ctx }))
      c:set_read_deadline(lowbit.now() + 10)
      c:write_message(websockets.TEXT, cjson.encode{ name = "a", text = ("x"):rep(5000) })
      data, err = c:read_message()
      assert.is_nil(data)
      assert.equal(1009, err.code)
      -- Garbage after a good handshake: the server fails the connection.
      local port = app.base:match(":(%d+)$")
      local conn = assert(net.dial(ctx, "127.0.0.1:" .. port))
      conn:set_deadline(lowbit.now() + 10)
      assert(conn:write("GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
      assert(conn:write("\255\255\255\255\255\255\255\255\255\255garbage that is no frame"))
      local got = support.read_all(conn)
      assert.matches("^HTTP/1%.1 101", got)
      conn:close()
      -- Handshakes: another site's page, a plain GET, a bad version.
      local resp = assert(http.request{ url = app.base .. "/ws/chat", ctx = ctx, headers = {
        Upgrade = "websocket", Connection = "Upgrade", ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ==",
        ["Sec-WebSocket-Version"] = "13", Origin = "http://evil.example" } })
      assert.equal(403, resp.status)
      resp:read_all()
      resp = assert(http.get(app.base .. "/ws/chat", { ctx = ctx }))
      assert.is_true(resp.status >= 400 and resp.status < 500)
      resp:read_all()
      cancel()
    end)
    -- A hostile Last-Event-ID is ignored: the stream starts as usual.
    local out = sh("curl -sN --max-time 1 -H 'Last-Event-ID: ../../<script>' " .. q(app.base .. "/events"))
    assert.matches("event: hello", out)
    -- Nothing is replayed: live events (a job of an earlier test may still
    -- be reporting) carry ids past the first ones, never id 1 or 2.
    assert.falsy(out:find("\nid: [12]\n"), out)
    -- One it issued replays what came after it (the earlier tests made events).
    out = sh("curl -sN --max-time 1 -H 'Last-Event-ID: 2' " .. q(app.base .. "/events"))
    assert.matches("event: hello.-\nid: 3\n.-\nid: 4\n", out)
    assert.falsy(out:find("\nid: 2\n", 1, true), out)
  end)

  it("is still serving after all that, with no Lua traceback on its stderr", function()
    local code, _, body = fetch(q(app.base .. "/api/health"))
    assert.equal(200, code)
    assert.is_true(cjson.decode(body).ok)
    local err = app.stderr()
    assert.falsy(err:find("traceback", 1, true), err)
    assert.falsy(err:find("raised", 1, true), err)
    assert.equal(0, app.stop("TERM"))
  end)
end)

-- Found by the review of the showcase (hostile clients): one client must not
-- flood everyone's chat, a full job queue is said as such, and names cannot
-- hide or reorder text. Its own app: the flood empties 127.0.0.1's bucket
-- (another client comes from 127.0.0.2), and jobs of 20 long steps keep
-- the queue full.
describe("the showcase against a flooding client", function()
  local app
  lazy_setup(function() app = start{ env = { SHOWCASE_STEP_SECONDS = "5" } } end)
  lazy_teardown(function() if app then app.cleanup() end end)

  it("rate-limits chat messages per client: the flooder gets errors and 429s, other clients still post", function()
    run(function()
      local ctx, cancel = context.with_timeout(context.background(), 30)
      local tab = assert(websockets.dial(ws_url(app), { ctx = ctx }))
      tab:set_read_deadline(lowbit.now() + 20)
      lowbit.go(function()
        for i = 1, 200 do
          if not tab:write_message(websockets.TEXT, cjson.encode{ name = "flood", text = "spam " .. i }) then break end
        end
      end)
      local too_fast
      for _ = 1, 400 do
        local data = assert(tab:read_message())
        local reply = cjson.decode(data)
        if reply.error then
          too_fast = reply.error
          break
        end
      end
      assert.matches("too many messages", too_fast)
      tab:close()
      cancel()
    end)
    -- The same client through the API and the form: 429 as well.
    local code, ctype, body, head = post(app.base .. "/api/messages", '{"name":"flood","text":"more"}')
    assert_problem(429, code, ctype, body, "API post past the rate")
    assert.matches("Retry%-After: %d+", head)
    code, ctype, body = post(app.base .. "/board", "name=flood&text=more", "application/x-www-form-urlencoded")
    assert_page(429, "problem", code, ctype, body, "form post past the rate")
    -- Another client is not held back by the flooder.
    code, ctype, body = post(app.base .. "/api/messages", '{"name":"calm","text":"hello"}', nil,
      "--interface 127.0.0.2")
    assert.equal(201, code, body)
  end)

  it("keeps the feed's replay when one client opens and closes WebSockets in a loop", function()
    local code, _, body = post(app.base .. "/api/messages", '{"name":"calm","text":"still in the replay"}', nil,
      "--interface 127.0.0.4")
    assert.equal(201, code, body)
    run(function()
      local ctx, cancel = context.with_timeout(context.background(), 60)
      for _ = 1, 300 do
        local c = assert(websockets.dial(ws_url(app), { ctx = ctx }))
        c:close()
      end
      cancel()
    end)
    local out = sh("curl -sN --max-time 1 -H 'Last-Event-ID: 0' " .. q(app.base .. "/events"))
    assert.truthy(out:find("still in the replay", 1, true), out:sub(1, 2000))
  end)

  it("limits the live streams one client holds open (429), not those of others", function()
    local port = app.base:match(":(%d+)$")
    run(function()
      local ctx, cancel = context.with_timeout(context.background(), 60)
      local held = {}
      for i = 1, 32 do
        local conn = assert(net.dial(ctx, "127.0.0.1:" .. port))
        conn:set_deadline(lowbit.now() + 20)
        assert(conn:write("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        local got = ""
        repeat got = got .. assert(conn:read()) until got:find("event: hello", 1, true)
        assert.matches("^HTTP/1%.1 200", got, nil, false, "stream " .. i)
        held[i] = conn
      end
      local resp = assert(http.get(app.base .. "/events", { ctx = ctx }))
      assert.equal(429, resp.status)
      resp:read_all()
      local _, err = websockets.dial(ws_url(app), { ctx = ctx })
      assert.truthy(err)
      for _, conn in ipairs(held) do conn:close() end
      -- Once they are closed (the server sees it soon), the client may open more.
      local status
      for _ = 1, 200 do
        resp = assert(http.request{ url = app.base .. "/ws/chat", ctx = ctx, headers = { Connection = "close" } })
        status = resp.status
        resp:read_all()
        if status ~= 429 then break end
        lowbit.sleep(0.05)
      end
      assert.equal(400, status) -- a plain GET of /ws/chat: no handshake, but counted no more
      cancel()
    end)
    local out = sh("curl -sN --max-time 1 --interface 127.0.0.8 " .. q(app.base .. "/events"))
    assert.matches("event: hello", out)
  end)

  it("limits the jobs one client starts, and says 429 (not 'store unreachable') when the queue is full", function()
    local form = "application/x-www-form-urlencoded"
    local code, ctype, body
    for i = 1, 11 do
      code, ctype, body = post(app.base .. "/api/jobs", '{"steps":20}', nil, "--interface 127.0.0.6")
      if i <= 10 then assert.equal(202, code, body) end
    end
    assert_problem(429, code, ctype, body, "API job past the client's rate")
    assert.matches("too many jobs from this client", body)
    code, ctype, body = post(app.base .. "/jobs", "steps=20", form, "--interface 127.0.0.6")
    assert_page(429, "problem", code, ctype, body, "form job past the client's rate")
    assert.matches("You started many jobs", body)
    -- Many clients fill the queue (100 waiting, 4 running jobs of 100 s).
    local full
    for a = 1, 30 do
      for _ = 1, 10 do
        code, ctype, body = post(app.base .. "/api/jobs", '{"steps":20}', nil, "--interface 127.0.1." .. a)
        if code ~= 202 then break end
      end
      if code ~= 202 then full = true break end
    end
    assert.is_true(full)
    assert_problem(429, code, ctype, body, "API job past the queue")
    assert.matches("too many jobs are waiting", body)
    code, ctype, body = post(app.base .. "/jobs", "steps=20", form, "--interface 127.0.2.1")
    assert_page(429, "problem", code, ctype, body, "form job past the queue")
    assert.matches("Too many jobs are waiting", body)
  end)

  it("refuses names that hide or reorder text, and UTF-8 that is not", function()
    for _, bad in ipairs({ "\226\128\174admin", "\226\128\139", "\194\160", "a\226\129\166b",
                           "\237\160\128", "\224\128\175", "\244\144\128\128" }) do
      local code, ctype, body = post(app.base .. "/api/messages", cjson.encode{ name = bad, text = "x" }, nil,
        "--interface 127.0.0.3")
      assert_problem(422, code, ctype, body, "name " .. bad)
      assert.equal("#/name", cjson.decode(body).errors[1].pointer)
    end
    local code, ctype, body = post(app.base .. "/api/messages",
      cjson.encode{ name = "a", text = "evil \226\128\174 txt.exe" }, nil, "--interface 127.0.0.3")
    assert_problem(422, code, ctype, body, "text with a right-to-left override")
    -- Right-to-left text and marks in a message are fine.
    code, _, body = post(app.base .. "/api/messages",
      cjson.encode{ name = "\215\169\215\156\215\149\215\157", text = "\215\169\215\156\215\149\215\157 \226\128\143ok" },
      nil, "--interface 127.0.0.3")
    assert.equal(201, code, body)
  end)

  it("refuses posts that another site's page makes its visitors send (forms, fetch with a text body)", function()
    local ip = "--interface 127.0.0.5 "
    local form = "application/x-www-form-urlencoded"
    for _, hdr in ipairs({ "Origin: http://evil.example", "Sec-Fetch-Site: cross-site", "Sec-Fetch-Site: same-site" }) do
      local h = "-H " .. q(hdr)
      local code, ctype, body = post(app.base .. "/api/messages", '{"name":"csrf","text":"x"}', "text/plain", ip .. h)
      assert_problem(403, code, ctype, body, "API message, " .. hdr)
      code, ctype, body = post(app.base .. "/api/jobs", '{"steps":1}', "text/plain", ip .. h)
      assert_problem(403, code, ctype, body, "API job, " .. hdr)
      code, ctype, body = post(app.base .. "/board", "name=csrf&text=x", form, ip .. h)
      assert_page(403, "problem", code, ctype, body, "form message, " .. hdr)
      code, ctype, body = post(app.base .. "/jobs", "steps=1", form, ip .. h)
      assert_page(403, "problem", code, ctype, body, "form job, " .. hdr)
    end
    local _, _, list = fetch(q(app.base .. "/api/messages"))
    assert.falsy(list:find("csrf", 1, true), list)
    -- This site's own pages (and tools, which send neither header) are served.
    local port = app.base:match(":(%d+)$")
    local code = post(app.base .. "/api/messages", '{"name":"own","text":"x"}', nil,
      ip .. "-H " .. q("Origin: http://127.0.0.1:" .. port))
    assert.equal(201, code)
    code = post(app.base .. "/board", "name=own&text=y", form, ip .. "-H 'Sec-Fetch-Site: same-origin'")
    assert.equal(303, code)
  end)

  it("never redirects to another site: a cleaned path starting /\\ goes out escaped", function()
    for _, path in ipairs({ "/assets/../\\evil.example", "/board/../\\evil.example/", "/a/./../\\\\evil.example" }) do
      local code, _, _, head = fetch("--path-as-is " .. q(app.base .. path))
      assert.equal(307, code, path)
      local loc = head:match("\r\nLocation: ([^\r]*)")
      assert.truthy(loc, head)
      assert.falsy(loc:find("\\", 1, true), loc)
      assert.matches("^/%%5C", loc)
    end
  end)

  it("refuses a bad SHOWCASE_LINK_TTL with a sentence, not a traceback or a silent default", function()
    for _, ttl in ipairs({ "-1", "0", "abc", "1e400" }) do
      local ok, err = pcall(start, { env = { SHOWCASE_LINK_TTL = ttl } })
      assert.is_false(ok, ttl)
      assert.matches("showcase: SHOWCASE_LINK_TTL must be a whole number of seconds", err, 1, true)
      assert.falsy(tostring(err):find("traceback", 1, true), err)
    end
  end)

  it("is still serving, with no Lua traceback", function()
    assert.equal(200, (fetch(q(app.base .. "/api/health"))))
    local err = app.stderr()
    assert.falsy(err:find("traceback", 1, true), err)
  end)
end)

describe("the showcase's graceful shutdown", function()
  it("lets an in-flight request finish after SIGTERM, closes the live streams and exits 0", function()
    with_app(nil, function(app)
      run(function()
        local ctx, cancel = context.with_timeout(context.background(), 20)
        local tab = assert(websockets.dial(ws_url(app), { ctx = ctx }))
        local feed = sse.connect(app.base .. "/events", { ctx = ctx, max_retries = 0 })
        assert.equal("hello", assert(feed:read()).name)
        local done = lowbit.chan(1)
        lowbit.go(function()
          done:send({ support.spawn("curl", { "-s", "-w", " %{http_code}", app.base .. "/api/slow?seconds=1.5" }, 20) })
        end)
        lowbit.sleep(0.5) -- the request is in flight
        sh("kill -TERM " .. app.pid)
        local res = done:recv()
        assert.equal(0, res[1])
        assert.equal('{"slept":1.5}\n 200', res[2])
        tab:set_read_deadline(lowbit.now() + 10)
        local data, werr = tab:read_message()
        assert.is_nil(data)
        assert.equal(1001, werr.code) -- going away
        local ev, ferr
        repeat ev, ferr = feed:read() until not ev or ev.name ~= "chat.join"
        assert.is_nil(ev, "the stream ended")
        assert.truthy(ferr)
        feed:close()
        cancel()
      end)
      for _ = 1, 200 do
        if app.status() then break end
        sleep(0.05)
      end
      assert.equal(0, app.status(), app.stderr())
      assert.falsy(app.stderr():find("traceback", 1, true))
    end)
  end)
end)

describe("the showcase under lowbit -w 2", function()
  it("listens on the master's address with no argument and says that state is per worker", function()
    with_app({ workers = 2 }, function(app)
      local master = app.stderr():match("lowbit: master %d+: 2 worker%(s%) on ([%d.:]+)")
      assert.equal("http://" .. master, app.base) -- the workers adopted the master's sockets
      local seen = {}
      for _ = 1, 40 do
        local _, _, body = fetch(q(app.base .. "/api/health"))
        seen[cjson.decode(body).worker] = true
      end
      assert.same({ [1] = true, [2] = true }, seen)
      local _, _, page = fetch(q(app.base .. "/"))
      assert.matches("Worker %d of 2: chat, events and jobs are per worker here", page)
      assert.matches("So is the key of download links", page)
      assert.equal(0, app.stop("TERM"))
    end)
  end)
end)

describe("the showcase on Redis (REDIS_URL)", function()
  local redis
  lazy_setup(function() redis = assert(support.start_redis()) end)
  lazy_teardown(function()
    if redis then
      redis.stop()
      sh("rm -rf " .. redis.dir)
    end
  end)

  it("carries chat, events and jobs from one process to another", function()
    local env = { REDIS_URL = "redis://" .. redis.addr, SHOWCASE_SECRET = "spec-secret" }
    with_app({ env = env }, function(a) with_app({ env = env }, function(b)
      run(function()
        local ctx, cancel = context.with_timeout(context.background(), 30)
        local tab = assert(websockets.dial(ws_url(a), { ctx = ctx }))
        local feed = sse.connect(a.base .. "/events", { ctx = ctx, max_retries = 0 })
        local hello = cjson.decode(assert(feed:read()).data)
        assert.is_true(hello.shared)
        -- A message posted to process B reaches a tab and the feed of A
        -- (the bridge may still be subscribing: post until it arrives).
        tab:set_read_deadline(lowbit.now() + 15)
        local got
        lowbit.go(function()
          for i = 1, 50 do
            if got then break end
            assert(http.request{ method = "POST", url = b.base .. "/api/messages", ctx = ctx,
              body = cjson.encode{ name = "from b", text = "hello " .. i } }):read_all()
            lowbit.sleep(0.2)
          end
        end)
        got = cjson.decode((assert(tab:read_message())))
        assert.equal("from b", got.name)
        wait_event(feed, "chat.message", function(d) return d.name == "from b" end)
        -- A job started on B runs somewhere; A's feed sees it complete and
        -- A answers its status.
        local resp = assert(http.request{ method = "POST", url = b.base .. "/api/jobs", body = '{"steps":2}', ctx = ctx })
        assert.equal(202, resp.status)
        local id = cjson.decode((resp:read_all())).id
        wait_event(feed, "job.completed", function(d) return d.id == id end)
        resp = assert(http.get(a.base .. "/api/jobs/" .. id, { ctx = ctx }))
        assert.equal("completed", cjson.decode((resp:read_all())).state)
        tab:close()
        feed:close()
        cancel()
      end)
      assert.equal(0, a.stop("TERM"))
      assert.equal(0, b.stop("TERM"))
      for _, p in ipairs({ a, b }) do assert.falsy(p.stderr():find("traceback", 1, true), p.stderr()) end
    end) end)
  end)

  it("answers 503 (problem+json, no internals) while its Redis is down, and still serves pages", function()
    local own = assert(support.start_redis())
    local ok, err = pcall(with_app, { env = { REDIS_URL = "redis://" .. own.addr } }, function(app)
      own.stop()
      for _, c in ipairs({ { "/api/messages", '{"name":"a","text":"b"}' }, { "/api/jobs", '{"steps":1}' } }) do
        local code, ctype, body = post(app.base .. c[1], c[2])
        assert_problem(503, code, ctype, body, c[1])
        assert.falsy(body:find(tostring(own.port), 1, true), body)
      end
      local code, ctype, body = fetch(q(app.base .. "/api/health"))
      assert.equal(503, code)
      assert.is_false(cjson.decode(body).ok)
      code, ctype, body = post(app.base .. "/board", "name=a&text=b", "application/x-www-form-urlencoded")
      assert_page(503, "problem", code, ctype, body, "form while Redis is down")
      code, ctype, body = fetch(q(app.base .. "/board"))
      assert_page(200, "board", code, ctype, body, "board while Redis is down")
      run(function()
        local tab = assert(websockets.dial(ws_url(app)))
        tab:set_read_deadline(lowbit.now() + 10)
        assert(tab:write_message(websockets.TEXT, '{"name":"a","text":"b"}'))
        assert.matches("not sent", cjson.decode((assert(tab:read_message()))).error)
        tab:close()
      end)
      assert.equal(0, app.stop("TERM"))
      assert.falsy(app.stderr():find("traceback", 1, true), app.stderr())
    end)
    own.stop()
    sh("rm -rf " .. own.dir)
    assert(ok, err)
  end)

  it("under -w 2 shares chat and the link key between the workers", function()
    with_app({ workers = 2, env = { REDIS_URL = "redis://" .. redis.addr } }, function(app)
      local _, _, page = fetch(q(app.base .. "/downloads"))
      local link = page:match('<a class="download" href="([^"]+)">report%.txt</a>'):gsub("&amp;", "&")
      for _ = 1, 20 do assert.equal(200, (fetch(q(app.base .. link)))) end -- either worker took it
      run(function()
        local ctx, cancel = context.with_timeout(context.background(), 30)
        local tab = assert(websockets.dial(ws_url(app), { ctx = ctx }))
        tab:set_read_deadline(lowbit.now() + 20)
        local ready = {} -- both workers' Redis subscriptions are up
        for _ = 1, 200 do
          local resp = assert(http.get(app.base .. "/api/health", { ctx = ctx, headers = { Connection = "close" } }))
          local h = cjson.decode((resp:read_all()))
          if h.ok then ready[h.worker] = true end
          if ready[1] and ready[2] then break end
          lowbit.sleep(0.02)
        end
        assert.same({ true, true }, ready)
        local want = 0
        for i = 1, 10 do -- new connections: both workers take some
          local resp = assert(http.request{ method = "POST", url = app.base .. "/api/messages", ctx = ctx,
            headers = { Connection = "close" }, body = cjson.encode{ name = "w", text = tostring(i) } })
          assert.equal(201, resp.status)
          resp:read_all()
          want = want + 1
        end
        local got = {}
        for _ = 1, want do got[#got + 1] = cjson.decode((assert(tab:read_message()))).text end
        table.sort(got, function(x, y) return tonumber(x) < tonumber(y) end)
        assert.same({ "1", "2", "3", "4", "5", "6", "7", "8", "9", "10" }, got)
        tab:close()
        cancel()
      end)
      assert.equal(0, app.stop("TERM"))
      assert.falsy(app.stderr():find("traceback", 1, true), app.stderr())
    end)
  end)
end)

describe("make example REDIS=1", function()
  it("serves the showcase with a private redis-server, stopped by pid when the app exits", function()
    local dir = support.tmpdir()
    local port = support.free_port()
    -- setsid: its own process group, which gets the Ctrl-C.
    sh(("cd %s && (setsid make example REDIS=1 ADDR=127.0.0.1:%d >%s/out 2>%s/err & echo $! >%s/pid) & true")
      :format(support.root, port, dir, dir, dir))
    local out, redis_pid, base = "", nil, nil
    for _ = 1, 600 do -- make may have to build first
      out = read(dir .. "/out") or ""
      redis_pid = out:match("redis%-server %(pid (%d+)%)")
      base = out:match("showcase listening on (http://[%d.:]+)/")
      if base then break end
      sleep(0.05)
    end
    local pgid = (read(dir .. "/pid") or ""):match("%d+")
    local ok, err = pcall(function()
      assert.truthy(base, out .. (read(dir .. "/err") or ""))
      assert.matches("example: starting examples/showcase on 127%.0%.0%.1:" .. port, out)
      local _, _, body = fetch(q(base .. "/api/health"))
      assert.is_true(cjson.decode(body).shared)
      sh("kill -INT -" .. pgid) -- Ctrl-C
      local gone
      for _ = 1, 200 do
        local _, rc = sh("kill -0 " .. redis_pid .. " 2>/dev/null")
        local _, rc2 = sh("kill -0 -" .. pgid .. " 2>/dev/null")
        gone = rc ~= 0 and rc2 ~= 0
        if gone then break end
        sleep(0.05)
      end
      assert.is_true(gone, "redis-server or the app still runs")
      assert.falsy((read(dir .. "/err") or ""):find("traceback", 1, true))
    end)
    if pgid then sh("kill -9 -" .. pgid .. " 2>/dev/null") end
    if redis_pid then sh("kill -9 " .. redis_pid .. " 2>/dev/null") end
    sh("rm -rf " .. dir)
    assert(ok, err)
  end)

  it("says how to pick another address when its port is taken, and stops redis-server", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0")) -- the port is taken
      local addr = ln:addr()
      local out, rc = sh(("cd %s && make example REDIS=1 ADDR=%s 2>&1"):format(support.root, addr))
      ln:close()
      assert.are_not.equal(0, rc)
      assert.matches("EADDRINUSE", out)
      assert.matches("example: the showcase exited with status 1; another address: make example ADDR=", out)
      assert.falsy(out:find("example: open", 1, true), out)
      local redis_pid = out:match("redis%-server %(pid (%d+)%)")
      assert.truthy(redis_pid, out)
      local _, alive = sh("kill -0 " .. redis_pid .. " 2>/dev/null")
      assert.are_not.equal(0, alive, "redis-server still runs")
    end)
  end)
end)
