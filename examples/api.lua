-- A small JSON API on muxx, with problem+json errors.
--
--   build/bin/lowbit examples/api.lua 127.0.0.1:8081
--   curl -s 127.0.0.1:8081/                                       (public)
--   curl -s -H 'Authorization: Bearer secret' 127.0.0.1:8081/api/users/1
--   curl -s 127.0.0.1:8081/api/users/1                             (401 problem)
--   curl -s -H 'Authorization: Bearer secret' 127.0.0.1:8081/api/users/99   (404 problem)
--   curl -s -H 'Authorization: Bearer secret' -d '{"name":"Ada"}' 127.0.0.1:8081/api/users
--   curl -s -H 'Authorization: Bearer secret' 127.0.0.1:8081/api/files/a/b%20c.txt
--
-- Everything under /api runs through `auth` (a muxx group middleware); the
-- routes are flat ServeMux patterns, so r:path_value works everywhere.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local muxx = require "lowbit.muxx"
local log = require "lowbit.log"
local pj = require "lowbit.problemjson"
local cjson = require "cjson.safe"

local TOKEN = os.getenv("API_TOKEN") or "secret"

-- The data: a tiny in-memory user table.
local users = { ["1"] = { id = "1", name = "Grace" }, ["2"] = { id = "2", name = "Linus" } }
local next_id = 3

local function send_json(w, status, v)
  w:header():set("Content-Type", "application/json")
  w:write_header(status)
  w:write(cjson.encode(v) .. "\n")
end

-- Problems defined once, derived per request with from().
local UNAUTHORIZED = pj.unauthorized{ type = "https://example.com/probs/auth",
  detail = "send Authorization: Bearer <token>" }
local NO_SUCH_USER = pj.not_found{ type = "https://example.com/probs/no-such-user", title = "No such user" }

-- Middleware: function(next) return handler end.
local function auth(next_h)
  return function(w, r)
    if r.headers:get("Authorization") ~= "Bearer " .. TOKEN then
      w:header():set("WWW-Authenticate", 'Bearer realm="api"')
      return UNAUTHORIZED:serve_http(w, r)
    end
    return next_h(w, r)
  end
end

local function access_log(next_h)
  return function(w, r)
    log.write(r.method .. " " .. (r.request_uri or r.url.path)) -- never blocks the loop
    return next_h(w, r)
  end
end

local m = muxx.new()
m:use(access_log)

m:handle_func("GET /{$}", function(w, r)
  send_json(w, 200, { name = "lowbit example API", endpoints = {
    "GET /api/users", "GET /api/users/{id}", "POST /api/users", "DELETE /api/users/{id}", "GET /api/files/{path...}",
  } })
end)
m:handle("GET /healthz", function(w, r) w:write("ok\n") end)

local api = m:group("/api")
api:use(auth)

local users_g = api:group("/users")

-- GET /api/users and GET /api/users/ both list (without the first, muxx
-- would redirect /api/users to /api/users/, as ServeMux does).
local function list_users(w, r)
  local list = {}
  for _, u in pairs(users) do list[#list + 1] = u end
  table.sort(list, function(a, b) return tonumber(a.id) < tonumber(b.id) end)
  send_json(w, 200, list)
end
users_g:handle_func("GET /{$}", list_users)
api:handle_func("GET /users", list_users)

users_g:handle_func("GET /{id}", function(w, r)
  local id = r:path_value("id")
  local u = users[id]
  if not u then
    return pj.from(NO_SUCH_USER, pj.detailf("user %q does not exist", id), pj.with("user_id", id)):serve_http(w, r)
  end
  send_json(w, 200, u)
end)

-- POST /api/users and POST /api/users/ both create.
local function create(w, r)
  local body, err = r.body:read_all(64 * 1024)
  if not body then return pj.content_too_large{ err = err }:serve_http(w, r) end
  local doc, jerr = cjson.decode(body)
  if type(doc) ~= "table" then
    return pj.bad_request{ detail = "the body must be a JSON object", err = jerr }:serve_http(w, r)
  end
  if type(doc.name) ~= "string" or doc.name == "" then
    return pj.unprocessable_content{ title = "Your request is not valid.", with = {
      errors = { { detail = "must be a non-empty string", pointer = "#/name" } },
    } }:serve_http(w, r)
  end
  local u = { id = tostring(next_id), name = doc.name }
  next_id = next_id + 1
  users[u.id] = u
  w:header():set("Location", "/api/users/" .. u.id)
  send_json(w, 201, u)
end
users_g:handle_func("POST /{$}", create)
api:handle_func("POST /users", create)

users_g:handle_func("DELETE /{id}", function(w, r)
  local id = r:path_value("id")
  if not users[id] then
    return pj.from(NO_SUCH_USER, pj.detailf("user %q does not exist", id)):serve_http(w, r)
  end
  users[id] = nil
  w:write_header(204)
end)

-- A multi-segment wildcard: everything after /api/files/, unescaped.
api:handle_func("GET /files/{path...}", function(w, r)
  send_json(w, 200, { path = r:path_value("path"), pattern = r.pattern })
end)

return function(ctx, addr)
  local http = require "lowbit.http"
  addr = addr or "127.0.0.1:8081"
  io.stderr:write("api: listening on http://", addr, "/ (token: ", TOKEN, ")\n")
  local srv = http.server{ handler = m, read_header_timeout = 5, read_timeout = 10, write_timeout = 10,
                           idle_timeout = 60, max_body_bytes = 1024 * 1024 }
  -- Ctrl-C: in-flight requests get 5 s to finish, then the rest is cut.
  -- (The watcher also ends when serving does, the port taken, say.)
  local served = lowbit.chan(0)
  lowbit.go(function()
    if lowbit.select{ ctx:done(), served } ~= 1 then return end
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  local _, err = srv:listen_and_serve(addr)
  served:close()
  if err ~= http.SERVER_CLOSED then
    io.stderr:write("api: ", tostring(err), "\n")
    return 1
  end
end
