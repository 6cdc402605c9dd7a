-- WebSocket echo at /ws, one handler for both servers (the ngx benches):
--   build/bin/lowbit examples/serve.lua bench/ngx/ws_app.lua 127.0.0.1:18150
--   nginx: content_by_lua_block { require("lowbit.ngx").serve(require("ws_app")) }
-- The same loop as examples/ws_echo.lua (permessage-deflate when offered).
local websockets = require "lowbit.websockets"
local buffer = require "string.buffer"

return function(w, r)
  local c = websockets.accept(w, r, { read_limit = websockets.READ_LIMIT_LARGE })
  if not c then return end
  local buf = buffer.new()
  while true do
    buf:reset()
    local msg, op = c:read_message(buf)
    if not msg then break end
    if not c:write_message(op, buf) then break end
  end
end
