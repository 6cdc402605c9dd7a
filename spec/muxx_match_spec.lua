-- lowbit.muxx's tree matcher against a brute-force reference: every
-- registered pattern is tried against the request on its own (a linear
-- scan, written here from conformance/muxx.md), and the winner is chosen
-- by Go 1.22's order (the request's host before no host; the method, then
-- GET for HEAD, then no method) and, among those, by specificity
-- (muxx._compare, the relation registration uses for conflicts). The tree
-- must pick the same pattern with the same path values for GitHub's 203
-- routes, 2,000 generated REST routes and a set of overlapping patterns
-- that forces the matcher to back up, over generated and random paths.
local muxx = require "lowbit.muxx"
local httptest = require "lowbit.httptest"
local url = require "lowbit.url"

local ROOT = os.getenv("LOWBIT_ROOT") or "."

local function unesc(s)
  if not s:find("%", 1, true) then return s end
  return url.path_unescape(s) or s
end

-- Segments of a request path: "/a/b" -> {"a", "b"}, "/a/" -> {"a", ""},
-- "/" -> {""}.
local function split(path)
  local segs = {}
  for s in (path:sub(2) .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = s end
  return segs
end

-- Does one parsed pattern match the path? Returns the path values.
local function path_match(pat, path)
  local S, P = split(path), pat.segs
  local vals = {}
  for i = 1, #P do
    local p, s = P[i], S[i]
    if p.kind == 3 then -- {name...} or trailing "/": the rest, maybe empty
      if s == nil then return nil end
      if p.s ~= "" then vals[#vals + 1] = unesc(table.concat(S, "/", i)) end
      return vals
    end
    if s == nil then return nil end
    local last = i == #S
    if p.kind == 1 then -- literal
      if unesc(s) ~= p.s or (last and s == "") then return nil end
    elseif p.kind == 2 then -- {name}: never the trailing slash
      if last and s == "" then return nil end
      vals[#vals + 1] = unesc(s)
    else -- {$}: only the trailing slash
      if not (last and s == "") then return nil end
    end
  end
  if #S ~= #P then return nil end
  return vals
end

-- The reference: a linear scan over every pattern.
local function reference(pats, host, method, path)
  local function pick(h, m)
    local cands = {}
    for _, pat in ipairs(pats) do
      if pat.host == h and pat.method == m then
        local vals = path_match(pat, path)
        if vals then cands[#cands + 1] = { pat = pat, vals = vals } end
      end
    end
    -- The one more specific than every other candidate.
    for _, c in ipairs(cands) do
      local best = true
      for _, o in ipairs(cands) do
        if o ~= c and muxx._compare(c.pat.str, o.pat.str) ~= "more_specific" then best = false; break end
      end
      if best then return c end
    end
    assert(#cands == 0, "reference: no most specific pattern for " .. method .. " " .. host .. path)
  end
  local hosts = host ~= "" and { host, "" } or { "" }
  local methods = { method }
  if method == "HEAD" then methods[#methods + 1] = "GET" end
  methods[#methods + 1] = ""
  for _, h in ipairs(hosts) do
    for _, m in ipairs(methods) do
      local c = pick(h, m)
      if c then return c.pat.str, c.vals end
    end
  end
  return nil, {}
end

-- A deterministic generator (the same paths on every run).
local seed = 12345
local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n + 1
end

local function load_routes(file)
  local list = {}
  for line in io.lines(file) do
    if line ~= "" and line:sub(1, 1) ~= "#" then list[#list + 1] = line end
  end
  return list
end

-- Registers the patterns that do not conflict with earlier ones; returns
-- the router and their parsed forms.
local function build(patterns)
  local m, pats = muxx.new(), {}
  for _, p in ipairs(patterns) do
    if pcall(m.handle, m, p, function() end) then pats[#pats + 1] = assert(muxx._parse_pattern(p)) end
  end
  return m, pats
end

local function compare_all(m, pats, cases)
  local mismatches = {}
  for _, c in ipairs(cases) do
    local host, method, path = c[1], c[2], c[3]
    local want, wvals = reference(pats, host, method, path)
    local got, gvals = muxx._match(m, host, method, path)
    gvals = gvals or {}
    local same = got == want and #gvals == #wvals
    for k = 1, #wvals do same = same and gvals[k] == wvals[k] end
    if not same and #mismatches < 10 then
      mismatches[#mismatches + 1] = ("%s %s%s: tree %s {%s}, reference %s {%s}"):format(method, host, path,
        tostring(got), table.concat(gvals, ","), tostring(want), table.concat(wvals, ","))
    end
  end
  assert.same({}, mismatches)
end

-- Paths made from the patterns' own segments: each wildcard filled with a
-- value, a literal of another pattern, an escaped form or nothing; cut
-- short, made longer or given a trailing slash at random.
local FILL = { "v", "issues", "comments", "events", "repos", "a%2Fb", "%41", "x-y", "keys", "public" }
local METHODS = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" }
local function paths_from(patterns, count)
  local cases = {}
  for _ = 1, count do
    local p = patterns[rand(#patterns)]
    local method, rest = p:match("^(%S+) (.*)$")
    if not method then rest = p end
    local path = rest:gsub("{%$}", ""):gsub("{[^}]+}", function() return FILL[rand(#FILL)] end)
    local r = rand(6)
    if r == 1 then path = path:gsub("/[^/]*$", "") end
    if r == 2 then path = path .. "/" .. FILL[rand(#FILL)] end
    if r == 3 and path:sub(-1) ~= "/" then path = path .. "/" end
    if path == "" then path = "/" end
    local m = rand(3) == 1 and METHODS[rand(#METHODS)] or method or "GET"
    cases[#cases + 1] = { "", m, path }
  end
  return cases
end

describe("lowbit.muxx tree matcher vs a brute-force reference", function()
  it("picks the same pattern and path values for GitHub's 203 routes", function()
    local patterns = load_routes(ROOT .. "/bench/data/github-api-routes.txt")
    local m, pats = build(patterns)
    assert.equal(203, #pats)
    local cases = {}
    for _, p in ipairs(patterns) do
      local method, path = p:match("^(%S+) (.*)$")
      cases[#cases + 1] = { "", method, (path:gsub("{[^}]+}", "v1")) }
      cases[#cases + 1] = { "", "HEAD", (path:gsub("{[^}]+}", "v%%2F1")) }
    end
    for _, c in ipairs(paths_from(patterns, 3000)) do cases[#cases + 1] = c end
    compare_all(m, pats, cases)
  end)

  it("picks the same pattern for 2,000 generated REST routes (bench/muxx.lua's)", function()
    local src = assert(io.open(ROOT .. "/bench/muxx.lua")):read("*a")
    local gen_src = assert(src:match("(local function generated_routes.-\nend\n)"))
    local generated = assert(load(gen_src .. "\nreturn generated_routes"))()(2000)
    local patterns = {}
    for i, rt in ipairs(generated) do patterns[i] = rt.pattern end
    local m, pats = build(patterns)
    assert.equal(2000, #pats)
    compare_all(m, pats, paths_from(patterns, 1500))
  end)

  -- Patterns that overlap: literals beside wildcards at several depths,
  -- {$}, trailing slashes, multi-wildcards, methods and a host, so that the
  -- first descent hits dead ends and the search has to back up. Those that
  -- conflict with an earlier one are left out (as registration refuses
  -- them). Every path of up to 4 segments over a small alphabet, with and
  -- without a trailing slash, under several methods and hosts.
  it("picks the same pattern where the descent has to back up (every short path)", function()
    local patterns = {
      "/a/b/c", "/{x}/b/d", "/a/{y}/e", "/a/b/{z...}", "/{x}/{y}/{$}", "/a/", "/a/{$}", "/b/{p}/c/{q}",
      "/b/x/{r...}", "/{s}/c", "/c/{t}/", "/c/d/{u}/{v}", "/d/{w}/{$}", "/d/a/", "/",
      "GET /a/{x}", "HEAD /a/b", "POST /{x}/c/{y}", "GET /e/{f...}", "DELETE /e/a/b",
      "h.example/a/{x}", "h.example/{x}/b", "h.example/", "GET h.example/c/{$}",
      "/a/%62/e", "/{x}/b/{y}/{z}", "/e/{x}/b", "/k/m/{x}", "POST /k/m/{x}/{$}", "/k/m/n/o/{rest...}",
    }
    local alphabet = { "a", "b", "c", "d", "e", "x", "%61", "bb" }
    local paths = { "/" }
    local level = { "" }
    for _ = 1, 4 do
      local nextl = {}
      for _, pre in ipairs(level) do
        for _, s in ipairs(alphabet) do
          local p = pre .. "/" .. s
          nextl[#nextl + 1] = p
          paths[#paths + 1] = p
          paths[#paths + 1] = p .. "/"
        end
      end
      level = nextl
    end
    local cases = {}
    for _, p in ipairs(paths) do
      for _, method in ipairs({ "GET", "HEAD", "POST", "DELETE" }) do
        for _, host in ipairs({ "", "h.example" }) do
          cases[#cases + 1] = { host, method, p }
        end
      end
    end
    -- Chains of single literals ("/k/m" above) compared in one go: the
    -- path must end, or have a "/", right after them.
    for _, p in ipairs({ "/k/mm/z", "/k/m/z", "/k/m", "/k/mz", "/k/m/", "/km/z", "/k/m/n", "/k/m/n/o", "/k/m/n/oo",
                         "/k/m/n/o/", "/k/m/z/", "/k/%6D/z", "/k//m/z", "/k/m/n/oo/z", "/k/m/n/o/z/y" }) do
      for _, method in ipairs({ "GET", "POST" }) do cases[#cases + 1] = { "", method, p } end
    end
    assert.is_true(#cases > 20000)
    -- In the order above, and reversed (other patterns then lose the
    -- conflicts, and the tree is built in another order).
    local reversed = {}
    for i = #patterns, 1, -1 do reversed[#reversed + 1] = patterns[i] end
    for _, list in ipairs({ patterns, reversed }) do
      local m, pats = build(list)
      assert.is_true(#pats >= 15, "too few patterns registered: " .. #pats)
      compare_all(m, pats, cases)
    end
  end)

  it("gives the same answers through m:handler whatever the registration order", function()
    local patterns = load_routes(ROOT .. "/bench/data/github-api-routes.txt")
    local fwd, rev = muxx.new(), muxx.new()
    for i = 1, #patterns do fwd:handle(patterns[i], function() end) end
    for i = #patterns, 1, -1 do rev:handle(patterns[i], function() end) end
    for _, c in ipairs(paths_from(patterns, 1000)) do
      local r = httptest.new_request(c[2], c[3])
      local _, p1 = fwd:handler(r)
      local _, p2 = rev:handler(r)
      assert.equal(p1, p2, c[2] .. " " .. c[3])
    end
  end)
end)

describe("lowbit.muxx matching runs compiled", function()
  -- GitHub's 203 routes through m:handler: the descent (generated code,
  -- chunk "muxx.lua(descend)") is compiled with no NYI abort anywhere in
  -- muxx, and once warm a request leaves compiled code for the interpreter
  -- almost never (an exit per request would cost more than the match).
  it("compiles the descent with no NYI and stays in compiled code once warm", function()
    if not (jit and jit.status()) then return end
    local jutil = require "jit.util"
    local traceerr = require("jit.vmdef").traceerr
    local patterns = load_routes(ROOT .. "/bench/data/github-api-routes.txt")
    local m = muxx.new()
    for _, p in ipairs(patterns) do m:handle(p, function() end) end
    local reqs = {}
    for i, p in ipairs(patterns) do
      local method, path = p:match("^(%S+) (.*)$")
      reqs[i] = httptest.new_request(method, (path:gsub("{[^}]+}", "v1")))
    end
    local function run(rounds)
      for _ = 1, rounds do
        for i = 1, #reqs do m:handler(reqs[i]) end
      end
    end
    local nyi = {}
    local function on_trace(what, tr, func, pc, otr, oex)
      local info = jutil.funcinfo(func, pc)
      if not (info.source and info.source:find("muxx.lua", 1, true)) then return end
      if what == "abort" then
        local msg = traceerr[otr] or tostring(otr)
        if msg:find("NYI", 1, true) and not info.source:find("spec", 1, true) then
          nyi[#nyi + 1] = ("%s:%s %s"):format(info.source, tostring(info.currentline), msg:format(oex))
        end
      end
    end
    jit.flush()
    jit.attach(on_trace, "trace")
    run(200)
    jit.attach(on_trace)
    assert.same({}, nyi)
    local exits = 0
    local function on_exit() exits = exits + 1 end
    jit.attach(on_exit, "texit")
    run(50)
    jit.attach(on_exit)
    assert.is_true(exits < 0.05 * 50 * #reqs, ("%d exits to the interpreter in %d requests"):format(exits, 50 * #reqs))
  end)
end)
