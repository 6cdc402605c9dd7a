-- urlsign: sign a download URL, then serve an endpoint that verifies it.
--
--   build/bin/lowbit examples/urlsign.lua
--
-- Starts a lowbit.http server on a free loopback port, signs a URL for it,
-- fetches it (200), then a tampered copy (403) and an expired one (410).
-- Finishes on its own.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local net = require "lowbit.net"
local errors = require "lowbit.errors"
local urlsign = require "lowbit.urlsign"

return function(ctx)
  local signer = assert(urlsign.new_signer("example secret, keep it out of the repo", 300))

  local srv = http.server{
    handler = function(w, r)
      local ok, err = signer:verify_request(r)
      if not ok then
        local status = errors.is(err, urlsign.EXPIRED) and 410 or 403
        return http.error(w, tostring(err), status)
      end
      w:header():set("Content-Type", "text/plain")
      w:write("here is " .. r.url.path .. " (format " .. (r.url:query():get("format") or "?") .. ")\n")
    end,
    read_header_timeout = 5, read_timeout = 10, write_timeout = 10, idle_timeout = 30,
  }
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function() srv:serve(ln) end)

  local function fetch(u)
    local resp = assert(http.get(u))
    local body = resp.body:read_all(4096) or ""
    print(("%d %s"):format(resp.status, (body:gsub("\n$", ""))))
  end

  local signed = assert(signer:sign("http://" .. ln:addr() .. "/files/report.pdf?format=pdf"))
  print("signed: " .. signed)
  fetch(signed)
  fetch((signed:gsub("format=pdf", "format=csv")))
  local past = assert(urlsign.new_signer("example secret, keep it out of the repo", 300,
    { now = function() return os.time() - 3600 end }))
  fetch(past:sign("http://" .. ln:addr() .. "/files/report.pdf"))

  http.close_idle_connections()
  srv:shutdown(context.with_timeout(ctx, 2))
  srv:close()
end
