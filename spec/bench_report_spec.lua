-- The benchmark report: tools/bench-report.lua on a recorded run
-- (spec/data/bench_run.log: lines of a real `make bench` subset, plus
-- malformed ones), and every benchmark writing its @bench lines.
local support = require "support"
local sh, root = support.sh, support.root

local report = dofile(root .. "/tools/bench-report.lua")
local LOG = root .. "/spec/data/bench_run.log"

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local tmpdir = support.tmpdir

-- The @bench figures of the recorded log, by suite|case|metric|impl.
local function recorded()
  local t = {}
  for line in io.lines(LOG) do
    local json = line:match("^@bench (.*)$")
    local o = json and report.parse_object(json)
    if o and type(o.value) == "number" and (o.better == "lower" or o.better == "higher") and o.unit then
      t[o.suite .. "|" .. (o.case or "") .. "|" .. o.metric .. "|" .. o.impl] = o.value
    end
  end
  return t
end

-- The markdown table row of suite, case, metric (as the report writes it) and anchor.
local function row(md, suite, case, metric, anchor)
  for line in md:gmatch("[^\n]+") do
    local cells = {}
    for c in line:gmatch("|%s*([^|]-)%s*%f[|]") do cells[#cells + 1] = c end
    if cells[1] == suite and cells[2] == case and cells[3]:match("^" .. metric:gsub("%p", "%%%0") .. " ")
        and cells[5] == anchor then
      return cells
    end
  end
end

describe("tools/bench-report.lua", function()
  local out, stdout, stderr, rc
  setup(function()
    out = tmpdir()
    local body
    body, rc = sh(("cd %s && luajit tools/bench-report.lua --log %s --out %s --print 2>%s/stderr"):format(root, LOG, out, out))
    stdout = body
    stderr = slurp(out .. "/stderr")
  end)
  teardown(function() sh("rm -rf " .. out) end)

  it("reads a recorded run and exits 0 despite malformed lines", function()
    assert.equal(0, rc)
    assert.truthy(stdout:find("report: " .. out .. "/report.md", 1, true))
    assert.truthy(stdout:find("chart:  " .. out .. "/report.png", 1, true))
    assert.truthy(stdout:find("5 malformed lines skipped", 1, true))
  end)

  it("reports each malformed line with its line number and skips it", function()
    for _, ln in ipairs{ 37, 38, 39, 40, 41 } do
      assert.truthy(stderr:find(LOG .. ":" .. ln .. ": malformed @bench line skipped", 1, true), "line " .. ln)
    end
    assert.truthy(stderr:find('"value" is not a finite number', 1, true))
    assert.truthy(stderr:find('"better" is neither lower nor higher', 1, true))
    assert.truthy(stderr:find("unknown tag @benchmark", 1, true))
    local md = slurp(out .. "/report.md")
    assert.falsy(md:find("broken", 1, true))
    assert.truthy(md:find("5 malformed @bench line(s) skipped (first: line 37", 1, true))
  end)

  it("puts lowbit beside each anchor of the same run with the ratio lowbit / anchor", function()
    local md = slurp(out .. "/report.md")
    local v = recorded()
    local K = "http_hello|hello, keep-alive, 64 conns, one core|"
    for _, c in ipairs{
      { "http_hello", "hello, keep-alive, 64 conns, one core", "cpu_us_per_req", "openresty" },
      { "http_hello", "hello, keep-alive, 64 conns, one core", "cpu_us_per_req", "go" },
      { "http_hello", "hello, keep-alive, 64 conns, one core", "req_per_s", "openresty" },
      { "http_hello", "hello, keep-alive, 64 conns, one core", "req_per_s", "go" },
      { "topic", "publish, 1 handler", "ns_per_publish", "go" },
      { "inflate", "64 KiB 'a', Go BestSpeed", "us_per_decode", "zlib" },
    } do
      local cells = row(md, c[1], c[2], c[3], c[4])
      assert.is_table(cells, table.concat(c, " / "))
      local lb = v[c[1] .. "|" .. c[2] .. "|" .. c[3] .. "|lowbit"]
      local an = v[c[1] .. "|" .. c[2] .. "|" .. c[3] .. "|" .. c[4]]
      assert.equal(report.num(lb), cells[4])
      assert.equal(report.num(an), cells[6])
      assert.equal(("%.2f"):format(lb / an), cells[7])
    end
    -- The recorded figures: lowbit 5.11 us CPU per request, OpenResty 4.78,
    -- Go 11.04; 167,512 req/s, OpenResty 161,824.
    assert.equal(5.11, v[K .. "cpu_us_per_req|lowbit"])
    local cells = row(md, "http_hello", "hello, keep-alive, 64 conns, one core", "cpu_us_per_req", "openresty")
    assert.same({ "cpu_us_per_req (us, lower is better)", "5.11", "4.78", "1.07", "worse, 1.07×" },
      { cells[3], cells[4], cells[6], cells[7], cells[8] })
    cells = row(md, "http_hello", "hello, keep-alive, 64 conns, one core", "cpu_us_per_req", "go")
    assert.same({ "0.46", "better, 2.16×" }, { cells[7], cells[8] })
    cells = row(md, "http_hello", "hello, keep-alive, 64 conns, one core", "req_per_s", "openresty")
    assert.same({ "req_per_s (req/s, higher is better)", "167,512", "161,824", "1.04", "better, 1.04×" },
      { cells[3], cells[4], cells[6], cells[7], cells[8] })
  end)

  it("lists the figures with no anchor on their own", function()
    local md = slurp(out .. "/report.md")
    local alone = md:match("## lowbit alone.-\n(.*)<!%-%- figures:end")
    local v = recorded()
    local tasks = alone:match("\n| tasks | ([^\n]*) |\n")
    assert.truthy(tasks:find("unbuffered chan ping-pong: " ..
      report.num(v["tasks|unbuffered chan ping-pong|ns_per_round_trip|lowbit"]) .. " ns ↓", 1, true), tasks)
    local topic = alone:match("\n| topic | ([^\n]*) |\n")
    assert.truthy(topic:find("publish, 20 handlers (two unrolled chunks): " ..
      report.num(v["topic|publish, 20 handlers (two unrolled chunks)|ns_per_publish|lowbit"]) .. " ns ↓", 1, true), topic)
    -- a figure that has an anchor is not repeated there
    assert.falsy(topic:find("publish, 1 handler:", 1, true))
  end)

  it("names the run (date, commit, command) and its anchors", function()
    local md = slurp(out .. "/report.md")
    assert.truthy(md:find("Anchors measured in this run: go, openresty, zlib.", 1, true))
    assert.truthy(md:find("Run: 2026-12-03T16:51:11Z, commit e9d9a54, `BENCH_ONLY=\"", 1, true))
  end)

  it("draws the chart as a PNG with gnuplot", function()
    local png = slurp(out .. "/report.png")
    assert.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.truthy(#png > 10000)
    -- the gnuplot script has the three panels and the anchors of the run
    local gp = slurp(out .. "/report.gp")
    for _, s in ipairs{ "Server CPU per request / message", "Throughput", "Time, instructions or size per operation",
                        'title "openresty"', 'title "go"', 'title "zlib"' } do
      assert.truthy(gp:find(s, 1, true), s)
    end
  end)

  it("make bench-report renders again from the last run.log without running anything", function()
    local d = tmpdir()
    assert(sh(("mkdir -p %s/build/bench && cp %s %s/build/bench/run.log"):format(d, LOG, d)))
    local body, code = sh(("cd %s && make --no-print-directory -f %s/Makefile LB_DEPS_CHECKED=1 BUILD=%s/build bench-report 2>&1")
      :format(root, root, d))
    assert.equal(0, code, body)
    assert.truthy(body:find("worse, 1.07× (lower is better)", 1, true), body)
    assert.equal("\137PNG\r\n\26\n", slurp(d .. "/build/bench/report.png"):sub(1, 8))
    sh("rm -rf " .. d)
  end)
end)

describe("bench-report pieces", function()
  it("compares lower-is-better and higher-is-better figures", function()
    local r, word, f = report.compare(5.11, 4.78, "lower")
    assert.near(1.069, r, 0.001); assert.equal("worse", word); assert.near(1.069, f, 0.001)
    r, word, f = report.compare(2, 4, "lower")
    assert.equal(0.5, r); assert.equal("better", word); assert.equal(2, f)
    r, word, f = report.compare(4, 2, "higher")
    assert.equal(2, r); assert.equal("better", word); assert.equal(2, f)
    r, word = report.compare(100, 101, "higher")
    assert.equal("even", word)
    assert.is_nil(report.compare(nil, 3, "lower"))
    assert.is_nil(report.compare(3, 0, "lower"))
  end)

  it("parses flat JSON objects and rejects broken ones", function()
    local o = report.parse_object('{"a":"x\\"y\\u0041","b":-1.5e3,"c":true,"d":null}')
    assert.same({ a = 'x"yA', b = -1500, c = true }, o)
    for _, bad in ipairs{ '{"a":1', '{"a" 1}', '{"a":1} x', '[1]', '{"a":"\1"}', '{"a":fast}' } do
      assert.is_nil(report.parse_object(bad), bad)
    end
  end)

  it("rewrites only README's section between the markers", function()
    local rep = table.concat({
      "# lowbit benchmark report", "", "Run: 2026-12-03T16:51:11Z, commit abc, `make bench`; 3 figures from `x`.", "",
      "<!-- figures:begin -->", "## lowbit against the anchors (same run)", "", "| a | b |", "<!-- figures:end -->", "" }, "\n")
    local readme = "# lowbit\n\n## Benchmarks\n\nintro\n\n<!-- bench:begin -->\nold table\n<!-- bench:end -->\n\nafter\n"
    local new = assert(report.readme(readme, rep))
    assert.truthy(new:find("^# lowbit\n\n## Benchmarks\n\nintro\n\n<!%-%- bench:begin %-%->\n"))
    assert.truthy(new:find("\n<!%-%- bench:end %-%->\n\nafter\n$"))
    assert.falsy(new:find("old table", 1, true))
    assert.truthy(new:find("### lowbit against the anchors (same run)\n", 1, true))
    assert.truthy(new:find("Figures of the run of 2026-12-03T16:51:11Z, commit abc, `make bench`", 1, true))
    -- twice gives the same text
    assert.equal(new, report.readme(new, rep))
    local none, err = report.readme("# no markers\n", rep)
    assert.is_nil(none)
    assert.truthy(err:find("bench:begin", 1, true))
  end)
end)

describe("every benchmark writes @bench lines", function()
  local function files(pattern)
    local list = {}
    local p = io.popen("cd " .. root .. " && ls " .. pattern .. " 2>/dev/null")
    for l in p:lines() do list[#list + 1] = l end
    p:close()
    return list
  end
  local HELPERS = { ["bench/report.lua"] = true, ["bench/redis_server.lua"] = true, ["bench/lib.sh"] = true,
                    ["bench/cpu.sh"] = true,
                    ["bench/ngx_hello_ab.sh"] = true, -- ngx_hello_ab.sh: an A/B tool comparing builds
                    ["bench/https_heap.lua"] = true } -- the server of https_heap.sh, which writes the line

  it("through the helpers, in every bench/*.lua, bench/*.sh and bench/c/*.c", function()
    local checked = 0
    for _, f in ipairs(files("bench/*.lua bench/*.sh bench/c/*.c")) do
      if not HELPERS[f] then
        local src = slurp(root .. "/" .. f)
        local ok
        if f:match("%.lua$") then ok = src:find('dofile("bench/report.lua")', 1, true) and src:find(":?line%s*{")
        elseif f:match("%.sh$") then ok = src:find("lib.sh", 1, true) and (src:find("bench_line ", 1, true)
          or src:find("bench_compare_http", 1, true) or src:find("bench_compare_ws", 1, true))
        else ok = src:find('#include "report.h"', 1, true) and src:find("bench_line(", 1, true) end
        assert.truthy(ok, f .. " writes no @bench line")
        checked = checked + 1
      end
    end
    assert.truthy(checked >= 40, "only " .. checked .. " files checked")
  end)

  it("that parse, when run: a Lua bench, a C bench and the shell helper", function()
    local out = assert(sh(("cd %s && %s bench/retry.lua 20000"):format(root, support.host)))
    local bin = os.tmpname()
    local cout = assert(sh(("cd %s && cc -O1 -Iinclude -o %s bench/c/bench_resp.c build/lib/liblowbit.a -lssl -lcrypto -lz -lm && %s; rm -f %s")
      :format(root, bin, bin, bin)))
    local shout = assert(sh(("cd %s && bash -c '. bench/lib.sh; bench_line s \"a \\\"q\\\" case\" m lowbit 12.5 us lower; " ..
      "bench_line s c m go \"\" us lower; bench_line s c m go n/a us lower'"):format(root)))
    local log = support.tmpfile(out .. cout .. shout)
    local res = assert(report.read_log(log))
    os.remove(log)
    assert.same({}, res.malformed)
    local by = {}
    for _, f in ipairs(res.figures) do by[f.suite] = (by[f.suite] or 0) + 1 end
    assert.equal(3, by.retry)
    -- at least one line per human line of figures ("resp ...")
    local human = 0
    for l in cout:gmatch("[^\n]+") do if l:match("^resp ") then human = human + 1 end end
    assert.truthy(human >= 5 and by.resp >= human, ("%d human lines, %d @bench lines"):format(human, by.resp or 0))
    assert.equal(1, by.s) -- no line for an empty or non-numeric value
    for _, f in ipairs(res.figures) do
      if f.suite == "s" then assert.equal('a "q" case', f.case); assert.equal(12.5, f.value) end
    end
  end)
end)
