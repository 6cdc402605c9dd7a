-- The report of a `make bench` run: reads the @bench lines of its output
-- (tools/run-bench.sh keeps it in build/bench/run.log; the format is in
-- bench/README.md) and writes
--   OUT/report.md    per suite, lowbit beside each anchor measured in the
--                    same run, with the ratio lowbit/anchor; then the figures
--                    lowbit has no anchor for;
--   OUT/report.png   grouped bars (gnuplot): CPU per request / message, time
--                    per operation and throughput, each group normalised to
--                    its first anchor (1.0), higher is better.
-- Malformed @bench lines are reported on stderr and skipped.
--   luajit tools/bench-report.lua [--log build/bench/run.log] [--out build/bench] [--print] [--no-png]
--   luajit tools/bench-report.lua --readme README.md [--out build/bench]
--     rewrites README.md between <!-- bench:begin --> and <!-- bench:end -->
--     with the figures of OUT/report.md (make readme-figures).
-- Plain Lua 5.1: runs on luajit or as a script of the host (build/bin/lowbit).

local M = {}

---------------------------------------------------------------- parsing

-- A JSON object of strings, numbers, true/false/null (no nesting): the
-- table, or nil and why not.
local function parse_object(s)
  local i, n = 1, #s
  local function ws() i = s:find("[^ \t\r\n]", i) or n + 1 end
  local function str()
    if s:sub(i, i) ~= '"' then return nil, "string expected at " .. i end
    local out, j = {}, i + 1
    while true do
      local c = s:sub(j, j)
      if c == "" then return nil, "unterminated string" end
      if c == '"' then break end
      if c == "\\" then
        local e = s:sub(j + 1, j + 1)
        local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if map[e] then out[#out + 1] = map[e]; j = j + 2
        elseif e == "u" and s:sub(j + 2, j + 5):match("^%x%x%x%x$") then
          local cp = tonumber(s:sub(j + 2, j + 5), 16)
          out[#out + 1] = cp < 128 and string.char(cp) or "?"
          j = j + 6
        else return nil, "bad escape" end
      elseif c:byte() < 32 then return nil, "control character in string"
      else out[#out + 1] = c; j = j + 1 end
    end
    i = j + 1
    return table.concat(out)
  end
  local function value()
    local c = s:sub(i, i)
    if c == '"' then return str() end
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if num and num ~= "" and num ~= "-" then
      local v = tonumber(num)
      if not v then return nil, "bad number" end
      i = i + #num
      return v
    end
    for lit, v in pairs{ ["true"] = true, ["false"] = false, null = "\0null" } do
      if s:sub(i, i + #lit - 1) == lit then i = i + #lit; return v end
    end
    return nil, "value expected at " .. i
  end
  ws()
  if s:sub(i, i) ~= "{" then return nil, "object expected" end
  i = i + 1
  local obj = {}
  ws()
  if s:sub(i, i) == "}" then i = i + 1
  else
    while true do
      ws()
      local k, err = str()
      if not k then return nil, err end
      ws()
      if s:sub(i, i) ~= ":" then return nil, "':' expected at " .. i end
      i = i + 1
      ws()
      local v, verr = value()
      if v == nil then return nil, verr end
      if v ~= "\0null" then obj[k] = v end
      ws()
      local c = s:sub(i, i)
      i = i + 1
      if c == "}" then break end
      if c ~= "," then return nil, "',' or '}' expected" end
    end
  end
  ws()
  if i <= n then return nil, "text after the object" end
  return obj
end
M.parse_object = parse_object

local REQUIRED = { "suite", "metric", "impl", "unit", "better" }

-- One figure from an @bench line's JSON, or nil and why not.
local function figure(text)
  local o, err = parse_object(text)
  if not o then return nil, err end
  for _, k in ipairs(REQUIRED) do
    if type(o[k]) ~= "string" or o[k] == "" then return nil, "missing or empty \"" .. k .. "\"" end
  end
  if o.case ~= nil and type(o.case) ~= "string" then return nil, "\"case\" is not a string" end
  if type(o.value) ~= "number" or o.value ~= o.value or o.value == math.huge or o.value == -math.huge then
    return nil, "\"value\" is not a finite number"
  end
  if o.better ~= "lower" and o.better ~= "higher" then return nil, "\"better\" is neither lower nor higher" end
  o.case = o.case or ""
  return o
end

-- Reads a run's output: { figures = {...}, run = {...} or nil, malformed = { {line=, text=, why=} } }.
function M.read_log(path)
  local f, err = io.open(path)
  if not f then return nil, err end
  local res = { figures = {}, malformed = {} }
  local ln = 0
  for line in f:lines() do
    ln = ln + 1
    line = line:gsub("\r$", "")
    local tag, rest = line:match("^(@bench%S*)%s*(.*)$")
    if tag == "@bench-run" then
      res.run = parse_object(rest) or res.run
    elseif tag == "@bench" then
      local fig, why = figure(rest)
      if fig then
        fig.line = ln
        res.figures[#res.figures + 1] = fig
      else
        res.malformed[#res.malformed + 1] = { line = ln, text = line, why = why }
      end
    elseif tag then
      res.malformed[#res.malformed + 1] = { line = ln, text = line, why = "unknown tag " .. tag }
    end
  end
  f:close()
  return res
end

---------------------------------------------------------------- grouping

-- Groups figures by suite, case and metric, in the order they first came;
-- in each group the impls in order, lowbit first. A figure given twice
-- (same suite, case, metric and impl) keeps the last value.
function M.groups(figures)
  local list, by = {}, {}
  for _, f in ipairs(figures) do
    local key = f.suite .. "\0" .. f.case .. "\0" .. f.metric
    local g = by[key]
    if not g then
      g = { suite = f.suite, case = f.case, metric = f.metric, unit = f.unit, better = f.better, impls = {}, values = {} }
      by[key] = g
      list[#list + 1] = g
    end
    if g.values[f.impl] == nil then
      if f.impl == "lowbit" then table.insert(g.impls, 1, f.impl) else g.impls[#g.impls + 1] = f.impl end
    end
    g.values[f.impl] = f.value
  end
  for _, g in ipairs(list) do
    g.lowbit = g.values.lowbit
    g.anchors = {}
    for _, impl in ipairs(g.impls) do
      if impl ~= "lowbit" then g.anchors[#g.anchors + 1] = impl end
    end
  end
  return list
end

-- lowbit / anchor, and what it means: "better", "worse" or "even" (within 3 %)
-- and the factor (>= 1) by which.
function M.compare(lowbit, anchor, better)
  if not lowbit or not anchor or anchor == 0 or lowbit == 0 then return nil end
  local ratio = lowbit / anchor
  local good = better == "lower" and 1 / ratio or ratio -- > 1: lowbit does better
  if good ~= good or good == math.huge then return ratio, "n/a", nil end
  if math.abs(good - 1) < 0.03 then return ratio, "even", 1 end
  if good > 1 then return ratio, "better", good end
  return ratio, "worse", 1 / good
end

---------------------------------------------------------------- formatting

local function num(v)
  if v == nil then return "–" end
  local a = math.abs(v)
  local s
  if a >= 1e4 then
    s = ("%.0f"):format(v):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(-?),", "%1")
  elseif a >= 100 then s = ("%.0f"):format(v)
  elseif a >= 10 then s = ("%.1f"):format(v)
  elseif a >= 0.1 or a == 0 then s = ("%.2f"):format(v)
  else s = ("%.3g"):format(v) end
  return s
end
M.num = num

local function cell(s) return (tostring(s):gsub("|", "\\|"):gsub("\n", " ")) end

local function metric_text(g)
  return ("%s (%s, %s is better)"):format(g.metric, g.unit, g.better)
end

local function verdict(word, factor)
  if word == "even" then return "even (within 3 %)" end
  if not factor then return word end
  return ("%s, %.2f×"):format(word, factor)
end

-- The markdown of the figures (the part README.md takes), and the rows
-- compared (for --print and the chart).
function M.figures_md(groups)
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("## lowbit against the anchors (same run)")
  w("")
  local seen, names = {}, {}
  for _, g in ipairs(groups) do
    for _, a in ipairs(g.anchors) do
      if not seen[a] then seen[a] = true; names[#names + 1] = a end
    end
  end
  table.sort(names)
  w("Anchors measured in this run: " .. (#names > 0 and table.concat(names, ", ") or "none") .. ".")
  w("")
  w("Each row: one figure of lowbit beside the same figure of an anchor measured in the same run, and the ratio " ..
    "lowbit / anchor. Where lower is better (CPU, time, instructions, size) a ratio below 1 means lowbit does better; " ..
    "where higher is better (throughput) a ratio above 1 does. The last column says which way and by how much.")
  w("")
  w("| suite | case | metric | lowbit | anchor | anchor's figure | lowbit / anchor | lowbit is |")
  w("|---|---|---|---:|---|---:|---:|---|")
  local compared = {}
  for _, g in ipairs(groups) do
    for _, a in ipairs(g.anchors) do
      local ratio, word, factor = M.compare(g.lowbit, g.values[a], g.better)
      w(("| %s | %s | %s | %s | %s | %s | %s | %s |"):format(cell(g.suite), cell(g.case), cell(metric_text(g)),
        num(g.lowbit), cell(a), num(g.values[a]), ratio and ("%.2f"):format(ratio) or "–",
        ratio and verdict(word, factor) or not g.lowbit and "no lowbit figure in this run"
          or "no ratio: a figure is 0"))
      compared[#compared + 1] = { group = g, anchor = a, ratio = ratio, word = word, factor = factor }
    end
  end
  if #compared == 0 then w("| (no anchor was measured in this run) | | | | | | | |") end
  w("")
  w("## lowbit alone (no anchor in this run)")
  w("")
  w("One row per suite: each figure as `case (metric): value unit`, ↓ where lower is better, ↑ where higher is.")
  w("")
  w("| suite | figures |")
  w("|---|---|")
  -- Per suite, in the order the suites came; the metric named where a
  -- case of the suite has more than one.
  local suites, by, metrics = {}, {}, {}
  for _, g in ipairs(groups) do
    if #g.anchors == 0 and g.lowbit then
      if not by[g.suite] then by[g.suite] = {}; suites[#suites + 1] = g.suite end
      local t = by[g.suite]
      t[#t + 1] = g
      local k = g.suite .. "\0" .. g.case
      metrics[k] = (metrics[k] or 0) + 1
    end
  end
  for _, s in ipairs(suites) do
    local items = {}
    for _, g in ipairs(by[s]) do
      local label = g.case ~= "" and g.case or g.metric
      if g.case ~= "" and metrics[s .. "\0" .. g.case] > 1 then label = label .. " (" .. g.metric .. ")" end
      items[#items + 1] = ("%s: %s %s %s"):format(label, num(g.lowbit), g.unit, g.better == "lower" and "↓" or "↑")
    end
    w(("| %s | %s |"):format(cell(s), cell(table.concat(items, "; "))))
  end
  if #suites == 0 then w("| (none) | |") end
  return table.concat(out, "\n") .. "\n", compared
end

local function run_text(run)
  if not run then return "a run with no @bench-run line" end
  return ("%s, commit %s, `%s`"):format(run.date or "?", run.commit or "?", run.command or "make bench")
end
M.run_text = run_text

function M.report_md(log, groups, logpath)
  local figs, compared = M.figures_md(groups)
  local out = {}
  out[#out + 1] = "# lowbit benchmark report"
  out[#out + 1] = ""
  out[#out + 1] = ("Run: %s; %d figures from `%s`. One machine, shared with other work: absolute figures drift from " ..
    "run to run, ratios from one run hold better."):format(run_text(log.run), #log.figures, logpath)
  if #log.malformed > 0 then
    out[#out + 1] = ""
    out[#out + 1] = ("%d malformed @bench line(s) skipped (first: line %d, %s)."):format(#log.malformed,
      log.malformed[1].line, log.malformed[1].why)
  end
  out[#out + 1] = ""
  out[#out + 1] = "![lowbit against the anchors](report.png)"
  out[#out + 1] = ""
  out[#out + 1] = "<!-- figures:begin -->"
  out[#out + 1] = figs .. "<!-- figures:end -->"
  return table.concat(out, "\n") .. "\n", compared
end

---------------------------------------------------------------- chart

-- lowbit's colour, and the anchors' (never lowbit's, even past the end of the list).
local LOWBIT_COLOR = "#1f77b4"
local COLORS = { "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                 "#17becf", "#ff9896", "#98df8a", "#ffbb78", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
                 "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173" }

-- Which panel a group goes in: "cpu", "throughput" or "cost".
local function panel_of(g)
  if g.metric:match("^cpu") then return "cpu" end
  if g.better == "higher" then return "throughput" end
  return "cost"
end

local function short(s, n)
  if #s <= n then return s end
  return s:sub(1, n - 1) .. "…"
end

local function gp_str(s) return '"' .. s:gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n") .. '"' end

-- The gnuplot script for the groups that have lowbit and an anchor; nil
-- when there is nothing to draw. Bars: each impl's figure relative to the
-- group's first anchor (= 1.0), turned so that higher is better.
function M.gnuplot_script(groups, png, datadir, title)
  local panels = { cpu = {}, throughput = {}, cost = {} }
  for _, g in ipairs(groups) do
    if g.lowbit and #g.anchors > 0 and g.values[g.anchors[1]] ~= 0 and g.lowbit ~= 0 then
      local p = panels[panel_of(g)]
      p[#p + 1] = g
    end
  end
  local order = {}
  for _, name in ipairs{ "cpu", "throughput", "cost" } do
    if #panels[name] > 0 then order[#order + 1] = name end
  end
  if #order == 0 then return nil end
  local titles = {
    cpu = "Server CPU per request / message",
    throughput = "Throughput (requests, messages, jobs, operations per second)",
    cost = "Time, instructions or size per operation",
  }
  -- One colour per impl, the same in every panel.
  local color, ncolor, legend = {}, 0, {}
  local function col(impl)
    if not color[impl] then
      if impl == "lowbit" then color[impl] = LOWBIT_COLOR
      else
        ncolor = ncolor + 1
        color[impl] = COLORS[(ncolor - 1) % #COLORS + 1]
      end
      legend[#legend + 1] = impl
    end
    return color[impl]
  end
  col("lowbit")
  local maxn = 0
  for _, name in ipairs(order) do if #panels[name] > maxn then maxn = #panels[name] end end
  local s = {}
  local function w(x) s[#s + 1] = x end
  local height = 380 * #order + 120
  local width = math.max(1100, 70 * maxn + 250)
  w(("set terminal pngcairo size %d,%d font 'Sans,9' noenhanced"):format(width, height))
  w("set output " .. gp_str(png))
  w("set multiplot layout " .. #order .. ",1 title " .. gp_str(title) .. " font 'Sans,12'")
  w("set style fill solid 0.85 border -1")
  w("set boxwidth 0.8 absolute")
  w("set logscale y 2")
  w("set grid ytics")
  w("set ylabel 'vs the first anchor (= 1), higher is better'")
  w("set key outside right top vertical")
  w("set xtics rotate by 30 right nomirror")
  w("set bmargin 10")
  w("set lmargin 22")
  w("set rmargin 24")
  for pi, name in ipairs(order) do
    local rows, xt, x, present = {}, {}, 0, {}
    local lo, hi = 1, 1
    for _, g in ipairs(panels[name]) do
      local ref = g.values[g.anchors[1]]
      local first = x
      for _, impl in ipairs(g.impls) do
        local v = g.values[impl]
        if v and v ~= 0 then
          local rel = g.better == "higher" and v / ref or ref / v
          if rel < lo then lo = rel end
          if rel > hi then hi = rel end
          x = x + 1
          present[impl] = true
          -- The reference anchor's bar is 1 by definition: no label on it.
          rows[#rows + 1] = ("%d %.6g 0x%s %s"):format(x, rel, col(impl):sub(2),
            impl == g.anchors[1] and '""' or ("%.2f"):format(rel))
        end
      end
      xt[#xt + 1] = ("%s %.1f"):format(gp_str(short(g.suite .. ": " .. g.case, 30) .. "\n" .. short(g.metric, 30)),
        (first + 1 + x) / 2)
      x = x + 1 -- a gap between groups
    end
    local data = ("%s/chart-%d.dat"):format(datadir, pi)
    local f = assert(io.open(data, "w"))
    f:write(table.concat(rows, "\n"), "\n")
    f:close()
    w("set title " .. gp_str(titles[name]))
    w(("set xrange [0:%d]"):format(math.max(x, 16)))
    w(("set yrange [%.4g:%.4g]"):format(lo / 1.5, hi * 1.5))
    w("set xtics (" .. table.concat(xt, ", ") .. ")")
    local plots = { ("%s using 1:2:3 with boxes lc rgb variable notitle"):format(gp_str(data)),
                    ("%s using 1:2:4 with labels offset 0,0.7 font ',7' notitle"):format(gp_str(data)),
                    "1 with lines lc rgb '#444444' dt 2 notitle" }
    for _, impl in ipairs(legend) do
      if present[impl] then plots[#plots + 1] = ("NaN with boxes lc rgb %s title %s"):format(gp_str(color[impl]), gp_str(impl)) end
    end
    w("plot " .. table.concat(plots, ", \\\n  "))
  end
  w("unset multiplot")
  return table.concat(s, "\n") .. "\n"
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Draws the chart with gnuplot; true, or nil and why not.
function M.draw(groups, png, title)
  local dir = png:match("^(.*)/[^/]*$") or "."
  local script = M.gnuplot_script(groups, png, dir, title)
  if not script then return nil, "no figure of lowbit has an anchor in this run: no chart" end
  local path = dir .. "/report.gp"
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  local has = io.popen("command -v gnuplot 2>/dev/null"):read("*l")
  if not has or has == "" then return nil, "gnuplot is not installed (Debian: gnuplot-nox)" end
  os.remove(png)
  local ok = os.execute("gnuplot " .. sh_quote(path) .. " 2>" .. sh_quote(dir .. "/report.gp.err"))
  local err = io.open(dir .. "/report.gp.err")
  local msg = err and err:read("*a") or ""
  if err then err:close() end
  local pf = io.open(png, "rb")
  local head = pf and pf:read(8)
  if pf then pf:close() end
  if (ok == 0 or ok == true) and head == "\137PNG\r\n\26\n" then return true end
  return nil, "gnuplot failed: " .. msg:sub(1, 400)
end

---------------------------------------------------------------- README

local BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

-- Rewrites the text between the markers of readme with the figures part of
-- report.md (headings one level down, under the README's "## Benchmarks").
function M.readme(readme_text, report_text)
  local a = readme_text:find(BEGIN, 1, true)
  local b = readme_text:find(END, 1, true)
  if not a or not b or b < a then return nil, "README has no " .. BEGIN .. " ... " .. END .. " section" end
  local figs = report_text:match("<!%-%- figures:begin %-%->\n(.-)<!%-%- figures:end %-%->")
  if not figs then return nil, "the report has no figures section" end
  local run = report_text:match("\nRun: ([^\n]-); %d+ figures") or "?"
  figs = ("\n" .. figs):gsub("\n## ", "\n### "):sub(2)
  local body = table.concat({
    BEGIN,
    "<!-- generated by `make readme-figures` from build/bench/report.md: edit tools/bench-report.lua, not this -->",
    "",
    ("Figures of the run of %s (`make bench` writes build/bench/report.md and the chart build/bench/report.png; " ..
      "`make readme-figures` copies them here)."):format(run),
    "",
    figs .. END,
  }, "\n")
  return readme_text:sub(1, a - 1) .. body .. readme_text:sub(b + #END)
end

---------------------------------------------------------------- main

local function slurp(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

function M.main(args)
  local opt = { log = "build/bench/run.log", out = "build/bench" }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--log" or a == "--out" or a == "--readme" then opt[a:sub(3)] = args[i + 1]; i = i + 2
    elseif a == "--print" then opt.print = true; i = i + 1
    elseif a == "--no-png" then opt.nopng = true; i = i + 1
    else io.stderr:write("bench-report: unknown argument ", a, "\n"); return 2 end
  end
  if opt.readme then
    local report, err = slurp(opt.out .. "/report.md")
    if not report then io.stderr:write("bench-report: ", err, " (run make bench or make bench-report first)\n"); return 1 end
    local text, rerr = slurp(opt.readme)
    if not text then io.stderr:write("bench-report: ", rerr, "\n"); return 1 end
    local new, nerr = M.readme(text, report)
    if not new then io.stderr:write("bench-report: ", nerr, "\n"); return 1 end
    spit(opt.readme, new)
    print("bench-report: figures of " .. opt.out .. "/report.md written into " .. opt.readme)
    return 0
  end
  local log, err = M.read_log(opt.log)
  if not log then io.stderr:write("bench-report: ", err, "\n"); return 1 end
  for _, m in ipairs(log.malformed) do
    io.stderr:write(("bench-report: %s:%d: malformed @bench line skipped (%s): %s\n"):format(opt.log, m.line, m.why,
      m.text:sub(1, 160)))
  end
  os.execute("mkdir -p " .. sh_quote(opt.out))
  local groups = M.groups(log.figures)
  local md, compared = M.report_md(log, groups, opt.log)
  spit(opt.out .. "/report.md", md)
  local png = opt.out .. "/report.png"
  local drawn, why = true, nil
  if not opt.nopng then
    drawn, why = M.draw(groups, png, "lowbit against the anchors: " .. (run_text(log.run):gsub("`", "")))
    if not drawn then io.stderr:write("bench-report: ", why, "\n") end
  end
  if opt.print then
    print(("%-14s %-44s %-18s %10s  %-16s %10s %7s  %s"):format("suite", "case", "metric", "lowbit", "anchor", "anchor's",
      "ratio", "lowbit is"))
    for _, c in ipairs(compared) do
      local g = c.group
      print(("%-14s %-44s %-18s %10s  %-16s %10s %7s  %s"):format(short(g.suite, 14), short(g.case, 44),
        short(g.metric, 18), num(g.lowbit), short(c.anchor, 16), num(g.values[c.anchor]),
        c.ratio and ("%.2f"):format(c.ratio) or "–", c.ratio and verdict(c.word, c.factor) .. " (" .. g.better ..
        " is better)" or not g.lowbit and "no lowbit figure" or "no ratio: a figure is 0"))
    end
    print(("%d figures, %d compared with an anchor, %d malformed lines skipped"):format(#log.figures, #compared,
      #log.malformed))
    print("report: " .. opt.out .. "/report.md")
    print("chart:  " .. (opt.nopng and "(not drawn: --no-png)" or drawn and png or "(not drawn: " .. why .. ")"))
  end
  return 0
end

-- Run as a script (luajit tools/bench-report.lua ... or the host); a
-- require()d copy (the spec) only returns the module.
if arg and arg[0] and arg[0]:match("bench%-report%.lua$") and not package.loaded["bench-report"] then
  local rc = M.main(arg)
  if rc ~= 0 then os.exit(rc) end
end
return M
