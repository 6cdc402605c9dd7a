-- Hello world through the muxx router (to see the router's cost next to
-- examples/hello.lua, which uses a bare handler).
--
--   build/bin/lowbit examples/hello_muxx.lua 127.0.0.1:8080
--   curl http://127.0.0.1:8080/            --> hello world
--   curl http://127.0.0.1:8080/users/42    --> user 42
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local muxx = require "lowbit.muxx"

return function(ctx, addr)
  addr = addr or "127.0.0.1:8080"
  local m = muxx.new()
  m:handle_func("GET /{$}", function(w, r)
    w:header():set("Content-Type", "text/plain; charset=utf-8")
    w:write("hello world\n")
  end)
  m:handle_func("GET /users/{id}", function(w, r) w:write("user " .. r:path_value("id") .. "\n") end)
  m:handle_func("POST /users", function(w, r) w:write_header(201) end)
  m:handle_func("GET /static/", function(w, r) w:write("static " .. r.url.path .. "\n") end)
  local srv = http.server{ handler = m, read_header_timeout = 10, read_timeout = 30, write_timeout = 30,
                           idle_timeout = 60 }
  -- Ctrl-C: in-flight requests get 5 s to finish (their ctx is cancelled,
  -- and a write to a client that stopped reading ends), then the rest is cut.
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  io.stderr:write("hello_muxx: listening on ", addr, "\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
