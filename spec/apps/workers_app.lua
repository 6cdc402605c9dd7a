-- The app the workers specs run under `lowbit -w N`: answers with its pid
-- (and worker index), /slow after 0.5 s. Drains on SIGTERM as
-- examples/hello.lua does.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local uv = require "luv"
local host = require "lowbit.host"

return function(ctx, addr)
  local pid = uv.os_getpid()
  local wk = host.worker
  local srv = http.server{
    handler = function(w, r)
      if r.url.path == "/slow" then lowbit.sleep(0.5) end
      w:header():set("Content-Type", "text/plain")
      w:write(("pid=%d worker=%s/%s\n"):format(pid, wk and wk.index or "-", wk and wk.count or "-"))
    end,
    read_header_timeout = 2,
  }
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
