-- lowbit.webassets.minify: the token-level JavaScript and CSS minifier
-- (the C core lb_minify, through the FFI).
--
--   local minify = require "lowbit.webassets.minify"
--   local out, err = minify.js("var a = 1 ;\n// note\nf( a )")   --> "var a=1;f(a)"
--   local css = assert(minify.css("a { color : red ! important }")) --> "a{color :red!important}"
--
-- Whitespace and comments are removed and nothing else: no value, number,
-- string or shorthand is rewritten, no identifier renamed, no semicolon
-- inserted (include/lowbit/lb_minify.h lists every rule). `/*!` comments
-- and a `#!` first line are kept; `</script` never appears in JS output.
--
-- Errors: source the lexer cannot read (an unterminated string, comment,
-- regex, template or url()) gives nil, err where errors.is(err,
-- minify.SYNTAX) and tostring(err) names the line, e.g.
-- "minify.js: line 3: unterminated string literal". A caller serving
-- assets then serves the file as it is. Wrong argument types raise.
local core = require "lowbit.core"
local errors = require "lowbit.errors"

local ffi = core.ffi
local C = core.C

local type, error, tonumber = type, error, tonumber
local ffi_string, ffi_new = ffi.string, ffi.new

local M = {}

M.SYNTAX = errors.new("minify: cannot read the source")

-- One scratch buffer, grown to the largest input seen (minify is called
-- once per asset, so keeping it costs less than reallocating).
local buf, buf_cap = nil, 0
local line = ffi_new("size_t[1]")

local function run(fn, fname, s)
  if type(s) ~= "string" then
    error("bad argument 's' to minify." .. fname .. ": string expected, got " .. type(s), 3)
  end
  local n = #s
  local cap = tonumber(C.lb_minify_max_len(n))
  if cap > buf_cap then
    buf = ffi_new("uint8_t[?]", cap)
    buf_cap = cap
  end
  local r = tonumber(fn(s, n, buf, buf_cap, line))
  if r < 0 then
    return nil, errors.wrap(M.SYNTAX, "minify.%s: line %d: %s", fname, tonumber(line[0]),
      core.strerror(r))
  end
  local out = ffi_string(buf, r)
  if buf_cap > 4 * 1024 * 1024 then buf, buf_cap = nil, 0 end -- do not pin huge buffers
  return out
end

--- Minified JavaScript, or nil, err (errors.is(err, M.SYNTAX)) naming the line.
function M.js(s) return run(C.lb_minify_js, "js", s) end

--- Minified CSS, or nil, err (errors.is(err, M.SYNTAX)) naming the line.
function M.css(s) return run(C.lb_minify_css, "css", s) end

return M
