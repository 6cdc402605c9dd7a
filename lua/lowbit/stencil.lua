-- lowbit.stencil: layouts and partials with Go html/template's contextual
-- escaping, in lua-resty-template's tag syntax.
--
--   local stencil = require "lowbit.stencil"
--   local e = stencil.new{ views = "views", layouts = "layouts", partials = "partials",
--                          default_layout = "base" }
--   local ok, err = e:render(w, "home", { title = "Hi", rows = rows })
--   local html = e:render_to_string("rows", data, { layout = false })  -- an HTMX fragment
--
-- Sources: views, layouts and partials are each a directory path or a table
-- of files ({ ["home.html"] = "..." }); a template is named without ".html".
-- Views and layouts are read on every render (a changed file shows at
-- once; the compiled function is reused while the text is unchanged);
-- partials are compiled on first use and cached for the engine's life,
-- until e:reload(), or never with disable_cache = true.
--
-- Templates: {{ expr }} (escaped for the HTML context it sits in), {* expr *}
-- (raw), {% lua %}, {# comment #}, {-raw-}...{-raw-}. The data table's
-- fields are variables, `data` is the table; helpers: partial(name, value),
-- yield (in layouts), html/url/js/css/attr (trusted values), the engine's
-- funcs, and a safe part of the standard library.
--
-- Errors: a missing template, a compile error and a runtime error are
-- `nil, err` (err matches stencil.NOT_FOUND, stencil.COMPILE_ERROR or
-- stencil.RENDER_ERROR with errors.is) and nothing is written. Misuse
-- (a bad argument) raises.
local buffer = require "string.buffer"
local errors = require "lowbit.errors"
local escape = require "lowbit.stencil.escape"
local context = require "lowbit.stencil.context"
local compile = require "lowbit.stencil.compile"

local type, error, setmetatable, getmetatable, tostring, pairs, ipairs, xpcall, select =
  type, error, setmetatable, getmetatable, tostring, pairs, ipairs, xpcall, select
local find, sub, match, format, gsub = string.find, string.sub, string.match, string.format, string.gsub
local open = io.open
local getinfo = debug.getinfo

escape.set_attr_type(context.attr_type)
escape.set_strip_tags(context.strip_tags)

local M = {}

M.NOT_FOUND = errors.new("stencil: template not found")
M.COMPILE_ERROR = errors.new("stencil: compile error")
M.RENDER_ERROR = errors.new("stencil: render error")

--- Partials may nest this deep (a partial that includes itself stops here).
M.MAX_DEPTH = 32

local trusted = escape.trusted
--- Trusted values: each passes unescaped in its own context only.
function M.html(s) return trusted("html", tostring(s)) end
function M.url(s) return trusted("url", tostring(s)) end
function M.js(s) return trusted("js", tostring(s)) end
function M.css(s) return trusted("css", tostring(s)) end
function M.attr(s) return trusted("attr", tostring(s)) end

local function arg_error(fname, name, msg)
  error("bad argument '" .. name .. "' to " .. fname .. ": " .. msg, 3)
end

-- The standard library a template sees (copies: a template cannot change
-- the app's tables).
local function copy(t, skip)
  local c = {}
  for k, v in pairs(t) do if not (skip and skip[k]) then c[k] = v end end
  return c
end
local safe = {
  string = copy(string, { dump = true }), table = copy(table), math = copy(math),
  os = { date = os.date, time = os.time, clock = os.clock },
  ipairs = ipairs, pairs = pairs, next = next, select = select, tostring = tostring,
  tonumber = tonumber, type = type, unpack = unpack, error = error, pcall = pcall, assert = assert,
}
safe.string.format = string.format

-- Compiled templates by function: the label and the expressions by line,
-- for runtime error messages.
local meta = setmetatable({}, { __mode = "k" })

-- The error value of a template failure (raised through the template code
-- and caught by the render).
local Fail = {}
Fail.__index = Fail
local function fail(err) error(setmetatable({ err = err }, Fail), 0) end

--- Turns an error raised inside template code into RENDER_ERROR naming the
--- innermost template frame: label, line, and the expressions of that line.
local function handler(e)
  if getmetatable(e) == Fail then return e end
  local msg = tostring(e)
  for level = 2, 60 do
    local info = getinfo(level, "fl")
    if not info then break end
    local m = meta[info.func]
    if m then
      local line = info.currentline
      local prefix = m.label .. ":"
      if sub(msg, 1, #prefix) == prefix then msg = gsub(msg, "^[^:]*:%d+: ", "", 1) end
      msg = gsub(msg, "^[^\n]-%.lua:%d+: ", "", 1)
      local where = m.label .. ":" .. line .. ": " .. msg
      local ex = m.exprs[line]
      if ex then where = where .. " (in " .. table.concat(ex, ", ") .. ")" end
      return setmetatable({ err = errors.with_kind(M.RENDER_ERROR, nil, "%s", where) }, Fail)
    end
  end
  return setmetatable({ err = errors.with_kind(M.RENDER_ERROR, nil, "%s", msg) }, Fail)
end

---------------------------------------------------------------------------
-- Sources
---------------------------------------------------------------------------

local function check_source(fname, key, v)
  if v ~= nil and type(v) ~= "string" and type(v) ~= "table" then
    arg_error(fname, key, "directory path or table of files expected, got " .. type(v))
  end
end

-- The text of template `name` from source src, or nil.
local function read(src, name)
  local file = name .. ".html"
  if type(src) == "table" then
    local s = src[file]
    if s == nil then s = src[name] end
    if type(s) == "string" then return s end
    return nil
  end
  local f = open(src .. "/" .. file, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

---------------------------------------------------------------------------
-- Engine
---------------------------------------------------------------------------

local Engine = {}
Engine.__index = Engine

--- Creates an engine. opts: views, layouts, partials (a directory path or a
--- table of files each), default_layout (a layout name; nil: none),
--- disable_cache (re-read and re-compile partials on every use), funcs (a
--- table of functions templates may call by name).
function M.new(opts)
  if type(opts) ~= "table" then arg_error("stencil.new", "opts", "table expected, got " .. type(opts)) end
  check_source("stencil.new", "views", opts.views)
  check_source("stencil.new", "layouts", opts.layouts)
  check_source("stencil.new", "partials", opts.partials)
  if opts.default_layout ~= nil and type(opts.default_layout) ~= "string" then
    arg_error("stencil.new", "default_layout", "string expected, got " .. type(opts.default_layout))
  end
  if opts.funcs ~= nil and type(opts.funcs) ~= "table" then
    arg_error("stencil.new", "funcs", "table expected, got " .. type(opts.funcs))
  end
  local e = setmetatable({
    views = opts.views, layouts = opts.layouts, partials = opts.partials,
    default_layout = opts.default_layout, disable_cache = opts.disable_cache == true,
    _compiled = {},   -- label -> { src, fn } (views and layouts, checked against the text)
    _partials = {},   -- name -> compiled (the partial cache)
    _depth = 0,
    _env = {},        -- the (empty) global table of template chunks
    stats = { compiles = 0, cache_hits = 0, partial_parses = 0 },
  }, Engine)
  local helpers = setmetatable({}, { __index = safe })
  for k, v in pairs(opts.funcs or {}) do
    if type(k) ~= "string" then arg_error("stencil.new", "funcs", "string keys expected") end
    helpers[k] = v
  end
  helpers.html, helpers.url, helpers.js, helpers.css, helpers.attr = M.html, M.url, M.js, M.css, M.attr
  helpers.partial = function(name, value) return e:_partial(name, value) end
  e._helpers = helpers
  e._helpers_mt = { __index = helpers }
  e._plain = setmetatable({}, e._helpers_mt)
  return e
end

local function bad_name(name)
  return name == "" or find(name, "..", 1, true) or sub(name, 1, 1) == "/" or find(name, "%z")
end

-- Compiles text for label, counting it.
function Engine:_compile(text, label)
  local c, err = compile.compile(text, label, self._env)
  if not c then return nil, errors.with_kind(M.COMPILE_ERROR, nil, "%s", err) end
  self.stats.compiles = self.stats.compiles + 1
  meta[c.fn] = { label = label, exprs = c.exprs }
  return c
end

-- A view or layout: read now, compiled again only when its text changed.
function Engine:_load(kind, name)
  local label = kind .. "/" .. name .. ".html"
  local src = self[kind]
  if bad_name(name) then return nil, errors.with_kind(M.NOT_FOUND, nil, "invalid template name %q", name) end
  local text = src and read(src, name)
  if not text then return nil, errors.with_kind(M.NOT_FOUND, nil, "%s", label) end
  local c = self._compiled[label]
  if c and c.text == text then
    self.stats.cache_hits = self.stats.cache_hits + 1
    return c
  end
  local err
  c, err = self:_compile(text, label)
  if not c then return nil, err end
  c.text = text
  self._compiled[label] = c
  return c
end

-- Runs compiled template c with data; r: the helper table. Returns the text.
local pool, npool = {}, 0
local function run(c, data, r)
  local b
  if npool > 0 then b = pool[npool]; pool[npool] = nil; npool = npool - 1 else b = buffer.new() end
  c.fn(data, r, b)
  local s = b:tostring()
  b:reset()
  if npool < 16 then npool = npool + 1; pool[npool] = b end
  return s
end

-- partial(name, value) inside a template.
function Engine:_partial(name, value)
  if type(name) ~= "string" then error("bad argument 'name' to partial: string expected, got " .. type(name), 2) end
  if self._depth >= M.MAX_DEPTH then
    fail(errors.with_kind(M.RENDER_ERROR, nil, "partial recursion deeper than %d at partials/%s.html",
      M.MAX_DEPTH, name))
  end
  local c = not self.disable_cache and self._partials[name]
  if not c then
    local label = "partials/" .. name .. ".html"
    if bad_name(name) then fail(errors.with_kind(M.NOT_FOUND, nil, "invalid partial name %q", name)) end
    local text = self.partials and read(self.partials, name)
    if not text then fail(errors.with_kind(M.NOT_FOUND, nil, "%s", label)) end
    local err
    c, err = self:_compile(text, label)
    if not c then fail(err) end
    self.stats.partial_parses = self.stats.partial_parses + 1
    if not self.disable_cache then self._partials[name] = c end
  end
  self._depth = self._depth + 1
  local s = run(c, value, self._plain)
  self._depth = self._depth - 1
  return trusted("html", s)
end

local function render_body(self, name, data, opts)
  local layout = self.default_layout
  if opts ~= nil then
    if opts.layout ~= nil then layout = opts.layout end
  end
  local view, err = self:_load("views", name)
  if not view then return nil, err end
  local lay
  if layout then
    lay, err = self:_load("layouts", layout)
    if not lay then return nil, err end
  end
  local s = run(view, data, self._plain)
  if lay then
    -- `view` too: lua-resty-template layouts insert the page with {*view*}.
    local page = trusted("html", s)
    s = run(lay, data, setmetatable({ yield = page, view = page }, self._helpers_mt))
  end
  return s
end

local function check_args(fname, name, data, opts)
  if type(name) ~= "string" then arg_error(fname, "name", "string expected, got " .. type(name)) end
  if opts ~= nil then
    if type(opts) ~= "table" then arg_error(fname, "opts", "table expected, got " .. type(opts)) end
    local l = opts.layout
    if l ~= nil and l ~= false and type(l) ~= "string" then
      arg_error(fname, "opts.layout", "layout name or false expected, got " .. type(l))
    end
  end
end

--- Renders view `name` (inside its layout) to a string. opts.layout: a
--- layout name, or false for none (default: default_layout). Returns the
--- text, or nil, err.
function Engine:render_to_string(name, data, opts)
  check_args("render_to_string", name, data, opts)
  local depth = self._depth
  local ok, s, err = xpcall(render_body, handler, self, name, data, opts)
  self._depth = depth
  if not ok then return nil, s.err end
  if s == nil then return nil, err end
  return s
end

--- Renders into w (anything with w:write(s), such as an HTTP
--- ResponseWriter). Nothing is written unless the whole render succeeds.
--- Returns true, or nil, err (a render error, or the error of w:write).
function Engine:render(w, name, data, opts)
  if type(w) ~= "table" and type(w) ~= "userdata" then arg_error("render", "w", "writer expected, got " .. type(w)) end
  check_args("render", name, data, opts)
  local s, err = self:render_to_string(name, data, opts)
  if not s then return nil, err end
  local ok, werr = w:write(s)
  if ok == nil and werr ~= nil then return nil, werr end
  return true
end

--- Forgets the cached partials (and compiled views and layouts): the next
--- render reads and compiles them again.
function Engine:reload()
  self._partials = {}
  self._compiled = {}
end

--- Compiles template text without an engine (for tools and tests):
--- returns a function(data) -> string, or nil, err.
function M.compile(text, label)
  if type(text) ~= "string" then arg_error("stencil.compile", "text", "string expected, got " .. type(text)) end
  local e = M.new {}
  local c, err = e:_compile(text, label or "template")
  if not c then return nil, err end
  return function(data)
    local ok, s = xpcall(run, handler, c, data, e._plain)
    if not ok then return nil, s.err end
    return s
  end
end

return M
