-- Hello world over HTTP/1.1.
--
--   build/bin/lowbit examples/hello.lua 127.0.0.1:8080
--   curl http://127.0.0.1:8080/        --> hello world
--
-- Ctrl-C shuts the server down gracefully: in-flight requests finish.
local http = require "lowbit.http"

return function(ctx, addr)
  addr = addr or "127.0.0.1:8080"
  local srv = http.server{
    handler = function(w, r)
      w:header():set("Content-Type", "text/plain; charset=utf-8")
      w:write("hello world\n")
    end,
    read_header_timeout = 10,
    idle_timeout = 60,
  }
  require("lowbit").go(function() ctx:wait(); srv:shutdown() end)
  io.stderr:write("hello: listening on ", addr, "\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
