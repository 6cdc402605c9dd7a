-- The chat of examples/chat.lua, shared by any number of processes (on one
-- host or many) through one Redis server: the WebSocket messages and the
-- joins and leaves go through lowbit.topic.redis bridges, the member list
-- is a Redis hash (name -> connections, over every process).
--
--   redis-server --port 6379 &
--   build/bin/lowbit examples/cluster_chat.lua 127.0.0.1:8085 127.0.0.1:6379 &
--   build/bin/lowbit examples/cluster_chat.lua 127.0.0.1:8086 127.0.0.1:6379 &
--   open http://127.0.0.1:8085/ and http://127.0.0.1:8086/: one room
--
-- (Under `lowbit -w 2` the workers of one port share the room the same way.)
-- /        the page
-- /ws      WebSocket: text messages in, "name: text" broadcasts out
-- /events  SSE: `members` (current names, once), then `join` and `leave`
-- After a Redis restart each process resubscribes by itself; messages sent
-- while it was away are lost (pub/sub), and the page is told nothing: a
-- chat can live with that (see the stream option of topic.redis for replay).
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local muxx = require "lowbit.muxx"
local sse = require "lowbit.sse"
local redis = require "lowbit.redis"
local bridge = require "lowbit.topic.redis"
local websockets = require "lowbit.websockets"

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>lowbit cluster chat</title>
<style>body{font:15px system-ui;margin:2em;max-width:40em} #log{height:20em;overflow:auto;border:1px solid #ccc;padding:.5em}
#who{color:#666} .sys{color:#888;font-style:italic}</style></head>
<body><h1>lowbit cluster chat</h1><div id="who">members: …</div><div id="log"></div>
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

return function(ctx, addr, raddr)
  addr = addr or "127.0.0.1:8085"
  raddr = raddr or "127.0.0.1:6379"
  local MEMBERS = "chat:{members}"
  local says = bridge.new{ redis = raddr, channel = "chat:says" }     -- "name: text"
  local presence = bridge.new{ redis = raddr, channel = "chat:presence" } -- "join name" / "leave name"
  lowbit.go(function() says:run(ctx) end)
  lowbit.go(function() presence:run(ctx) end)
  local clients = {}            -- outbox channel -> name (this process's)
  says:subscribe(function(_, m)
    if m.kind ~= "message" then return end
    for outbox in pairs(clients) do outbox:try_send(m.data) end -- full: that client misses it
  end)

  local function with_redis(fn)
    local c, err = redis.connect(raddr)
    if not c then return nil, err end
    local v, e = fn(c)
    if v == nil and e ~= nil then c:close() else c:release() end
    return v, e
  end

  local function members()
    local all = with_redis(function(c) return c:call("HGETALL", MEMBERS) end) or {}
    local names = {}
    for i = 1, #all, 2 do
      if tonumber(all[i + 1]) > 0 then names[#names + 1] = json_string(all[i]) end
    end
    table.sort(names)
    return "[" .. table.concat(names, ",") .. "]"
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
    with_redis(function(rc) return rc:call("HINCRBY", MEMBERS, name, 1) end)
    presence:publish(ctx, "join " .. name)
    while true do
      local msg = c:read_message()
      if not msg then break end
      says:publish(ctx, name .. ": " .. msg)
    end
    clients[outbox] = nil
    outbox:close()
    writer_done:recv()
    c:close()
    with_redis(function(rc)
      return rc:eval_script("if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end return 1",
        { MEMBERS }, { name })
    end)
    presence:publish(ctx, "leave " .. name)
  end)

  m:handle_func("GET /events", function(w, r)
    local feed = lowbit.chan(64)
    local cancel = presence:subscribe(function(_, ev)
      if ev.kind == "message" then feed:try_send(ev.data) end
    end)
    local e = sse.new_emitter(w, { ctx = r.ctx })
    e:send{ name = "members", data = members() }
    while true do
      local i, ev = lowbit.select{ feed, r.ctx:done() }
      if i ~= 1 then break end
      local kind, who = ev:match("^(%S+) (.*)$")
      if not e:send{ name = kind, data = who } then break end
    end
    cancel()
  end)

  local srv = http.server{ handler = m, read_header_timeout = 10, idle_timeout = 60 }
  lowbit.go(function() ctx:wait(); srv:shutdown(context.with_timeout(context.background(), 2)); srv:close() end)
  io.stderr:write("cluster chat: open http://", addr, "/ (redis ", raddr, ")\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
