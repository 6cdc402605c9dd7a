-- The HTML side of the showcase: the pages, what their forms post (the
-- pages' scripts use the WebSocket and the API instead; the forms work
-- without them), the signed files, the live endpoints and the 404 page.
local errors = require "lowbit.errors"
local http = require "lowbit.http"
local log = require "lowbit.log"
local url = require "lowbit.url"
local bs = require "lowbit.backstage"
local board_mod = require "showcase.board"
local check = require "showcase.check"
local jobs_mod = require "showcase.jobs"
local limit = require "showcase.limit"

local FORM_MAX = 8 * 1024

-- "/files/x?exp=..&sig=.." of a signed "http://host/files/x?...".
local function local_part(link) return link:match("^https?://[^/]*(/.*)$") end

local M = {}

--- Registers the site on muxx router m. app: { pages, assets, board, jobs, downloads, feed, worker }.
function M.mount(m, app)
  local pages, board, jobs, downloads = app.pages, app.board, app.jobs, app.downloads
  m:handle("/assets/", app.assets)

  -- The form's fields, or nil after answering with an error page.
  local function read_form(w, r, back)
    local body, err = r.body:read_all(FORM_MAX)
    if not body then
      if errors.is(err, http.BODY_TOO_LARGE) then
        pages.problem(w, 413, "That was too much", ("A form may send at most %d bytes."):format(FORM_MAX), back)
      else
        pages.problem(w, 400, "That form did not arrive", "The request body could not be read.", back)
      end
      return nil
    end
    return url.parse_query(body) -- what parses; a bad escape leaves a field out
  end

  -- 503 page; the cause goes to the log (it names our servers).
  local function unavailable(w, r, title, err, back)
    log.write(("showcase: %s %s: %s"):format(r.method, r.url.path, tostring(err)))
    pages.problem(w, 503, title, "The server could not reach its store. Try again in a moment.", back)
  end

  -- Posts only from pages of this site: another site's form gets a 403 page.
  local function same_origin_posts(next_h)
    return function(w, r)
      if r.method == "POST" and not check.same_origin(r) then
        return pages.problem(w, 403, "That was sent from another site",
          "Forms of this site are only taken from its own pages.")
      end
      return next_h(w, r)
    end
  end

  local site = m:group("/")
  site:use(pages.recover, same_origin_posts)

  site:handle_func("GET /{$}", function(w, r)
    pages.render(w, 200, "home", { title = "Home", shared = app.feed.shared, worker = app.worker })
  end)

  site:handle_func("GET /board", function(w, r)
    pages.render(w, 200, "board", { title = "Live board", messages = board.history(),
      name_max = check.NAME_MAX, text_max = check.TEXT_MAX })
  end)

  site:handle_func("POST /board", function(w, r)
    local form = read_form(w, r, "/board")
    if not form then return end
    local msg, why = check.message{ name = form:get("name") or "", text = form:get("text") or "" }
    if not msg then return pages.problem(w, 422, "That message was not sent", why, "/board") end
    local ok, err = board.post(r.ctx, msg, limit.client(r))
    if errors.is(err, board_mod.TOO_FAST) then
      return pages.problem(w, 429, "That message was not sent", "You sent many messages in a short time: wait a moment.", "/board")
    end
    if not ok then return unavailable(w, r, "That message was not sent", err, "/board") end
    w:header():set("Location", "/board")
    w:write_header(303)
  end)

  site:handle_func("GET /jobs", function(w, r)
    pages.render(w, 200, "jobs", { title = "Background jobs", jobs = jobs.list(),
      steps_min = check.STEPS_MIN, steps_max = check.STEPS_MAX })
  end)

  site:handle_func("POST /jobs", function(w, r)
    local form = read_form(w, r, "/jobs")
    if not form then return end
    local steps, why = check.steps(tonumber(form:get("steps") or ""))
    if not steps then return pages.problem(w, 422, "That job was not started", why, "/jobs") end
    local id, err = jobs.start(r.ctx, steps, limit.client(r))
    if errors.is(err, jobs_mod.TOO_FAST) then
      return pages.problem(w, 429, "That job was not started", "You started many jobs in a short time: wait a moment.", "/jobs")
    elseif errors.is(err, bs.QUEUE_FULL) then
      return pages.problem(w, 429, "That job was not started", "Too many jobs are waiting: try again in a moment.", "/jobs")
    end
    if not id then return unavailable(w, r, "That job was not started", err, "/jobs") end
    w:header():set("Location", "/jobs")
    w:write_header(303)
  end)

  site:handle_func("GET /downloads", function(w, r)
    local links = {}
    for _, name in ipairs(downloads.names) do
      local link, expires = downloads.link(r, name)
      if not link then return pages.problem(w, 400, "No links for this host", "Links cannot be signed for this Host header.") end
      links[#links + 1] = { name = name, href = local_part(link), expires = os.date("!%H:%M:%S UTC", expires) }
    end
    local expired = downloads.names[1] and downloads.link(r, downloads.names[1], { expired = true })
    pages.render(w, 200, "downloads", { title = "Signed downloads", links = links,
      expired = expired and local_part(expired), ttl = app.link_ttl })
  end)

  site:handle_func("GET /files/{name}", downloads.serve(pages))
  site:handle_func("GET /ws/chat", board.websocket)
  site:handle_func("GET /events", board.events)
  site:handle("/", pages.not_found) -- anything else
end

return M
