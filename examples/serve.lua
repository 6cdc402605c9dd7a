-- Serves the handler a Lua file returns (examples/app.lua) with lowbit's
-- own HTTP server; nginx serves the same file through lowbit.ngx.
--
--   build/bin/lowbit examples/serve.lua examples/app.lua 127.0.0.1:8080
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"

return function(ctx, file, addr)
  if type(file) ~= "string" then error("usage: lowbit examples/serve.lua app.lua [addr]", 0) end
  local handler = assert(dofile(file))
  local srv = http.server{ handler = handler, addr = addr or "127.0.0.1:8080" }
  local ln = assert(require("lowbit.net").listen(addr or "127.0.0.1:8080"))
  io.stderr:write("serve: ", file, " on ", ln:addr(), "\n")
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  local _, err = srv:serve(ln)
  if err ~= http.SERVER_CLOSED then error(err) end
end
