-- Headless Chromium (driven by spec/support/cdp.lua) against one lowbit
-- server: a page that opens a WebSocket and an EventSource to it and
-- reports what it received.
local lowbit = require "lowbit"
local http = require "lowbit.http"
local sse = require "lowbit.sse"
local websockets = require "lowbit.websockets"
local cjson = require "cjson"
local support = require "support"
local cdp = require "support.cdp"
local run = support.run

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>lowbit ws + sse</title></head><body><pre id="log"></pre>
<script>
var got = { ws: [], sse: [] }, log = document.getElementById("log"), left = 2;
function show() { log.textContent = JSON.stringify(got); }
function finish() {
  if (--left > 0) return;
  fetch("/report", { method: "POST", body: JSON.stringify(got) })
    .then(function () { log.setAttribute("data-reported", "yes"); });
}
var ws = new WebSocket("ws://" + location.host + "/ws");
ws.onopen = function () { ws.send("ping from the browser"); ws.send(new Uint8Array([0, 1, 254, 255])); };
ws.onmessage = function (e) {
  if (typeof e.data === "string") { got.ws.push(e.data); }
  else { got.ws.push("binary"); }
  show();
  if (got.ws.length === 3) { ws.close(1000, "done"); finish(); }
};
var es = new EventSource("/events");
es.addEventListener("greet", function (e) { got.sse.push(e.type + ":" + e.lastEventId + ":" + e.data); show(); });
es.addEventListener("done", function (e) { got.sse.push("done"); show(); es.close(); finish(); });
</script></body></html>
]]

-- Serves handler (and POST /report) on a free port, opens its page "/" in
-- Chromium and returns the body of the page's POST /report (60 s at most;
-- a failure says what explain() returns). after(tab), when given, runs
-- before Chromium is stopped.
local function report_of(handler, explain, after)
  local report = lowbit.chan(1)
  local srv, ln = support.http_server{ handler = function(w, r)
    if r.url.path ~= "/report" then return handler(w, r) end
    report:try_send(r.body:read_all())
    w:write("ok")
  end }
  local got
  cdp.with_browser({ timeout = 60 }, function(b)
    local tab = b:new_tab("http://" .. ln:addr() .. "/")
    local ok, err = pcall(tab.receive, tab, report, "the page's report")
    if not ok then error(tostring(err) .. (explain and ("\n" .. explain()) or ""), 0) end
    got = err
    if after then after(tab) end
  end)
  srv:close()
  return got
end

describe("a browser page with a WebSocket and an EventSource", function()
  after_each(function() cdp.cleanup() end) -- a run cut short by the watchdog leaves no Chromium

  it("Chromium receives both streams from one lowbit server and reports them", function()
    run(function()
      local ws_got, close_code, ws_done = {}, nil, lowbit.chan(1)
      local got = report_of(function(w, r)
        local path = r.url.path
        if path == "/" then
          w:header():set("Content-Type", "text/html; charset=utf-8")
          w:write(PAGE)
        elseif path == "/ws" then
          local c = websockets.accept(w, r)
          if not c then return end
          c:write_message(websockets.TEXT, "welcome")
          while true do
            local msg, op = c:read_message()
            if not msg then close_code = op and op.code; ws_done:try_send(true); break end
            ws_got[#ws_got + 1] = msg
            c:write_message(op, op == websockets.TEXT and ("echo: " .. msg) or msg)
          end
        elseif path == "/events" then
          local e = sse.new_emitter(w)
          e:send{ name = "greet", id = "7", data = "hello from sse" }
          e:send{ name = "done", data = "bye" }
        else
          http.not_found(w, r)
        end
      end, function() return "the server got WebSocket messages " .. cjson.encode(ws_got) end,
      function(tab) tab:receive(ws_done, "the page's close frame", 10) end)
      local rep = cjson.decode(got)
      assert.same({ "welcome", "echo: ping from the browser", "binary" }, rep.ws)
      assert.same({ "greet:7:hello from sse", "done" }, rep.sse)
      assert.same({ "ping from the browser", "\0\1\254\255" }, ws_got)
      assert.equal(1000, close_code)
    end)
  end)
end)

-- A stencil page with hostile values in every context: Chromium must run
-- none of the injected script, and the page's own script must read every
-- value back exactly (escaping keeps the data, it only defuses it).
local STENCIL_PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>{{ v }}</title>
<script>var pwned = []; function pwn(n) { pwned.push(n); } var clicked = [];</script>
<style>p.c { color: {{ css }}; } p.d { font-family: "{{ v }}"; }</style>
</head><body>
<p id="text">{{ v }}</p>
<p id="qattr" title="{{ v }}">q</p>
<p id="sattr" title='{{ v }}'>s</p>
<p id="uattr" title={{ v }}>u</p>
<p id="uattr2" title={{ spaced }}>u2</p>
<a id="link" href="{{ jsurl }}">link</a>
<a id="query" href="/search?q={{ v }}">search</a>
<img id="img" src="{{ jsurl }}" alt="">
<button id="btn" onclick="clicked.push({{ v }})">b</button>
<p id="styled" style="color: {{ css }}">styled</p>
<textarea id="ta">{{ v }}</textarea>
{{ partial("echo", v) }}
<script>
var s1 = "{{ v }}", s2 = '{{ v }}', s3 = {{ v }}, obj = {{ obj }};
document.getElementById("link").click();
document.getElementById("btn").click();
setTimeout(function () {
  var r = {
    pwned: pwned, title: document.title, text: document.getElementById("text").textContent,
    qattr: document.getElementById("qattr").title, sattr: document.getElementById("sattr").title,
    uattr: document.getElementById("uattr").title, uattr2: document.getElementById("uattr2").title,
    link: document.getElementById("link").getAttribute("href"),
    query: new URL(document.getElementById("query").href).searchParams.get("q"),
    ta: document.getElementById("ta").value, echo: document.getElementById("echo").textContent,
    s1: s1, s2: s2, s3: s3, obj: obj, clicked: clicked,
    styled: getComputedStyle(document.getElementById("styled")).color
  };
  fetch("/report", { method: "POST", body: JSON.stringify(r) });
}, 300);
</script></body></html>]]

describe("a stencil page with hostile values", function()
  after_each(function() cdp.cleanup() end) -- a run cut short by the watchdog leaves no Chromium

  it("runs no injected script in Chromium and reads every value back", function()
    local stencil = require "lowbit.stencil"
    local hostile = "</script><script>pwn(1)</script>\"'><img src=x onerror=pwn(2)>" ..
      "</title></textarea></style><svg onload=pwn(3)> & \\ `${pwn(4)}` -->\226\128\168end"
    local e = stencil.new { views = { ["page.html"] = STENCIL_PAGE },
                            partials = { ["echo.html"] = '<p id="echo">{{ data }}</p>' } }
    run(function()
      local got = report_of(function(w, r)
        if r.url.path == "/" then
          w:header():set("Content-Type", "text/html; charset=utf-8")
          assert(e:render(w, "page", { v = hostile, spaced = "x onmouseover=pwn(5)", jsurl = "javascript:pwn(6)",
            css = "red;background:url(javascript:pwn(7))", obj = { k = hostile, n = { 1, 2 } } }))
        else
          http.not_found(w, r)
        end
      end)
      local rep = cjson.decode(got)
      assert.same({}, rep.pwned)
      for _, k in ipairs { "title", "text", "qattr", "sattr", "uattr", "query", "ta", "echo", "s1", "s2", "s3" } do
        assert.equal(hostile, rep[k], k)
      end
      assert.equal("x onmouseover=pwn(5)", rep.uattr2)
      assert.equal("#ZgotmplZ", rep.link)
      assert.same({ hostile }, rep.clicked)
      assert.same({ k = hostile, n = { 1, 2 } }, rep.obj)
      assert.equal("rgb(0, 0, 0)", rep.styled)
    end)
  end)
end)
