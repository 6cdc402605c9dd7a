-- The JSON API: a muxx group under /api whose middleware gives every
-- response an X-Request-Id, refuses bodies over MAX_BODY and turns a raise
-- into a 500 problem; every error is application/problem+json (RFC 9457).
--
--   curl -s 127.0.0.1:8080/api/health
--   curl -s -d '{"name":"Ada","text":"hello"}' 127.0.0.1:8080/api/messages
--   curl -s 127.0.0.1:8080/api/messages
--   curl -s -d '{"steps":5}' 127.0.0.1:8080/api/jobs        --> 202 {"id":"..."}
--   curl -s 127.0.0.1:8080/api/jobs/ID
--   curl -s -d '{"file":"report.txt"}' 127.0.0.1:8080/api/links
--   curl -s '127.0.0.1:8080/api/slow?seconds=3'            (Ctrl-C the server meanwhile: it still answers)
local cjson = require "cjson.safe"
local errors = require "lowbit.errors"
local http = require "lowbit.http"
local lowbit = require "lowbit"
local log = require "lowbit.log"
local pj = require "lowbit.problemjson"
local bs = require "lowbit.backstage"
local board_mod = require "showcase.board"
local check = require "showcase.check"
local jobs_mod = require "showcase.jobs"
local limit = require "showcase.limit"

local MAX_BODY = 16 * 1024

local NOT_FOUND = pj.not_found{ detail = "no such API route; see GET /api/health" }
local TOO_LARGE = pj.content_too_large{ detail = ("the body must be at most %d bytes"):format(MAX_BODY) }

local function send_json(w, status, body)
  w:header():set("Content-Type", "application/json")
  w:write_header(status)
  w:write(body .. "\n")
end

-- A JSON array, also when empty (cjson writes {} for an empty table).
local function json_array(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = cjson.encode(v) end
  return "[" .. table.concat(parts, ",") .. "]"
end

-- Middleware -------------------------------------------------------------

local request_ids = 0
local function request_id(next_h)
  return function(w, r)
    local id = r.headers:get("X-Request-Id")
    if not (id and #id <= 64 and id:match("^[%w._-]+$")) then
      request_ids = request_ids + 1
      id = ("%x-%d"):format(os.time(), request_ids)
    end
    local h = w:header()
    h:set("X-Request-Id", id)
    h:set("X-Content-Type-Options", "nosniff") -- JSON is never read as anything else
    return next_h(w, r)
  end
end

local function recover(next_h)
  return function(w, r)
    local ok, err = xpcall(next_h, debug.traceback, w, r)
    if not ok then
      log.write("showcase api: " .. r.method .. " " .. r.url.path .. " raised: " .. tostring(err))
      pj.internal_server_error():serve_http(w, r) -- (nothing is sent if the head went out)
    end
  end
end

-- Writes only from pages of this site (check.same_origin): 403 otherwise.
local CROSS_SITE = pj.forbidden{ detail = "requests that change something must come from this site's pages" }
local function same_origin_writes(next_h)
  return function(w, r)
    if r.method ~= "GET" and r.method ~= "HEAD" and not check.same_origin(r) then
      return CROSS_SITE:serve_http(w, r)
    end
    return next_h(w, r)
  end
end

local function limit_body(next_h)
  return function(w, r)
    if (r.content_length or 0) > MAX_BODY then return TOO_LARGE:serve_http(w, r) end
    return next_h(w, r)
  end
end

-- The request's JSON object, or nil after answering with a problem.
local function read_object(w, r)
  local body, err = r.body:read_all(MAX_BODY)
  if not body then
    local p = errors.is(err, http.BODY_TOO_LARGE) and TOO_LARGE -- chunked past the limit
      or pj.bad_request{ detail = "the body could not be read", err = err }
    p:serve_http(w, r)
    return nil
  end
  local doc, why = check.json_object(body)
  if not doc then pj.bad_request{ detail = why }:serve_http(w, r) end
  return doc
end

-- 422 naming the field: { "errors": [ { "detail", "pointer" } ] }.
local function invalid(w, r, why, pointer)
  pj.unprocessable_content{ detail = why, with = { errors = { { detail = why, pointer = "#" .. pointer } } } }
    :serve_http(w, r)
end

-- 503: the cause goes to the log, not to the client (it names our servers).
local function unavailable(w, r, detail, err)
  log.write(("showcase api: %s %s: %s: %s"):format(r.method, r.url.path, detail, tostring(err)))
  pj.service_unavailable{ detail = detail .. "; try again later" }:serve_http(w, r)
end

-- 429, with the seconds to wait before trying again.
local function too_many(w, r, detail)
  w:header():set("Retry-After", "1")
  pj.too_many_requests{ detail = detail }:serve_http(w, r)
end

-- Routes -----------------------------------------------------------------

local M = {}

--- Registers /api on muxx router m. app: { board, jobs, downloads, feed }.
function M.mount(m, app)
  local api = m:group("/api")
  api:use(request_id, recover, same_origin_writes, limit_body)

  api:handle_func("GET /health", function(w, r)
    local ready = app.feed:ready()
    send_json(w, ready and 200 or 503, cjson.encode{ ok = ready, shared = app.feed.shared,
      worker = app.worker and app.worker.index })
  end)

  api:handle_func("GET /messages", function(w, r)
    send_json(w, 200, '{"messages":' .. json_array(app.board.history()) .. "}")
  end)

  api:handle_func("POST /messages", function(w, r)
    local doc = read_object(w, r)
    if not doc then return end
    local msg, why, pointer = check.message(doc)
    if not msg then return invalid(w, r, why, pointer) end
    local sent, err = app.board.post(r.ctx, msg, limit.client(r))
    if errors.is(err, board_mod.TOO_FAST) then return too_many(w, r, "too many messages from this client; wait a moment") end
    if not sent then return unavailable(w, r, "the message was not sent", err) end
    send_json(w, 201, cjson.encode(sent))
  end)

  api:handle_func("POST /jobs", function(w, r)
    local doc = read_object(w, r)
    if not doc then return end
    local steps, why, pointer = check.steps(doc.steps)
    if not steps then return invalid(w, r, why, pointer) end
    local id, err = app.jobs.start(r.ctx, steps, limit.client(r))
    if errors.is(err, jobs_mod.TOO_FAST) then
      return too_many(w, r, "too many jobs from this client; wait a moment")
    elseif not id and errors.is(err, bs.QUEUE_FULL) then
      return too_many(w, r, "too many jobs are waiting; try again later")
    elseif not id then
      return unavailable(w, r, "the job was not queued", err)
    end
    w:header():set("Location", "/api/jobs/" .. id)
    send_json(w, 202, cjson.encode{ id = id, steps = steps })
  end)

  api:handle_func("GET /jobs/{id}", function(w, r)
    local job = app.jobs.get(r:path_value("id"))
    if not job then return pj.not_found{ detail = "no such job (jobs are forgotten after a while)" }:serve_http(w, r) end
    send_json(w, 200, cjson.encode(job))
  end)

  api:handle_func("POST /links", function(w, r)
    local doc = read_object(w, r)
    if not doc then return end
    if type(doc.file) ~= "string" or not app.downloads.has(doc.file) then
      return invalid(w, r, "file must be one of: " .. table.concat(app.downloads.names, ", "), "/file")
    end
    local url, expires = app.downloads.link(r, doc.file)
    if not url then return pj.bad_request{ detail = "cannot sign a link for this Host header" }:serve_http(w, r) end
    send_json(w, 200, cjson.encode{ url = url, expires = expires })
  end)

  -- A slow request, to watch a graceful shutdown: it sleeps without
  -- watching r.ctx (shutdown cancels request contexts), so Ctrl-C while it
  -- runs still lets it answer.
  api:handle_func("GET /slow", function(w, r)
    local s = tonumber(r.url:query():get("seconds") or "1")
    if not (s and s >= 0 and s <= 10) then return invalid(w, r, "seconds must be a number from 0 to 10", "/seconds") end
    lowbit.sleep(s)
    send_json(w, 200, cjson.encode{ slept = s })
  end)

  api:handle("/", NOT_FOUND) -- anything else under /api/
  m:handle("/api", NOT_FOUND)
end

return M
