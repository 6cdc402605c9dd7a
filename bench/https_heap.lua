-- Lua heap allocated per new HTTPS connection (handshake + one request,
-- `Connection: close`), with the GC stopped: what each connection costs the
-- collector. Started by bench/https_heap.sh, which drives it with wrk.
--   build/bin/lowbit bench/https_heap.lua ADDR CERT KEY WARM N
local lowbit = require "lowbit"
local http = require "lowbit.http"
local tls = require "lowbit.tls"

return function(ctx, addr, cert, key, warm, n)
  warm, n = tonumber(warm), tonumber(n)
  local cfg = assert(tls.server_config{ cert = cert, key = key, alpn = { "http/1.1" } })
  local served = 0
  local srv = http.server{
    tls = cfg,
    handler = function(w, r)
      served = served + 1
      w:header():set("Content-Type", "text/plain; charset=utf-8")
      w:write("hello world\n")
    end,
    read_header_timeout = 10, read_timeout = 30, write_timeout = 30, idle_timeout = 60,
  }
  lowbit.go(function()
    while served < warm do lowbit.sleep(0.01) end
    lowbit.sleep(0.2)
    collectgarbage(); collectgarbage()
    collectgarbage("stop")
    local k0, s0 = collectgarbage("count"), served
    io.stderr:write("heap: warm, counting\n")
    while served < s0 + n do lowbit.sleep(0.01) end
    lowbit.sleep(0.3) -- the last connections close
    local k1, s1 = collectgarbage("count"), served
    io.stdout:write(string.format("heap: %d connections, %.0f KB allocated, %.2f KB per connection\n",
      s1 - s0, k1 - k0, (k1 - k0) / (s1 - s0)))
    io.stdout:flush()
    collectgarbage("restart")
    srv:close()
  end)
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
