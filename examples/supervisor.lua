-- An HTTP server and a cache refresher under one rungroup supervisor.
--
--   build/bin/lowbit examples/supervisor.lua 127.0.0.1:8083
--   curl http://127.0.0.1:8083/quote      --> the cached value and its age
--
-- The refresher rebuilds the cache every 2 s (an interval service); the
-- HTTP server is restarted if it ever fails. Ctrl-C cancels the root
-- context: the group shuts both down within its shutdown timeout and the
-- process exits.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local log = require "lowbit.log"
local net = require "lowbit.net"
local rungroup = require "lowbit.rungroup"

return function(root, addr)
  addr = addr or "127.0.0.1:8083"
  local cache = { value = nil, at = 0, version = 0 }

  local function refresh(ctx)
    -- Stands in for a slow upstream call.
    local ok, err = lowbit.sleep_ctx(ctx, 0.05)
    if not ok then return nil, err end
    cache.version = cache.version + 1
    cache.value = ("quote #%d"):format(cache.version)
    cache.at = lowbit.now()
  end

  local web = {
    name = "http",
    run = function(_, ctx)
      local ln, err = net.listen(addr)
      if not ln then return nil, err end
      local srv = http.server{
        handler = function(w, r)
          w:header():set("Content-Type", "text/plain; charset=utf-8")
          if not cache.value then w:write_header(503); w:write("warming up\n"); return end
          w:write(("%s (%.1f s old)\n"):format(cache.value, lowbit.now() - cache.at))
        end,
        read_header_timeout = 5, read_timeout = 10, write_timeout = 10, idle_timeout = 30,
      }
      -- Within the group's shutdown_timeout: 2 s for in-flight requests, then cut.
      lowbit.go(function()
        ctx:wait()
        srv:shutdown(context.with_timeout(context.background(), 2))
        srv:close()
      end)
      io.stderr:write("supervisor: serving on ", ln:addr(), "\n")
      local _, serr = srv:serve(ln)
      if serr == http.SERVER_CLOSED then return end
      return nil, serr
    end,
  }

  local g = rungroup.new{
    shutdown_timeout = 3,
    on_event = function(e) log.write("supervisor: " .. e.type .. " " .. tostring(e.service)) end,
  }
  g:add(web, { name = "http" })
  g:add(rungroup.interval_service(2, refresh), { name = "refresher" })
  local err = g:run(root)
  io.stderr:write("supervisor: stopped", err and (": " .. tostring(err)) or "", "\n")
end
