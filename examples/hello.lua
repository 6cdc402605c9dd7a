-- Hello world over HTTP/1.1.
--
--   build/bin/lowbit examples/hello.lua 127.0.0.1:8080
--   curl http://127.0.0.1:8080/        --> hello world
--
-- With a certificate and key it serves HTTPS instead:
--   build/bin/lowbit examples/hello.lua 127.0.0.1:8443 cert.pem key.pem
--
-- Ctrl-C shuts the server down gracefully: in-flight requests get 5 s.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"

return function(ctx, addr, cert, key)
  addr = addr or "127.0.0.1:8080"
  local tls_cfg = cert and assert(require("lowbit.tls").server_config{ cert = cert, key = key, alpn = { "http/1.1" } })
  local srv = http.server{
    tls = tls_cfg,
    handler = function(w, r)
      w:header():set("Content-Type", "text/plain; charset=utf-8")
      w:write("hello world\n")
    end,
    -- Timeouts, so that a slow or silent client cannot hold a connection
    -- (and its memory) forever: copy them along with the example.
    read_header_timeout = 10, -- the request head
    read_timeout = 30,        -- head and body
    write_timeout = 30,       -- the response, from the end of the head
    idle_timeout = 60,        -- between keep-alive requests
  }
  -- Ctrl-C: in-flight requests get 5 s to finish (their ctx is cancelled,
  -- and a write to a client that stopped reading ends), then the rest is cut.
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  io.stderr:write("hello: listening on ", addr, "\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
