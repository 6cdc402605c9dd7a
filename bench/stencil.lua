-- lowbit.stencil: renders/s of the conformance benchmark page (an <h1> and
-- a 100-row table, three escaped fields a row, contextual escaping on),
-- compile time per template, the engine's cache counters, and the Go
-- html/template anchor on the same page (bench/go/stencil, when go exists).
--   build/bin/lowbit bench/stencil.lua        (STENCIL_BENCH_N=renders, default 20000)
local stencil = require "lowbit.stencil"
local R = dofile("bench/report.lua").suite("stencil")

local N = tonumber(os.getenv("STENCIL_BENCH_N")) or 20000

local page = [[
<h1>{{ title }}</h1>
<table>
{% for _, r in ipairs(rows) do %}<tr><td>{{ r.name }}</td><td>{{ r.email }}</td><td>{{ r.note }}</td></tr>
{% end %}</table>
]]

local rows = {}
for i = 1, 100 do
  rows[i] = { name = "Customer number " .. i, email = "customer" .. i .. "@mail.example.com",
              note = (i - 1) % 10 == 0 and "<b>Tom & Jerry's</b> \"special\" order" or "Regular customer since 2019" }
end
local data = { title = "Benchmark <page>", rows = rows }

local e = stencil.new { views = { ["page.html"] = page } }
local opts = { layout = false }
local out = assert(e:render_to_string("page", data, opts))

-- Compile time: fresh compiles of the page.
local clock = os.clock
local CN = math.max(50, math.floor(N / 40))
local t0 = clock()
for _ = 1, CN do assert(stencil.compile(page)) end
local compile_us = (clock() - t0) / CN * 1e6

collectgarbage()
for _ = 1, math.min(N, 1000) do e:render_to_string("page", data, opts) end
t0 = clock()
for _ = 1, N do e:render_to_string("page", data, opts) end
local dt = clock() - t0
local us = dt / N * 1e6

print(("stencil: benchmark page, %d bytes out, %d renders (engine.render_to_string, in-memory view, no layout)"):format(#out, N))
print(("stencil render: %.1f us/render, %.0f renders/s (goal >= 11k/s)"):format(us, 1e6 / us))
print(("stencil compile: %.1f us per template (the page, %d compiles)"):format(compile_us, CN))
R:line{ case = "benchmark page, in memory, no layout", metric = "us_per_render", value = us, unit = "us", better = "lower" }
R:line{ case = "compile the page", metric = "us_per_compile", value = compile_us, unit = "us", better = "lower" }
print(("stencil cache: compiles=%d cache_hits=%d partial_parses=%d"):format(e.stats.compiles, e.stats.cache_hits,
  e.stats.partial_parses))

-- The same page from a directory (view and layout read on every render,
-- as the seed does), inside a layout, with the rows in a cached partial.
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir .. "/views " .. dir .. "/layouts " .. dir .. "/partials")
local function put(path, text) local f = assert(io.open(dir .. "/" .. path, "w")); f:write(text); f:close() end
put("views/page.html", (page:gsub("{%% for.-{%% end %%}", "{{ partial('rows', rows) }}")))
put("partials/rows.html", "{% for _, r in ipairs(data) do %}<tr><td>{{ r.name }}</td><td>{{ r.email }}</td>" ..
  "<td>{{ r.note }}</td></tr>\n{% end %}")
put("layouts/base.html", "<!doctype html><html><head><title>{{ title }}</title></head><body>{{ yield }}</body></html>")
local fe = stencil.new { views = dir .. "/views", layouts = dir .. "/layouts", partials = dir .. "/partials",
                         default_layout = "base" }
assert(fe:render_to_string("page", data))
local FN = math.max(100, math.floor(N / 4))
t0 = clock()
for _ = 1, FN do fe:render_to_string("page", data) end
local fus = (clock() - t0) / FN * 1e6
print(("stencil from a directory, in a layout, rows in a partial: %.1f us/render, %.0f renders/s " ..
  "(compiles=%d cache_hits=%d partial_parses=%d)"):format(fus, 1e6 / fus, fe.stats.compiles, fe.stats.cache_hits,
  fe.stats.partial_parses))
R:line{ case = "benchmark page, from a directory, layout, partial", metric = "us_per_render", value = fus, unit = "us",
  better = "lower" }
os.execute("rm -rf " .. dir)

-- The Go anchor on the same page.
if os.getenv("STENCIL_BENCH_GO") ~= "0" and os.execute("command -v go >/dev/null 2>&1") == 0 then
  local bin = "/tmp/lowbit-bench-stencil-go-" .. (os.getenv("USER") or "u")
  local built = os.execute(("[ %s -nt bench/go/stencil/main.go ] || GO111MODULE=off GOCACHE=/tmp/lowbit-gocache go build -o %s bench/go/stencil/main.go")
    :format(bin, bin)) == 0
  local p = built and io.popen(bin .. " " .. math.max(200, math.floor(N / 4)))
  local res = p and p:read("*a") or ""
  if p then p:close() end
  local gous = tonumber(res:match("go_us_per_render ([%d.]+)"))
  if gous then
    print(("go html/template (GOMAXPROCS=1): %.1f us/render, %.0f renders/s, %s bytes out; parse %s us + escape analysis %s us"):format(
      gous, 1e6 / gous, res:match("go_bytes (%d+)") or "?", res:match("go_parse_us ([%d.-]+)") or "?",
      res:match("go_escape_us ([%d.-]+)") or "?"))
    print(("stencil vs go: %.1fx (goal >= 5x)"):format(gous / us))
    R:line{ case = "benchmark page, in memory, no layout", metric = "us_per_render", impl = "go", value = gous, unit = "us",
      better = "lower" }
  else
    print("go html/template: not run (" .. (built and "no output" or "build failed") .. ")")
  end
end
