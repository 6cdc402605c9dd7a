-- The server side of bench/bigwrite.sh: GET /?mb=N answers N MB from one
-- w:write of a string made for the request (Content-Length set, as a file
-- download would); GET /pre answers the 100 MB string made at start
-- (when a third argument is given) (what
-- the write alone costs); GET /gc runs two full collections.
--   build/bin/lowbit bench/bigwrite/server.lua 127.0.0.1:18200
local context = require "lowbit.context"
local http = require "lowbit.http"

return function(ctx, addr, with_pre)
  local pre = with_pre and string.rep("0123456789abcdef", 100 * 65536)
  collectgarbage("collect") -- (string.rep's work buffer shrinks)
  local srv = http.server{
    handler = function(w, r)
      if r.url.path == "/gc" then
        collectgarbage("collect"); collectgarbage("collect")
        w:write(("%.0f KiB Lua heap\n"):format(collectgarbage("count")))
        return
      end
      if r.url.path == "/pre" then
        w:header():set("Content-Length", tostring(#pre))
        w:write(pre)
        return
      end
      local mb = tonumber(r.url:query():get("mb")) or 1
      local s = string.rep("0123456789abcdef", mb * 65536)
      w:header():set("Content-Length", tostring(#s))
      w:write(s)
    end,
    read_header_timeout = 10, idle_timeout = 120,
  }
  require("lowbit").go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 2))
    srv:close()
  end)
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
