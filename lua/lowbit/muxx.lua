-- lowbit.muxx: a request router that matches exactly like Go 1.22+
-- http.ServeMux, plus prefix groups and middleware inheritance.
--
--   local m = muxx.new()
--   m:handle_func("GET /{$}", home)
--   local api = m:group("/api")
--   api:use(auth)                              -- routes registered on api (and
--   local users = api:group("/users")          -- its sub-groups) from now on
--   users:handle_func("GET /{id}", get_user)   -- registers "GET /api/users/{id}"
--   http.listen_and_serve(":8080", m)          -- m is a handler (and callable)
--
-- Patterns are `[METHOD ][HOST]/[PATH]`: segments are literals (unescaped:
-- `/%61` is `/a`), `{name}`, `{name...}` (last only) or `{$}` (last only:
-- only the trailing slash); a trailing `/` is an anonymous `{...}`. When
-- several patterns match a request the most specific wins, whatever the
-- registration order; two patterns that match the same requests, or overlap
-- with neither more specific, raise at registration, naming both patterns
-- and where each was registered.
--
-- Groups exist at registration time only: handle() resolves the group's
-- host and prefix, wraps the group's (and its ancestors') middleware around
-- the handler and inserts the result into one flat tree. The tree is host ->
-- method -> path segments, each node holding literal children in a hash
-- table, then one `{name}` child, then one `{name...}` child; matching tries
-- them in that order and backtracks only when a deeper segment fails, so the
-- cost of a request does not grow with the number of routes. The first
-- descent runs in C on a flat copy of each method's tree (lb_muxx.h), made
-- on the first match after a registration; paths with "%" and the
-- backtracking search stay in Lua.
--
-- The router answers by itself:
--   * `/x` with no exact match when `/x/` has one (Go's exactMatch: a
--     pattern not ending in a multi-wildcard, such as `/x/{$}`, or one whose
--     multi-wildcard takes the empty rest, such as `/x/` or `/x/{rest...}`):
--     307 to `/x/` (query kept);
--   * an unclean path (`//`, `/./`, `/../`; not for CONNECT): 307 to the
--     cleaned path (trailing slash kept, query kept);
--   * a path that matches only under other methods: 405 with `Allow` (sorted,
--     GET implies HEAD) and body "Method Not Allowed\n";
--   * otherwise 404 "404 page not found\n" (text/plain; charset=utf-8,
--     X-Content-Type-Options: nosniff).
-- 307 (what current Go sends) keeps the method and body of a POST or PUT,
-- where 301 lets clients turn them into a GET.
local core = require "lowbit.core"
local url = require "lowbit.url"

local ffi, C = core.ffi, core.C

local M = {}

local type, error, pairs, setmetatable, getmetatable, select =
  type, error, pairs, setmetatable, getmetatable, select
local find, sub, byte, format, gsub, gmatch, match =
  string.find, string.sub, string.byte, string.format, string.gsub, string.gmatch, string.match
local concat, sort = table.concat, table.sort
local getinfo = debug.getinfo
local path_unescape, path_escape = url.path_unescape, url.path_escape

M.REDIRECT_STATUS = 307

local THIS_SOURCE = getinfo(1, "S").source

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

-- Unescapes one segment; a bad escape leaves the segment as it is (as Go).
local function unesc(s)
  if not find(s, "%", 1, true) then return s end
  return path_unescape(s) or s
end

-- Go's cleanPath: path.Clean on a rooted path, trailing slash kept.
local function clean_path(p)
  if p == "" then return "/" end
  if byte(p, 1) ~= 47 then p = "/" .. p end
  if not find(p, "//", 1, true) and not find(p, "/.", 1, true) then return p end
  local out, n = {}, 0
  for seg in gmatch(p, "[^/]+") do
    if seg == ".." then
      if n > 0 then out[n] = nil; n = n - 1 end
    elseif seg ~= "." then
      n = n + 1; out[n] = seg
    end
  end
  local np = "/" .. concat(out, "/")
  if byte(p, #p) == 47 and np ~= "/" then np = np .. "/" end
  return np
end
M._clean_path = clean_path

-- The request host without its port ("[::1]:80" -> "::1"); anything that
-- does not split cleanly is kept whole.
local function strip_port(h)
  if h == nil then return "" end
  if not find(h, ":", 1, true) then return h end
  local v6 = match(h, "^%[(.*)%]:[^:%]]*$")
  if v6 then return v6 end
  local host = match(h, "^([^:%[%]]*):[^:]*$")
  return host or h
end

local function is_handler(h)
  local t = type(h)
  if t == "function" then return true end
  if t == "table" then return type(h.serve_http) == "function" end
  return false
end
M.is_handler = is_handler

-- A handler as a plain function(w, r).
local function as_function(h)
  if type(h) == "function" then return h end
  return function(w, r) return h:serve_http(w, r) end
end

local function handler_kind(h)
  if h == nil then return "nil" end
  if type(h) == "table" then return "table without serve_http" end
  return type(h)
end

-- "file:line" of the nearest Lua caller outside this file (C frames such
-- as pcall are skipped), and its stack level as seen by the function that
-- called site().
local function site()
  local level = 2
  while true do
    local info = getinfo(level, "Sl")
    if info == nil then return "?", 1 end
    if info.source ~= THIS_SOURCE and info.what ~= "C" then
      return info.short_src .. ":" .. (info.currentline or 0), level - 1
    end
    level = level + 1
  end
end

local function html_escape(s)
  return (gsub(s, "[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;", ["'"] = "&#39;" }))
end

---------------------------------------------------------------------------
-- Patterns
---------------------------------------------------------------------------

-- Segment kinds.
local LIT, WILD, MULTI, SLASH = 1, 2, 3, 4

local function valid_method(m)
  return not find(m, "[^%w!#$%%&'*+%-.^_`|~]")
end

local function valid_name(n)
  return find(n, "^[%a_][%w_]*$") ~= nil
end

-- Parses "[METHOD ][HOST]/[PATH]". Returns a pattern record or nil, reason.
local function parse_pattern(s)
  if s == "" then return nil, "empty pattern" end
  local method, rest = "", s
  local sp = find(s, "[ \t]")
  if sp then
    method = sub(s, 1, sp - 1)
    rest = match(sub(s, sp + 1), "^[ \t]*(.*)$")
    if method ~= "" and not valid_method(method) then
      return nil, "invalid method " .. format("%q", method)
    end
  end
  local slash = find(rest, "/", 1, true)
  if not slash then return nil, "host/path missing /" end
  local host, path = sub(rest, 1, slash - 1), sub(rest, slash)
  if find(host, "{", 1, true) then return nil, "host contains '{' (missing initial '/'?)" end
  if method ~= "" and method ~= "CONNECT" and clean_path(path) ~= path then
    return nil, "non-CONNECT pattern with unclean path can never match"
  end
  local segs, names, seen = {}, {}, {}
  local multi_named = false
  local pos = 1 -- index of the "/" that starts the rest of path
  local n = #path
  while pos <= n do
    if pos == n then -- trailing slash: an anonymous multi wildcard
      segs[#segs + 1] = { kind = MULTI, s = "" }
      break
    end
    local j = find(path, "/", pos + 1, true) or (n + 1)
    local seg = sub(path, pos + 1, j - 1)
    pos = j
    local brace = find(seg, "{", 1, true)
    if not brace then
      segs[#segs + 1] = { kind = LIT, s = unesc(seg) }
    else
      if brace ~= 1 then return nil, "bad wildcard segment " .. format("%q", seg) .. " (must start with '{')" end
      if byte(seg, #seg) ~= 125 then return nil, "bad wildcard segment " .. format("%q", seg) .. " (must end with '}')" end
      local name = sub(seg, 2, -2)
      if name == "$" then
        if pos <= n then return nil, "{$} not at end" end
        segs[#segs + 1] = { kind = SLASH, s = "/" }
        break
      end
      local multi = false
      if sub(name, -3) == "..." then
        multi = true
        name = sub(name, 1, -4)
        if pos <= n then return nil, "{...} wildcard not at end" end
      end
      if name == "" then return nil, "empty wildcard" end
      if not valid_name(name) then return nil, "bad wildcard name " .. format("%q", name) end
      if seen[name] then return nil, "duplicate wildcard name " .. format("%q", name) end
      seen[name] = true
      names[#names + 1] = name
      if multi then
        segs[#segs + 1] = { kind = MULTI, s = name }
        multi_named = true
      else
        segs[#segs + 1] = { kind = WILD, s = name }
      end
    end
  end
  local last = segs[#segs]
  return {
    str = s, method = method, host = host, path = path, segs = segs, names = names,
    last_multi = last ~= nil and last.kind == MULTI, multi_named = multi_named,
  }
end
M._parse_pattern = parse_pattern

---------------------------------------------------------------------------
-- Precedence: how two patterns' request sets relate
---------------------------------------------------------------------------

local EQUIVALENT, MORE_GENERAL, MORE_SPECIFIC, DISJOINT, OVERLAPS = 1, 2, 3, 4, 5
local INVERSE = { [MORE_GENERAL] = MORE_SPECIFIC, [MORE_SPECIFIC] = MORE_GENERAL }

local function combine(r1, r2)
  if r1 == EQUIVALENT then return r2 end
  if r1 == DISJOINT then return DISJOINT end
  if r1 == OVERLAPS then return r2 == DISJOINT and DISJOINT or OVERLAPS end
  -- r1 is MORE_GENERAL or MORE_SPECIFIC
  if r2 == EQUIVALENT then return r1 end
  if r2 == INVERSE[r1] then return OVERLAPS end
  return r2
end

local function compare_segments(a, b)
  local ka, kb = a.kind, b.kind
  if ka == MULTI and kb == MULTI then return EQUIVALENT end
  if ka == MULTI then return MORE_GENERAL end
  if kb == MULTI then return MORE_SPECIFIC end
  if ka == WILD and kb == WILD then return EQUIVALENT end
  if ka == WILD then return kb == SLASH and DISJOINT or MORE_GENERAL end -- {x} never matches the trailing slash
  if kb == WILD then return ka == SLASH and DISJOINT or MORE_SPECIFIC end
  if ka == kb and a.s == b.s then return EQUIVALENT end
  return DISJOINT
end

local function compare_paths(p1, p2)
  local s1, s2 = p1.segs, p2.segs
  local n1, n2 = #s1, #s2
  if n1 ~= n2 and not p1.last_multi and not p2.last_multi then return DISJOINT end
  local rel = EQUIVALENT
  local n = n1 < n2 and n1 or n2
  for i = 1, n do
    rel = combine(rel, compare_segments(s1[i], s2[i]))
    if rel == DISJOINT then return DISJOINT end
  end
  if n1 == n2 then return rel end
  -- The shorter one ended in a multi (it was compared with a segment of the
  -- longer one already): it is more general than the rest of the longer one.
  if n1 < n2 and p1.last_multi then return combine(rel, MORE_GENERAL) end
  if n2 < n1 and p2.last_multi then return combine(rel, MORE_SPECIFIC) end
  return DISJOINT
end

local function compare_methods(p1, p2)
  local m1, m2 = p1.method, p2.method
  if m1 == m2 then return EQUIVALENT end
  if m1 == "" then return MORE_GENERAL end
  if m2 == "" then return MORE_SPECIFIC end
  if m1 == "GET" and m2 == "HEAD" then return MORE_GENERAL end
  if m1 == "HEAD" and m2 == "GET" then return MORE_SPECIFIC end
  return DISJOINT
end

-- The relationship of p1 to p2 (hosts are compared by the caller).
local function compare(p1, p2)
  local mrel = compare_methods(p1, p2)
  if mrel == DISJOINT then return DISJOINT end
  return combine(mrel, compare_paths(p1, p2))
end
M._compare = function(a, b)
  local p1 = assert(parse_pattern(a))
  local p2 = assert(parse_pattern(b))
  if p1.host ~= p2.host then return p1.host ~= "" and "more_specific" or "more_general" end
  return ({ "equivalent", "more_general", "more_specific", "disjoint", "overlaps" })[compare(p1, p2)]
end

-- A path that both patterns match (for conflict messages).
local function common_path(p1, p2)
  local s1, s2 = p1.segs, p2.segs
  local n = #s1 > #s2 and #s1 or #s2
  local b = {}
  for i = 1, n do
    local a, c = s1[i], s2[i]
    local seg
    if a == nil then seg = c
    elseif c == nil then seg = a
    elseif a.kind == MULTI then seg = c
    elseif c.kind == MULTI then seg = a
    elseif a.kind == WILD then seg = c
    else seg = a end
    local k = seg.kind
    if k == LIT then b[#b + 1] = "/" .. path_escape(seg.s)
    elseif k == WILD then b[#b + 1] = "/x"
    else b[#b + 1] = "/"; break end
  end
  local p = concat(b)
  if p == "" then p = "/" end
  return p
end

local function describe_conflict(p1, p2, rel)
  if rel == EQUIVALENT then
    return format("%q matches the same requests as %q", p1.str, p2.str)
  end
  local method = p1.method ~= "" and p1.method or p2.method
  local req = (method ~= "" and method .. " " or "") .. p1.host .. common_path(p1, p2)
  return format("%q and %q both match some requests, like %q, and neither is more specific than the other",
    p1.str, p2.str, req)
end

---------------------------------------------------------------------------
-- The tree
---------------------------------------------------------------------------

-- A node is an array (one or two cache lines, where named fields would
-- spread over a hash part; with 2,000 routes the tree no longer fits in
-- the CPU's caches and every line read counts):
--   LIT_ (segment -> child), WILD_ ({name} child), MULTI_ ({name...} or
--   trailing-slash child), SLASH_ ({$} child), ROUTE_ (the route of the
--   pattern ending here), each false when absent;
--   ALT_LIT: 1 when a {name} or {name...} child could be tried after a
--   literal one; ALT_WILD: 1 when a {name...} child could be tried after
--   the {name} one (the descent counts them to know whether a dead end is
--   final);
--   STATIC_, on a method root: the path of every pattern made of literal
--   segments only (optionally ending in {$}) -> its route, so such a
--   request is one hash lookup.
local LIT_, WILD_, MULTI_, SLASH_, ROUTE_, ALT_LIT, ALT_WILD, STATIC_ = 1, 2, 3, 4, 5, 6, 7, 8
-- CHAIN_: when a node's only child is one literal, and so on down
-- ("/api/v1" of every route of a group), the literals joined with "/"; the
-- descent compares them with the path in one go and jumps to CHAIN_END.
-- CHAIN_LEN is the string's length.
local CHAIN_, CHAIN_END, CHAIN_LEN = 9, 10, 11
-- CTREE_, on a method root: the lb_muxx copy of the tree below it (false
-- until the first match after a registration), CROUTES_ its routes by id,
-- flat: route id r is at 4r - 3 .. 4r as its handler, whether it ends in a
-- multi wildcard, its pattern string and the route itself. What a match
-- reads of its route then sits in one cache line of one array, not in the
-- route's table header and array part (with 2,000 routes, cache misses).
local CTREE_, CROUTES_ = 12, 13
local function new_node() return { false, false, false, false, false, 0, 0, false, false, false, 0, false, false } end

-- The literal and child when a node has exactly one child, a literal that
-- a path without "%" spells as it is (no "/" or "%" in it) and that is no
-- "", "." or ".." (those mark a path to clean).
local function only_literal(node)
  if node[WILD_] or node[MULTI_] or node[SLASH_] or node[ROUTE_] then return nil end
  local lit = node[LIT_]
  if not lit then return nil end
  local k, c = next(lit)
  if k == nil or next(lit, k) ~= nil then return nil end
  if k == "" or k == "." or k == ".." or find(k, "[/%%]") then return nil end
  return k, c
end

local function update_chain(node)
  local k, c = only_literal(node)
  if not k then
    node[CHAIN_], node[CHAIN_END], node[CHAIN_LEN] = false, false, 0
  elseif c[CHAIN_] then
    node[CHAIN_], node[CHAIN_END] = k .. "/" .. c[CHAIN_], c[CHAIN_END]
  else
    node[CHAIN_], node[CHAIN_END] = k, c
  end
  if node[CHAIN_] then node[CHAIN_LEN] = #node[CHAIN_] end
end

-- A route is an array too, for the same reason: the handler (wrapped in its
-- middleware), the pattern string, the handler as a function, the wildcard
-- names, whether the pattern ends in a multi wildcard, whether that one
-- has a name, whether its static path is clean, the number of segments;
-- and, by name, `pat` (the parsed pattern) and `site` (where registered).
local R_HANDLER, R_PATTERN, R_FN, R_NAMES, R_LAST_MULTI, R_MULTI_NAMED, R_STATIC_CLEAN, R_NSEGS = 1, 2, 3, 4, 5, 6, 7, 8

-- The request path a pattern of literals (and a final {$}) matches, or nil
-- when it has a wildcard or a literal with "/" or "%" in it (the path of a
-- request with "%" takes the tree, as unescaping makes several spellings).
local function static_key(pat)
  local b = {}
  local segs = pat.segs
  for i = 1, #segs do
    local seg = segs[i]
    if seg.kind == LIT then
      if find(seg.s, "[/%%]") then return nil end
      b[#b + 1] = "/" .. seg.s
    elseif seg.kind == SLASH then
      b[#b + 1] = "/"
    else
      return nil
    end
  end
  if #b == 0 then return nil end
  return concat(b)
end

local function insert(root, pat, route)
  local node = root
  local path_nodes = { root }
  for i = 1, #pat.segs do
    local seg = pat.segs[i]
    local k = seg.kind
    local child
    if k == LIT then
      local lit = node[LIT_]
      if not lit then lit = {}; node[LIT_] = lit end
      child = lit[seg.s]
      if not child then child = new_node(); lit[seg.s] = child end
    elseif k == WILD then
      child = node[WILD_]
      if not child then child = new_node(); node[WILD_] = child end
    elseif k == MULTI then
      child = node[MULTI_]
      if not child then child = new_node(); node[MULTI_] = child end
    else
      child = node[SLASH_]
      if not child then child = new_node(); node[SLASH_] = child end
    end
    if node[WILD_] or node[MULTI_] then node[ALT_LIT] = 1 end
    if node[MULTI_] then node[ALT_WILD] = 1 end
    node = child
    path_nodes[#path_nodes + 1] = node
  end
  node[ROUTE_] = route
  root[CTREE_], root[CROUTES_] = false, false -- copied again on the next match
  -- Only the nodes on this path changed, and a chain looks only down.
  for i = #path_nodes, 1, -1 do update_chain(path_nodes[i]) end
  local key = static_key(pat)
  if key then
    local st = root[STATIC_]
    if not st then st = {}; root[STATIC_] = st end
    st[key] = route
    -- Its path is clean unless a segment is "", "." or "..".
    route[R_STATIC_CLEAN] = not find(key, "//", 1, true) and not find(key, "/%.%.?/") and not find(key, "/%.%.?$")
  end
end

-- Captured wildcard values of the last match, as positions in the matched
-- path: capture k is sub(path, cap_s[k], cap_e[k]), unescaped when the path
-- has a "%". Strings are made only when a handler is run (serve_http), not
-- for m:handler(r). Matching never yields, so one scratch pair serves every
-- request.
local cap_s, cap_e = {}, {}

-- The backtracking stack of match_path, one entry per path segment:
-- node, index of the "/" starting the rest, next stage to try (0 first
-- visit, 1 wildcard, 2 multi wildcard), the index after the segment, and
-- the number of captures on entry. An explicit stack (not recursion) lets
-- LuaJIT compile the loop.
local s_node, s_pos, s_stage, s_next, s_d = {}, {}, {}, {}, {}

-- Matches path (escaped, starting with "/", length n) below root: literal
-- child first, then the {name} child, then the {name...} child, going back
-- up only when a deeper segment fails (Go's routingNode.matchPath, as a
-- loop). Returns route, number of captures (in cap_s/cap_e), or nil.
local function match_path(root, path, n, pct)
  local k = 1
  s_node[1], s_pos[1], s_stage[1], s_d[1] = root, 1, 0, 0
  while k > 0 do
    local node, stage = s_node[k], s_stage[k]
    if stage == 0 then
      local i = s_pos[k]
      if i > n then -- nothing left
        local rt = node[ROUTE_]
        if rt then return rt, s_d[k] end
        k = k - 1
      elseif i == n then -- only the trailing slash is left: {$}, else a multi
        local c = node[SLASH_]
        if c then return c[ROUTE_], s_d[k] end
        c = node[MULTI_]
        if c then
          local rt, d = c[ROUTE_], s_d[k]
          if rt[R_MULTI_NAMED] then d = d + 1; cap_s[d] = n + 1; cap_e[d] = n end
          return rt, d
        end
        k = k - 1
      else
        local j = find(path, "/", i + 1, true) or (n + 1)
        s_next[k], s_stage[k] = j, 1
        local lit = node[LIT_]
        if lit then
          local seg = sub(path, i + 1, j - 1)
          if pct then seg = unesc(seg) end
          local c = lit[seg]
          if c then
            local d = s_d[k]
            k = k + 1
            s_node[k], s_pos[k], s_stage[k], s_d[k] = c, j, 0, d
          end
        end
      end
    elseif stage == 1 then
      s_stage[k] = 2
      local c = node[WILD_]
      if c then
        local d = s_d[k] + 1
        local j = s_next[k]
        cap_s[d], cap_e[d] = s_pos[k] + 1, j - 1
        k = k + 1
        s_node[k], s_pos[k], s_stage[k], s_d[k] = c, j, 0, d
      end
    else
      local c = node[MULTI_]
      if c then
        local rt, d = c[ROUTE_], s_d[k]
        if rt[R_MULTI_NAMED] then
          d = d + 1
          cap_s[d], cap_e[d] = s_pos[k] + 1, n
        end
        return rt, d
      end
      k = k - 1
    end
  end
  return nil
end

-- The first descent of match_path without its stack: at each segment the
-- literal child, else the {name} child, else the {name...} child. When that
-- reaches a route it is the one match_path returns (the first leaf of its
-- depth-first search). A dead end returns nil, true when a branch was
-- passed over on the way (match_path must then search), nil, false when
-- none was (nothing matches). No stack writes: the common REST request
-- costs a find, a sub and a hash lookup per segment.
-- On the way it notes a segment that is empty or starts with "." (all
-- that "//", "/./" and "/../" need): a match that read the whole path
-- without one sets `path_clean`, and lookup skips clean_path.
local path_clean = false

-- The end of a descent: the node reached with the path read to index i.
-- alt and dirty count the branches passed over and the segments that are
-- empty or start with ".".
local function descend_end(node, i, n, d, alt, dirty)
  if i > n then
    local rt = node[ROUTE_]
    if rt then path_clean = dirty == 0; return rt, d end
    return nil, alt > 0
  end
  -- only the trailing slash is left: {$}, else a multi
  local c = node[SLASH_]
  if c then path_clean = dirty == 0; return c[ROUTE_], d end
  c = node[MULTI_]
  if c then
    local rt = c[ROUTE_]
    if rt[R_MULTI_NAMED] then d = d + 1; cap_s[d], cap_e[d] = n + 1, n end
    path_clean = dirty == 0
    return rt, d
  end
  return nil, alt > 0
end

-- 1 for "." and "/", else 0, by byte.
local DOT_OR_SLASH = {}
for b = 0, 255 do DOT_OR_SLASH[b] = (b == 46 or b == 47) and 1 or 0 end

-- One step of the descent from node, the "/" at index i starting the rest
-- of the path: the node's chain of single literals compared in one go
-- (not for a path with "%", whose segments are unescaped first), else one
-- segment, ending before index j.
local DESCEND_STEP = [[
    local chain = node[CHAIN_]
    if chain and not pct then
      local j = i + node[CHAIN_LEN] + 1
      if sub(path, i + 1, j - 1) ~= chain or (j <= n and byte(path, j) ~= 47) then return nil, alt > 0 end
      node, i = node[CHAIN_END], j
    else
      local j = find(path, "/", i + 1, true) or (n + 1)
      dirty = dirty + DOT_OR_SLASH[byte(path, i + 1)]
      local lit, c = node[LIT_], nil
      if lit then
        local seg = sub(path, i + 1, j - 1)
        if pct then seg = unesc(seg) end
        c = lit[seg]
      end
      if c then
        alt = alt + node[ALT_LIT]
      else
        c = node[WILD_]
        if c then
          alt = alt + node[ALT_WILD]
          d = d + 1
          cap_s[d], cap_e[d] = i + 1, j - 1
        else
          c = node[MULTI_]
          if not c then return nil, alt > 0 end
          local rt = c[ROUTE_]
          if rt[R_MULTI_NAMED] then d = d + 1; cap_s[d], cap_e[d] = i + 1, n end
          return rt, d
        end
      end
      node, i = c, j
    end
]]

-- The first DESCEND_UNROLL segments are straight-line code, the rest a
-- loop: with no loop inside, a request's match is part of the caller's
-- trace (an inner loop would end it and add a trace exit per request).
local DESCEND_UNROLL = 8

-- (node and route fields are written as numbers into the generated code)
DESCEND_STEP = DESCEND_STEP:gsub("%[(%u[%u_]*)%]", {
  LIT_ = "[" .. LIT_ .. "]", WILD_ = "[" .. WILD_ .. "]", MULTI_ = "[" .. MULTI_ .. "]",
  ROUTE_ = "[" .. ROUTE_ .. "]", ALT_LIT = "[" .. ALT_LIT .. "]", ALT_WILD = "[" .. ALT_WILD .. "]",
  R_MULTI_NAMED = "[" .. R_MULTI_NAMED .. "]",
  CHAIN_ = "[" .. CHAIN_ .. "]", CHAIN_END = "[" .. CHAIN_END .. "]", CHAIN_LEN = "[" .. CHAIN_LEN .. "]",
})
assert(not DESCEND_STEP:find("%[%u"))

local match_descend = assert(load(
  "local find, sub, byte, unesc, cap_s, cap_e, descend_end, DOT_OR_SLASH = ...\n" ..
  "return function(root, path, n, pct)\n" ..
  "  local node, i, d, alt, dirty = root, 1, 0, 0, 0\n" ..
  ("  if i < n then\n" .. DESCEND_STEP .. "  end\n"):rep(DESCEND_UNROLL) ..
  "  while i < n do\n" .. DESCEND_STEP .. "  end\n" ..
  "  return descend_end(node, i, n, d, alt, dirty)\n" ..
  "end\n", "=muxx.lua(descend)"))(find, sub, byte, unesc, cap_s, cap_e, descend_end, DOT_OR_SLASH)

-- The C copy of the tree below a method root (lb_muxx.h): nodes numbered
-- breadth-first from 0, routes from 1. nil when memory ran out (the Lua
-- descent serves then).
local LB_MUXX_MAXCAP = C.LB_MUXX_MAXCAP
local function build_ctree(root)
  local nodes, ids = { root }, {}
  local nlits, keybytes, i = 0, 0, 1
  while nodes[i] do
    local node = nodes[i]
    ids[node] = i - 1
    i = i + 1
    local lit = node[LIT_]
    if lit then
      for k, c in pairs(lit) do
        nlits, keybytes = nlits + 1, keybytes + #k
        nodes[#nodes + 1] = c
      end
    end
    if node[WILD_] then nodes[#nodes + 1] = node[WILD_] end
    if node[MULTI_] then nodes[#nodes + 1] = node[MULTI_] end
    if node[SLASH_] then nodes[#nodes + 1] = node[SLASH_] end
  end
  local t = C.lb_muxx_new(#nodes, nlits, keybytes)
  if t == nil then return nil end
  t = ffi.gc(t, C.lb_muxx_free)
  local routes, nroutes = {}, 0
  for k = 1, #nodes do
    local node = nodes[k]
    local rid, flags = 0, 0
    local rt = node[ROUTE_]
    if rt then
      nroutes = nroutes + 1
      rid = nroutes
      local b = 4 * rid
      routes[b - 3], routes[b - 2], routes[b - 1], routes[b] = rt[R_HANDLER], rt[R_LAST_MULTI], rt[R_PATTERN], rt
      if rt[R_MULTI_NAMED] then flags = flags + C.LB_MUXX_MULTI_NAMED end
    end
    if node[ALT_LIT] ~= 0 then flags = flags + C.LB_MUXX_ALT_LIT end
    if node[ALT_WILD] ~= 0 then flags = flags + C.LB_MUXX_ALT_WILD end
    local w, m, sl = node[WILD_], node[MULTI_], node[SLASH_]
    assert(C.lb_muxx_set_node(t, k - 1, w and ids[w] or -1, m and ids[m] or -1, sl and ids[sl] or -1, rid, flags) == 0)
    local lit = node[LIT_]
    if lit then
      for key, c in pairs(lit) do assert(C.lb_muxx_add_lit(t, k - 1, key, #key, ids[c]) == 0) end
    end
  end
  root[CTREE_], root[CROUTES_] = t, routes
  return t
end

-- lb_muxx_match's output: the number of captures, whether the path is
-- clean, then each capture's start and end. caps_c is true when the last
-- match's captures are there rather than in cap_s/cap_e.
local cout = ffi.new("int32_t[?]", 2 + 2 * LB_MUXX_MAXCAP)
local caps_c = false

-- The tree's match below one method root: the static table (one lookup of
-- the interned path) and the C descent, which tells when it meets a "%";
-- for such a path the Lua descent (segments unescaped); the full search
-- only when the descent passed a branch over. pct: whether path has a "%",
-- nil when not known yet (the C descent finds out). Returns route, number
-- of captures and, for a C match, the flat route table and the route's
-- index in it (see CROUTES_).
local function match_root(root, path, n, pct)
  local search = false
  if not pct then
    local st = root[STATIC_]
    if st then
      local rt = st[path]
      if rt then path_clean = rt[R_STATIC_CLEAN]; return rt, 0 end
    end
    local ct = root[CTREE_] or build_ctree(root)
    if ct then
      local r = C.lb_muxx_match(ct, path, n, cout)
      if r > 0 then
        path_clean, caps_c = cout[1] ~= 0, true
        local fl, b = root[CROUTES_], 4 * r
        return fl[b], cout[0], fl, b
      end
      if r == 0 then return nil end
      if r == -1 then search = true elseif r == -3 then pct = true end
      -- else more captures than the C side reports: the Lua descent
    end
  end
  if pct == nil then pct = find(path, "%", 1, true) ~= nil end
  if search then return match_path(root, path, n, pct) end
  local rt, d = match_descend(root, path, n, pct)
  if rt then return rt, d end
  if d then return match_path(root, path, n, pct) end
  return nil
end

local function match_methods(hnode, method, path, n, pct)
  local root = hnode[method]
  if root then
    local rt, d, fl, b = match_root(root, path, n, pct)
    if rt then return rt, d, fl, b end
  end
  if method == "HEAD" then
    root = hnode.GET
    if root then
      local rt, d, fl, b = match_root(root, path, n, pct)
      if rt then return rt, d, fl, b end
    end
  end
  root = hnode[""]
  if root then return match_root(root, path, n, pct) end
  return nil
end

local function tree_match(mux, host, method, path)
  path_clean, caps_c = false, false
  local n = #path
  if n == 0 or byte(path, 1) ~= 47 then return nil end
  local pct = nil -- not known yet: the C descent tells when it meets a "%"
  if host ~= "" and mux._nhosts > 0 then
    local hnode = mux._hosts[host]
    if hnode then
      local rt, d, fl, b = match_methods(hnode, method, path, n, pct)
      if rt then return rt, d, fl, b end
    end
  end
  return match_methods(mux._nohost, method, path, n, pct)
end

-- Capture k of the last match of path, as a string.
local function capture(path, pct, k)
  local v
  if caps_c then v = sub(path, cout[2 * k], cout[2 * k + 1]) else v = sub(path, cap_s[k], cap_e[k]) end
  if pct then return unesc(v) end
  return v
end

-- The tree's match of (host, method, path) without redirects or 405: the
-- pattern string and the captured values, or nil (for specs and benches).
M._tree_match = tree_match
function M._match(mux, host, method, path)
  local rt, d = tree_match(mux, host, method, path)
  if not rt then return nil end
  local pct, vals = find(path, "%", 1, true) ~= nil, {}
  for k = 1, d do vals[k] = capture(path, pct, k) end
  return rt[R_PATTERN], vals
end

-- A match is exact unless a trailing multi wildcard took a non-empty rest.
-- fl, b: the match's flat route table and index, when it has them.
local function exact(rt, path, fl, b)
  if rt == nil then return false end
  if fl then
    if not fl[b - 2] then return true end
  elseif not rt[R_LAST_MULTI] then
    return true
  end
  if byte(path, #path) ~= 47 then return false end
  local _, slashes = gsub(path, "/", "")
  return rt[R_NSEGS] == slashes
end

local function allowed_methods(mux, host, path)
  local set = {}
  local n = #path
  local function scan(hnode, p)
    if not hnode then return end
    for method, root in pairs(hnode) do
      if method ~= "" and not set[method] and match_path(root, p, #p, find(p, "%", 1, true) ~= nil) then
        set[method] = true
      end
    end
  end
  if n > 0 and byte(path, 1) == 47 then
    local hn = host ~= "" and mux._hosts[host] or nil
    scan(hn, path); scan(mux._nohost, path)
    if byte(path, n) ~= 47 then
      scan(hn, path .. "/"); scan(mux._nohost, path .. "/")
    end
  end
  if set.GET then set.HEAD = true end
  local list = {}
  for m in pairs(set) do list[#list + 1] = m end
  sort(list)
  return list
end

---------------------------------------------------------------------------
-- The router's own responses
---------------------------------------------------------------------------

local function plain_error(w, status, body)
  local h = w:header()
  h:del("Content-Length")
  h:set("Content-Type", "text/plain; charset=utf-8")
  h:set("X-Content-Type-Options", "nosniff")
  w:write_header(status)
  w:write(body)
end

local function not_found(w, r)
  plain_error(w, 404, "404 page not found\n")
end
function M.not_found(w, r)
  if type(w) ~= "table" or type(w.header) ~= "function" then
    error("bad argument 'w' to muxx.not_found: response writer expected, got " .. type(w), 2)
  end
  return not_found(w, r)
end

local function redirect_handler(loc, code)
  -- A raw "\" is no URL character, and browsers read "/\host" as "//host"
  -- (another site): send it escaped.
  loc = gsub(loc, "\\", "%%5C")
  local text = code == 301 and "Moved Permanently" or code == 308 and "Permanent Redirect" or "Temporary Redirect"
  return function(w, r)
    local h = w:header()
    h:set("Location", loc)
    if (r.method == "GET" or r.method == "HEAD") and not h:has("Content-Type") then
      h:set("Content-Type", "text/html; charset=utf-8")
    end
    w:write_header(code)
    if r.method == "GET" then w:write('<a href="' .. html_escape(loc) .. '">' .. text .. "</a>.\n") end
  end
end

local function method_not_allowed(allow)
  local v = concat(allow, ", ")
  return function(w, r)
    w:header():set("Allow", v)
    plain_error(w, 405, "Method Not Allowed\n")
  end
end

local function bad_request_star(w, r)
  if r.proto ~= "HTTP/1.0" then w:header():set("Connection", "close") end
  w:write_header(400)
end

---------------------------------------------------------------------------
-- Lookup
---------------------------------------------------------------------------

local function with_query(path, r)
  local q = r.url.raw_query
  if q ~= nil and q ~= "" then return path .. "?" .. q end
  return path
end

local function escaped_path(u)
  local p = u.raw_path
  if p ~= nil and p ~= "" then return p end
  p = u.path or ""
  if u.escaped_path then return u:escaped_path() end
  return url.escape_path(p)
end

-- Returns route, ncaptures, matched path (and, for a C match, the flat
-- route table and index) for a match (captures in cap_s/cap_e or cout, see
-- capture), or nil, handler, pattern for the router's own answers.
local function lookup(mux, r)
  local method = r.method
  if r.request_uri == "*" and method ~= "CONNECT" then return nil, bad_request_star, "" end
  local u = r.url
  local path = u.raw_path
  if path == nil or path == "" then path = escaped_path(u) end
  if method == "CONNECT" then
    local host = r.host or ""
    local rt, d = tree_match(mux, host, method, path)
    if not exact(rt, path) and path ~= "" and byte(path, #path) ~= 47 then
      local rt2 = tree_match(mux, host, method, path .. "/")
      if exact(rt2, path .. "/") then
        return nil, redirect_handler(with_query(path .. "/", r), 301), path .. "/"
      end
      if rt then rt, d = tree_match(mux, host, method, path) end
    end
    if rt then return rt, d, path end
    local allow = allowed_methods(mux, host, path)
    if #allow > 0 then return nil, method_not_allowed(allow), "" end
    return nil, not_found, ""
  end
  local host = mux._nhosts > 0 and strip_port(r.host) or ""
  local rt, d, fl, fb = tree_match(mux, host, method, path)
  local cpath = path
  if not path_clean then
    cpath = clean_path(path)
    if cpath ~= path then rt, d, fl, fb = tree_match(mux, host, method, cpath) end
  end
  -- As Go 1.22's matchOrRedirect/exactMatch: a path with no exact match
  -- (none at all, or only a multi-wildcard taking a non-empty rest) is
  -- redirected to its slashed form when that form is matched exactly: by
  -- "{$}" ("/a/b/{$}"), by a literal or "{name}" ahead of "{$}", or by a
  -- trailing multi-wildcard ("/a/b/", "/a/b/{rest...}") taking the empty
  -- rest. "/a/" taking "b/" from "/a/b/" is no exact match: no redirect.
  if not exact(rt, cpath, fl, fb) and cpath ~= "" and byte(cpath, #cpath) ~= 47 then
    local slashed = cpath .. "/"
    local rt2, _, fl2, fb2 = tree_match(mux, host, method, slashed)
    if exact(rt2, slashed, fl2, fb2) then
      return nil, redirect_handler(with_query(slashed, r), M.REDIRECT_STATUS), slashed
    end
    -- The second lookup overwrote the captures of the first.
    if rt and d > 0 then rt, d, fl, fb = tree_match(mux, host, method, cpath) end
  end
  if cpath ~= path then
    return nil, redirect_handler(with_query(cpath, r), M.REDIRECT_STATUS), rt and rt[R_PATTERN] or ""
  end
  if rt then return rt, d, cpath, fl, fb end
  local allow = allowed_methods(mux, host, cpath)
  if #allow > 0 then return nil, method_not_allowed(allow), "" end
  return nil, not_found, ""
end

---------------------------------------------------------------------------
-- Groups and the router
---------------------------------------------------------------------------

local Group = {}
Group.__index = Group

local Mux = {}
Mux.__index = Mux
Mux.__call = function(self, w, r) return self:serve_http(w, r) end

local function check_self(self, fname)
  local mt = getmetatable(self)
  if mt ~= Group and mt ~= Mux then
    error("bad argument 'self' to muxx:" .. fname .. ": router or group expected (use ':' to call)", 3)
  end
end

-- Middleware in the order they wrap: the root's first, the group's last.
local function collect_middleware(g)
  local lists = {}
  while g do
    lists[#lists + 1] = g._mws
    g = g._parent
  end
  local all = {}
  for i = #lists, 1, -1 do
    local l = lists[i]
    for j = 1, #l do all[#all + 1] = l[j] end
  end
  return all
end

local function chain(h, mws, what)
  for i = #mws, 1, -1 do
    local nh = mws[i](h)
    if not is_handler(nh) then
      error(format("muxx: middleware #%d%s returned %s, not a handler", i, what or "", handler_kind(nh)), 0)
    end
    h = nh
  end
  return h
end

local function register(g, pattern, h, fname)
  local where, lvl = site()
  check_self(g, fname)
  if type(pattern) ~= "string" then
    error("bad argument 'pattern' to muxx:" .. fname .. ": string expected, got " .. type(pattern), lvl)
  end
  if fname == "handle_func" then
    if type(h) ~= "function" then
      error(format("bad argument 'fn' to muxx:handle_func: function expected for pattern %q (registered at %s), got %s",
        pattern, where, handler_kind(h)), lvl)
    end
  elseif not is_handler(h) then
    error(format("bad argument 'h' to muxx:handle: nil handler for pattern %q (registered at %s): function or table with serve_http expected, got %s",
      pattern, where, handler_kind(h)), lvl)
  end
  local mux = g._mux
  local full = pattern
  if g._host ~= "" or g._prefix ~= "" then
    local p0, why = parse_pattern(pattern)
    if not p0 then
      error(format("muxx: parsing pattern %q (registered at %s): %s", pattern, where, why), lvl)
    end
    if p0.host ~= "" and g._host ~= "" then
      error(format("muxx: pattern %q (registered at %s) names host %q inside group for host %q",
        pattern, where, p0.host, g._host), lvl)
    end
    local host = g._host ~= "" and g._host or p0.host
    local path = p0.path
    full = (p0.method ~= "" and p0.method .. " " or "") .. host .. g._prefix .. path
  end
  local pat, why = parse_pattern(full)
  if not pat then
    error(format("muxx: parsing pattern %q (registered at %s): %s", full, where, why), lvl)
  end
  -- Conflicts: only patterns with the same host can conflict.
  local same_host = mux._by_host[pat.host]
  if same_host then
    for i = 1, #same_host do
      local other = same_host[i]
      local rel = compare(pat, other.pat)
      if rel == EQUIVALENT or rel == OVERLAPS then
        error(format("muxx: pattern %q (registered at %s) conflicts with pattern %q (registered at %s): %s",
          pat.str, where, other.pat.str, other.site, describe_conflict(pat, other.pat, rel)), lvl)
      end
    end
  else
    same_host = {}
    mux._by_host[pat.host] = same_host
  end
  local mws = collect_middleware(g)
  local wrapped = h
  if #mws > 0 then wrapped = chain(h, mws, format(" (for pattern %q at %s)", pat.str, where)) end
  local route = {
    wrapped, pat.str, as_function(wrapped), pat.names, pat.last_multi, pat.multi_named, false, #pat.segs,
    pat = pat, site = where,
  }
  same_host[#same_host + 1] = route
  local hnode
  if pat.host == "" then
    hnode = mux._nohost
  else
    hnode = mux._hosts[pat.host]
    if not hnode then hnode = {}; mux._hosts[pat.host] = hnode; mux._nhosts = mux._nhosts + 1 end
  end
  local root = hnode[pat.method]
  if not root then root = new_node(); hnode[pat.method] = root end
  insert(root, pat, route)
  mux._count = mux._count + 1
  return g
end

--- Registers handler h (a function(w, r) or a table with serve_http) for
--- pattern, prefixed by the group's host and path and wrapped by its
--- middleware. Raises on a bad pattern, a nil handler or a conflict.
function Group:handle(pattern, h) return register(self, pattern, h, "handle") end

--- Registers a function(w, r) for pattern.
function Group:handle_func(pattern, fn) return register(self, pattern, fn, "handle_func") end

--- Adds middleware (function(next) return handler end) that wraps every
--- route registered on this group, or its sub-groups, after this call.
--- use(a, b): a runs first (outermost).
function Group:use(...)
  check_self(self, "use")
  local n = select("#", ...)
  for i = 1, n do
    local mw = select(i, ...)
    if type(mw) ~= "function" then
      error(format("bad argument #%d to muxx:use: middleware function expected, got %s", i, type(mw)), 2)
    end
  end
  local l = self._mws
  for i = 1, n do l[#l + 1] = (select(i, ...)) end
  return self
end

--- A sub-group. prefix: "/path", "host", or "host/path". A host group
--- cannot be nested inside another group that already has a host or a
--- path prefix.
function Group:group(prefix)
  check_self(self, "group")
  if type(prefix) ~= "string" then
    error("bad argument 'prefix' to muxx:group: string expected, got " .. type(prefix), 2)
  end
  if find(prefix, "[ \t]") then
    error(format("bad argument 'prefix' to muxx:group: %q: a group prefix has no method", prefix), 2)
  end
  local host, path = self._host, self._prefix
  local slash = find(prefix, "/", 1, true)
  local phost = slash and sub(prefix, 1, slash - 1) or prefix
  local ppath = slash and sub(prefix, slash) or ""
  if phost ~= "" then
    if host ~= "" or path ~= "" then
      error(format("bad argument 'prefix' to muxx:group: %q: a host group must be created on the router or a host-less, prefix-less group", prefix), 2)
    end
    host = phost
  end
  if find(ppath, "/$") then ppath = sub(ppath, 1, -2) end
  path = path .. ppath
  local ok, why = parse_pattern(host .. path .. "/")
  if not ok then
    error(format("bad argument 'prefix' to muxx:group: %q: %s", prefix, why), 2)
  end
  if ppath ~= "" and not parse_pattern(host .. path .. "/x") then
    error(format("bad argument 'prefix' to muxx:group: %q: nothing can follow its last segment", prefix), 2)
  end
  return setmetatable({ _mux = self._mux, _parent = self, _host = host, _prefix = path, _mws = {} }, Group)
end

--- The host and path prefix of this group ("" when none).
function Group:prefix() return self._host, self._prefix end

for k, v in pairs(Group) do
  if k ~= "__index" then Mux[k] = v end
end

--- A new, empty router. It is a handler: m:serve_http(w, r), or m(w, r).
function M.new()
  local m = setmetatable({ _host = "", _prefix = "", _mws = {}, _hosts = {}, _nohost = {}, _by_host = {}, _count = 0, _nhosts = 0 }, Mux)
  m._mux = m
  return m
end

--- The handler for r and its pattern string, without running it (like Go's
--- ServeMux.Handler): the registered (middleware-wrapped) handler, or the
--- router's own redirect, 405 or 404 handler (pattern "" for 404/405, the
--- target path for a trailing-slash redirect). Does not touch r.
function Mux:handler(r)
  if type(r) ~= "table" or type(r.url) ~= "table" then error("bad argument 'r' to mux:handler: request expected, got " .. type(r), 2) end
  local rt, h, pattern, fl, b = lookup(self, r)
  if rt then
    if fl then return fl[b - 3], fl[b - 1] end
    return rt[R_HANDLER], rt[R_PATTERN]
  end
  return h, pattern
end

--- Dispatches r: sets r.pattern and r's path values, then runs the handler.
function Mux:serve_http(w, r)
  if type(w) ~= "table" or type(w.header) ~= "function" then
    error("bad argument 'w' to mux:serve_http: response writer expected, got " .. type(w), 2)
  end
  if type(r) ~= "table" or type(r.url) ~= "table" then error("bad argument 'r' to mux:serve_http: request expected, got " .. type(r), 2) end
  local rt, d, pattern = lookup(self, r)
  if rt then
    r.pattern = rt[R_PATTERN]
    if d > 0 then
      local names, pct = rt[R_NAMES], find(pattern, "%", 1, true) ~= nil
      for k = 1, d do r:set_path_value(names[k], capture(pattern, pct, k)) end
    end
    return rt[R_FN](w, r)
  end
  r.pattern = pattern
  return d(w, r)
end

--- Number of registered routes.
function Mux:count() return self._count end

--- Wraps h with middleware: chain(h, a, b) is a(b(h)), so a runs first.
--- Returns whatever the outermost middleware returned.
function M.chain(h, ...)
  if not is_handler(h) then
    error("bad argument 'h' to muxx.chain: function or table with serve_http expected, got " .. handler_kind(h), 2)
  end
  local n = select("#", ...)
  local mws = { ... }
  for i = 1, n do
    if type(mws[i]) ~= "function" then
      error(format("bad argument #%d to muxx.chain: middleware function expected, got %s", i + 1, type(mws[i])), 2)
    end
  end
  return chain(h, mws)
end

return M
