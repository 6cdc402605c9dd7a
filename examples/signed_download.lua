-- Issues and serves signed, expiring download links (urlsign on lowbit.http).
--
--   build/bin/lowbit examples/signed_download.lua 127.0.0.1:8084
--   curl -s 'http://127.0.0.1:8084/links?file=report.txt'   --> a signed URL, valid 60 s
--   curl -s '<that URL>'                                     --> the file
--   (change any byte of the URL: 403; wait past its expiry: 410)
--
-- The signing key comes from $LOWBIT_SIGNING_KEY (a random one otherwise).
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local muxx = require "lowbit.muxx"
local errors = require "lowbit.errors"
local problemjson = require "lowbit.problemjson"
local urlsign = require "lowbit.urlsign"

local FILES = {
  ["report.txt"] = "quarterly report: all numbers went up\n",
  ["notes.md"] = "# notes\n- signed links expire\n",
}

local function random_key()
  local f = io.open("/dev/urandom", "rb")
  local k = f:read(32)
  f:close()
  return k
end

return function(ctx, addr)
  addr = addr or "127.0.0.1:8084"
  local signer = assert(urlsign.new_signer(os.getenv("LOWBIT_SIGNING_KEY") or random_key(), 60))
  local m = muxx.new()

  -- Issue a link: GET /links?file=NAME
  m:handle_func("GET /links", function(w, r)
    local name = r.url:query():get("file")
    if not name or not FILES[name] then
      return problemjson.not_found{ detail = "no such file: " .. tostring(name) }:serve_http(w, r)
    end
    local link = assert(signer:sign("http://" .. r.host .. "/files/" .. name))
    w:header():set("Content-Type", "text/plain; charset=utf-8")
    w:write(link .. "\n")
  end)

  -- Serve a file, only through a valid signed link.
  m:handle_func("GET /files/{name}", function(w, r)
    local ok, err = signer:verify_request(r)
    if not ok then
      local p = errors.is(err, urlsign.EXPIRED) and problemjson.gone{ detail = "this link has expired" }
        or problemjson.forbidden{ detail = tostring(err) }
      return p:serve_http(w, r)
    end
    local body = FILES[r:path_value("name")]
    if not body then return problemjson.not_found():serve_http(w, r) end
    w:header():set("Content-Type", "text/plain; charset=utf-8")
    w:write(body)
  end)

  local srv = http.server{ handler = m, read_header_timeout = 5, read_timeout = 30, write_timeout = 60,
                           idle_timeout = 30 }
  -- Ctrl-C: in-flight requests get 5 s to finish (their ctx is cancelled,
  -- and a write to a client that stopped reading ends), then the rest is cut.
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  io.stderr:write("signed_download: listening on ", addr, "\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
