-- The lowbit showcase: one app that uses the whole family together.
--
--   build/bin/lowbit examples/showcase/main.lua [ADDR]        (ADDR: 127.0.0.1:8080)
--   build/bin/lowbit -w 2 -l 127.0.0.1:8080 examples/showcase/main.lua
--   make example   (or: make example REDIS=1, with a private redis-server)
--
-- What is where:
--   pages.lua      stencil: templates/layouts/layout.html, views/, partials/
--   static/        CSS and JS served by webassets (bundled, minified, fingerprinted, gzip/br)
--   board.lua      the live board: WebSocket chat (/ws/chat), SSE feed (/events)
--   feed.lua       topic fan-out of every event (over Redis with REDIS_URL)
--   jobs.lua       backstage jobs whose progress goes out on the feed
--   downloads.lua  urlsign: links that expire, with 403 and 410 pages
--   api.lua        the JSON API: a muxx group, middleware, problem+json errors
--   web.lua        the HTML routes and forms; check.lua validates all input
--                  and tells this site's pages from others (same_origin)
--   limit.lua      per-client rate limits (chat messages, job starts)
-- Everything runs under one rungroup: Ctrl-C (SIGINT) or SIGTERM stops
-- taking connections, lets in-flight requests finish, drains the jobs.
--
-- Environment: REDIS_URL (redis://host:port: chat, events and jobs shared
-- by every process), SHOWCASE_SECRET (the link signing key; otherwise one
-- shared through Redis, or a random one per process), SHOWCASE_LINK_TTL
-- (seconds a download link is valid, default 300).

-- Modules of the showcase are required as "showcase.x" (examples/showcase/x.lua).
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/../?.lua;" .. package.path

local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local host = require "lowbit.host"
local http = require "lowbit.http"
local log = require "lowbit.log"
local muxx = require "lowbit.muxx"
local net = require "lowbit.net"
local redis = require "lowbit.redis"
local rungroup = require "lowbit.rungroup"
local webassets = require "lowbit.webassets"

local api = require "showcase.api"
local board_mod = require "showcase.board"
local downloads_mod = require "showcase.downloads"
local feed_mod = require "showcase.feed"
local jobs_mod = require "showcase.jobs"
local pages_mod = require "showcase.pages"
local web = require "showcase.web"

local function random_key()
  local f = assert(io.open("/dev/urandom", "rb"))
  local k = f:read(32)
  f:close()
  return k
end

-- "redis://host:port[/db]" or "host:port" -> "host:port".
local function redis_addr(u)
  if not u or u == "" then return nil end
  return (u:gsub("^rediss?://", ""):gsub("/.*$", ""))
end

-- One key for every process: $SHOWCASE_SECRET, or the first one stored in
-- Redis, or (alone) a random one. nil, err when Redis does not answer.
local function signing_key(raddr)
  local key = os.getenv("SHOWCASE_SECRET")
  if key and key ~= "" then return key end
  if not raddr then return random_key() end
  local c, err = redis.connect(raddr)
  if not c then return nil, err end
  local mine = random_key()
  key, err = c:call("SET", "showcase:{secret}", mine, "NX", "GET", "EX", 86400 * 30) -- the old one, if any
  if key == nil then c:close(); return nil, err end
  if key == redis.null then key = mine end
  c:release()
  return key
end

-- $SHOWCASE_LINK_TTL: seconds (default 300), or nil when it is set to
-- anything but a whole number from 1 to a year.
local function link_lifetime(v)
  if v == nil or v == "" then return 300 end
  local n = v:match("^%d+$") and tonumber(v)
  if not n or n < 1 or n > 365 * 86400 then return nil end
  return n
end

-- The HTTP server as a rungroup service: serves ln until ctx ends, then
-- stops accepting and gives in-flight requests 10 s to finish.
local function http_service(srv, ln)
  return function(ctx)
    lowbit.go(function()
      ctx:wait()
      srv:shutdown(context.with_timeout(context.background(), 10))
      srv:close()
    end)
    local _, err = srv:serve(ln)
    if err ~= http.SERVER_CLOSED then return nil, errors.with_kind(rungroup.SHUTDOWN_ALL, err, "http") end
  end
end

-- A sentence for every page and the log: where the live state lives.
local function state_note(raddr, worker)
  if raddr then return ("Chat, events and jobs go through Redis at %s: every process shares them."):format(raddr) end
  if not worker then return nil end
  local note = ("Worker %d of %d: chat, events and jobs are per worker here (set REDIS_URL to share them)."):format(
    worker.index, worker.count)
  if (os.getenv("SHOWCASE_SECRET") or "") == "" then
    note = note .. " So is the key of download links: a link works on the worker that made it (set SHOWCASE_SECRET)."
  end
  return note
end

return function(ctx, addr)
  -- Under `lowbit -w N -l ADDR` every worker listens on the master's ADDR.
  addr = addr or (host.worker and host.worker.addr) or "127.0.0.1:8080"
  local raddr = redis_addr(os.getenv("REDIS_URL"))
  local link_ttl = link_lifetime(os.getenv("SHOWCASE_LINK_TTL"))
  if not link_ttl then
    io.stderr:write("showcase: SHOWCASE_LINK_TTL must be a whole number of seconds from 1 to 31536000\n")
    return 1
  end
  local note = state_note(raddr, host.worker)

  local assets = webassets.new(here .. "/static", {
    cache = true, minify = true, compress = true, fingerprint = true,
    bundles = { ["app.js"] = { "_js/live.js", "_js/board.js", "_js/jobs.js" } },
    error_logger = function(err) log.write("showcase assets: " .. tostring(err)) end,
  })
  local key, kerr = signing_key(raddr)
  if not key then
    io.stderr:write("showcase: redis at ", raddr, ": ", tostring(kerr), "\n")
    return 1
  end
  local feed = feed_mod.new{ redis = raddr }
  local app = {
    feed = feed, assets = assets, link_ttl = link_ttl, worker = host.worker,
    pages = pages_mod.new{ dir = here, assets = assets, note = note },
    board = board_mod.new{ feed = feed, ctx = ctx },
    jobs = jobs_mod.new{ feed = feed, redis = raddr },
    downloads = downloads_mod.new{ dir = here .. "/files", secret = key, ttl = link_ttl },
  }
  local m = muxx.new()
  api.mount(m, app)
  web.mount(m, app)

  -- No write_timeout: the event streams and the WebSockets last.
  local srv = http.server{ handler = m, read_header_timeout = 10, read_timeout = 30, idle_timeout = 60,
                           max_body_bytes = 1024 * 1024 }
  local ln, err = net.listen(addr)
  if not ln then
    io.stderr:write("showcase: ", tostring(err), "\n")
    return 1
  end

  local group = rungroup.new{
    shutdown_timeout = 15,
    on_event = function(e)
      if e.err and not errors.is(e.err, context.CANCELED) then
        log.write(("showcase: %s %s: %s"):format(e.type, e.service, tostring(e.err)))
      end
    end,
  }
  group:add(function(gctx) return feed:run(gctx) end, { name = "feed" })
  group:add(app.jobs.serve, { name = "jobs" })
  group:add(http_service(srv, ln), { name = "http", restart = rungroup.NEVER })

  io.stdout:write("showcase listening on http://", ln:addr(), "/\n")
  io.stdout:flush()
  if note then log.write("showcase: " .. note) end
  local gerr = group:run(ctx)
  if gerr then
    log.write("showcase: stopped: " .. tostring(gerr))
    return 1
  end
end
