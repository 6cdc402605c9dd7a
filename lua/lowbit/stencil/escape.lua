-- lowbit.stencil.escape: the value side of contextual escaping. Each
-- function takes one template value and returns the bytes for one context
-- (the stages of Go html/template's escaper pipelines). The byte work is the
-- lb_escape C core; it is called only when a value holds a byte that needs
-- escaping (a Lua pattern finds it), and writes into one reused buffer.
--
-- Values: strings, numbers, booleans and nil (empty text, `null` in
-- script), trusted wrappers (M.trusted), tables with __tostring; in a
-- script value context any plain table becomes JSON. Anything else (a
-- function, a cdata, a coroutine, a userdata) raises "unsupported value".
local ffi = require "ffi"
local core = require "lowbit.core"

local C = core.C
local ffi_new, ffi_string = ffi.new, ffi.string
local type, tostring, error, getmetatable, setmetatable, pairs, next, rawget =
  type, tostring, error, getmetatable, setmetatable, pairs, next, rawget
local find, format, lower, byte, gsub = string.find, string.format, string.lower, string.byte, string.gsub
local floor, huge = math.floor, math.huge
local concat, sort = table.concat, table.sort

local M = {}

local K_HTML, K_NOSPACE = C.LB_ESCAPE_HTML, C.LB_ESCAPE_HTML_NOSPACE
local K_URL_NORM, K_URL_QUERY = C.LB_ESCAPE_URL_NORM, C.LB_ESCAPE_URL_QUERY
local K_JS_STR, K_JS_RE, K_JSON = C.LB_ESCAPE_JS_STR, C.LB_ESCAPE_JS_REGEXP, C.LB_ESCAPE_JSON_STR
local K_CSS_STR, K_CSS_VALUE, K_SRCSET = C.LB_ESCAPE_CSS_STR, C.LB_ESCAPE_CSS_VALUE, C.LB_ESCAPE_SRCSET

M.FAILSAFE = "ZgotmplZ"

-- The reused output buffer (grown, never shrunk below 4 KiB).
local cap = 4096
local out = ffi_new("char[?]", cap)

local function cesc(kind, s)
  local n = #s
  local need = 8 * n + 16
  if need > cap then
    cap = need
    out = ffi_new("char[?]", cap)
  end
  local r = C.lb_escape(kind, s, n, out, cap)
  if r < 0 then return nil end
  return ffi_string(out, r)
end

---------------------------------------------------------------------------
-- Trusted values: Go's template.HTML and friends.
---------------------------------------------------------------------------

local Trusted = {}
Trusted.__index = Trusted
Trusted.__tostring = function(t) return t.s end
M.Trusted = Trusted

--- Wraps s as trusted content of type t ("html", "url", "js", "css",
--- "attr"). It passes unescaped only in a context of that type.
function M.trusted(t, s)
  return setmetatable({ s = s, t = t }, Trusted)
end

---------------------------------------------------------------------------
-- Values to text
---------------------------------------------------------------------------

--- A number as text: integers without a fraction, others in the shortest
--- form that reads back to the same number (Go's %v).
local function num(v)
  if v == floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
  if v ~= v then return "NaN" end
  if v == huge then return "+Inf" end
  if v == -huge then return "-Inf" end
  for p = 15, 17 do
    local s = format("%." .. p .. "g", v)
    if tonumber(s) == v then return s end
  end
  return format("%.17g", v)
end
M.num = num

local function unsupported(v, level)
  error("unsupported value of type " .. type(v) .. " (" .. tostring(v) .. ")", level)
end

--- The text of a value and its content type (nil: plain). Level: error
--- level of the template code that gave the value.
local function stringify(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then return num(v) end
  if v == nil then return "" end
  if tv == "boolean" then return v and "true" or "false" end
  if tv == "table" then
    local mt = getmetatable(v)
    if mt == Trusted then return v.s, v.t end
    if mt and mt.__tostring then return tostring(v) end
  end
  unsupported(v, 4)
end
M.stringify = stringify

---------------------------------------------------------------------------
-- Stages. Each takes (s, t) and returns the escaped string.
---------------------------------------------------------------------------

local P_JSON = "[%z\1-\31\"\\<>&\128-\255]"

-- Is escaping needed? One FFI call (string.find with a character class
-- is not compiled by LuaJIT's JIT: it would stitch every action's trace).
local needed = C.lb_escape_needed

local function html(s)
  if needed(K_HTML, s, #s) == 0 then return s end
  return cesc(K_HTML, s)
end
M.html = html

local S = {}
M.stages = S

-- Trusted HTML outside text keeps its entities: the sets without '&'.
local norm_map = { ["\0"] = "\239\191\189", ['"'] = "&#34;", ["'"] = "&#39;", ["+"] = "&#43;",
                   ["<"] = "&lt;", [">"] = "&gt;" }
local norm_nospace_map = { ["\0"] = "&#xfffd;", ["\t"] = "&#9;", ["\n"] = "&#10;", ["\v"] = "&#11;",
  ["\f"] = "&#12;", ["\r"] = "&#13;", [" "] = "&#32;", ['"'] = "&#34;", ["'"] = "&#39;", ["+"] = "&#43;",
  ["<"] = "&lt;", ["="] = "&#61;", [">"] = "&gt;", ["`"] = "&#96;" }
local function norm_html(s) return (gsub(s, "[%z\"'+<>]", norm_map)) end
local strip_tags -- set by M.set_strip_tags (lowbit.stencil.context)
function M.set_strip_tags(f) strip_tags = f end

-- Text: trusted HTML passes.
function S.html(s, t) if t == "html" then return s end return html(s) end
-- RCDATA (title, textarea): everything is escaped (trusted HTML keeps its
-- entities).
function S.rcdata(s, t) if t == "html" then return norm_html(s) end return html(s) end
-- Quoted attributes: trusted HTML loses its tags, keeps its entities.
function S.attr(s, t) if t == "html" then return norm_html(strip_tags(s)) end return html(s) end
-- Unquoted attribute values.
function S.nospace(s, t)
  if t == "html" then return (gsub(strip_tags(s), "[%z\t\n\v\f\r \"'+<=>`]", norm_nospace_map)) end
  if needed(K_NOSPACE, s, #s) == 0 then return s end
  return cesc(K_NOSPACE, s)
end
-- An attribute name from data: [a-z0-9]+ (lowered) and of plain type.
local attr_type -- set by M.set_attr_type
function S.name(s, t)
  if t == "attr" then return s end
  if s == "" then return M.FAILSAFE end
  s = lower(s)
  if find(s, "[^a-z0-9]") or attr_type(s) ~= "plain" then return M.FAILSAFE end
  return s
end
function M.set_attr_type(f) attr_type = f end
-- URL with no scheme, or http/https/mailto; trusted URLs pass.
function S.urlfilter(s, t)
  if t == "url" then return s end
  if find(s, ":", 1, true) and C.lb_escape_url_safe(s, #s) == 0 then return "#" .. M.FAILSAFE end
  return s
end
function S.urlnorm(s)
  if needed(K_URL_NORM, s, #s) == 0 then return s end
  return cesc(K_URL_NORM, s)
end
function S.urlquery(s, t)
  if t == "url" then return S.urlnorm(s) end
  if needed(K_URL_QUERY, s, #s) == 0 then return s end
  return cesc(K_URL_QUERY, s)
end
function S.srcset(s, t)
  if t == "url" then return (gsub(S.urlnorm(s), ",", "%%2c")) end
  return cesc(K_SRCSET, s)
end
function S.jsstr(s)
  if needed(K_JS_STR, s, #s) == 0 then return s end
  return cesc(K_JS_STR, s)
end
function S.jsre(s)
  if s == "" then return "(?:)" end
  if needed(K_JS_RE, s, #s) == 0 then return s end
  return cesc(K_JS_RE, s)
end
function S.cssvalue(s, t)
  if t == "css" then return s end
  return cesc(K_CSS_VALUE, s) or M.FAILSAFE
end
function S.cssstr(s)
  if needed(K_CSS_STR, s, #s) == 0 then return s end
  return cesc(K_CSS_STR, s)
end
function S.comment() return "" end

---------------------------------------------------------------------------
-- JS values: JSON, as encoding/json writes it with HTML escaping on.
---------------------------------------------------------------------------

local function json_str(s)
  if not find(s, P_JSON) then return '"' .. s .. '"' end
  return cesc(K_JSON, s)
end

local function json(v, depth, acc, seen)
  local tv = type(v)
  if tv == "string" then acc[#acc + 1] = json_str(v); return end
  if tv == "number" then
    if v ~= v or v == huge or v == -huge then
      error({ json = "json: unsupported value: " .. num(v) })
    end
    acc[#acc + 1] = num(v); return
  end
  if v == nil then acc[#acc + 1] = "null"; return end
  if tv == "boolean" then acc[#acc + 1] = v and "true" or "false"; return end
  if tv == "table" then
    local mt = getmetatable(v)
    if mt == Trusted then acc[#acc + 1] = json_str(v.s); return end
    if mt and mt.__tostring then acc[#acc + 1] = json_str(tostring(v)); return end
    if seen[v] or depth > 100 then error({ json = "json: unsupported value: cyclic or too deep table" }) end
    seen[v] = true
    local n = #v
    local count = 0
    for _ in pairs(v) do count = count + 1 end
    if n > 0 and count == n then
      acc[#acc + 1] = "["
      for i = 1, n do
        if i > 1 then acc[#acc + 1] = "," end
        json(v[i], depth + 1, acc, seen)
      end
      acc[#acc + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        local tk = type(k)
        if tk == "number" then k = num(k) elseif tk ~= "string" then
          error({ json = "json: unsupported key type " .. tk })
        end
        keys[#keys + 1] = k
      end
      sort(keys)
      acc[#acc + 1] = "{"
      for i = 1, #keys do
        local k = keys[i]
        if i > 1 then acc[#acc + 1] = "," end
        acc[#acc + 1] = json_str(k)
        acc[#acc + 1] = ":"
        local val = rawget(v, k)
        if val == nil then val = v[tonumber(k)] end
        json(val, depth + 1, acc, seen)
      end
      acc[#acc + 1] = "}"
    end
    seen[v] = nil
    return
  end
  unsupported(v, 5)
end

local function ident_part(c)
  return c and (c == 36 or c == 95 or (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122))
end

--- A value in a script value context (Go's jsValEscaper): JSON, padded
--- with spaces when it starts or ends like an identifier or a number.
function M.jsval(v)
  local tv = type(v)
  local b
  if tv == "table" and getmetatable(v) == Trusted and v.t == "js" then return v.s end
  if tv == "string" then
    b = json_str(v)
    -- U+2028/U+2029 are escaped by the C core as JSON does.
    return b
  end
  if tv == "function" or tv == "cdata" or tv == "userdata" or tv == "thread" then unsupported(v, 3) end
  local acc = {}
  local ok, err = pcall(json, v, 0, acc, {})
  if not ok then
    if type(err) == "table" and err.json then
      return " /* " .. gsub(err.json, "%*/", "* /") .. " */null "
    end
    error(err, 0)
  end
  b = concat(acc)
  if ident_part(byte(b, 1)) or ident_part(byte(b, -1)) then return " " .. b .. " " end
  return b
end

--- Raw output ({* *}): the value's text, unescaped.
function M.raw(v)
  local tv = type(v)
  if tv == "string" then return v end
  return (stringify(v))
end

return M
