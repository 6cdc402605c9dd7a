-- Static assets with lowbit.webassets: cached, minified, compressed,
-- a bundle and fingerprinted URLs.
--
--   build/bin/lowbit examples/assets.lua 127.0.0.1:8080
--   curl http://127.0.0.1:8080/                     --> the page, naming
--        /assets/app.bundle.<hash>.js and /assets/css/site.<hash>.css
--   curl -I http://127.0.0.1:8080/assets/app.bundle.<hash>.js
--        --> Cache-Control: public, max-age=31536000, immutable
--   curl http://127.0.0.1:8080/assets/_drafts/notes.txt   --> 403
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local muxx = require "lowbit.muxx"
local webassets = require "lowbit.webassets"
local log = require "lowbit.log"

-- examples/assets/ next to this file (or below the current directory).
local function static_dir()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/[^/]*$")
  return (dir or "examples") .. "/assets"
end

return function(ctx, addr)
  addr = addr or "127.0.0.1:8080"
  local assets = webassets.new(static_dir(), {
    cache = true, minify = true, compress = true, fingerprint = true,
    bundles = { ["app.bundle.js"] = { "js/vendor.js", "js/app.js" } },
    error_logger = function(err) log.write("assets: " .. tostring(err)) end,
  })
  local m = muxx.new()
  m:handle("/assets/", assets)
  m:handle_func("GET /{$}", function(w, r)
    local js, css = assets:url("app.bundle.js"), assets:url("css/site.css")
    if not js or not css then return http.error(w, "assets missing", 500) end
    w:header():set("Content-Type", "text/html; charset=utf-8")
    w:write(table.concat({
      "<!doctype html>\n<html><head><title>assets</title>\n",
      '<link rel="stylesheet" href="', css, '">\n',
      '<script src="', js, '" defer></script>\n',
      '</head><body><h1>lowbit.webassets</h1><p class="note" id="out">loading</p></body></html>\n' }))
  end)
  local srv = http.server{ handler = m, read_header_timeout = 10, read_timeout = 30, write_timeout = 30,
                           idle_timeout = 60 }
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  io.stderr:write("assets: listening on ", addr, "\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
