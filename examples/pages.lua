-- A small site on lowbit.stencil: a layout, partials, and an HTMX-style
-- fragment route that renders the same rows without the layout.
--
--   build/bin/lowbit examples/pages.lua 127.0.0.1:8080
--   curl http://127.0.0.1:8080/                    --> the home page in layouts/base.html
--   curl 'http://127.0.0.1:8080/items?q=ca'        --> the item table (partials/rows.html)
--   curl 'http://127.0.0.1:8080/items/rows?q=ca'   --> the rows alone ({layout = false})
--   curl http://127.0.0.1:8080/about               --> views/about.html in layouts/minimal.html
--
-- Templates live in examples/pages/{views,layouts,partials}; set
-- PAGES_DEV=1 to re-read partials on every render (disable_cache).
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local muxx = require "lowbit.muxx"
local stencil = require "lowbit.stencil"

local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/pages"

local ITEMS = {
  { id = 1, name = "Cat food", price = 4.5, tags = { "pets" } },
  { id = 2, name = "Candles <scented>", price = 12, tags = { "home", "gifts" } },
  { id = 3, name = "Cable & charger", price = 9.99, tags = { "tech" } },
  { id = 4, name = "Tea", price = 3.2, tags = {} },
}

local function search(q)
  local out = {}
  q = (q or ""):lower()
  for _, it in ipairs(ITEMS) do
    if it.name:lower():find(q, 1, true) then out[#out + 1] = it end
  end
  return out
end

return function(ctx, addr)
  addr = addr or "127.0.0.1:8080"
  local pages = stencil.new {
    views = here .. "/views", layouts = here .. "/layouts", partials = here .. "/partials",
    default_layout = "base", disable_cache = os.getenv("PAGES_DEV") == "1",
    funcs = { money = function(n) return string.format("$%.2f", n) end },
  }
  local function page(w, name, data, opts)
    w:header():set("Content-Type", "text/html; charset=utf-8")
    local ok, err = pages:render(w, name, data, opts)
    if not ok then
      io.stderr:write("pages: ", tostring(err), "\n")
      http.error(w, "template error", 500)
    end
  end
  local m = muxx.new()
  m:handle_func("GET /{$}", function(w, r)
    page(w, "home", { title = "Home", flash = r.url:query():get("msg"), count = #ITEMS })
  end)
  m:handle_func("GET /items", function(w, r)
    local q = r.url:query():get("q") or ""
    page(w, "items", { title = "Items", q = q, items = search(q) })
  end)
  m:handle_func("GET /items/rows", function(w, r)
    page(w, "rows", { items = search(r.url:query():get("q")) }, { layout = false })
  end)
  m:handle_func("GET /about", function(w, r)
    page(w, "about", { title = "About" }, { layout = "minimal" })
  end)
  local srv = http.server{ handler = m, read_header_timeout = 10, read_timeout = 30, write_timeout = 30,
                           idle_timeout = 60 }
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  io.stderr:write("pages: listening on ", addr, "\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
