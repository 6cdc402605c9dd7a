-- lowbit.stencil: the numbered statements of shared/conformance/stencil.md
-- (each test is named by its number), with the escaping compared byte for
-- byte against Go's html/template (spec/peers/stencil_go.go).
local stencil = require "lowbit.stencil"
local errors = require "lowbit.errors"
local httptest = require "lowbit.httptest"
local support = require "support"
local wspeers = require "wspeers"
local ffi = require "ffi"

local function recorder() return httptest.new_recorder() end

local tmpdir = support.tmpdir

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- A site as a table of files per directory.
local site = {
  views = {
    ["home.html"] = "<h1>{{ title }}</h1>\n{{ partial(\"nav\", data) }}<p>{{ body }}</p>\n",
    ["about.html"] = "<p>About {{ title }}</p>",
    ["alert.html"] = "{{ partial(\"alert\", \"Something <b>\") }}",
    ["rows.html"] = "{% for _, r in ipairs(rows) do %}<tr><td>{{ r }}</td></tr>{% end %}",
  },
  layouts = {
    ["base.html"] = "<html><head><title>{{ title }}</title></head><body>{{ yield }}</body></html>\n",
    ["minimal.html"] = "<main>{{ yield }}</main>",
  },
  partials = {
    ["nav.html"] = "<nav>{% for _, l in ipairs(links) do %}<a href=\"{{ l.href }}\">{{ l.text }}</a>{% end %}</nav>",
    ["alert.html"] = "<div class=\"alert\">{{ data }}</div>",
  },
}
local data = {
  title = "Tom & Jerry", body = "<i>hi</i>",
  links = { { href = "/a?x=1&y=2", text = "A" }, { href = "javascript:alert(1)", text = "B<" } },
  rows = { "one", "<two>" },
}

local function engine(extra)
  local o = { views = site.views, layouts = site.layouts, partials = site.partials, default_layout = "base" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return stencil.new(o)
end

---------------------------------------------------------------------------
-- Go html/template as the reference
---------------------------------------------------------------------------

local go_bin
local function go_render(cases)
  go_bin = go_bin or wspeers.go_peer("stencil_go")
  local input = {}
  for _, c in ipairs(cases) do
    local v = c.go_value or (c.value == nil and "" or tostring(c.value))
    input[#input + 1] = ("%s %d %d\n"):format(c.kind, #c.tmpl, #v) .. c.tmpl .. v
  end
  local path = support.tmpfile(table.concat(input))
  local f = assert(io.popen(go_bin .. " < " .. path))
  local out = f:read("*a")
  f:close()
  os.remove(path)
  local res, pos = {}, 1
  while pos <= #out do
    local tag, len, after = out:match("^([OE]) (%d+)\n()", pos)
    assert(tag, "bad output from stencil_go at " .. pos)
    len = tonumber(len)
    res[#res + 1] = { ok = tag == "O", text = out:sub(after, after + len - 1) }
    pos = after + len
  end
  assert.equal(#cases, #res)
  return res
end

local wrap = { html = stencil.html, url = stencil.url, js = stencil.js, css = stencil.css, attr = stencil.attr }

-- Renders a case through stencil: {{.}} becomes {{ v }} unless c.st gives
-- the stencil form; the value is c.value (wrapped for trusted kinds).
local function stencil_render(c)
  local st = c.st or c.tmpl:gsub("{{%.}}", "{{ v }}")
  local v = c.value
  if wrap[c.kind] then v = wrap[c.kind](v) end
  local fn, err = stencil.compile(st, "case")
  if not fn then return nil, err end
  return fn({ v = v })
end

local function compare(cases)
  local gores = go_render(cases)
  for i, c in ipairs(cases) do
    local s, err = stencil_render(c)
    local g = gores[i]
    local what = ("case %d %q (%s %q)"):format(i, c.tmpl, c.kind, tostring(c.go_value or c.value))
    if g.ok then
      assert(s, what .. ": stencil failed: " .. tostring(err))
      assert.equal(g.text, s, what)
    else
      -- Go refuses the template: stencil must refuse it at compile time.
      assert(s == nil, what .. ": Go refused (" .. g.text .. ") but stencil rendered " .. tostring(s))
      assert(errors.is(err, stencil.COMPILE_ERROR), what .. ": " .. tostring(err))
    end
  end
  return gores
end

local S = "string"
-- The table of the conformance file (E1-E16).
local conformance_rows = {
  { tmpl = "<p>{{.}}</p>", kind = S, value = '<script>alert("x")</script>' },           -- E1
  { tmpl = "<p>{{.}}</p>", kind = S, value = "O'Reilly & Sons" },                        -- E2
  { tmpl = "<p>{{.}}</p>", kind = S, value = "a+b`c=d" },                                -- E3
  { tmpl = "<p>{{.}}</p>", kind = "nil", value = nil },                                  -- E4
  { tmpl = "<p>{{.}}</p>", kind = "json", value = 42, go_value = "42" },                 -- E4
  { tmpl = "<p>{{.}}</p>", kind = "html", value = "<b>ok</b>" },                         -- E5
  { tmpl = '<input value="{{.}}">', kind = S, value = '" onmouseover="alert(1)' },       -- E6
  { tmpl = "<input value='{{.}}'>", kind = S, value = "'><script>x</script>" },          -- E7
  { tmpl = "<input value={{.}}>", kind = S, value = "a b onclick=x" },                   -- E8
  { tmpl = '<div data-x="{{.}}"></div>', kind = S, value = "<\"&'>" },                   -- E9
  { tmpl = '<a {{.}}="x">', kind = S, value = "onclick" },                               -- E10
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = "javascript:alert(1)" },           -- E11
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = "JaVaScRiPt:alert(1)" },
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = " javascript:alert(1)" },
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = "vbscript:msgbox(1)" },
  { tmpl = '<img src="{{.}}">', kind = S, value = "data:text/html,<script>alert(1)</script>" }, -- E12
  { tmpl = '<img srcset="{{.}}">', kind = S, value = "javascript:alert(1) 1x" },         -- E13
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = 'http://example.com/a b?q="x"&r=<y>' }, -- E14
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = "/path/to?a=1&b=2" },              -- E15
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = "mailto:a@b.example" },
  { tmpl = '<a href="/search?q={{.}}">x</a>', kind = S, value = "a&b c/d?e=f#g" },       -- E16
}

-- More contexts, checked the same way.
local more_rows = {
  { tmpl = "<script>var x = {{.}};</script>", kind = "json", value = { a = { 1, "<b>&" }, b = true },
    go_value = '{"a":[1,"<b>&"],"b":true}' },
  { tmpl = "<script>var x = {{.}};</script>", kind = "json", value = 42, go_value = "42" },
  { tmpl = "<script>var x = {{.}};</script>", kind = "json", value = 3.25, go_value = "3.25" },
  { tmpl = "<script>var x = {{.}};</script>", kind = "json", value = false, go_value = "false" },
  { tmpl = "<script>var x = {{.}};</script>", kind = "nil", value = nil },
  { tmpl = "<script>var x = {{.}};</script>", kind = S, value = "</script><script>alert(1)</script>\226\128\168" },
  { tmpl = "<script>{{.}}</script>", kind = "js", value = "alert('trusted')" },
  { tmpl = "<script>var s = '{{.}}';</script>", kind = S, value = "'</script><script>alert(1)//\n\1\\" },
  { tmpl = "<script>var re = /{{.}}/;</script>", kind = S, value = "a.b*(c)" },
  { tmpl = "<script>var re = /{{.}}/;</script>", kind = S, value = "" },
  { tmpl = "<script>var t = `{{.}}`;</script>", kind = S, value = "x" },
  { tmpl = '<button onclick="f({{.}})">b</button>', kind = S, value = [["x" & 'y']] },
  { tmpl = "<button onclick='f(\"{{.}}\")'>b</button>", kind = S, value = [[a"b'c]] },
  { tmpl = "<style>p { color: {{.}} }</style>", kind = S, value = "red" },
  { tmpl = "<style>p { color: {{.}} }</style>", kind = S, value = "expression(alert(1))" },
  { tmpl = "<style>p { color: {{.}} }</style>", kind = "css", value = "red; background: blue" },
  { tmpl = '<style>p { content: "{{.}}" }</style>', kind = S, value = "</style><script>x" },
  { tmpl = '<p style="background: url({{.}})">x</p>', kind = S, value = "javascript:x" },
  { tmpl = '<p style="background: url(\'/img/{{.}}\')">x</p>', kind = S, value = "a b'.png" },
  { tmpl = '<p style="{{.}}">x</p>', kind = "css", value = "color: red" },
  { tmpl = '<img srcset="{{.}}">', kind = S, value = "/a.png 1x, /b.png 2x" },
  { tmpl = "<title>{{.}}</title>", kind = "html", value = "<b>x</b>" },
  { tmpl = "<textarea>{{.}}</textarea>", kind = S, value = "</textarea><script>" },
  { tmpl = "<!-- {{.}} --><p>x</p>", kind = S, value = "secret" },
  { tmpl = '<a title="{{.}}">x</a>', kind = S, value = "a&b" },
  { tmpl = '<a href="{{.}}">x</a>', kind = "url", value = "javascript:ok()" },
  { tmpl = "<a {{.}}>x</a>", kind = "attr", value = 'title="x"' },
  { tmpl = '<a {{.}}="x">y</a>', kind = S, value = "Title" },
  { tmpl = "<p>{{.}}</p>", kind = S, value = "a\0b" },
  { tmpl = "<input value={{.}}>", kind = S, value = "" },
  { tmpl = "<input value={{.}}>", kind = S, value = "\239\183\144x" },
  { tmpl = "<p>a < b {{.}}</p>", kind = S, value = "c" },
  { tmpl = '<a href="{{if .}}/a{{else}}/b{{end}}?q={{.}}">x</a>', kind = S, value = "1 2",
    st = '<a href="{% if v then %}/a{% else %}/b{% end %}?q={{ v }}">x</a>' },
  { tmpl = '{{if .}}<a href="{{else}}<p>{{end}}', kind = S, value = "x",
    st = '{% if v then %}<a href="{% else %}<p>{% end %}' },
  { tmpl = '<a href="{{if .}}/a?x={{end}}{{.}}">x</a>', kind = S, value = "y",
    st = '<a href="{% if v then %}/a?x={% end %}{{ v }}">x</a>' },
  { tmpl = "<a href='{{.}}'>{{.}}</a>", kind = S, value = "/a'b" },
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = "?q=a:b" },
  { tmpl = '<a href="{{.}}">x</a>', kind = S, value = "/x:y?z=(1)" },
  { tmpl = "<a href={{.}}>x</a>", kind = S, value = "/a b?c=d&e" },
  { tmpl = '<a href="/p/{{.}}">x</a>', kind = S, value = "javascript:x" },
  { tmpl = '<a href="#{{.}}">x</a>', kind = S, value = "a b&c" },
  { tmpl = "<p onclick='x = \"{{.}}\"'>x</p>", kind = S, value = "a\"b'c</p>" },
  { tmpl = '<script type="text/template"><p>{{.}}</p></script>', kind = S, value = "<b>" },
  { tmpl = '<script type="application/ld+json">{"a": {{.}}}</script>', kind = S, value = "</script>" },
  { tmpl = "<script>// c {{.}}\nvar a = 1; /* {{.}} */ var b = {{.}};</script>", kind = S, value = "x" },
  { tmpl = "<script>var a = x / {{.}} / 2;</script>", kind = "json", value = 4, go_value = "4" },
  { tmpl = "<style>/* {{.}} */ p { color: red }</style>", kind = S, value = "x" },
  { tmpl = "<style>p { width: {{.}}px }</style>", kind = "json", value = 12, go_value = "12" },
  { tmpl = "<style>p { color: {{.}} }</style>", kind = S, value = "#ff0000" },
  { tmpl = "<style>p { color: {{.}} }</style>", kind = S, value = "r\\65 d" },
  { tmpl = "<p>{{.}}</p>", kind = S, value = "caf\195\169 \226\130\172" },
  { tmpl = "<p>{{.}}</p>", kind = "json", value = true, go_value = "true" },
  { tmpl = '<p title="{{.}}">x</p>', kind = "html", value = "<b>x</b> &amp; <i title=\"1>2\">y</i><!-- c -->" },
  { tmpl = "<p title={{.}}>x</p>", kind = "html", value = "<b>a b</b>&amp;c" },
  { tmpl = "<title>{{.}}</title>", kind = "html", value = "<b>x</b>&amp;" },
  { tmpl = "<p>{{.}}</p>", kind = "html", value = "I <3 you" },
  { tmpl = "<p>{{.}}</p>", kind = "url", value = "<x>&" },
  { tmpl = "<p>{{.}}</p>", kind = "js", value = "<x>" },
  { tmpl = "<p>{{.}}</p>", kind = "attr", value = "a=<b>" },
  { tmpl = "<script>var x = {{.}};</script>", kind = "html", value = "<b>" },
  { tmpl = "<script>var x = {{.}};</script>", kind = "url", value = "javascript:x" },
  { tmpl = '<a href="{{.}}">x</a>', kind = "html", value = "javascript:<b>" },
  { tmpl = '<a href="/q?x={{.}}">x</a>', kind = "url", value = "a b&c" },
  { tmpl = "<style>p { color: {{.}} }</style>", kind = "html", value = "red;x" },
  { tmpl = '<p style="color: {{.}}">x</p>', kind = "js", value = "red" },
  { tmpl = '<p title="{{.}}">x</p>', kind = "html", value = "I <3 you" },
  { tmpl = "<div data-url=\"{{.}}\">x</div>", kind = S, value = "javascript:x" },
  { tmpl = "<img srcset=\"{{.}}\">", kind = S, value = "/a.png 1x, javascript:x 2x, /c d.png" },
  { tmpl = "<textarea>{{.}}</textarea><p>{{.}}</p>", kind = S, value = "a+b" },
  { tmpl = "<a title=\"{{.}}\" href=\"{{.}}\">{{.}}</a>", kind = S, value = "http://x/?a=1&b=\"2\"" },
}

-- The five single-context failures of the anchors table.
local anchor_rows = {
  { tmpl = '<a href="{{.}}">', kind = S, value = "javascript:alert(1)", bad = "javascript:" },
  { tmpl = "<a title={{.}}>", kind = S, value = "x onmouseover=alert(1)", bad = " onmouseover=" },
  { tmpl = '<script>var s = "{{.}}";</script>', kind = S, value = "\\", bad = '"\\"' },
  { tmpl = "<script>var n = {{.}};</script>", kind = S, value = "1;alert(1)", bad = "= 1;alert" },
  { tmpl = '<p style="color: {{.}}">', kind = S, value = "red;background:url(javascript:alert(1))", bad = "javascript" },
}

describe("lowbit.stencil", function()
  it("1: renders the view inside the default layout at {{ yield }}, unescaped", function()
    local w = recorder()
    assert.is_true(engine():render(w, "home", data))
    local view = assert(engine():render_to_string("home", data, { layout = false }))
    assert.equal("<html><head><title>Tom &amp; Jerry</title></head><body>" .. view .. "</body></html>\n", w.body)
    assert.truthy(view:find("<h1>Tom &amp; Jerry</h1>", 1, true))
  end)

  it("2: {layout = name} and {layout = false}; render_to_string gives render's bytes", function()
    local e = engine()
    local alone = assert(e:render_to_string("about", data, { layout = false }))
    assert.equal("<p>About Tom &amp; Jerry</p>", alone)
    local standalone = assert(stencil.compile(site.views["about.html"]))(data)
    assert.equal(standalone, alone)
    assert.equal("<main>" .. alone .. "</main>", e:render_to_string("about", data, { layout = "minimal" }))
    for _, opts in ipairs { {}, { layout = false }, { layout = "minimal" } } do
      local w = recorder()
      assert.is_true(e:render(w, "about", data, opts))
      assert.equal(e:render_to_string("about", data, opts), w.body)
    end
  end)

  it("3: partial(name, data) and partial(name, string): the string is escaped once", function()
    local e = engine()
    local s = assert(e:render_to_string("home", data, { layout = false }))
    assert.truthy(s:find('<nav><a href="/a?x=1&amp;y=2">A</a><a href="#ZgotmplZ">B&lt;</a></nav>', 1, true))
    assert.equal('<div class="alert">Something &lt;b&gt;</div>', e:render_to_string("alert", {}, { layout = false }))
  end)

  it("4: an edited view or layout shows on the next render without reload()", function()
    local d = tmpdir()
    assert(os.execute("mkdir -p " .. d .. "/views " .. d .. "/layouts") == 0)
    write(d .. "/views/home.html", "<p>v1 {{ x }}</p>")
    write(d .. "/layouts/base.html", "<main>{{ yield }}</main>")
    local e = stencil.new { views = d .. "/views", layouts = d .. "/layouts", default_layout = "base" }
    assert.equal("<main><p>v1 1</p></main>", e:render_to_string("home", { x = 1 }))
    write(d .. "/views/home.html", "<p>v2 {{ x }}</p>")
    assert.equal("<main><p>v2 1</p></main>", e:render_to_string("home", { x = 1 }))
    write(d .. "/layouts/base.html", "<div>{{ yield }}</div>")
    assert.equal("<div><p>v2 1</p></div>", e:render_to_string("home", { x = 1 }))
    os.execute("rm -rf " .. d)
  end)

  it("5: partials are cached until reload(), re-read with disable_cache, per engine", function()
    local d = tmpdir()
    assert(os.execute("mkdir -p " .. d .. "/views " .. d .. "/partials") == 0)
    write(d .. "/views/home.html", "{{ partial('p', data) }}")
    write(d .. "/partials/p.html", "v1")
    local e = stencil.new { views = d .. "/views", partials = d .. "/partials" }
    local live = stencil.new { views = d .. "/views", partials = d .. "/partials", disable_cache = true }
    assert.equal("v1", e:render_to_string("home", {}))
    assert.equal("v1", live:render_to_string("home", {}))
    write(d .. "/partials/p.html", "v2")
    assert.equal("v1", e:render_to_string("home", {}))
    assert.equal("v2", live:render_to_string("home", {}))
    e:reload()
    assert.equal("v2", e:render_to_string("home", {}))
    assert.equal(2, e.stats.partial_parses)
    -- A second engine on other files: nothing is shared.
    local other = stencil.new { views = d .. "/views", partials = { ["p.html"] = "other" } }
    assert.equal("other", other:render_to_string("home", {}))
    assert.equal("v2", e:render_to_string("home", {}))
    os.execute("rm -rf " .. d)
  end)

  it("6: directory paths and in-memory tables give identical output", function()
    local d = tmpdir()
    for dir, files in pairs(site) do
      assert(os.execute("mkdir -p " .. d .. "/" .. dir) == 0)
      for name, text in pairs(files) do write(d .. "/" .. dir .. "/" .. name, text) end
    end
    local from_dir = stencil.new { views = d .. "/views", layouts = d .. "/layouts", partials = d .. "/partials",
                                   default_layout = "base" }
    for _, name in ipairs { "home", "about", "alert", "rows" } do
      assert.equal(engine():render_to_string(name, data), from_dir:render_to_string(name, data))
    end
    os.execute("rm -rf " .. d)
  end)

  it("7: the conformance rows E1-E16 and more contexts give Go html/template's bytes", function()
    compare(conformance_rows)
    local res = compare(more_rows)
    -- The JS template literal and the branch into an attribute are refused
    -- by Go 1.19 as well.
    local refused = 0
    for _, r in ipairs(res) do if not r.ok then refused = refused + 1 end end
    assert.is_true(refused >= 2)
  end)

  it("7: random values through every context give Go html/template's bytes", function()
    local alphabet = { "a", "Z", "0", " ", "\t", "\n", "\r", "\f", "\v", "\0", "\1", "\31", "\127", "<", ">", "&",
      '"', "'", "`", "=", "+", "/", "\\", ":", ";", "(", ")", "{", "}", "[", "]", "?", "#", "%", "$", "*", ",",
      ".", "-", "@", "!", "~", "^", "|", "expression", "javascript:", "http:", "url(", "--", "\195\169",
      "\226\128\168", "\226\128\169", "\239\183\144", "\239\191\189", "\240\159\152\128", "\255", "\192\128",
      "\237\160\128", "\\41", "\\3c " }
    local templates = { "<p>{{.}}</p>", '<p title="{{.}}">x</p>', "<p title='{{.}}'>x</p>", "<p title={{.}}>x</p>",
      '<a href="{{.}}">x</a>', '<a href="/p/{{.}}">x</a>', '<a href="/s?q={{.}}">x</a>', "<a href={{.}}>x</a>",
      "<script>var v = {{.}};</script>", '<script>var s = "{{.}}";</script>', "<script>var s = '{{.}}';</script>",
      "<script>var r = /{{.}}/;</script>", '<p onclick="f({{.}})">x</p>', "<style>p { color: {{.}} }</style>",
      '<p style="color: {{.}}">x</p>', '<style>p { content: "{{.}}" }</style>', "<style>p { background: url({{.}}) }</style>",
      '<img srcset="{{.}}">', "<title>{{.}}</title>", "<textarea>{{.}}</textarea>", '<a {{.}}="1">x</a>' }
    local seed = 12345
    local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
    local cases = {}
    for _, t in ipairs(templates) do
      for _ = 1, 25 do
        local parts = {}
        for _ = 1, rnd(8) - 1 do parts[#parts + 1] = alphabet[rnd(#alphabet)] end
        cases[#cases + 1] = { tmpl = t, kind = S, value = table.concat(parts) }
      end
    end
    compare(cases)
  end)

  it("8: the five single-context failures are blocked (and match Go)", function()
    compare(anchor_rows)
    for _, c in ipairs(anchor_rows) do
      local s = assert(stencil_render(c))
      assert.is_nil(s:find(c.bad, 1, true), s)
    end
  end)

  it("9: a missing view, layout or partial is nil, err naming it; failed renders write nothing", function()
    local e = engine()
    for _, case in ipairs {
      { "nope", nil, "views/nope.html" },
      { "about", { layout = "gone" }, "layouts/gone.html" },
    } do
      local w = recorder()
      local ok, err = e:render(w, case[1], data, case[2])
      assert.is_nil(ok)
      assert.is_true(errors.is(err, stencil.NOT_FOUND))
      assert.truthy(tostring(err):find(case[3], 1, true))
      assert.equal("", w.body)
      assert.is_false(w.wrote_header)
    end
    local e2 = stencil.new { views = { ["v.html"] = "<p>start</p>{{ partial('missing', data) }}" }, partials = {} }
    local w = recorder()
    local ok, err = e2:render(w, "v", {})
    assert.is_nil(ok)
    assert.is_true(errors.is(err, stencil.NOT_FOUND))
    assert.truthy(tostring(err):find("partials/missing.html", 1, true))
    assert.equal("", w.body)
    -- A runtime failure after output was produced: still nothing written.
    local e3 = stencil.new { views = { ["v.html"] = "<p>lots of output</p>\n{{ a.b }}" } }
    ok, err = e3:render(w, "v", {})
    assert.is_nil(ok)
    assert.equal("", w.body)
  end)

  it("10: compile errors name file and line; runtime errors name template, line and expression", function()
    local e = stencil.new { views = {
      ["syntax.html"] = "<p>\n</p>\n{% if x then %}\n{% for %}\n{% end %}",
      ["ctx.html"] = "<p>\n{% if x then %}<a href=\"{% else %}<b>{% end %}\n</a>",
      ["unclosed.html"] = "a\nb {{ x",
      ["unknown.html"] = "a\n\n{-block-}",
      ["nontext.html"] = "<p>\n<a href=\"{{ x }}",
      ["runtime.html"] = "<p>\n\n{{ user.name }}</p>",
      ["call.html"] = "<p>\n{{ missing_fn(1) }}</p>",
      ["noend.html"] = "<ul>\n{% for _, x in ipairs(xs) do %}\n<li>{{ x }}</li>\n</ul>",
      ["extraend.html"] = "<p>\n\n{% end %}</p>",
      ["badexpr.html"] = "<p>\n{{ a b }}</p>",
    }, layouts = {}, partials = {} }
    local function err_of(name)
      local s, err = e:render_to_string(name, { x = true })
      assert.is_nil(s)
      return err
    end
    local err = err_of("syntax")
    assert.is_true(errors.is(err, stencil.COMPILE_ERROR))
    assert.truthy(tostring(err):find("views/syntax.html:4:", 1, true), tostring(err))
    err = err_of("ctx")
    assert.truthy(tostring(err):find("views/ctx.html:2: {% if %} branches end in different contexts", 1, true), tostring(err))
    assert.truthy(tostring(err_of("unclosed")):find("views/unclosed.html:2: {{ without a closing }}", 1, true))
    assert.truthy(tostring(err_of("unknown")):find("views/unknown.html:3: unknown tag {-block-}", 1, true))
    assert.truthy(tostring(err_of("nontext")):find("views/nontext.html:2: ends in a non-text context", 1, true))
    err = err_of("noend")
    assert.is_true(errors.is(err, stencil.COMPILE_ERROR))
    assert.truthy(tostring(err):find("views/noend.html:", 1, true) and tostring(err):find("'end' expected", 1, true),
      tostring(err))
    assert.truthy(tostring(err_of("extraend")):find("views/extraend.html:3: 'end' without an open block", 1, true))
    assert.truthy(tostring(err_of("badexpr")):find("views/badexpr.html:2:", 1, true))
    err = err_of("runtime")
    assert.is_true(errors.is(err, stencil.RENDER_ERROR))
    assert.truthy(tostring(err):find("views/runtime.html:3: attempt to index", 1, true), tostring(err))
    assert.truthy(tostring(err):find("{{ user.name }}", 1, true))
    err = err_of("call")
    assert.truthy(tostring(err):find("views/call.html:2: attempt to call", 1, true), tostring(err))
    assert.truthy(tostring(err):find("{{ missing_fn(1) }}", 1, true))
    -- A value of an unsupported type, in every context: an error, nothing rendered.
    local contexts = { "<p>{{ v }}</p>", "<a href=\"{{ v }}\">", "<a href=\"/?q={{ v }}\">", "<input value={{ v }}>",
      "<script>var x = {{ v }};</script>", "<script>var x = '{{ v }}';</script>", "<style>p{color:{{ v }}}</style>",
      "<title>{{ v }}</title>", "<a {{ v }}=1>", "{* v *}" }
    for _, tmpl in ipairs(contexts) do
      for _, v in ipairs { print, ffi.new("int[1]"), coroutine.create(function() end) } do
        local s, verr = assert(stencil.compile(tmpl, "t"))({ v = v })
        assert.is_nil(s, tmpl)
        assert.truthy(tostring(verr):find("t:1: unsupported value of type", 1, true), tostring(verr))
      end
    end
  end)

  it("11: partial recursion stops with an error at a fixed depth", function()
    local e = stencil.new { views = { ["v.html"] = "{{ partial('tree', 1) }}" },
                            partials = { ["tree.html"] = "<ul>{{ partial('tree', data + 1) }}</ul>" } }
    local s, err = e:render_to_string("v", {})
    assert.is_nil(s)
    assert.is_true(errors.is(err, stencil.RENDER_ERROR))
    assert.truthy(tostring(err):find("partial recursion deeper than " .. stencil.MAX_DEPTH, 1, true), tostring(err))
    -- Bounded recursion below the limit works.
    local e2 = stencil.new { views = { ["v.html"] = "{{ partial('n', 3) }}" },
      partials = { ["n.html"] = "{{ data }}{% if data > 1 then %}{{ partial('n', data - 1) }}{% end %}" } }
    assert.equal("321", e2:render_to_string("v", {}))
  end)

  it("12: templates see the data, helpers, funcs and a safe stdlib only", function()
    rawset(_G, "app_secret", "s3cr3t")
    local e = stencil.new { views = {
      ["ok.html"] = "{{ string.upper(name) }} {{ table.concat(list, ',') }} {{ math.max(1, 5) }} " ..
                    "{% for i, x in ipairs(list) do %}{{ i }}{% end %} {{ tostring(7) .. tonumber('8') }} " ..
                    "{{ os.date('!%Y', 0) }} {{ shout(name) }} {{ data.name }} {{ html('<b>') }}",
      ["bad.html"] = "{{ app_secret }}|{{ io }}|{{ require }}|{{ load }}|{{ os.execute }}|{{ string.dump }}|" ..
                     "{{ loadstring }}|{{ dofile }}|{{ setfenv }}|{{ debug }}|{{ _G }}|{{ rawset }}",
      ["mutate.html"] = "{% string.upper = nil %}x",
    }, funcs = { shout = function(s) return s .. "!" end } }
    assert.equal("BOB a,b 5 12 78 1970 bob! bob <b>", e:render_to_string("ok", { name = "bob", list = { "a", "b" } }))
    assert.equal("|||||||||||", e:render_to_string("bad", {}))
    assert.equal("x", e:render_to_string("mutate", {}))
    assert.is_function(string.upper)
    local s, err = e:render_to_string("bad", nil)
    assert.equal("|||||||||||", s, tostring(err))
    rawset(_G, "app_secret", nil)
    local f = assert(stencil.compile("{% os.execute('touch /tmp/stencil-pwned') %}"))
    assert.is_nil(f({}))
  end)

  it("13: bench/stencil.lua renders the benchmark page and prints renders/s", function()
    local out, rc = support.sh(("cd %s && STENCIL_BENCH_N=200 %s bench/stencil.lua 2>&1"):format(support.root, support.host))
    assert.equal(0, rc, out)
    assert.truthy(out:find("renders/s", 1, true), out)
    assert.truthy(out:find("compile", 1, true), out)
  end)

  it("language: {{ }} escaped, {* *} raw, {% %} Lua, {# #} dropped, {-raw-} verbatim, resty's {*view*}", function()
    local f = assert(stencil.compile("{# note {{ x }} #}<p>{{ x }}|{* x *}|{-raw-}{{ x }} {% y %}{-raw-}|" ..
      "{% for i = 1, 3 do %}{{ i }}{% end %}</p>"))
    assert.equal("<p>&lt;b&gt;|<b>|{{ x }} {% y %}|123</p>", f({ x = "<b>" }))
    local e = stencil.new { views = { ["v.html"] = "<p>{{ x }}</p>" },
                            layouts = { ["resty.html"] = "<main>{*view*}</main>" } }
    assert.equal("<main><p>1</p></main>", e:render_to_string("v", { x = 1 }, { layout = "resty" }))
    for _, t in ipairs { "a\n{(header.html)}", "a\n{[name]}" } do
      local g, err = stencil.compile(t, "t")
      assert.is_nil(g)
      assert.truthy(tostring(err):find("t:2: unsupported tag", 1, true), tostring(err))
    end
    -- Braces of scripts and styles are text.
    assert.equal("<script>if (a) {(b)} {[1]}</script>",
      assert(stencil.compile("<script>if (a) {(b)\n} {[1\n]}</script>"))({}):gsub("\n", ""))
  end)

  it("the render loop and the escapers are compiled by the JIT (no NYI aborts or stitches)", function()
    local jutil, vmdef = require "jit.util", require "jit.vmdef"
    local rows = {}
    for i = 1, 100 do rows[i] = { name = "Customer " .. i, note = i % 10 == 0 and "<b>&" or "plain" } end
    local e = stencil.new { views = { ["page.html"] = "<h1>{{ title }}</h1>{% for _, r in ipairs(rows) do %}" ..
      "<td>{{ r.name }}</td><td><a href=\"/u?n={{ r.name }}\">{{ r.note }}</a></td>{% end %}" } }
    local nyi, compiled = {}, 0
    local started = {}
    local function ours(src) return src == "=views/page.html" or src:find("stencil/escape.lua", 1, true) end
    local function on_trace(what, tr, func, pc, otr, oex)
      local info = jutil.funcinfo(func, pc)
      local src = info.source or ""
      if what == "start" then started[tr] = src end
      if what == "stop" and src == "=views/page.html" then compiled = compiled + 1 end
      -- A trace of ours that ends by stitching around a call the JIT cannot
      -- compile (string.find with a character class did that on every value).
      if what == "stop" and ours(started[tr] or "") then
        local ti = jutil.traceinfo(tr)
        if ti and ti.linktype == "stitch" then nyi[#nyi + 1] = started[tr] .. " trace " .. tr .. " stitched" end
      end
      if what == "abort" and src:find("stencil/escape.lua", 1, true) then
        local msg = vmdef.traceerr[otr] or tostring(otr)
        if msg:find("NYI", 1, true) then nyi[#nyi + 1] = src .. ":" .. tostring(info.currentline) .. " " .. msg:format(oex) end
      end
    end
    jit.flush()
    jit.attach(on_trace, "trace")
    for _ = 1, 3000 do e:render_to_string("page", { title = "x", rows = rows }) end
    jit.attach(on_trace)
    assert.same({}, nyi)
    assert.is_true(compiled > 0)
  end)

  it("refuses misuse with bad argument errors", function()
    assert.has_error(function() stencil.new("x") end)
    assert.has_error(function() stencil.new { views = 3 } end)
    assert.has_error(function() engine():render_to_string(1) end)
    assert.has_error(function() engine():render_to_string("home", {}, { layout = 1 }) end)
    assert.has_error(function() engine():render(nil, "home", {}) end)
  end)
end)
