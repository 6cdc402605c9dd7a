-- One app, two servers: this file returns a handler, served unchanged by
-- lowbit's own server and by nginx.
--
--   build/bin/lowbit examples/serve.lua examples/app.lua 127.0.0.1:8080
--
--   # nginx.conf (see README, "Inside nginx"):
--   location / { content_by_lua_block {
--     require("lowbit.ngx").serve(require("app")) } }
--
--   curl http://127.0.0.1:8080/hello          --> hello world
--   curl http://127.0.0.1:8080/users/42       --> user 42
--   curl -i http://127.0.0.1:8080/a//b        --> 307 to /a/b
--   curl -i -X POST http://127.0.0.1:8080/hello --> 405, Allow: GET, HEAD
--   curl -i http://127.0.0.1:8080/teapot      --> 418 application/problem+json
local muxx = require "lowbit.muxx"
local pj = require "lowbit.problemjson"
local lowbit = require "lowbit"

local m = muxx.new()
m:handle_func("GET /hello", function(w, r)
  w:header():set("Content-Type", "text/plain; charset=utf-8")
  w:write("hello world\n")
end)
m:handle_func("GET /users/{id}", function(w, r) w:write("user " .. r:path_value("id") .. "\n") end)
m:handle_func("GET /files/{path...}", function(w, r) w:write("file " .. r:path_value("path") .. "\n") end)
m:handle_func("GET /a/b", function(w, r) w:write("a/b\n") end)
m:handle("GET /teapot", pj.new{ status = 418, detail = "short and stout" })
-- Tasks, channels and timers work the same under both servers.
m:handle_func("GET /tasks", function(w, r)
  local ch = lowbit.chan(0)
  lowbit.go(function() lowbit.sleep(0.01); ch:send("from a task") end)
  local i, v = lowbit.select{ ch, lowbit.after(5) }
  w:write(("case %d: %s\n"):format(i, tostring(v)))
end)
return m
