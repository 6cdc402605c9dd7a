-- lowbit.http: HTTP/1.1 server and client in Go's net/http shape.
--
--   local http = require "lowbit.http"
--   http.listen_and_serve("127.0.0.1:8080", function(w, r)
--     w:header():set("Content-Type", "text/plain")
--     w:write("hello " .. r.url.path .. "\n")
--   end)
--
-- Handlers are function(w, r) or tables with serve_http(self, w, r); see
-- lowbit.http.server (ResponseWriter, Server), lowbit.http.request
-- (Request), lowbit.http.client (request, get), lowbit.http.headers.
local server = require "lowbit.http.server"
local client = require "lowbit.http.client"
local headers = require "lowbit.http.headers"

local M = {}

M.server = server.server
M.Server = server.Server
M.SERVER_CLOSED = server.SERVER_CLOSED
M.HIJACKED = server.HIJACKED
M.BODY_NOT_ALLOWED = server.BODY_NOT_ALLOWED
M.ABORT_HANDLER = server.ABORT_HANDLER
M.BODY_TOO_LARGE = require("lowbit.http.body").BODY_TOO_LARGE
M.status_text = server.status_text
M.detect_content_type = server.detect_content_type
M.http_date = server.http_date

M.request = client.request
M.get = client.get
M.close_idle_connections = client.close_idle_connections
M.BAD_RESPONSE = client.BAD_RESPONSE
M.TOO_MANY_REDIRECTS = client.TOO_MANY_REDIRECTS
M.USE_LAST_RESPONSE = client.USE_LAST_RESPONSE

M.headers = headers.new

--- Serves handler on addr until the server is shut down (or ctx, the
--- optional third argument, is cancelled). Returns nil, err.
function M.listen_and_serve(addr, handler, ctx)
  local srv = server.server({ handler = handler })
  if not ctx then return srv:listen_and_serve(addr) end
  local lowbit = require "lowbit"
  -- The watcher ends with the server too (a port in use, say): it must not
  -- keep the process alive waiting for a ctx nobody will cancel.
  local served = lowbit.chan(0)
  lowbit.go(function()
    if lowbit.select{ ctx:done(), served } == 1 then srv:shutdown() end
  end)
  local ok, err = srv:listen_and_serve(addr)
  served:close()
  return ok, err
end

--- Writes a plain-text error response, like Go's http.Error.
local function check_writer(w, fname)
  if type(w) ~= "table" or type(w.header) ~= "function" then
    error(("bad argument 'w' to %s: response writer expected, got %s"):format(fname, type(w)), 3)
  end
end

function M.error(w, msg, status)
  check_writer(w, "http.error")
  if type(msg) ~= "string" then error("bad argument 'msg' to http.error: string expected, got " .. type(msg), 2) end
  if type(status) ~= "number" then error("bad argument 'status' to http.error: number expected, got " .. type(status), 2) end
  local h = w:header()
  h:del("Content-Length")
  h:set("Content-Type", "text/plain; charset=utf-8")
  h:set("X-Content-Type-Options", "nosniff")
  w:write_header(status)
  w:write(msg .. "\n")
end

--- A handler answering 404 page not found.
function M.not_found(w, _)
  check_writer(w, "http.not_found")
  M.error(w, "404 page not found", 404)
end

--- Redirects to target with status (302 by default).
function M.redirect(w, r, target, status)
  check_writer(w, "http.redirect")
  if type(r) ~= "table" then error("bad argument 'r' to http.redirect: request expected, got " .. type(r), 2) end
  if type(target) ~= "string" then error("bad argument 'target' to http.redirect: string expected, got " .. type(target), 2) end
  if status ~= nil and type(status) ~= "number" then error("bad argument 'status' to http.redirect: number or nil expected, got " .. type(status), 2) end
  status = status or 302
  w:header():set("Location", target)
  if r.method == "GET" or r.method == "HEAD" then
    w:header():set("Content-Type", "text/html; charset=utf-8")
  end
  w:write_header(status)
  if r.method == "GET" then
    w:write('<a href="' .. target:gsub("[<>&\"']", function(c) return ("&#%d;"):format(c:byte()) end) .. '">'
      .. server.status_text(status) .. "</a>.\n")
  end
end

return M
