-- A browser chat: messages over WebSocket, joins and leaves over an SSE
-- feed, one page served by lowbit.
--
--   build/bin/lowbit examples/chat.lua 127.0.0.1:8085
--   open http://127.0.0.1:8085/ in two browser tabs
--
-- /        the page
-- /ws      WebSocket: text messages in, "name: text" broadcasts out
--          (the name comes from ?name=)
-- /events  SSE: `members` (current names, once), then `join` and `leave`
-- Each client has a bounded outbox drained by its own writer task, so a
-- slow browser only loses its own messages, never slows the others.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local muxx = require "lowbit.muxx"
local sse = require "lowbit.sse"
local topic = require "lowbit.topic"
local websockets = require "lowbit.websockets"

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>lowbit chat</title>
<style>body{font:15px system-ui;margin:2em;max-width:40em} #log{height:20em;overflow:auto;border:1px solid #ccc;padding:.5em}
#who{color:#666} .sys{color:#888;font-style:italic}</style></head>
<body><h1>lowbit chat</h1><div id="who">members: …</div><div id="log"></div>
<form id="f"><input id="msg" autocomplete="off" size="40" placeholder="say something"> <button>send</button></form>
<script>
var name = (location.hash.slice(1) || prompt("your name?") || "anon").slice(0, 20);
var log = document.getElementById("log"), who = document.getElementById("who"), members = {};
function line(text, cls) { var d = document.createElement("div"); d.textContent = text; if (cls) d.className = cls;
  log.appendChild(d); log.scrollTop = log.scrollHeight; }
function showMembers() { who.textContent = "members: " + Object.keys(members).sort().join(", "); }
var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?name=" + encodeURIComponent(name));
ws.onmessage = function (e) { line(e.data); };
ws.onclose = function () { line("disconnected", "sys"); };
var es = new EventSource("/events");
es.addEventListener("members", function (e) { members = {}; JSON.parse(e.data).forEach(function (n) { members[n] = 1; }); showMembers(); });
es.addEventListener("join", function (e) { members[e.data] = 1; showMembers(); line(e.data + " joined", "sys"); });
es.addEventListener("leave", function (e) { delete members[e.data]; showMembers(); line(e.data + " left", "sys"); });
document.getElementById("f").onsubmit = function (ev) { ev.preventDefault(); var m = document.getElementById("msg");
  if (m.value) ws.send(m.value); m.value = ""; };
</script></body></html>
]]

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
end

return function(ctx, addr)
  addr = addr or "127.0.0.1:8085"
  local clients = {}            -- outbox channel -> name
  local presence = topic.new()  -- { kind = "join" | "leave", name = ... }

  local function members()
    local names = {}
    for _, n in pairs(clients) do names[#names + 1] = json_string(n) end
    table.sort(names)
    return "[" .. table.concat(names, ",") .. "]"
  end

  local function broadcast(text)
    for outbox in pairs(clients) do outbox:try_send(text) end -- full: that client misses it
  end

  local m = muxx.new()
  m:handle_func("GET /{$}", function(w, r)
    w:header():set("Content-Type", "text/html; charset=utf-8")
    w:write(PAGE)
  end)

  m:handle_func("GET /ws", function(w, r)
    local name = (r.url:query():get("name") or "anon"):sub(1, 20)
    local c = websockets.accept(w, r)
    if not c then return end
    local outbox = lowbit.chan(64)
    local writer_done = lowbit.chan(1)
    lowbit.go(function()
      while true do
        local text = outbox:recv()
        if text == nil or not c:write_message(websockets.TEXT, text) then break end
      end
      writer_done:send(true)
    end)
    clients[outbox] = name
    presence:publish(ctx, { kind = "join", name = name })
    while true do
      local msg = c:read_message()
      if not msg then break end
      broadcast(name .. ": " .. msg)
    end
    clients[outbox] = nil
    outbox:close()
    writer_done:recv()
    c:close()
    presence:publish(ctx, { kind = "leave", name = name })
  end)

  m:handle_func("GET /events", function(w, r)
    local feed = lowbit.chan(64)
    local cancel = presence:subscribe(function(_, ev) feed:try_send(ev) end)
    local e = sse.new_emitter(w, { ctx = r.ctx })
    e:send{ name = "members", data = members() }
    while true do
      local i, ev = lowbit.select{ feed, r.ctx:done() }
      if i ~= 1 or not e:send{ name = ev.kind, data = ev.name } then break end
    end
    cancel()
  end)

  -- No write_timeout: the event stream and the WebSocket last (a hijacked
  -- conn leaves the server's deadlines; the handler keeps its own).
  local srv = http.server{ handler = m, read_header_timeout = 10, idle_timeout = 60 }
  lowbit.go(function() ctx:wait(); srv:shutdown(context.with_timeout(context.background(), 2)); srv:close() end)
  io.stderr:write("chat: open http://", addr, "/\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
