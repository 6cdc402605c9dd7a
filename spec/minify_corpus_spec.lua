-- conformance/webassets.md §3 and statements 12, 13, 15: the correctness
-- corpus (real code from npm) minified by lb_minify must behave as the
-- original. The packages are installed by npm into a temporary folder
-- (never committed, never in the repository); its path is remembered in
-- /tmp/lowbit-minify-corpus.path so later runs reuse it. The comparison is
-- tools/minify_corpus.js: `node --check`, the same exercise over the
-- original and the minified file (jsdom for jquery and bootstrap) compared
-- by SHA-256 digest, and CSS compared declaration by declaration after
-- lightningcss canonicalization. The harness is shown to fail on
-- deliberately broken outputs.
--
-- It runs when node and npm work (they do on CI machines); elsewhere it
-- prints why and registers nothing.
local minify = require "lowbit.webassets.minify"

local root = os.getenv("LOWBIT_ROOT") or "."
local PATH_FILE = "/tmp/lowbit-minify-corpus.path"
local PACKAGES = "jquery@4 lodash@4 underscore@1 moment@2 d3@7 bootstrap@5 normalize.css@8 jsdom lightningcss esbuild vue@3 typescript@5"
local JS = {
  { lib = "jquery", file = "jquery/dist/jquery.js" },
  { lib = "lodash", file = "lodash/lodash.js" },
  { lib = "underscore", file = "underscore/underscore.js" },
  { lib = "moment", file = "moment/moment.js" },
  { lib = "d3", file = "d3/dist/d3.js" },
  { lib = "bootstrap", file = "bootstrap/dist/js/bootstrap.bundle.js" },
  -- more coverage, as §3 suggests: vue's global build, typescript (9 MB)
  { lib = "vue", file = "vue/dist/vue.global.js" },
  { lib = "typescript", file = "typescript/lib/typescript.js" },
}
local CSS = { "bootstrap/dist/css/bootstrap.css", "normalize.css/normalize.css" }

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)exit=(%d+)%s*$")
  return body or out, tonumber(code)
end

local function readf(p) local h = assert(io.open(p, "rb")); local s = h:read("*a"); h:close(); return s end
local function writef(p, s) local h = assert(io.open(p, "wb")); h:write(s); h:close() end
local function exists(p) local h = io.open(p, "rb"); if h then h:close() return true end return false end

local function tools_work()
  local _, a = sh("node --version")
  local _, b = sh("npm --version")
  return a == 0 and b == 0
end

-- The corpus folder: the remembered one if complete, else a fresh mktemp -d.
local function corpus()
  local h = io.open(PATH_FILE, "rb")
  local dir = h and h:read("*l")
  if h then h:close() end
  if dir and dir:match("^/tmp/") and exists(dir .. "/node_modules/.package-lock.json")
     and exists(dir .. "/node_modules/esbuild/package.json") and exists(dir .. "/node_modules/jsdom/package.json")
     and exists(dir .. "/node_modules/typescript/package.json") and exists(dir .. "/node_modules/vue/package.json") then
    return dir
  end
  local out, code = sh("mktemp -d /tmp/lowbit-minify-corpus.XXXXXX")
  assert(code == 0, out)
  dir = out:match("^(%S+)")
  writef(dir .. "/package.json", '{"name":"lowbit-minify-corpus","private":true}\n')
  out, code = sh("cd " .. dir .. " && timeout 900 npm install --no-audit --no-fund --silent " .. PACKAGES)
  assert(code == 0, "npm install failed: " .. out)
  writef(PATH_FILE, dir .. "\n")
  return dir
end

if not tools_work() then
  io.stderr:write("minify_corpus_spec: node or npm does not work here; the corpus harness did not run\n")
  return
end

describe("minify corpus harness", function()
  local dir, nm, run
  setup(function()
    dir = corpus()
    nm = dir .. "/node_modules"
    -- A folder of this run's own: two runs on one machine share the corpus.
    local out, code = sh("mktemp -d " .. dir .. "/run.XXXXXX")
    assert(code == 0, out)
    run = out:match("^(%S+)")
    assert(sh("mkdir -p " .. run .. "/orig " .. run .. "/min " .. run .. "/bad"))
  end)
  teardown(function() if run then sh("rm -rf " .. run) end end)

  local function harness(...)
    return sh("NODE_PATH=" .. nm .. " node " .. root .. "/tools/minify_corpus.js " .. table.concat({ ... }, " "))
  end

  -- The digest of lib's exercise over file; nil, output when it fails.
  local function digest(lib, file)
    local out, code = harness("js", lib, file)
    if code ~= 0 then return nil, out end
    local d = out:match("(%x+)%s*$") -- the last line (a library may log before)
    return d and #d == 64 and d or nil, out
  end

  local function check_js(lib, orig_path, min_path)
    local _, c = sh("node --check " .. min_path)
    if c ~= 0 then return false, "node --check failed" end
    local a = assert(digest(lib, orig_path))
    local b, out = digest(lib, min_path)
    if a ~= b then return false, "digests differ: " .. tostring(out) end
    return true
  end

  local function css_diffs(a, b)
    local out, code = harness("css", a, b)
    assert(code == 0, out)
    return tonumber(out:match("^diffs (%d+)")), out
  end

  for _, t in ipairs(JS) do
    it(t.lib .. ": node --check passes and the exercise digest equals the original's (statement 12)", function()
      local src = readf(nm .. "/" .. t.file)
      local out = assert(minify.js(src))
      assert.is_true(#out < #src)
      local name = t.file:match("[^/]+$")
      writef(run .. "/orig/" .. name, src)
      writef(run .. "/min/" .. name, out)
      local ok, why = check_js(t.lib, run .. "/orig/" .. name, run .. "/min/" .. name)
      assert(ok, why)
    end)
  end

  for _, f in ipairs(CSS) do
    it(f .. ": zero declaration differences after lightningcss canonicalization (statement 13)", function()
      local src = readf(nm .. "/" .. f)
      local out = assert(minify.css(src))
      assert.is_true(#out < #src)
      local name = f:match("[^/]+$")
      writef(run .. "/orig/" .. name, src)
      writef(run .. "/min/" .. name, out)
      local n, text = css_diffs(run .. "/orig/" .. name, run .. "/min/" .. name)
      assert.equal(0, n, text)
    end)
  end

  it("the CSS hazard rows of §2 canonicalize to the same declarations (statement 15)", function()
    local rows = table.concat({
      'a{content:"/* not a comment */ ; } {"}',
      'b{content:"\\201C"}',
      'c{background:url( "a b.png" )}',
      'd{background:url( a\\ b.png )}',
      'e{width:calc(100% - 2px);height:calc(24px + 2.25em);margin:0 -1px}',
      'f{color:red ! important}',
      '@media screen and (max-width: 100px) { g { color: blue } }',
      ':root{--x: ;--y:;--X:  A ;--json:{"k": 1}}',
      '.a .b{color:red}.a.b{color:blue}',
      'a[href$=".pdf" i]{color:red}.sm\\:p-4{padding:1rem}.\\31 0{color:red}',
      'h{*zoom:1;_height:1px}',
      '@layer base { i { color: red } } @container (min-width: 400px) { j { color: red } }',
      'k { & :hover { color: red } &:focus { color: blue } }',
      '/*! keep */ l{font:12px/1.5 serif}',
      'm{grid-template-areas:"a  b" "c  d"}',
      'n{padding:0px 0px 0px 0px;flex:1 1 0%;background:var(--a, 0px)}',
      'a :hover{color:red} a:hover{color:blue}',
    }, "\n  ")
    local out = assert(minify.css(rows))
    writef(run .. "/orig/rows.css", rows)
    writef(run .. "/min/rows.css", out)
    local n, text = css_diffs(run .. "/orig/rows.css", run .. "/min/rows.css")
    assert.equal(0, n, text)
    assert.truthy(out:find("calc(100% - 2px)", 1, true))
    assert.truthy(out:find("and (max-width:100px)", 1, true))
    assert.truthy(out:find("--x: ;--y:;", 1, true))
    assert.truthy(out:find("/*! keep */", 1, true))
  end)

  -- statement 16: the C core fed in pieces gives the same output.
  it("jquery.js and bootstrap.css fed byte by byte and in 4 KiB pieces give the whole-buffer output (statement 16)", function()
    local core = require "lowbit.core"
    local ffi, C = core.ffi, core.C
    local function fed(css, src, step)
      local st = ffi.new(css and "lb_minify_css_state" or "lb_minify_js_state")
      if css then C.lb_minify_css_init(st) else C.lb_minify_js_init(st) end
      local cap = tonumber(C.lb_minify_max_len(step + 4096)) + 65536
      local out = ffi.new("uint8_t[?]", cap)
      local used, line = ffi.new("size_t[1]"), ffi.new("size_t[1]")
      local parts, pend, at = {}, "", 1
      while true do
        pend = pend .. src:sub(at, at + step - 1)
        at = at + step
        local fin = at > #src and 1 or 0
        assert(tonumber(C.lb_minify_max_len(#pend)) <= cap, "a token longer than the test's buffer")
        local r = tonumber(css and C.lb_minify_css_feed(st, pend, #pend, fin, out, cap, used, line)
                                or C.lb_minify_js_feed(st, pend, #pend, fin, out, cap, used, line))
        assert(r >= 0, "feed failed: " .. r)
        parts[#parts + 1] = ffi.string(out, r)
        pend = pend:sub(tonumber(used[0]) + 1)
        if fin == 1 then assert(pend == "") break end
      end
      return table.concat(parts)
    end
    local js = readf(nm .. "/jquery/dist/jquery.js")
    local css = readf(nm .. "/bootstrap/dist/css/bootstrap.css")
    local whole_js, whole_css = assert(minify.js(js)), assert(minify.css(css))
    for _, step in ipairs({ 1, 4096 }) do
      assert.is_true(fed(false, js, step) == whole_js, "jquery.js fed in " .. step .. "-byte pieces differs")
      assert.is_true(fed(true, css, step) == whole_css, "bootstrap.css fed in " .. step .. "-byte pieces differs")
    end
  end)

  -- statement 12's mutation check: the harness fails on broken outputs.
  it("fails when newlines become spaces, so // comments swallow code", function()
    local src = readf(nm .. "/jquery/dist/jquery.js")
    writef(run .. "/orig/jquery.js", src)
    writef(run .. "/bad/jquery.js", (src:gsub("\n", " ")))
    local ok, why = check_js("jquery", run .. "/orig/jquery.js", run .. "/bad/jquery.js")
    assert.is_false(ok)
    assert.matches("node %-%-check failed", why)
  end)

  it("fails when a minified library behaves differently (one string literal changed)", function()
    local src = readf(nm .. "/underscore/underscore.js")
    local out = assert(minify.js(src))
    local bad, n = out:gsub("'&amp;'", "'&AMP;'", 1)
    assert.equal(1, n)
    writef(run .. "/orig/underscore.js", src)
    writef(run .. "/bad/underscore.js", bad)
    local ok, why = check_js("underscore", run .. "/orig/underscore.js", run .. "/bad/underscore.js")
    assert.is_false(ok)
    assert.matches("digests differ", why)
  end)

  it("fails on `a+ ++b` joined into `a+++b`", function()
    writef(run .. "/orig/plus.js", "var a = 1, b = 2; module.exports = { v: [a + ++b, b] };\n")
    writef(run .. "/bad/plus.js", "var a=1,b=2;module.exports={v:[a+++b,b]};\n")
    local ok = check_js("plus", run .. "/orig/plus.js", run .. "/bad/plus.js")
    assert.is_false(ok)
  end)

  it("fails on CSS with one declaration changed", function()
    local src = readf(nm .. "/bootstrap/dist/css/bootstrap.css")
    local out = assert(minify.css(src))
    local bad, n = out:gsub("!important", "", 1)
    assert.equal(1, n)
    writef(run .. "/orig/bootstrap.css", src)
    writef(run .. "/bad/bootstrap.css", bad)
    local d = css_diffs(run .. "/orig/bootstrap.css", run .. "/bad/bootstrap.css")
    assert.is_true(d >= 1)
  end)
end)
