-- lowbit.webassets: static assets served from a directory (or an in-memory
-- table of files), optionally cached in memory, minified, bundled,
-- compressed (gzip, brotli) and fingerprinted.
--
--   local webassets = require "lowbit.webassets"
--   local h = webassets.new("./web/static", {
--     cache = true, minify = true, compress = true, fingerprint = true,
--     bundles = { ["app.bundle.js"] = { "js/vendor.js", "js/app.js" } },
--     cache_exclude = { "/assets/manifest.json" },
--     error_logger = function(err) log.write("webassets: " .. tostring(err)) end,
--   })
--   m:handle("/assets/", h)        -- muxx; h is a handler function(w, r)
--   h:url("app.bundle.js")         --> "/assets/app.bundle.3f2a1b9c.js"
--
-- opts (defaults are the seed's zero values):
--   cache = false        keep each asset (read, minified, compressed) in memory
--                        after its first request; 100 concurrent cold requests
--                        read and minify once (single flight; failures are
--                        shared with the waiters, never cached)
--   minify = false       .js .mjs .css through webassets.minify; a file that
--                        fails to minify is served as it is and reported
--   bundles = {}         name -> { source, ... }: the sources in order, joined
--                        (";\n" for js, "\n" otherwise), minified; a missing
--                        source is a 500 and is not cached
--   cache_exclude = {}   paths never cached: matched against the path the
--                        handler sees ("/manifest.json") and the request path
--                        ("/assets/manifest.json")
--   error_logger = nil   function(err): every 404, 500, minify failure
--   compress = false     true, or a list such as { "br", "gzip" }: variants
--                        built once per cached asset (never per request: not
--                        with the cache off) for text types, .json .svg .wasm
--                        (kept only when smaller); Vary: Accept-Encoding on
--                        every response of such an asset, one ETag per encoding
--   fingerprint = false  h:url(name) gives prefix/name.<8 hex>.ext, served with
--                        Cache-Control: public, max-age=31536000, immutable; a
--                        stale hash is a 404; plain names get no-cache
--   prefix = "/assets"   the mount prefix: removed from request paths that start
--                        with it (so the handler works stripped or not), and
--                        used by h:url
--
-- Fixed rules: GET and HEAD only (405 with Allow otherwise); any path segment
-- starting with `_` is 403; no directory listings (404); `..` past the root,
-- an encoded `/` or `\`, NUL and bad escapes are 400; symlinks are resolved
-- and must stay inside the root; ETag (content hash), Last-Modified,
-- If-Match, If-Unmodified-Since, If-None-Match (before If-Modified-Since),
-- If-Range, single, suffix and multiple ranges, 416 with `bytes */N`, and a
-- range set larger than the file is answered 200 in full.
--
-- A cached asset carries the header lines of its whole 200 built once (per
-- encoding, and immutable or not): such a response goes out through the
-- server's w:write_prebuilt, the same bytes as the header-by-header path,
-- which the other responses (and any w a middleware set a header on) take.
local uv = require "luv"
local lowbit = require "lowbit"
local errors = require "lowbit.errors"
local compress = require "lowbit.webassets.compress"

local M = {}

local type, pairs, ipairs, tostring, tonumber, pcall, error, setmetatable, getmetatable, rawget =
  type, pairs, ipairs, tostring, tonumber, pcall, error, setmetatable, getmetatable, rawget
local find, sub, byte, lower, match, gsub, format, char =
  string.find, string.sub, string.byte, string.lower, string.match, string.gsub, string.format, string.char
local concat = table.concat
local floor = math.floor

M.NOT_FOUND = errors.new("webassets: file not found")
M.FORBIDDEN = errors.new("webassets: forbidden")
M.OUTSIDE_ROOT = errors.new("webassets: path resolves outside the root")
M.BUNDLE_FAILED = errors.new("webassets: bundle build failed")
M.MINIFY_FAILED = errors.new("webassets: minify failed")

---------------------------------------------------------------------------
-- The minifier
---------------------------------------------------------------------------

--- webassets.minify.js(s), webassets.minify.css(s): the C minifier's Lua
--- API (lowbit.webassets.minify): string, or nil, err naming the line.
M.minify = require "lowbit.webassets.minify"

---------------------------------------------------------------------------
-- Content types (a fixed table, as Go's builtin one; sniffing otherwise)
---------------------------------------------------------------------------

local TYPES = {
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", html = "text/html; charset=utf-8",
  htm = "text/html; charset=utf-8", txt = "text/plain; charset=utf-8",
  md = "text/markdown; charset=utf-8", csv = "text/csv; charset=utf-8",
  xml = "text/xml; charset=utf-8", json = "application/json", map = "application/json",
  webmanifest = "application/manifest+json", svg = "image/svg+xml", wasm = "application/wasm",
  png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", avif = "image/avif", ico = "image/vnd.microsoft.icon",
  woff = "font/woff", woff2 = "font/woff2", ttf = "font/ttf", otf = "font/otf",
  pdf = "application/pdf", mp4 = "video/mp4", webm = "video/webm", mp3 = "audio/mpeg",
  ogg = "audio/ogg", zip = "application/zip",
}
M.TYPES = TYPES

-- Worth compressing: text types and these.
local COMPRESSIBLE = { json = true, map = true, webmanifest = true, svg = true, wasm = true, xml = true,
  ico = true, ttf = true, otf = true }
local MINIFIED = { js = "js", mjs = "js", css = "css" }

local function ext_of(name)
  local e = match(name, "%.([^./]+)$")
  return e and lower(e) or ""
end

-- Go's DetectContentType for the common cases (the first 512 bytes).
local function sniff(s)
  local head = sub(s, 1, 512)
  local t = match(head, "^[\t\n\f\r ]*(.*)$")
  local l = lower(sub(t, 1, 14))
  if find(l, "^<!doctype html") or find(l, "^<html") or find(l, "^<head") or find(l, "^<body")
    or find(l, "^<script") or find(l, "^<title") or find(l, "^<div") or find(l, "^<p[ >]")
    or find(l, "^<h1") or find(l, "^<table") or find(l, "^<a[ >]") or find(l, "^<br") then
    return "text/html; charset=utf-8"
  end
  if find(t, "^<%?xml") then return "text/xml; charset=utf-8" end
  if find(head, "^%%PDF%-") then return "application/pdf" end
  if find(head, "^\137PNG\r\n\26\n") then return "image/png" end
  if find(head, "^\255\216\255") then return "image/jpeg" end
  if find(head, "^GIF8[79]a") then return "image/gif" end
  if find(head, "^RIFF....WEBPVP") then return "image/webp" end
  if find(head, "^%z%z\1%z") then return "image/x-icon" end
  if find(head, "^\31\139\8") then return "application/x-gzip" end
  if find(head, "^PK\3\4") then return "application/zip" end
  if find(head, "^%zasm") then return "application/wasm" end
  if find(head, "[%z\1-\8\11\14-\26\28-\31]") then return "application/octet-stream" end
  return "text/plain; charset=utf-8"
end
M._sniff = sniff

---------------------------------------------------------------------------
-- HTTP dates
---------------------------------------------------------------------------

local function http_date(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9,
  oct = 10, nov = 11, dec = 12 }

-- Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
local function days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- IMF-fixdate, RFC 850 and asctime (RFC 9110 §5.6.7); nil when unparsable.
local function parse_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, hh, mm, ss = match(s, "^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d then
    d, mon, y, hh, mm, ss = match(s, "^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if y then y = tonumber(y); y = y + (y < 70 and 2000 or 1900) end
  end
  if not d then
    mon, d, hh, mm, ss, y = match(s, "^%a+ (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  if not d then return nil end
  local m = MONTHS[lower(mon)]
  if not m then return nil end
  d, y, hh, mm, ss = tonumber(d), tonumber(y), tonumber(hh), tonumber(mm), tonumber(ss)
  if d < 1 or d > 31 or hh > 23 or mm > 59 or ss > 60 then return nil end
  return days(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss
end
M._parse_date = parse_date

---------------------------------------------------------------------------
-- Roots: a directory, an in-memory table of files, or an fs table
---------------------------------------------------------------------------

-- A root answers stat(name) -> { size, mtime, dir } | nil, err and
-- read(name) -> string | nil, err, name being "a/b.css" (already clean).

local function dir_root(path)
  local real, err = uv.fs_realpath(path)
  if not real then error("bad argument 'root' to webassets.new: " .. tostring(err), 3) end
  local st = uv.fs_stat(real)
  if not st or st.type ~= "directory" then
    error("bad argument 'root' to webassets.new: not a directory: " .. path, 3)
  end
  local base = real == "/" and "/" or real .. "/"
  local R = {}
  -- The real path of name, which must lie inside the root (symlinks too).
  local function resolve(name)
    local full = base .. name
    local rp = uv.fs_realpath(full)
    if not rp then return nil, errors.with_kind(M.NOT_FOUND, nil, "%s", name) end
    if sub(rp, 1, #base) ~= base then return nil, errors.with_kind(M.OUTSIDE_ROOT, nil, "%s", name) end
    return rp
  end
  function R.stat(name)
    local rp, err = resolve(name)
    if not rp then return nil, err end
    local st, serr = uv.fs_stat(rp)
    if not st then return nil, errors.with_kind(M.NOT_FOUND, nil, "%s: %s", name, tostring(serr)) end
    return { size = st.size, mtime = st.mtime.sec, dir = st.type ~= "file" }
  end
  function R.read(name)
    local rp, err = resolve(name)
    if not rp then return nil, err end
    local fd, oerr = uv.fs_open(rp, "r", 0)
    if not fd then return nil, errors.with_kind(M.NOT_FOUND, nil, "%s: %s", name, tostring(oerr)) end
    local st = uv.fs_fstat(fd)
    if not st or st.type ~= "file" then
      uv.fs_close(fd)
      return nil, errors.with_kind(M.NOT_FOUND, nil, "%s: not a regular file", name)
    end
    local parts, off = {}, 0
    while true do
      local d, rerr = uv.fs_read(fd, 256 * 1024, off)
      if not d then uv.fs_close(fd); return nil, errors.with_kind(M.NOT_FOUND, nil, "%s: %s", name, tostring(rerr)) end
      if d == "" then break end
      parts[#parts + 1] = d
      off = off + #d
    end
    uv.fs_close(fd)
    return concat(parts), st.mtime.sec
  end
  return R
end

-- { ["css/site.css"] = "bytes" | { data = "bytes", mtime = epoch } }: files
-- at the given names; directories are the names' prefixes.
local function table_root(files)
  local born = os.time()
  local dirs = {}
  for name in pairs(files) do
    if type(name) ~= "string" then error("bad argument 'root' to webassets.new: file names must be strings", 3) end
    local p = gsub(name, "^/+", "")
    while true do
      p = match(p, "^(.*)/[^/]*$")
      if not p or p == "" then break end
      dirs[p] = true
    end
  end
  local function get(name)
    local f = files[name]
    if f == nil then f = files["/" .. name] end
    return f
  end
  local R = {}
  function R.stat(name)
    local f = get(name)
    if f == nil then
      if dirs[name] then return { size = 0, mtime = born, dir = true } end
      return nil, errors.with_kind(M.NOT_FOUND, nil, "%s", name)
    end
    if type(f) == "table" then return { size = #(f.data or ""), mtime = f.mtime or born } end
    return { size = #f, mtime = born }
  end
  function R.read(name)
    local f = get(name)
    if f == nil then return nil, errors.with_kind(M.NOT_FOUND, nil, "%s", name) end
    if type(f) == "table" then return f.data or "", f.mtime or born end
    return f, born
  end
  return R
end

-- An fs table: read(name) -> data[, mtime] | nil, err (and optional
-- stat(name) -> { size, mtime, dir } | nil, err). read may park the task.
local function fs_root(fs)
  local born = os.time()
  local R = {}
  function R.stat(name)
    if fs.stat then
      local ok, st, err = pcall(fs.stat, name)
      if not ok then return nil, errors.with_kind(M.NOT_FOUND, nil, "%s: %s", name, tostring(st)) end
      if not st then return nil, err or errors.with_kind(M.NOT_FOUND, nil, "%s", name) end
      return st
    end
    return { mtime = born }
  end
  function R.read(name)
    local ok, data, mtime = pcall(fs.read, name)
    if not ok then return nil, errors.with_kind(M.NOT_FOUND, nil, "%s: %s", name, tostring(data)) end
    if type(data) ~= "string" then return nil, mtime or errors.with_kind(M.NOT_FOUND, nil, "%s", name) end
    return data, tonumber(mtime) or born
  end
  return R
end

---------------------------------------------------------------------------
-- Request paths
---------------------------------------------------------------------------

local function hexval(c)
  if c >= 48 and c <= 57 then return c - 48 end
  c = c % 32 -- 'A'/'a' -> 1
  if c >= 1 and c <= 6 then return c + 9 end
  return nil
end

-- Decodes %XX in one segment; nil on a bad escape.
local function unescape(seg)
  if not find(seg, "%", 1, true) then return seg end
  local out, i, n = {}, 1, #seg
  while i <= n do
    local c = byte(seg, i)
    if c == 37 then
      local h, l = hexval(byte(seg, i + 1) or 0), hexval(byte(seg, i + 2) or 0)
      if not h or not l then return nil end
      out[#out + 1] = char(h * 16 + l)
      i = i + 3
    else
      out[#out + 1] = char(c)
      i = i + 1
    end
  end
  return concat(out)
end

-- The root-relative name of a path as the handler sees it ("/css/a.css" ->
-- "css/a.css"), or nil, status: 400 (bad escape, encoded `/` or `\`, NUL,
-- `..` above the root), 403 (a segment starting with `_`), 404 (a
-- directory: an empty name or a trailing slash).
local function clean_name(raw, allow_private)
  local segs, n = {}, 0
  local trailing = byte(raw, #raw) == 47
  for seg in string.gmatch(raw, "[^/]+") do
    local s = unescape(seg)
    if not s or find(s, "[/\\%z]") then return nil, 400 end
    if s == ".." then
      if n == 0 then return nil, 400 end
      segs[n] = nil; n = n - 1
    elseif s ~= "." and s ~= "" then
      n = n + 1; segs[n] = s
    end
  end
  if not allow_private then
    for i = 1, n do
      if byte(segs[i], 1) == 95 then return nil, 403 end -- "_"
    end
  end
  if n == 0 or trailing then return nil, 404 end
  return concat(segs, "/")
end
M._clean_name = clean_name

---------------------------------------------------------------------------
-- Ranges and conditionals
---------------------------------------------------------------------------

-- Go's parseRange: a list of {start, length}, or nil, "invalid" (416), or
-- nil, "none" (416: no range overlaps the content).
local function parse_range(s, size)
  if lower(sub(s, 1, 6)) ~= "bytes=" then return nil, "invalid" end
  local ranges, overlap = {}, false
  for spec in string.gmatch(sub(s, 7), "[^,]+") do
    spec = match(spec, "^[ \t]*(.-)[ \t]*$")
    if spec ~= "" then
      local a, b = match(spec, "^(%d*)[ \t]*%-[ \t]*(%d*)$")
      if not a or (a == "" and b == "") or #a > 15 or #b > 15 then return nil, "invalid" end
      if a == "" then
        local nb = tonumber(b)
        if nb == 0 then return nil, "invalid" end
        if nb > size then nb = size end
        if size > 0 then ranges[#ranges + 1] = { size - nb, nb } end
        overlap = overlap or size > 0
      else
        local i = tonumber(a)
        if i < size then
          local j
          if b == "" then j = size - 1
          else
            j = tonumber(b)
            if j < i then return nil, "invalid" end
            if j >= size then j = size - 1 end
          end
          ranges[#ranges + 1] = { i, j - i + 1 }
          overlap = true
        end
      end
    end
  end
  if #ranges == 0 then return nil, overlap and "invalid" or "none" end
  return ranges
end
M._parse_range = parse_range

-- Splits an entity-tag list; calls fn(tag, weak) for each; true when fn does.
local function etag_list_any(list, fn)
  local i, n = 1, #list
  while i <= n do
    local c = byte(list, i)
    if c == 32 or c == 9 or c == 44 then
      i = i + 1
    elseif c == 42 then -- *
      if fn("*", false) then return true end
      i = i + 1
    else
      local weak = false
      if sub(list, i, i + 1) == "W/" then weak = true; i = i + 2 end
      if byte(list, i) ~= 34 then return false end
      local j = find(list, '"', i + 1, true)
      if not j then return false end
      if fn(sub(list, i, j), weak) then return true end
      i = j + 1
    end
  end
  return false
end

local function strong_match(list, etag)
  return etag_list_any(list, function(t, weak) return t == "*" or (not weak and t == etag) end)
end

local function weak_match(list, etag)
  return etag_list_any(list, function(t) return t == "*" or t == etag end)
end

---------------------------------------------------------------------------
-- Single flight
---------------------------------------------------------------------------

-- Runs fn(key) once for concurrent callers of the same key: the others
-- park until it is done and share its results (an error included); the
-- key is then forgotten.
local function flight(inflight, key, fn)
  local f = inflight[key]
  if f then
    f.wg:wait()
    return f.v, f.status, f.err
  end
  f = { wg = lowbit.waitgroup() }
  f.wg:add(1)
  inflight[key] = f
  local ok, v, status, err = pcall(fn, key)
  if not ok then v, status, err = nil, 500, v end
  f.v, f.status, f.err = v, status, err
  inflight[key] = nil
  f.wg:done()
  return v, status, err
end

---------------------------------------------------------------------------
-- The handler
---------------------------------------------------------------------------

local Handler = {}
Handler.__index = Handler

local function report(self, err)
  local log = self.error_logger
  if log then pcall(log, err) end
end

local function is_compressible(ext, ctype)
  if COMPRESSIBLE[ext] then return true end
  return sub(ctype, 1, 5) == "text/"
end

local HASH_LEN = 8

-- The header fields of a whole 200 of a (encoded as enc, or not), as
-- send_full's path through w:header() writes them: the same names,
-- spellings, values and order.
local function prebuilt(self, a, enc, immutable)
  local t = { "Last-Modified: ", a.last_modified, "\r\nETag: ", enc and a[enc .. "_etag"] or a.etag, "\r\n" }
  if a.vary then t[#t + 1] = "Vary: Accept-Encoding\r\n" end
  if immutable then t[#t + 1] = "Cache-Control: public, max-age=31536000, immutable\r\n"
  elseif self.fingerprint then t[#t + 1] = "Cache-Control: no-cache\r\n" end
  t[#t + 1] = "Content-Type: " .. a.ctype .. "\r\n"
  if enc then t[#t + 1] = "Content-Encoding: " .. enc .. "\r\nContent-Length: " .. a[enc .. "_len"] .. "\r\n"
  else t[#t + 1] = "Accept-Ranges: bytes\r\nContent-Length: " .. a.len .. "\r\n" end
  return concat(t)
end

-- Builds an asset: { body, etag, mtime, last_modified, ctype, variants }
-- or nil, status, err.
local function build(self, name, cached)
  local root = self.root
  local ext = ext_of(name)
  local body, mtime
  local sources = self.bundles[name]
  if sources then
    local parts = {}
    mtime = 0
    for i = 1, #sources do
      local src = sources[i]
      -- Sources may be private (`_partials/x.js`): the _ rule is about
      -- what is served, and a bundle is served under its own name.
      local sname = clean_name("/" .. src, true)
      local data, t = nil, nil
      if sname then data, t = root.read(sname) end
      if type(data) ~= "string" then
        return nil, 500, errors.with_kind(M.BUNDLE_FAILED, t, "%s: source %s", name, src)
      end
      parts[i] = data
      t = tonumber(t) or 0
      if t > mtime then mtime = t end
    end
    body = concat(parts, MINIFIED[ext] == "js" and ";\n" or "\n")
  else
    local st, err = root.stat(name)
    if not st then return nil, 404, err end
    if st.dir then return nil, 404, errors.with_kind(M.NOT_FOUND, nil, "%s: is a directory", name) end
    local data, t = root.read(name)
    if type(data) ~= "string" then
      if t == nil then t = errors.with_kind(M.NOT_FOUND, nil, "%s", name) end
      return nil, 404, t
    end
    body, mtime = data, tonumber(t) or st.mtime or os.time()
  end
  local kind = self.minify and MINIFIED[ext]
  if kind then
    local fn = M.minify[kind]
    local ok, out, merr = pcall(fn, body)
    if ok and type(out) == "string" then
      body = out
    else
      report(self, errors.with_kind(M.MINIFY_FAILED, ok and merr or out, "%s (served as it is)", name))
    end
  end
  local ctype = TYPES[ext] or sniff(body)
  local hash = compress.hash_hex(body)
  local a = { body = body, size = #body, len = tostring(#body), etag = '"' .. sub(hash, 1, 32) .. '"', hash = sub(hash, 1, HASH_LEN),
              mtime = mtime, last_modified = http_date(mtime), ctype = ctype }
  if cached and self.compress and is_compressible(ext, ctype) and #body > 0 then
    a.vary = true
    local enc = self.compress
    for i = 1, #enc do
      local e = enc[i]
      local z = e == "br" and compress.brotli(body) or compress.gzip(body)
      if z and #z < #body then
        a[e] = z
        a[e .. "_etag"] = '"' .. sub(hash, 1, 32) .. "-" .. e .. '"'
        a[e .. "_len"] = tostring(#z)
      end
    end
  end
  if cached then
    -- The header fields of a whole 200, built once (see send_full).
    local pre = { [""] = prebuilt(self, a, nil, false) }
    if a.vary then for i = 1, #self.compress do local e = self.compress[i]; if a[e] then pre[e] = prebuilt(self, a, e, false) end end end
    a.pre = pre
    if self.fingerprint then
      local imm = { [""] = prebuilt(self, a, nil, true) }
      for e in pairs(pre) do if e ~= "" then imm[e] = prebuilt(self, a, e, true) end end
      a.pre_imm = imm
    end
  end
  return a
end

local function excluded(self, name, path)
  local ex = self.exclude
  return ex["/" .. name] or ex[name] or (path and ex[path])
end

-- The asset for name: from the cache, or built (once for concurrent
-- requests when caching). Returns asset or nil, status, err.
local function get(self, name, path)
  if self.cache and not excluded(self, name, path) then
    local a = self.assets[name]
    if a then return a end
    local v, status, err = flight(self.inflight, name, function() return build(self, name, true) end)
    if v and not self.assets[name] then self.assets[name] = v end
    return v, status, err
  end
  return build(self, name, false)
end

local function plain_error(w, status, msg)
  local h = w:header()
  h:set("Content-Type", "text/plain; charset=utf-8")
  h:set("X-Content-Type-Options", "nosniff")
  local body = msg .. "\n"
  h:set("Content-Length", tostring(#body))
  w:write_header(status)
  w:write(body)
end

local MESSAGES = { [400] = "400 Bad Request", [403] = "403 Forbidden", [404] = "404 page not found",
  [405] = "405 Method Not Allowed", [500] = "500 Internal Server Error" }

-- The encoding to send: "br", "gzip" or nil (identity).
local function pick_encoding(a, ae)
  if not ae or not a.vary then return nil end
  local q = {}
  for item in string.gmatch(ae, "[^,]+") do
    local coding, params = match(item, "^[ \t]*([^; \t]+)[ \t]*(.*)$")
    if coding then
      local qv = 1
      local qs = match(params, "[qQ][ \t]*=[ \t]*([%d.]+)")
      if qs then qv = tonumber(qs) or 0 end
      q[lower(coding)] = qv
    end
  end
  local star = q["*"]
  local function ok(e)
    local v = q[e]
    if v == nil then v = star end
    if v == nil and e == "gzip" then v = q["x-gzip"] end
    return v ~= nil and v > 0 and a[e] ~= nil
  end
  if ok("br") then return "br" end
  if ok("gzip") then return "gzip" end
  return nil
end

-- Request header values by lower-case name (repeated fields joined with
-- ", ", RFC 9110 §5.3: a repeated date or range becomes invalid, and is
-- then ignored or refused as such).
local function hval(hv, lname)
  local v = hv[lname]
  if type(v) == "table" then return concat(v, ", ") end
  return v
end

-- Sets a response header whose name and value are known valid (constants,
-- and values made here): the work h:set does minus the checks, on the
-- layout of lowbit.http.headers (lname -> value in _v, names in order in
-- the array part). lname must be the canonical name lower-cased.
local Headers = require("lowbit.http.headers").Headers
local function fast_set(h, lname, name, value)
  local vals = h._v
  if getmetatable(h) ~= Headers or h._raw or vals == nil then return h:set(name, value) end
  if vals[lname] == nil then
    local n = h.n + 1
    h.n = n
    h[n] = lname
    if lname == "etag" then -- the one name here not spelled canonically ("Etag")
      local names = h._n
      if not names then names = {}; h._n = names end
      names.etag = name
    end
  end
  vals[lname] = value
end

-- The request header fields this handler reads, by lower-case name
-- (repeated fields joined, as hval does). A set parsed from the wire is scanned
-- raw, without building its index: only names starting with a, i or r
-- matter (Accept-Encoding, If-*, Range). The table is reused: it is read
-- before anything can park the task.
local WANTED = { ["accept-encoding"] = true, ["if-match"] = true, ["if-none-match"] = true,
  ["if-modified-since"] = true, ["if-unmodified-since"] = true, ["if-range"] = true, range = true }
local fields = {}
local clear = require "table.clear"
local function request_fields(r)
  -- The server's requests keep the raw pairs as _raw until r.headers is
  -- first used (then the set holds them until it is indexed).
  local rh = rawget(r, "headers")
  local raw
  if rh == nil then raw = rawget(r, "_raw") end
  if type(raw) ~= "table" then
    rh = r.headers
    raw = rawget(rh, "_raw")
  end
  if type(raw) ~= "table" then
    rh:count() -- index it: _v maps lower-case names to values
    return rh._v
  end
  clear(fields)
  for i = 1, #raw, 2 do
    local name = raw[i]
    local c = byte(name, 1)
    if c == 97 or c == 65 or c == 105 or c == 73 or c == 114 or c == 82 then
      local l = lower(name)
      if WANTED[l] then
        local prev = fields[l]
        fields[l] = prev and prev .. ", " .. raw[i + 1] or raw[i + 1]
      end
    end
  end
  return fields
end

-- What serve returns for a whole 200 with no preconditions (the usual
-- request): serve_http answers it, outside its pcall (see there).
local FULL = {}

-- A whole 200 of a (encoded as enc, or not): the same headers, in the
-- same order, as serve_asset's path for it.
-- A cached asset carries its header fields prebuilt (a.pre, a.pre_imm):
-- given to the server's writer whole, with the body, when nothing was set
-- on w before (a middleware's header keeps this path).
local server_writer = false -- lowbit.http.server's ResponseWriter, once loaded
local function send_full(self, w, r, a, enc, immutable)
  local pre = immutable and a.pre_imm or a.pre
  if pre then
    local sw = server_writer
    if not sw then
      local m = package.loaded["lowbit.http.server"]
      sw = m and m.ResponseWriter
      server_writer = sw or false
    end
    if sw and getmetatable(w) == sw then
      local fields = pre[enc or ""]
      if fields and w:write_prebuilt(200, fields, enc and a[enc] or a.body) ~= false then return end
    end
  end
  local h = w:header()
  fast_set(h, "last-modified", "Last-Modified", a.last_modified)
  fast_set(h, "etag", "ETag", enc and a[enc .. "_etag"] or a.etag)
  if a.vary then fast_set(h, "vary", "Vary", "Accept-Encoding") end
  if immutable then fast_set(h, "cache-control", "Cache-Control", "public, max-age=31536000, immutable")
  elseif self.fingerprint then fast_set(h, "cache-control", "Cache-Control", "no-cache") end
  fast_set(h, "content-type", "Content-Type", a.ctype)
  if enc then
    fast_set(h, "content-encoding", "Content-Encoding", enc)
    fast_set(h, "content-length", "Content-Length", a[enc .. "_len"])
  else
    fast_set(h, "accept-ranges", "Accept-Ranges", "bytes")
    fast_set(h, "content-length", "Content-Length", a.len)
  end
  w:write_header(200)
  if r.method ~= "HEAD" then w:write(enc and a[enc] or a.body) end
end

local function serve_asset(self, w, r, a, immutable)
  local hv = request_fields(r)
  local range = hval(hv, "range")
  local enc = nil
  if range == nil and a.vary then enc = pick_encoding(a, hval(hv, "accept-encoding")) end
  if range == nil and hv["if-match"] == nil and hv["if-unmodified-since"] == nil
     and hv["if-none-match"] == nil and hv["if-modified-since"] == nil then
    return FULL, a, enc, immutable
  end
  local h = w:header()
  local method = r.method
  local etag = enc and a[enc .. "_etag"] or a.etag
  fast_set(h, "last-modified", "Last-Modified", a.last_modified)
  fast_set(h, "etag", "ETag", etag)
  if a.vary then fast_set(h, "vary", "Vary", "Accept-Encoding") end
  if immutable then fast_set(h, "cache-control", "Cache-Control", "public, max-age=31536000, immutable")
  elseif self.fingerprint then fast_set(h, "cache-control", "Cache-Control", "no-cache") end
  -- Preconditions, RFC 9110 §13.2.2.
  local im = hval(hv, "if-match")
  if im then
    if not strong_match(im, etag) then return plain_error(w, 412, "412 Precondition Failed") end
  else
    local ius = hval(hv, "if-unmodified-since")
    if ius then
      ius = parse_date(ius)
      if ius and a.mtime > ius then return plain_error(w, 412, "412 Precondition Failed") end
    end
  end
  local inm = hval(hv, "if-none-match")
  if inm then
    if weak_match(inm, etag) then w:write_header(304); return end
  else
    local ims = hval(hv, "if-modified-since")
    if ims then
      ims = parse_date(ims)
      if ims and a.mtime <= ims then w:write_header(304); return end
    end
  end
  fast_set(h, "content-type", "Content-Type", a.ctype)
  local body = enc and a[enc] or a.body
  local size = #body
  if enc then
    fast_set(h, "content-encoding", "Content-Encoding", enc)
  else
    fast_set(h, "accept-ranges", "Accept-Ranges", "bytes")
  end
  if range == nil then
    fast_set(h, "content-length", "Content-Length", enc and a[enc .. "_len"] or a.len)
    w:write_header(200)
    if method ~= "HEAD" then w:write(body) end
    return
  end
  do -- a Range request (GET or HEAD)
    local ir = hval(hv, "if-range")
    local use = true
    if ir then
      if byte(ir, 1) == 34 or sub(ir, 1, 2) == "W/" then use = ir == etag
      else use = parse_date(ir) == a.mtime and ir == a.last_modified end
    end
    if use then
      local ranges = parse_range(range, size)
      if not ranges then
        h:set("Content-Range", "bytes */" .. size)
        return plain_error(w, 416, "416 Requested Range Not Satisfiable")
      end
      local sum = 0
      for i = 1, #ranges do sum = sum + ranges[i][2] end
      if sum <= size then
        if #ranges == 1 then
          local s, n = ranges[1][1], ranges[1][2]
          h:set("Content-Range", format("bytes %d-%d/%d", s, s + n - 1, size))
          h:set("Content-Length", tostring(n))
          w:write_header(206)
          if method == "GET" then w:write(sub(body, s + 1, s + n)) end
          return
        end
        self.boundary_n = (self.boundary_n or 0) + 1
        local boundary = format("%s%08x", sub(a.hash .. "00000000", 1, 8), self.boundary_n % 2^32)
        local parts = {}
        for i = 1, #ranges do
          local s, n = ranges[i][1], ranges[i][2]
          parts[#parts + 1] = format("\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n",
            boundary, a.ctype, s, s + n - 1, size)
          parts[#parts + 1] = sub(body, s + 1, s + n)
        end
        parts[#parts + 1] = "\r\n--" .. boundary .. "--\r\n"
        local mp = concat(parts)
        h:set("Content-Type", "multipart/byteranges; boundary=" .. boundary)
        h:set("Content-Length", tostring(#mp))
        w:write_header(206)
        if method == "GET" then w:write(mp) end
        return
      end
      -- The ranges add up to more than the file (range amplification):
      -- the whole file once.
    end
  end
  h:set("Content-Length", tostring(size))
  w:write_header(200)
  if method ~= "HEAD" then w:write(body) end
end

-- name.<hash>.ext -> name.ext, hash (when fingerprinting is on).
local function split_fingerprint(name)
  local base, hash, ext = match(name, "^(.*)%.(%x+)(%.[^./]+)$")
  if base and #hash == HASH_LEN and base ~= "" then return base .. ext, lower(hash) end
  return nil
end

-- The request path -> asset index of the cached mode (the path's checks
-- depend on the path alone, and a cached asset never changes): a hit
-- skips the path work. Bounded: emptied when it reaches HOT_MAX.
local HOT_MAX = 4096
local function remember(self, path, a, immutable, name)
  if not self.cache or excluded(self, name, path) or self.assets[name] ~= a then return end
  if self.hot_n >= HOT_MAX then self.hot = {}; self.hot_n = 0 end
  self.hot[path] = { a, immutable }
  self.hot_n = self.hot_n + 1
end

local function serve(self, w, r)
  local method = r.method
  if method ~= "GET" and method ~= "HEAD" then
    w:header():set("Allow", "GET, HEAD")
    return plain_error(w, 405, MESSAGES[405])
  end
  -- The server's requests carry the raw path as _path (r.url is made
  -- from it on first use; this skips making it).
  -- A middleware that rewrote r.url (a strip-prefix) made it first: then
  -- r.url is what counts.
  local path = rawget(r, "url") == nil and rawget(r, "_path") or nil
  if type(path) ~= "string" then
    local u = r.url
    path = u.raw_path
    if path == nil or path == "" then path = u.path or "/" end
  end
  local orig = path
  local hot = self.hot
  local hit = hot[orig]
  if hit then return serve_asset(self, w, r, hit[1], hit[2]) end
  local prefix = self.prefix
  if prefix ~= "" and sub(path, 1, #prefix) == prefix then
    local c = byte(path, #prefix + 1)
    if c == nil then path = "/" elseif c == 47 then path = sub(path, #prefix + 1) end
  end
  local name, status = clean_name(path)
  if not name then
    if status == 404 then report(self, errors.with_kind(M.NOT_FOUND, nil, "%s: a directory or empty path", path)) end
    return plain_error(w, status, MESSAGES[status])
  end
  local immutable = false
  if self.fingerprint then
    local base, hash = split_fingerprint(name)
    if base and (self.bundles[base] or self.root.stat(base)) then
      local a, st, err = get(self, base, nil)
      if not a then
        report(self, err)
        return plain_error(w, st, MESSAGES[st] or MESSAGES[500])
      end
      if a.hash ~= hash then
        report(self, errors.with_kind(M.NOT_FOUND, nil, "%s: stale fingerprint (now %s)", name, a.hash))
        return plain_error(w, 404, MESSAGES[404])
      end
      remember(self, orig, a, true, base)
      return serve_asset(self, w, r, a, true)
    end
  end
  local a, st, err = get(self, name, orig)
  if not a then
    report(self, err)
    return plain_error(w, st or 500, MESSAGES[st] or MESSAGES[500])
  end
  remember(self, orig, a, immutable, name)
  return serve_asset(self, w, r, a, immutable)
end

--- Serves r (the handler; h(w, r) does the same). Never raises on request
--- input: an unexpected failure is reported and answered 500.
-- The usual request (a whole 200, no preconditions, no range) is answered
-- here, outside the pcall, from what serve found: LuaJIT cannot compile a
-- return into a pcall frame, so the traces of the response path (headers,
-- head, the write) that began inside it were aborted there on every
-- request and the rest of the response ran interpreted. That answer reads
-- nothing from the request but its method.
function Handler:serve_http(w, r)
  local ok, res, a, enc, immutable = pcall(serve, self, w, r)
  if not ok then
    report(self, res)
    pcall(plain_error, w, 500, MESSAGES[500])
  elseif res == FULL then
    send_full(self, w, r, a, enc, immutable)
  end
end

Handler.__call = Handler.serve_http

--- The fingerprinted URL of an asset ("app.js" -> "/assets/app.<hash>.js");
--- the plain URL when fingerprinting is off. Returns nil, err when the
--- asset cannot be built (missing file, failed bundle).
function Handler:url(name)
  if type(name) ~= "string" then error("bad argument 'name' to h:url: string expected, got " .. type(name), 2) end
  local clean, status = clean_name("/" .. name)
  if not clean then return nil, errors.with_kind(M.NOT_FOUND, nil, "%s: not a servable name (%d)", name, status) end
  local plain = self.prefix .. "/" .. clean
  if not self.fingerprint then return plain end
  local a, _, err = get(self, clean, nil)
  if not a then return nil, err end
  local base, ext = match(clean, "^(.*)(%.[^./]+)$")
  if not base or base == "" or find(ext, "/", 1, true) then return plain .. "." .. a.hash end
  return self.prefix .. "/" .. base .. "." .. a.hash .. ext
end

--- Drops every cached asset.
function Handler:purge()
  self.assets, self.hot, self.hot_n = {}, {}, 0
end

local function bad(name, msg) error("bad argument '" .. name .. "' to webassets.new: " .. msg, 3) end

--- A new handler serving root (a directory path, or a table of files:
--- name -> bytes | { data, mtime }, or an fs table { read = fn, stat = fn }).
function M.new(root, opts)
  if opts ~= nil and type(opts) ~= "table" then bad("opts", "table expected, got " .. type(opts)) end
  opts = opts or {}
  local R
  if type(root) == "string" then R = dir_root(root)
  elseif type(root) == "table" then
    if type(root.read) == "function" then R = fs_root(root) else R = table_root(root) end
  else bad("root", "string or table expected, got " .. type(root)) end
  local bundles = {}
  if opts.bundles ~= nil then
    if type(opts.bundles) ~= "table" then bad("bundles", "table expected") end
    for k, v in pairs(opts.bundles) do
      if type(k) ~= "string" or type(v) ~= "table" then bad("bundles", "name -> { source, ... } expected") end
      for i = 1, #v do if type(v[i]) ~= "string" then bad("bundles", "sources must be strings") end end
      local n = clean_name("/" .. k)
      if not n then bad("bundles", "not a servable name: " .. k) end
      bundles[n] = v
    end
  end
  local exclude = {}
  if opts.cache_exclude ~= nil then
    if type(opts.cache_exclude) ~= "table" then bad("cache_exclude", "list of paths expected") end
    for _, p in ipairs(opts.cache_exclude) do
      if type(p) ~= "string" then bad("cache_exclude", "paths must be strings") end
      exclude[p] = true
    end
  end
  if opts.error_logger ~= nil and type(opts.error_logger) ~= "function" then
    bad("error_logger", "function expected, got " .. type(opts.error_logger))
  end
  local enc = nil
  if opts.compress == true then enc = { "br", "gzip" }
  elseif type(opts.compress) == "table" then
    enc = {}
    for _, e in ipairs(opts.compress) do
      if e ~= "br" and e ~= "gzip" then bad("compress", "\"br\" or \"gzip\" expected, got " .. tostring(e)) end
      enc[#enc + 1] = e
    end
  elseif opts.compress ~= nil and opts.compress ~= false then bad("compress", "boolean or list expected") end
  local prefix = opts.prefix == nil and "/assets" or opts.prefix
  if type(prefix) ~= "string" or (prefix ~= "" and byte(prefix, 1) ~= 47) then bad("prefix", "\"/path\" or \"\" expected") end
  prefix = gsub(prefix, "/+$", "")
  return setmetatable({
    root = R, cache = opts.cache == true, minify = opts.minify == true, bundles = bundles,
    exclude = exclude, error_logger = opts.error_logger, compress = enc, fingerprint = opts.fingerprint == true,
    prefix = prefix, assets = {}, inflight = {}, hot = {}, hot_n = 0,
  }, Handler)
end

return M
