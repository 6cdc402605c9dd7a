-- muxx matching cost: the 203 GitHub API routes, then a 5-route router.
--   build/bin/lowbit bench/muxx.lua [routes-file] [rounds]
--   (or luajit with LUA_PATH as tools/run-specs.sh sets it)
-- Each route is matched once per round with its parameters filled in, via
-- m:handler(r) on prebuilt requests (no server, no handler run).
local muxx = require "lowbit.muxx"
local httptest = require "lowbit.httptest"

local file = arg and arg[1] or "bench/data/github-api-routes.txt"
local ROUNDS = tonumber(arg and arg[2]) or 2000

local clock
do
  local ok, uv = pcall(require, "luv")
  if ok then clock = function() return uv.hrtime() * 1e-9 end else clock = os.clock end
end

-- Lines are "METHOD /path" with {param} (":param" is converted too).
local routes = {}
for line in io.lines(file) do
  if line ~= "" and line:sub(1, 1) ~= "#" then
    local method, path = line:match("^(%S+)%s+(%S+)$")
    path = path:gsub(":([%w_]+)", "{%1}")
    routes[#routes + 1] = { method = method, path = path, pattern = method .. " " .. path }
  end
end

local function noop() end

local function build(list)
  local m = muxx.new()
  for _, rt in ipairs(list) do m:handle(rt.pattern, noop) end
  return m
end

local function requests(list)
  local reqs = {}
  for i, rt in ipairs(list) do
    local n = 0
    local target = rt.path:gsub("{[^}]+}", function() n = n + 1; return "value" .. n end)
    reqs[i] = httptest.new_request(rt.method, target)
    reqs[i].want = rt.pattern
  end
  return reqs
end

local function check(m, reqs)
  for _, r in ipairs(reqs) do
    local _, p = m:handler(r)
    assert(p == r.want, ("%s %s matched %q"):format(r.method, r.url.path, tostring(p)))
  end
end

local function bench(label, m, reqs, rounds)
  check(m, reqs)
  local n = #reqs
  for _ = 1, 200 do for i = 1, n do m:handler(reqs[i]) end end -- warm up the JIT
  collectgarbage()
  local t0 = clock()
  for _ = 1, rounds do
    for i = 1, n do m:handler(reqs[i]) end
  end
  local dt = clock() - t0
  local total = rounds * n
  print(("%-58s %7.0f ns/match  (%d matches in %.3f s)"):format(label, dt / total * 1e9, total, dt))
end

local statics = {}
for _, rt in ipairs(routes) do
  if not rt.path:find("{", 1, true) then statics[#statics + 1] = rt end
end
local five = { statics[1], statics[2], statics[3], statics[4], statics[5] }

local big = build(routes)
local small = build(five)
local all_reqs, static_reqs, five_reqs = requests(routes), requests(statics), requests(five)

print(("muxx: %d routes (%d static), %d rounds"):format(#routes, #statics, ROUNDS))
bench(("%d routes, every route"):format(#routes), big, all_reqs, ROUNDS)
bench(("%d routes, the %d static routes"):format(#routes, #statics), big, static_reqs, ROUNDS)
bench(("%d routes, 5 static routes"):format(#routes), big, five_reqs, ROUNDS * 20)
bench("5 routes, the same 5 static routes", small, five_reqs, ROUNDS * 20)

-- Full dispatch for comparison: serve_http sets r.pattern and path values
-- and runs a no-op handler.
do
  local w = httptest.new_recorder()
  for _ = 1, 200 do for i = 1, #all_reqs do big:serve_http(w, all_reqs[i]) end end
  collectgarbage()
  local t0 = clock()
  for _ = 1, ROUNDS do
    for i = 1, #all_reqs do big:serve_http(w, all_reqs[i]) end
  end
  local dt = clock() - t0
  print(("%-58s %7.0f ns/request"):format(("%d routes, serve_http (path values set)"):format(#routes), dt / (ROUNDS * #all_reqs) * 1e9))
end
