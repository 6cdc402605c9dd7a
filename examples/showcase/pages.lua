-- HTML pages: one stencil engine (templates/layouts/layout.html around
-- templates/views/*.html, with templates/partials/*.html), the assets'
-- fingerprinted URLs, and the friendly error pages.
--
--   local pages = require("showcase.pages").new{ dir = here, assets = assets, note = "..." }
--   pages.render(w, 200, "board", { title = "Board", messages = list })
--   pages.problem(w, 422, "That message was not sent", "name must be 1 to 32 characters", "/board")
local log = require "lowbit.log"
local stencil = require "lowbit.stencil"

-- Sent with every page: scripts and styles only from this site, no frames.
local SECURITY_HEADERS = {
  ["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; base-uri 'none'; " ..
    "form-action 'self'; frame-ancestors 'none'",
  ["X-Content-Type-Options"] = "nosniff",
  ["Referrer-Policy"] = "same-origin",
}

-- Served when even the error page cannot be rendered.
local FALLBACK = '<!doctype html><title>error</title><main id="page" data-page="error">' ..
  "<h1>Something went wrong</h1><p>The page could not be rendered.</p></main>\n"

local M = {}

--- opts: dir (the showcase folder), assets (a webassets handler),
--- note (a sentence shown on every page, or nil), dev (re-read partials).
function M.new(opts)
  local templates = opts.dir .. "/templates"
  local engine = stencil.new {
    views = templates .. "/views", layouts = templates .. "/layouts", partials = templates .. "/partials",
    default_layout = "layout", disable_cache = opts.dev,
  }
  local pages = {}

  --- Renders view `name` in the layout with `data` (data.title, and the
  --- view's own fields) and sends it with `status`.
  function pages.render(w, status, name, data)
    data.page = data.page or name
    data.note = opts.note
    data.css, data.js = opts.assets:url("css/site.css"), opts.assets:url("app.js")
    local html, err = engine:render_to_string(name, data)
    if not html then
      log.write("showcase: page " .. name .. ": " .. tostring(err))
      status, html = 500, FALLBACK
    end
    local h = w:header()
    for k, v in pairs(SECURITY_HEADERS) do h:set(k, v) end
    h:set("Content-Type", "text/html; charset=utf-8")
    w:write_header(status)
    w:write(html)
  end

  --- A friendly error page: what went wrong, why, and where to go back to.
  function pages.problem(w, status, title, detail, back)
    pages.render(w, status, "problem", { title = title, status = status, detail = detail, back = back or "/" })
  end

  function pages.not_found(w, r)
    pages.render(w, 404, "not-found", { title = "Not found", path = r.url.path })
  end

  --- Middleware: a handler that raises gets a 500 page (and the traceback
  --- goes to the log) rather than the server's plain-text 500.
  function pages.recover(next_h)
    return function(w, r)
      local ok, err = xpcall(next_h, debug.traceback, w, r)
      if not ok then
        log.write("showcase: " .. r.method .. " " .. r.url.path .. " raised: " .. tostring(err))
        pages.problem(w, 500, "Something went wrong", "The server hit a bug; it is in the log.")
      end
    end
  end

  return pages
end

return M
