-- lowbit.stencil.context: the HTML parsing state a template's text leaves
-- behind, tracked at compile time (the state machine of Go html/template's
-- transition.go, written for Lua strings). A context is a table
-- { state, delim, url, js, attr, el }:
--   state  text tag attrname aftername beforevalue htmlcmt rcdata attr url
--          srcset js jsdq jssq jsbq jsre jsblockcmt jslinecmt css cssdq csssq
--          cssdqurl csssqurl cssurl cssblockcmt csslinecmt error
--   delim  none dq sq space        (how the attribute value ends)
--   url    none pre query unknown  (which part of a URL we are in)
--   js     re div unknown          (does a '/' start a regexp or divide)
--   attr   none script scripttype style url srcset
--   el     none script style textarea title
local find, sub, byte, lower, gsub, match = string.find, string.sub, string.byte, string.lower, string.gsub, string.match
local tonumber, char = tonumber, string.char

local M = {}

local function ctx(state, delim, url, js, attr, el)
  return { state = state, delim = delim or "none", url = url or "none", js = js or "re",
           attr = attr or "none", el = el or "none" }
end
M.new = ctx
M.text = function() return ctx("text") end

local function copy(c)
  return { state = c.state, delim = c.delim, url = c.url, js = c.js, attr = c.attr, el = c.el, err = c.err }
end
M.copy = copy

function M.key(c)
  return c.state .. "|" .. c.delim .. "|" .. c.url .. "|" .. c.js .. "|" .. c.attr .. "|" .. c.el
end
local key = M.key

local function err(msg) local c = ctx("error"); c.err = msg; return c end

---------------------------------------------------------------------------
-- Attribute types (Go's attrType)
---------------------------------------------------------------------------

local attr_types = {
  ["accept-charset"] = "unsafe", action = "url", archive = "url", async = "unsafe",
  background = "url", cite = "url", challenge = "unsafe", charset = "unsafe", classid = "url",
  codebase = "url", content = "unsafe", crossorigin = "unsafe", data = "url", defer = "unsafe",
  enctype = "unsafe", form = "unsafe", formaction = "url", formenctype = "unsafe",
  formmethod = "unsafe", formnovalidate = "unsafe", href = "url", ["http-equiv"] = "unsafe",
  icon = "url", keytype = "unsafe", language = "unsafe", longdesc = "url", manifest = "url",
  method = "unsafe", novalidate = "unsafe", pattern = "unsafe", poster = "url", profile = "url",
  rel = "unsafe", sandbox = "unsafe", src = "url", srcdoc = "html", srcset = "srcset",
  style = "css", type = "unsafe", usemap = "url", value = "unsafe", xmlns = "url",
}

--- The content type of an attribute by its (lowercase) name: "plain",
--- "url", "js", "css", "srcset", "html" or "unsafe".
function M.attr_type(name)
  if sub(name, 1, 5) == "data-" then
    name = sub(name, 6)
  else
    local colon = find(name, ":", 1, true)
    if colon then
      if sub(name, 1, colon - 1) == "xmlns" then return "url" end
      name = sub(name, colon + 1)
    end
  end
  local t = attr_types[name]
  if t then return t end
  if sub(name, 1, 2) == "on" then return "js" end
  if find(name, "src", 1, true) or find(name, "uri", 1, true) or find(name, "url", 1, true) then
    return "url"
  end
  return "plain"
end

local js_types = {}
for _, t in ipairs { "application/ecmascript", "application/javascript", "application/json",
  "application/ld+json", "application/x-ecmascript", "application/x-javascript", "module",
  "text/ecmascript", "text/javascript", "text/javascript1.0", "text/javascript1.1",
  "text/javascript1.2", "text/javascript1.3", "text/javascript1.4", "text/javascript1.5",
  "text/jscript", "text/livescript", "text/x-ecmascript", "text/x-javascript" } do
  js_types[t] = true
end

local function is_js_type(s)
  s = lower(match(s, "^[^;]*"))
  s = match(s, "^%s*(.-)%s*$")
  return js_types[s] == true
end

---------------------------------------------------------------------------
-- Transitions: each takes (c, s) and returns the new context and the
-- number of bytes of s it consumed.
---------------------------------------------------------------------------

local content_state = { none = "text", script = "js", style = "css", textarea = "rcdata", title = "rcdata" }
local special_elements = { script = true, style = true, textarea = true, title = true }

local function is_space(b) return b == 32 or b == 9 or b == 10 or b == 12 or b == 13 end
local function eat_space(s, i)
  local n = #s
  while i <= n and is_space(byte(s, i)) do i = i + 1 end
  return i
end

local function is_alpha(b) return b and ((b >= 65 and b <= 90) or (b >= 97 and b <= 122)) end
local function is_alnum(b) return b and (is_alpha(b) or (b >= 48 and b <= 57)) end

-- Tag name at i (1-based); returns the index after it and its element.
local function eat_tag_name(s, i)
  local n = #s
  if i > n or not is_alpha(byte(s, i)) then return i, "none" end
  local j = i + 1
  while j <= n do
    local x = byte(s, j)
    if is_alnum(x) then j = j + 1
    elseif (x == 58 or x == 45) and j + 1 <= n and is_alnum(byte(s, j + 1)) then j = j + 2
    else break end
  end
  local name = lower(sub(s, i, j - 1))
  return j, special_elements[name] and name or "none"
end

-- Attribute name from i: returns the index after it, or nil and an error.
local function eat_attr_name(s, i)
  local n = #s
  for j = i, n do
    local b = byte(s, j)
    if is_space(b) or b == 61 or b == 62 then return j end
    if b == 39 or b == 34 or b == 60 then
      return nil, ("%q in attribute name: %q"):format(char(b), sub(s, 1, 32))
    end
  end
  return n + 1
end

local T = {}

function T.text(c, s)
  local k = 1
  local n = #s
  while true do
    local i = find(s, "<", k, true)
    if not i or i == n then return c, n end
    if sub(s, i, i + 3) == "<!--" then return ctx("htmlcmt"), i + 3 end
    i = i + 1
    local close = false
    if byte(s, i) == 47 then
      if i == n then return c, n end
      close, i = true, i + 1
    end
    local j, el = eat_tag_name(s, i)
    if j ~= i then
      if close then el = "none" end
      return ctx("tag", nil, nil, nil, nil, el), j - 1
    end
    k = j
  end
end

local attr_start = { none = "attr", script = "js", scripttype = "attr", style = "css", url = "url", srcset = "srcset" }

function T.tag(c, s)
  local i = eat_space(s, 1)
  local n = #s
  if i > n then return c, n end
  if byte(s, i) == 62 then return ctx(content_state[c.el], nil, nil, nil, nil, c.el), i end
  local j, e = eat_attr_name(s, i)
  if not j then return err(e), n end
  if i == j then
    return err(("expected space, attr name, or end of tag, but got %q"):format(sub(s, i, i + 31))), n
  end
  local name = lower(sub(s, i, j - 1))
  local attr = "none"
  if c.el == "script" and name == "type" then attr = "scripttype"
  else
    local t = M.attr_type(name)
    if t == "url" then attr = "url" elseif t == "css" then attr = "style"
    elseif t == "js" then attr = "script" elseif t == "srcset" then attr = "srcset" end
  end
  local state = j > n and "attrname" or "aftername"
  return ctx(state, nil, nil, nil, attr, c.el), j - 1
end

function T.attrname(c, s)
  local i, e = eat_attr_name(s, 1)
  if not i then return err(e), #s end
  if i <= #s then c = copy(c); c.state = "aftername" end
  return c, i - 1
end

function T.aftername(c, s)
  local i = eat_space(s, 1)
  if i > #s then return c, #s end
  c = copy(c)
  if byte(s, i) ~= 61 then c.state = "tag"; return c, i - 1 end
  c.state = "beforevalue"
  return c, i
end

function T.beforevalue(c, s)
  local i = eat_space(s, 1)
  if i > #s then return c, #s end
  local delim = "space"
  local b = byte(s, i)
  if b == 39 then delim, i = "sq", i + 1 elseif b == 34 then delim, i = "dq", i + 1 end
  c = copy(c)
  c.state, c.delim = attr_start[c.attr], delim
  return c, i - 1
end

function T.htmlcmt(c, s)
  local i = find(s, "-->", 1, true)
  if i then return ctx("text"), i + 2 end
  return c, #s
end

-- Index (1-based) of "</tag" followed by a separator, or nil.
local function index_tag_end(s, tag)
  local k = 1
  local n = #s
  while true do
    local i = find(s, "</", k, true)
    if not i then return nil end
    local name = sub(s, i + 2, i + 1 + #tag)
    if lower(name) == tag then
      local sep = byte(s, i + 2 + #tag)
      if sep and (sep == 62 or sep == 32 or sep == 9 or sep == 10 or sep == 12 or sep == 47) then return i end
    end
    k = i + 2
    if k > n then return nil end
  end
end

-- Returns the context and the number of bytes before the special end tag.
local function special_tag_end(c, s)
  if c.el ~= "none" then
    local i = index_tag_end(s, c.el)
    if i then return ctx("text"), i - 1 end
  end
  return c, #s
end
T.rcdata = special_tag_end

function T.attr(c, s) return c, #s end

function T.url(c, s)
  if find(s, "[#?]") then
    c = copy(c); c.url = "query"
  elseif eat_space(s, 1) <= #s and c.url == "none" then
    c = copy(c); c.url = "pre"
  end
  return c, #s
end
T.srcset = T.url

local regexp_preceders = { ["break"] = true, case = true, continue = true, delete = true, ["do"] = true,
  ["else"] = true, finally = true, ["in"] = true, instanceof = true, ["return"] = true, throw = true,
  try = true, typeof = true, void = true }

local function ident_part(b)
  return b == 36 or b == 95 or is_alnum(b)
end

local function next_js_ctx(s, preceding)
  s = gsub(s, "[\t\n\f\r ]+$", "")
  s = gsub(s, "\226\128[\168\169]$", "")
  local n = #s
  if n == 0 then return preceding end
  local b = byte(s, n)
  if b == 43 or b == 45 then
    local start = n
    while start > 1 and byte(s, start - 1) == b do start = start - 1 end
    if (n - start + 1) % 2 == 1 then return "re" end
    return "div"
  elseif b == 46 then
    local p = byte(s, n - 1)
    if n ~= 1 and p >= 48 and p <= 57 then return "div" end
    return "re"
  elseif find(",<>=*%&|^?!~([:;{}", char(b), 1, true) then
    return "re"
  else
    local j = n
    while j > 0 and ident_part(byte(s, j)) do j = j - 1 end
    if regexp_preceders[sub(s, j + 1)] then return "re" end
  end
  return "div"
end

function T.js(c, s)
  local i = find(s, "[\"`'/]")
  c = copy(c)
  if not i then
    c.js = next_js_ctx(s, c.js)
    return c, #s
  end
  c.js = next_js_ctx(sub(s, 1, i - 1), c.js)
  local b = byte(s, i)
  if b == 34 then c.state, c.js = "jsdq", "re"
  elseif b == 39 then c.state, c.js = "jssq", "re"
  elseif b == 96 then c.state, c.js = "jsbq", "re"
  else
    local nb = byte(s, i + 1)
    if nb == 47 then c.state, i = "jslinecmt", i + 1
    elseif nb == 42 then c.state, i = "jsblockcmt", i + 1
    elseif c.js == "re" then c.state = "jsre"
    elseif c.js == "div" then c.js = "re"
    else
      return err(("'/' could start a division or regexp: %q"):format(sub(s, i, i + 31))), #s
    end
  end
  return c, i
end

function T.jsdelim(c, s)
  local specials = c.state == "jssq" and "[\\']" or c.state == "jsbq" and "[`\\]" or
    c.state == "jsre" and "[\\/%[%]]" or '[\\"]'
  local k, incharset = 1, false
  local n = #s
  while true do
    local i = find(s, specials, k)
    if not i then break end
    local b = byte(s, i)
    if b == 92 then
      i = i + 1
      if i > n then return err(("unfinished escape sequence in JS string: %q"):format(s)), n end
    elseif b == 91 then incharset = true
    elseif b == 93 then incharset = false
    elseif not incharset then
      c = copy(c); c.state, c.js = "js", "div"
      return c, i
    end
    k = i + 1
  end
  if incharset then return err(("unfinished JS regexp charset: %q"):format(s)), n end
  return c, n
end
T.jsdq, T.jssq, T.jsbq, T.jsre = T.jsdelim, T.jsdelim, T.jsdelim, T.jsdelim

local function block_cmt(c, s)
  local i = find(s, "*/", 1, true)
  if not i then return c, #s end
  c = copy(c)
  c.state = c.state == "jsblockcmt" and "js" or "css"
  return c, i + 1
end
T.jsblockcmt, T.cssblockcmt = block_cmt, block_cmt

local function line_cmt(c, s)
  local i
  if c.state == "jslinecmt" then
    i = find(s, "[\n\r]") ; local j = find(s, "\226\128[\168\169]")
    if j and (not i or j < i) then i = j end
  else
    i = find(s, "[\n\f\r]")
  end
  if not i then return c, #s end
  c = copy(c)
  c.state = c.state == "jslinecmt" and "js" or "css"
  return c, i - 1
end
T.jslinecmt, T.csslinecmt = line_cmt, line_cmt

function T.css(c, s)
  local k = 1
  local n = #s
  while true do
    local i = find(s, "[(\"'/]", k)
    if not i then return c, n end
    local b = byte(s, i)
    if b == 40 then
      local p = gsub(sub(s, 1, i - 1), "[\t\n\f\r ]+$", "")
      local before = #p > 3 and byte(p, #p - 3)
      if #p >= 3 and lower(sub(p, -3)) == "url" and
         not (before and (is_alnum(before) or before == 45 or before == 95 or before >= 128)) then
        local j = eat_space(s, i + 1)
        c = copy(c)
        local q = byte(s, j)
        if q == 34 then c.state, j = "cssdqurl", j + 1
        elseif q == 39 then c.state, j = "csssqurl", j + 1
        else c.state = "cssurl" end
        return c, j - 1
      end
    elseif b == 47 then
      local nb = byte(s, i + 1)
      if nb == 47 then c = copy(c); c.state = "csslinecmt"; return c, i + 1 end
      if nb == 42 then c = copy(c); c.state = "cssblockcmt"; return c, i + 1 end
    elseif b == 34 then c = copy(c); c.state = "cssdq"; return c, i
    elseif b == 39 then c = copy(c); c.state = "csssq"; return c, i
    end
    k = i + 1
  end
end

-- CSS escapes decoded, for the URL part tracking inside CSS strings.
local function decode_css(s)
  if not find(s, "\\", 1, true) then return s end
  return (gsub(s, "\\(%x%x?%x?%x?%x?%x?)[\t\n\f\r ]?", function(h)
    local r = tonumber(h, 16)
    if r < 128 then return char(r) end
    return "?"
  end):gsub("\\(.)", "%1"))
end

function T.cssstr(c, s)
  local pat
  if c.state == "cssdq" or c.state == "cssdqurl" then pat = '[\\"]'
  elseif c.state == "csssq" or c.state == "csssqurl" then pat = "[\\']"
  else pat = "[\\\t\n\f\r )]" end
  local k = 1
  local n = #s
  while true do
    local i = find(s, pat, k)
    if not i then
      local c2 = T.url(c, decode_css(sub(s, k)))
      return c2, n
    end
    if byte(s, i) == 92 then
      i = i + 1
      if i > n then return err(("unfinished escape sequence in CSS string: %q"):format(s)), n end
    else
      c = copy(c); c.state = "css"
      return c, i
    end
    c = T.url(c, decode_css(sub(s, 1, i)))
    k = i + 1
  end
end
T.cssdq, T.csssq, T.cssdqurl, T.csssqurl, T.cssurl = T.cssstr, T.cssstr, T.cssstr, T.cssstr, T.cssstr

function T.error(c, s) return c, #s end

local entities = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'" }
local function html_unescape(s)
  if not find(s, "&", 1, true) then return s end
  return (gsub(s, "&(#?[%w]+);", function(e)
    if sub(e, 1, 1) == "#" then
      local v = sub(e, 2, 2) == "x" and tonumber(sub(e, 3), 16) or tonumber(sub(e, 2))
      if v and v < 128 then return char(v) end
      return nil
    end
    return entities[e]
  end))
end

local delim_ends = { dq = '"', sq = "'", space = "[\t\n\f\r >]" }

--- The context after a prefix of s, and how many bytes that prefix has
--- (Go's contextAfterText).
function M.after_text(c, s)
  if c.delim == "none" then
    local c1, i = special_tag_end(c, s)
    if i == 0 then return c1, 0 end
    return T[c.state](c, sub(s, 1, i))
  end
  local i = c.delim == "space" and find(s, delim_ends.space) or find(s, delim_ends[c.delim], 1, true)
  local n = #s
  i = i or n + 1
  if c.delim == "space" then
    local j = find(sub(s, 1, i - 1), "[\"'<=`]")
    if j then
      return err(("%q in unquoted attr: %q"):format(sub(s, j, j), sub(s, 1, i - 1))), n
    end
  end
  if i > n then
    local u = html_unescape(s)
    local guard = 0
    while #u > 0 and guard < 100000 do
      guard = guard + 1
      local c1, i1 = T[c.state](c, u)
      c, u = c1, sub(u, i1 + 1)
      if c.state == "error" then break end
    end
    return c, n
  end
  local el = c.el
  if c.state == "attr" and c.el == "script" and c.attr == "scripttype" and not is_js_type(sub(s, 1, i - 1)) then
    el = "none"
  end
  if c.delim ~= "space" then i = i + 1 end
  return ctx("tag", nil, nil, nil, nil, el), i - 1
end

local comment_states = { htmlcmt = true, jsblockcmt = true, jslinecmt = true, cssblockcmt = true, csslinecmt = true }
M.is_comment = comment_states

--- Runs a static text through the state machine. Returns the context at its
--- end and the text to emit: HTML, JS and CSS comments dropped (comments
--- inside attribute values stay), and a '<' in text that starts no tag as
--- &lt;. On a parse error the context has state "error" and err set.
function M.escape_text(c, s)
  local out, written, i, n = {}, 1, 1, #s
  while i <= n do
    local c1, nread = M.after_text(c, sub(s, i))
    local i1 = i + nread
    if c.state == "text" or c.state == "rcdata" then
      local e = i1
      if c1.state ~= c.state then
        for j = e - 1, i, -1 do
          if byte(s, j) == 60 then e = j; break end
        end
      end
      for j = i, e - 1 do
        if byte(s, j) == 60 and lower(sub(s, j, j + 8)) ~= "<!doctype" then
          out[#out + 1] = sub(s, written, j - 1)
          out[#out + 1] = "&lt;"
          written = j + 1
        end
      end
    elseif comment_states[c.state] and c.delim == "none" then
      if c.state == "jsblockcmt" then
        out[#out + 1] = find(sub(s, written, i1 - 1), "[\n\r]") and "\n" or
          (find(sub(s, written, i1 - 1), "\226\128[\168\169]") and "\n" or " ")
      elseif c.state == "cssblockcmt" then
        out[#out + 1] = " "
      end
      written = i1
    end
    if c.state ~= c1.state and comment_states[c1.state] and c1.delim == "none" then
      local cs = i1 - 2
      if c1.state == "htmlcmt" then cs = cs - 2 end
      out[#out + 1] = sub(s, written, cs - 1)
      written = i1
    end
    if c1.state == "error" then return c1, "" end
    if i == i1 and c.state == c1.state then
      return err("internal: no progress in state " .. c.state), ""
    end
    c, i = c1, i1
  end
  if not comment_states[c.state] or c.delim ~= "none" then
    out[#out + 1] = sub(s, written)
  end
  return c, table.concat(out)
end

local in_tag = { tag = true, attrname = true, aftername = true, beforevalue = true, attr = true }

--- The text of an HTML fragment with its tags and comments removed (what
--- a trusted HTML value becomes inside an attribute): the state machine
--- decides what is a tag, so `<div title="1>2">` and `I <3 you` survive.
function M.strip_tags(html)
  local out = {}
  local c, i, n, all_text = ctx("text"), 1, #html, true
  local guard = 0
  while i <= n and guard < 1000000 do
    guard = guard + 1
    if c.delim == "none" then
      local st = c.state
      if c.el ~= "none" and not in_tag[st] then st = "rcdata" end
      local d, nread = T[st](c, sub(html, i))
      local i1 = i + nread
      if c.state == "text" or c.state == "rcdata" then
        local j = i1
        if d.state ~= c.state then
          for j1 = j - 1, i, -1 do
            if byte(html, j1) == 60 then j = j1; break end
          end
        end
        out[#out + 1] = sub(html, i, j - 1)
      else
        all_text = false
      end
      if d.state == "error" then return table.concat(out) end
      c, i = d, i1
    else
      local rest = sub(html, i)
      local k = c.delim == "space" and find(rest, delim_ends.space) or find(rest, delim_ends[c.delim], 1, true)
      if not k then break end
      local i1 = i + k - 1
      if c.delim ~= "space" then i1 = i1 + 1 end
      c, i = ctx("tag", nil, nil, nil, nil, c.el), i1
    end
  end
  if all_text then return html end
  if c.state == "text" or c.state == "rcdata" then out[#out + 1] = sub(html, i) end
  return table.concat(out)
end

--- Go's nudge: the context an action in c really sits in.
function M.nudge(c)
  if c.state == "tag" then c = copy(c); c.state = "attrname"
  elseif c.state == "beforevalue" then
    c = copy(c); c.state, c.delim, c.attr = attr_start[c.attr], "space", "none"
  elseif c.state == "aftername" then c = copy(c); c.state, c.attr = "attrname", "none" end
  return c
end

--- Joins the contexts two branches end in; nil and an error when they
--- differ in a way escaping cannot reconcile.
function M.join(a, b)
  if a.state == "error" then return a end
  if b.state == "error" then return b end
  if key(a) == key(b) then return a end
  local c = copy(a); c.url = b.url
  if key(c) == key(b) then c.url = "unknown"; return c end
  c = copy(a); c.js = b.js
  if key(c) == key(b) then c.js = "unknown"; return c end
  local na, nb = M.nudge(a), M.nudge(b)
  if not (key(na) == key(a) and key(nb) == key(b)) then
    local e = M.join(na, nb)
    if e then return e end
  end
  return nil, "branches end in different contexts: " .. M.describe(a) .. ", " .. M.describe(b)
end

function M.describe(c)
  local parts = { c.state }
  if c.delim ~= "none" then parts[#parts + 1] = "delim " .. c.delim end
  if c.url ~= "none" then parts[#parts + 1] = "url " .. c.url end
  if c.attr ~= "none" then parts[#parts + 1] = "attr " .. c.attr end
  if c.el ~= "none" then parts[#parts + 1] = "element " .. c.el end
  return "{" .. table.concat(parts, " ") .. "}"
end

--- The escaper stages for an action in context c (after nudge), and the
--- context after it; nil and an error for a context where no value may go.
function M.stages(c)
  c = M.nudge(c)
  local s = {}
  local st = c.state
  if st == "url" or st == "cssdq" or st == "csssq" or st == "cssdqurl" or st == "csssqurl" or st == "cssurl" then
    if c.url == "unknown" then return nil, "value in an ambiguous context within a URL" end
    if c.url == "none" then s[#s + 1] = "urlfilter" end
    if c.url == "none" or c.url == "pre" then
      s[#s + 1] = (st == "cssdq" or st == "csssq") and "cssstr" or "urlnorm"
    else
      s[#s + 1] = "urlquery"
    end
  elseif st == "js" then
    s[#s + 1] = "jsval"
    c = copy(c); c.js = "div"
  elseif st == "jsdq" or st == "jssq" then s[#s + 1] = "jsstr"
  elseif st == "jsbq" then return nil, "value in a JS template literal (not allowed, as in Go 1.19)"
  elseif st == "jsre" then s[#s + 1] = "jsre"
  elseif st == "css" then s[#s + 1] = "cssvalue"
  elseif st == "text" then s[#s + 1] = "html"
  elseif st == "rcdata" then s[#s + 1] = "rcdata"
  elseif st == "attr" then -- the delimiter decides
  elseif st == "attrname" or st == "tag" then
    c = copy(c); c.state = "attrname"; s[#s + 1] = "name"
  elseif st == "srcset" then s[#s + 1] = "srcset"
  elseif comment_states[st] then s[#s + 1] = "comment"
  elseif st == "error" then return nil, c.err
  else return nil, "value in unexpected state " .. st end
  if c.delim == "space" then s[#s + 1] = "nospace"
  elseif c.delim ~= "none" then s[#s + 1] = "attr" end
  return s, c
end

return M
