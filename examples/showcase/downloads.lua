-- Signed download links (lowbit.urlsign): the files in files/ are served
-- only through a link signed with the app's key, valid for `ttl` seconds.
-- A tampered link gets a 403 page, an expired one a 410 page.
--
--   local downloads = require("showcase.downloads").new{ dir = here .. "/files", secret = key, ttl = 300 }
--   downloads.link(r, "report.txt")         --> "http://host/files/report.txt?exp=...&sig=...", exp
--   m:handle_func("GET /files/{name}", downloads.serve(pages))
local errors = require "lowbit.errors"
local urlsign = require "lowbit.urlsign"
local uv = require "luv"

local TYPES = { txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
                csv = "text/csv; charset=utf-8", json = "application/json" }

-- The names in dir that may be served: plain names, no dot files.
local function list_files(dir)
  local names = {}
  local scan = uv.fs_scandir(dir)
  while scan do
    local name, kind = uv.fs_scandir_next(scan)
    if not name then break end
    if kind == "file" and name:match("^[%w][%w._-]*$") then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

local M = {}

--- opts: dir, secret (the signing key), ttl (seconds a link stays valid).
function M.new(opts)
  local names = list_files(opts.dir)
  local served = {}
  for _, n in ipairs(names) do served[n] = true end
  local signer = assert(urlsign.new_signer(opts.secret, opts.ttl))
  -- Signs links that expired an hour ago: what a stale link looks like.
  local stale = assert(urlsign.new_signer(opts.secret, opts.ttl,
    { now = function() return os.time() - opts.ttl - 3600 end }))

  local downloads = { names = names }

  --- Whether name is a file we serve.
  function downloads.has(name) return served[name] == true end

  --- A signed link to file `name` for the host r was sent to: url, expiry
  --- (Unix seconds), or nil, err. opts.expired: one that has already expired.
  function downloads.link(r, name, link_opts)
    local s = link_opts and link_opts.expired and stale or signer
    local url, err = s:sign("http://" .. r.host .. "/files/" .. name)
    if not url then return nil, err end
    return url, tonumber(url:match("[?&]exp=(%d+)"))
  end

  --- The handler of GET /files/{name}: checks the link, then sends the file.
  function downloads.serve(pages)
    return function(w, r)
      local ok, err = signer:verify_request(r)
      if not ok and errors.is(err, urlsign.EXPIRED) then
        return pages.render(w, 410, "link-expired", { title = "Link expired" })
      end
      local name = r:path_value("name")
      if not ok or not served[name] then
        return pages.render(w, 403, "link-invalid", { title = "Link not valid" })
      end
      local f = io.open(opts.dir .. "/" .. name, "rb")
      local body = f and f:read("*a")
      if f then f:close() end
      if not body then return pages.not_found(w, r) end
      local h = w:header()
      h:set("Content-Type", TYPES[name:match("%.(%w+)$")] or "application/octet-stream")
      h:set("Content-Disposition", 'attachment; filename="' .. name .. '"')
      h:set("Cache-Control", "private, no-store")
      w:write(body)
    end
  end

  return downloads
end

return M
