-- muxx matching cost: the 203 GitHub API routes, 2,000 generated REST
-- routes, then a 5-route router.
--   build/bin/lowbit bench/muxx.lua [routes-file] [rounds]
--   (or luajit with LUA_PATH as tools/run-specs.sh sets it)
-- Each route is matched once per round with its parameters filled in, via
-- m:handler(r) (no server, no handler run). As in a server, where the
-- request was just parsed, the request is one object whose method and path
-- are set before each match: 2,000 prebuilt request objects would measure
-- cache misses on them (+50 ns/match), not the router. Each figure is the
-- best of REPEATS timed runs: the machine is shared, and the best run is the
-- one least disturbed by other work.
--
-- Anchor (issue 16): tree routers of the httprouter class match GitHub's
-- routes in 40-100 ns; the goal is <= 100 ns/match for the 203 GitHub
-- routes, and at most 1.5x that with 2,000 routes (the cost must not grow
-- with the number of routes). Go here is 1.19, whose ServeMux has no
-- patterns, so there is no Go 1.22 ServeMux figure beside these.
local muxx = require "lowbit.muxx"
local httptest = require "lowbit.httptest"
local R = dofile("bench/report.lua").suite("muxx")

local file = arg and arg[1] or "bench/data/github-api-routes.txt"
local ROUNDS = tonumber(arg and arg[2]) or 1000
local REPEATS = 5
local GOAL_NS = 100

-- Process CPU time, not wall time: on a shared machine a run that lost the
-- CPU to another process for a while still counts only its own time.
local clock = os.clock

-- Lines are "METHOD /path" with {param} (":param" is converted too).
local routes = {}
for line in io.lines(file) do
  if line ~= "" and line:sub(1, 1) ~= "#" then
    local method, path = line:match("^(%S+)%s+(%S+)$")
    path = path:gsub(":([%w_]+)", "{%1}")
    routes[#routes + 1] = { method = method, path = path, pattern = method .. " " .. path }
  end
end

-- 2,000 REST routes of the usual shapes: /api/vN/<resource> collections,
-- items, sub-collections and their items, a few literal actions beside the
-- item wildcard, an optional trailing {$}, and a static-file {path...}.
local function generated_routes(count)
  local nouns = {
    "accounts", "addresses", "alerts", "apps", "articles", "assets", "audits", "backups", "badges",
    "batches", "bills", "blocks", "boards", "bookings", "branches", "buckets", "builds", "calendars",
    "campaigns", "cards", "carts", "categories", "channels", "charges", "checks", "clients", "clusters",
    "comments", "contacts", "coupons", "customers", "datasets", "deals", "deployments", "devices",
    "discounts", "documents", "domains", "drafts", "events", "exports", "feeds", "files", "folders",
    "forms", "groups", "hooks", "images", "imports", "incidents", "invoices", "issues", "jobs", "keys",
    "labels", "leads", "licenses", "links", "lists", "locations", "logs", "meetings", "members",
    "messages", "metrics", "milestones", "models", "monitors", "notes", "orders", "payments", "plans",
  }
  local list, seen = {}, {}
  local function add(method, path)
    local p = method .. " " .. path
    if #list < count and not seen[p] then
      seen[p] = true
      list[#list + 1] = { method = method, path = path, pattern = p }
    end
  end
  local version = 0
  while #list < count do
    version = version + 1
    for i, r in ipairs(nouns) do
      local base = ("/api/v%d/%s"):format(version, r)
      add("GET", base); add("POST", base)
      add("GET", base .. "/search"); add("GET", base .. "/count")
      add("GET", base .. "/{id}"); add("PUT", base .. "/{id}")
      add("PATCH", base .. "/{id}"); add("DELETE", base .. "/{id}")
      for k = 1, 3 do
        local s = nouns[(i * 7 + k * 13 + version) % #nouns + 1]
        add("GET", base .. "/{id}/" .. s); add("POST", base .. "/{id}/" .. s)
        add("GET", base .. "/{id}/" .. s .. "/{sub_id}"); add("DELETE", base .. "/{id}/" .. s .. "/{sub_id}")
      end
      add("POST", base .. "/{id}/actions/{action}")
      add("GET", base .. "/{id}/history/{$}")
      if #list >= count then break end
    end
    add("GET", ("/static/v%d/{path...}"):format(version))
  end
  return list
end

local function noop() end

local function build(list)
  local m = muxx.new()
  for _, rt in ipairs(list) do m:handle(rt.pattern, noop) end
  return m
end

-- The requests for list: { method = ..., path = ..., want = pattern }.
local function requests(list)
  local reqs = {}
  for i, rt in ipairs(list) do
    local n = 0
    local target = rt.path:gsub("{%$}", ""):gsub("{[^}]+}", function() n = n + 1; return "value" .. n end)
    reqs[i] = { method = rt.method, path = target, want = rt.pattern }
  end
  return reqs
end

-- The one request object; set(q) makes it q.
local req = httptest.new_request("GET", "/")
local req_url = req.url
local function set(q)
  req.method, req_url.path, req_url.raw_path = q.method, q.path, q.path
  return req
end

local function check(m, reqs)
  for _, q in ipairs(reqs) do
    local _, p = m:handler(set(q))
    assert(p == q.want, ("%s %s matched %q"):format(q.method, q.path, tostring(p)))
  end
end

-- Best ns per call of f(m, r) over every request, and the total calls.
local function measure(m, reqs, rounds, f)
  local n = #reqs
  for _ = 1, 200 do for i = 1, n do f(m, set(reqs[i])) end end -- warm up the JIT
  local best = math.huge
  for _ = 1, REPEATS do
    collectgarbage()
    local t0 = clock()
    for _ = 1, rounds do
      for i = 1, n do f(m, set(reqs[i])) end
    end
    local dt = clock() - t0
    if dt < best then best = dt end
  end
  return best / (rounds * n) * 1e9, rounds * n
end

local function handler(m, r) return m:handler(r) end

local function bench(label, m, reqs, rounds, goal)
  check(m, reqs)
  local ns, total = measure(m, reqs, rounds, handler)
  print(("%-52s %6.0f ns/match%s  (best of %d x %d matches)"):format(label, ns,
    goal and ("  goal <= %.0f ns"):format(goal) or "", REPEATS, total))
  R:line{ case = label, metric = "ns_per_match", value = ns, unit = "ns", better = "lower" }
  return ns
end

local statics = {}
for _, rt in ipairs(routes) do
  if not rt.path:find("{", 1, true) then statics[#statics + 1] = rt end
end
local five = { statics[1], statics[2], statics[3], statics[4], statics[5] }
local gen = generated_routes(2000)

local big = build(routes)
local small = build(five)
local huge = build(gen)
local all_reqs, static_reqs, five_reqs = requests(routes), requests(statics), requests(five)
local gen_reqs = requests(gen)

print(("muxx: %d routes (%d static), %d rounds; anchor: httprouter-class tree routers 40-100 ns/match"):format(
  #routes, #statics, ROUNDS))
local base = bench(("%d routes, every route"):format(#routes), big, all_reqs, ROUNDS, GOAL_NS)
bench(("%d routes, the %d static routes"):format(#routes, #statics), big, static_reqs, ROUNDS)
bench(("%d routes, 5 static routes"):format(#routes), big, five_reqs, ROUNDS * 20)
bench("5 routes, the same 5 static routes", small, five_reqs, ROUNDS * 20)
local g = bench(("%d generated REST routes, every route"):format(#gen), huge, gen_reqs, math.max(1, math.floor(ROUNDS / 10)),
  1.5 * GOAL_NS)
print(("%-52s %6.2fx  goal <= 1.5x"):format(("%d generated routes vs GitHub's %d"):format(#gen, #routes), g / base))
R:line{ case = ("%d generated routes vs GitHub's %d"):format(#gen, #routes), metric = "growth", value = g / base,
  unit = "x", better = "lower" }
-- The same shapes with a tenth of the routes: the growth due to the number
-- of routes alone (the generated paths have 4.9 segments on average,
-- GitHub's 3.8).
local gen200 = generated_routes(200)
local g200 = bench(("%d generated REST routes, every route"):format(#gen200), build(gen200), requests(gen200), ROUNDS)
print(("%-52s %6.2fx  goal <= 1.5x"):format(("%d generated routes vs %d"):format(#gen, #gen200), g / g200))
R:line{ case = ("%d generated routes vs %d"):format(#gen, #gen200), metric = "growth", value = g / g200,
  unit = "x", better = "lower" }

-- Full dispatch for comparison: serve_http sets r.pattern and path values
-- and runs a no-op handler.
do
  local w = httptest.new_recorder()
  local ns = measure(big, all_reqs, ROUNDS, function(m, r) return m:serve_http(w, r) end)
  print(("%-52s %6.0f ns/request"):format(("%d routes, serve_http (path values set)"):format(#routes), ns))
  R:line{ case = ("%d routes, serve_http (path values set)"):format(#routes), metric = "ns_per_request", value = ns,
    unit = "ns", better = "lower" }
end
