-- The browser side of examples/chat.lua and examples/cluster_chat.lua: the
-- page, and the HTTP handlers that connect browsers to a room. The room
-- (passed by each example) says how messages and presence travel: inside
-- one process, or through Redis.
--
--   local hall = chat_room.new(room)
--   hall:deliver(text)      a message to this process's browsers
--   hall:names()            the names of this process's browsers
--   hall:serve(ctx, addr)   serves until ctx ends
--
-- room: title; say(text) (a message for every member: the room brings it
-- back to hall:deliver in each process); join(name), leave(name);
-- members() -> array of names; watch(fn(kind, name)) -> cancel (kind is
-- "join" or "leave").
--
-- /        the page
-- /ws      WebSocket: text messages in, "name: text" broadcasts out
--          (the name comes from ?name=)
-- /events  SSE: `members` (current names, once), then `join` and `leave`
-- Each browser has a bounded outbox drained by its own writer task, so a
-- slow browser only loses its own messages, never slows the others.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local muxx = require "lowbit.muxx"
local sse = require "lowbit.sse"
local websockets = require "lowbit.websockets"

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>$TITLE</title>
<style>body{font:15px system-ui;margin:2em;max-width:40em} #log{height:20em;overflow:auto;border:1px solid #ccc;padding:.5em}
#who{color:#666} .sys{color:#888;font-style:italic}</style></head>
<body><h1>$TITLE</h1><div id="who">members: …</div><div id="log"></div>
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

local Hall = {}
Hall.__index = Hall

local M = {}

function M.new(room)
  return setmetatable({ room = room, clients = {} }, Hall) -- clients: outbox channel -> name
end

function Hall:deliver(text)
  for outbox in pairs(self.clients) do outbox:try_send(text) end -- full: that browser misses it
end

function Hall:names()
  local names = {}
  for _, n in pairs(self.clients) do names[#names + 1] = n end
  return names
end

function Hall:serve(ctx, addr)
  local room, clients = self.room, self.clients
  local page = PAGE:gsub("%$TITLE", room.title)

  local m = muxx.new()
  m:handle_func("GET /{$}", function(w)
    w:header():set("Content-Type", "text/html; charset=utf-8")
    w:write(page)
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
    room.join(name)
    while true do
      local msg = c:read_message()
      if not msg then break end
      room.say(name .. ": " .. msg)
    end
    clients[outbox] = nil
    outbox:close()
    writer_done:recv()
    c:close()
    room.leave(name)
  end)

  m:handle_func("GET /events", function(w, r)
    local feed = lowbit.chan(64)
    local cancel = room.watch(function(kind, name) feed:try_send({ kind, name }) end)
    local e = sse.new_emitter(w, { ctx = r.ctx })
    local names = room.members()
    for i, n in ipairs(names) do names[i] = json_string(n) end
    table.sort(names)
    e:send{ name = "members", data = "[" .. table.concat(names, ",") .. "]" }
    while true do
      local i, ev = lowbit.select{ feed, r.ctx:done() }
      if i ~= 1 or not e:send{ name = ev[1], data = ev[2] } then break end
    end
    cancel()
  end)

  -- No write_timeout: the event stream and the WebSocket last (a hijacked
  -- conn leaves the server's deadlines; the handler keeps its own).
  local srv = http.server{ handler = m, read_header_timeout = 10, idle_timeout = 60 }
  lowbit.go(function() ctx:wait(); srv:shutdown(context.with_timeout(context.background(), 2)); srv:close() end)
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end

return M
