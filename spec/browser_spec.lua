-- Headless Chromium against one lowbit server: a page that opens a
-- WebSocket and an EventSource to it and reports what it received.
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local sse = require "lowbit.sse"
local websockets = require "lowbit.websockets"
local support = require "support"
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

describe("a browser page with a WebSocket and an EventSource", function()
  it("Chromium receives both streams from one lowbit server and reports them", function()
    run(function()
      local report = lowbit.chan(1)
      local ws_got, close_code, ws_done = {}, nil, lowbit.chan(1)
      local srv = http.server{ handler = function(w, r)
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
        elseif path == "/report" then
          report:try_send(r.body:read_all())
          w:write("ok")
        else
          http.not_found(w, r)
        end
      end }
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function() srv:serve(ln) end)
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir) == 0)
      -- Chromium runs until the page has reported (or 60 s have passed), then
      -- it is stopped: no virtual-time budget that could end the page early.
      local stop, exited = lowbit.chan(1), lowbit.chan(1)
      lowbit.go(function()
        local code, _, errout = support.spawn("chromium", {
          "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--user-data-dir=" .. dir, "http://" .. ln:addr() .. "/" }, stop)
        exited:send{ code = code, errout = errout }
      end)
      local i, got = lowbit.select{ report, exited, lowbit.after(60) }
      if i == 1 then lowbit.select{ ws_done, lowbit.after(10) } end -- the page's close frame
      stop:try_send(true)
      local ended = i == 2 and got or exited:recv()
      os.execute("rm -rf '" .. dir .. "'")
      assert.equal(1, i, "Chromium did not report (" .. (i == 2 and "it exited with " .. tostring(ended.code) or "60 s")
        .. "); the server got WebSocket messages " .. require("cjson").encode(ws_got) .. "; stderr: " .. ended.errout)
      local cjson = require "cjson"
      local rep = cjson.decode(got)
      assert.same({ "welcome", "echo: ping from the browser", "binary" }, rep.ws)
      assert.same({ "greet:7:hello from sse", "done" }, rep.sse)
      assert.same({ "ping from the browser", "\0\1\254\255" }, ws_got)
      assert.equal(1000, close_code)
      srv:close()
    end)
  end)
end)
