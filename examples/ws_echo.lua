-- A WebSocket echo server at /ws (permessage-deflate when the client offers
-- it); every other path serves a small page that talks to it.
--
--   build/bin/lowbit examples/ws_echo.lua 127.0.0.1:18110
--   then open http://127.0.0.1:18110/ in a browser, or use any client on
--   ws://127.0.0.1:18110/ws
--
-- Ctrl-C cancels the root context: the server stops and exits.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local websockets = require "lowbit.websockets"
local buffer = require "string.buffer"

local PAGE = [[<!doctype html><meta charset="utf-8"><title>ws_echo</title>
<input id="m" value="hello"> <button onclick="ws.send(m.value)">send</button><pre id="log"></pre>
<script>
const ws = new WebSocket("ws://" + location.host + "/ws");
ws.onmessage = (e) => { log.textContent += "echo: " + e.data + "\n"; };
</script>]]

local function echo(w, r)
  local c = websockets.accept(w, r, { read_limit = websockets.READ_LIMIT_LARGE })
  if not c then return end                      -- refused; the answer was written
  local buf = buffer.new()                       -- reused: no string per message
  while true do
    buf:reset()                                  -- (an idle connection gets its memory
    local msg, op = c:read_message(buf)          -- released by read_message)
    if not msg then break end                    -- closed (op is the error: .code, .reason)
    if not c:write_message(op, buf) then break end
  end
end

return function(ctx, addr)
  local srv = http.server{ handler = function(w, r)
    if r.url.path == "/ws" then return echo(w, r) end
    w:header():set("Content-Type", "text/html; charset=utf-8")
    w:write(PAGE)
  end, read_header_timeout = 10, idle_timeout = 60 } -- (no write_timeout: the WebSocket lasts)
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  io.stderr:write("ws_echo: listening on ", addr or "127.0.0.1:18110", "\n")
  local _, err = srv:listen_and_serve(addr or "127.0.0.1:18110")
  if err ~= http.SERVER_CLOSED then error(err) end -- the port is taken, say
end
