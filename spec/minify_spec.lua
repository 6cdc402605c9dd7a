local minify = require "lowbit.webassets.minify"
local errors = require "lowbit.errors"

-- Runs JS source with node; returns stdout and stderr and the exit status.
local tmpdir = os.tmpname()
os.remove(tmpdir)
assert(os.execute("mkdir -p " .. tmpdir) == 0)
local function node(src)
  local f = tmpdir .. "/t.js"
  local h = assert(io.open(f, "wb")); h:write(src); h:close()
  local p = assert(io.popen("timeout 10 node " .. f .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("*a"); p:close()
  return out
end

local function has_node()
  local p = io.popen("node --version 2>/dev/null")
  local v = p and p:read("*a") or ""
  if p then p:close() end
  return v:match("^v%d") ~= nil
end

describe("webassets.minify.js", function()
  it("removes whitespace and comments, nothing else", function()
    assert.equal("var a=1;f(a)", minify.js("var a = 1 ;\n// note\nf( a )"))
    assert.equal("x=/[/]/g.test(s)?`a  ${b}`:'c  d'", minify.js("x = /[/]/g.test(s) ? `a  ${ b }` : 'c  d'"))
  end)

  it("drops a ; just before } unless it is an empty statement body", function()
    assert.equal("function f(){a();return}", minify.js("function f() { a(); return; }"))
    assert.equal("{a}", minify.js("{ a;; /* c */ }"))
    assert.equal("{if(a);while(b);for(;;);l:;}", minify.js("{ if (a) ; while (b) ; for (;;) ; l: ; }"))
    assert.equal("{if(a)b;else;do;while(c)}", minify.js("{ if (a) b; else ; do ; while (c) }"))
    assert.equal("a();/*! k */", minify.js("a(); /*! k */"))
  end)

  it("keeps the line break ASI depends on", function()
    assert.equal("function f(){return\n42}", minify.js("function f() {\n  return\n  42\n}"))
    assert.equal("a\n++b", minify.js("a\n++b"))
  end)

  it("keeps the hashbang line and its newline", function()
    assert.equal("#!/usr/bin/env node\nconsole.log(1)", minify.js("#!/usr/bin/env node\n  console.log( 1 )\n"))
  end)

  it("never writes </script", function()
    assert.equal('x="<\\/script>"', minify.js('x = "</script>"'))
    assert.falsy(minify.js("x = `</SCRIPT>` + /<\\/script/ + a < /script/"):lower():find("</script", 1, true))
  end)

  it("returns nil, err naming the line on unreadable source", function()
    local out, err = minify.js("a = 1\nb = 'open\n")
    assert.is_nil(out)
    assert.is_true(errors.is(err, minify.SYNTAX))
    assert.matches("line 2", tostring(err))
    assert.matches("unterminated string", tostring(err))
    out, err = minify.js("a\n\n/* open")
    assert.is_nil(out)
    assert.matches("minify.js: line 3: unterminated comment", tostring(err))
    out, err = minify.js("x\ny = `abc")
    assert.matches("line 2: unterminated template", tostring(err))
  end)

  it("raises on a wrong argument type", function()
    assert.has_error(function() minify.js(nil) end, "bad argument 's' to minify.js: string expected, got nil")
    assert.has_error(function() minify.css(42) end, "bad argument 's' to minify.css: string expected, got number")
  end)

  it("handles an input larger than any before (buffer growth) and the empty input", function()
    assert.equal("", minify.js(""))
    local big = ("var a = 1 ; // c\n"):rep(20000)
    local out = assert(minify.js(big))
    assert.equal(("var a=1;"):rep(20000), out)
    assert.equal("a{b:c}", minify.css("a { b : c }"):gsub(" :", ":"), nil)
  end)
end)

describe("webassets.minify.css", function()
  it("keeps the spaces CSS needs and drops the others", function()
    assert.equal("@media screen and (max-width:100px){a :hover,.a .b>c{width:calc(100% - 2px)!important}}",
      minify.css("@media screen and (max-width: 100px) {\n  a :hover, .a .b > c { width: calc(100% - 2px) ! important; }\n}"))
  end)

  it("keeps strings, url(), escapes, custom properties and /*! comments verbatim", function()
    assert.equal('/*! lic */ a{content:"/* x */ ; }";background:url(a.png)}.\\31 0{--x: ;--y:;--j:{"k": 1}}',
      minify.css('/*! lic */\na { content: "/* x */ ; }" ; background: url( a.png ) }\n.\\31 0 { --x: ; --y:; --j: {"k": 1} }'))
  end)

  it("drops a declaration's ; before } but not a custom property's or an at-rule's", function()
    assert.equal("a{b:c;d:e}f{}", minify.css("a { b: c; d: e; ; }\nf { ; }"))
    assert.equal("a{--x: ;}b{--y:1;}@media print{@import url(x.css);}", minify.css("a { --x: ; } b { --y:1; } @media print { @import url(x.css); }"))
  end)

  it("returns nil, err naming the line", function()
    local out, err = minify.css("a { b: c }\n\nd { content: \"open\n}")
    assert.is_nil(out)
    assert.is_true(errors.is(err, minify.SYNTAX))
    assert.matches("minify.css: line 3: unterminated string", tostring(err))
  end)
end)

-- conformance/webassets.md statement 14: every JS hazard row of §2 gives the
-- same node output minified as original. Node is on every CI machine.
describe("JS hazard rows under node", function()
  local rows = {
    { "regex after if(...)", 'var b="data:x;base64,AA",r;if(1)/^data:[^;]*;base64,/.test(b)?r=1:r=2;console.log(r)' },
    { "division chain", "var a=8,g=2,i=2;console.log(a /g/ i, (4)/2/1, [8][0]/2/2)" },
    { "regex after return, =>, {}", 'function f(s){ return /=+/.test(s) }\nvar e = x => /Edg\\//.test(x);\n{}/foo/g.test("foo");\nconsole.log(f("=="), e("Edg/1"), typeof /x/)' },
    { "/ in a regex class", 'console.log(/[/]/.test("/"), /\\//.test("/"), /a\\/b/.test("a/b"))' },
    { "spaces in a regex", 'console.log(/(NaN| {2}|^$)/.test("  "), /a  b/.source)' },
    { "newline then / is division", "var a=6,b=2,g=1\nvar x = a\n/b/g\nconsole.log(x)" },
    { "restricted return", "function f(){\n  return\n  42\n}\nconsole.log(f())" },
    { "newline inside a block comment", "function f(){ return/*\n*/42 }\nconsole.log(f())" },
    { "postfix restriction", "var a=1, b=1\na\n++b\nconsole.log(a, b)" },
    { "no ASI before (", "var f = function(x){ return x + 1 }\nvar y = f\n(function(){ return 5 })\nconsole.log(typeof y, y.slice(-1))" },
    { "let as an identifier", "var let = 1\nlet\nx = 2\nconsole.log(let, typeof x)" },
    { "+ ++ and - --", "var a = 1, b = 2; console.log(a + ++b, a - --b, a- -1, a + +b, a++ +b, a)" },
    { "--> is a comment at a line start", "var x = 3, n = 0; while (x-- > 0) n++\n--> not code\nconsole.log(n, x)" },
    { "< ! --", "var b = 1, a = 2; console.log(a < ! --b, b)" },
    { "<!-- comment", "var a = 1 <!-- 2\nconsole.log(a)" },
    { "comment markers in strings", "console.log(\"/* not */\", '// nor')" },
    { "template literals", 'var u = "U"; console.log(`${u}//not a comment ${u}`, `  two  spaces  `, `$${u}`, `x${`y${u}  z`}  w`, `${ {a:1}.a }`)' },
    { "</script in strings", 'console.log("</script>".length, "</script>", `</SCRIPT>`, /<\\/script>/.test("</script>"))' },
    { "unicode escapes", "var \\u0061bc = 5; console.log(abc, '\\u0022', \"\\u2028\".length)" },
    { "non-ASCII identifier before in", 'var a = { "\207\128": 1 }; console.log(a.\207\128 in a, "b" in a, typeof "s")' },
    { "numbers followed by .", "console.log(1..toString(), 2147483647 .toString(16), 1e-10, .5e+3, 0x1F .toString())" },
    { "NBSP and BOM whitespace, U+2028 in a string", "var\194\160a\194\160=\239\187\1911; console.log(a, \"\226\128\168\".length)" },
    { "license comment", "/*! keep */\nconsole.log(1)" },
    { "hashbang", "#!/usr/bin/env node\nconsole.log(7)" },
    { "for-header semicolons", "for (var a = 0, i = 0; ;) { if (++i > 3) break }\nconsole.log(i)" },
    { "missing-semicolon join", 'var a = {}; a.b = {}\n"foo" && console.log("x")' },
    { "} then a call", "var a = function(){ return 1 }\n(function(){ return 2 })\nconsole.log(typeof a, a)" },
    { "continue restricted", "var n = 0; for (var i = 0; i < 3; i++) { n++; continue\nn += 10 }\nconsole.log(n)" },
    { "x / /re/", 'var y = 6; console.log(y / /3/.exec("3")[0])' },
    { "division after ++", "var a = 4; console.log(a++ / 2, a)" },
    { "throw restricted", "try { (function(){ throw 1\n })() } catch (e) { console.log('caught', e) }" },
    { "class private names", "class A { #x = 1; m() { return #x in this } }; console.log(new A().m())" },
    { "optional chaining and ?.5", "var a = null; console.log(a ?.5 : 2, a?.b)" },
    { "newline after a block statement's } dropped", "var n = 0\nfunction f(a = {}, b = function(){ return 1 }) { return b() }\nn += f()\nif (n) { n++ }\nn *= 10\ntry { n++ } finally { n++ }\n++n\nconsole.log(n)" },
    { "newline after an expression's } kept", "var a = {}\nvar n = 0\nvar c = function(){ return 2 }\nn += c()\nvar e = () => {}\nn++\nvar g = class {}\nn++\nswitch (n) {}\nn++\ntry { n++ } catch (x) {}\nn++\nconsole.log(n, typeof a, typeof e, typeof g)" },
    { "; before } dropped (ASI puts it back)", "function f(){ var a = 1; a++; return a; }\nclass A { x = 1; m() { return this.x; }; }\nvar o = { g: function(){ return 3; } };\nconsole.log(f(), new A().x, new A().m(), o.g())" },
    { "; before } kept where it is the body", "var n = 0, o = { a: 1 }; function g(a){ if (a) ; }\nfunction h(){ for (var i = 0; i < 3; i++) ; n += i; }\nfunction w(){ var k = 2; while (k-- > 0) ; }\nfunction e(a){ if (a) n++; else ; }\nfunction l(){ L: ; }\nfunction s(x){ switch (x) { case 1: ; default: ; } }\nfunction d(){ var k = 3; { do ; while (k-- > 0) } return k; }\nfunction x(){ with (o) ; }\nfunction p(){ if ((n) && g(1)) ; }\ng(1); h(); w(); e(0); l(); s(1); x(); p(); console.log(n, d())" },
  }
  for _, row in ipairs(rows) do
    it(row[1], function()
      assert.is_true(has_node(), "node is needed for the hazard rows")
      local src = row[2]
      local out = assert(minify.js(src))
      assert.falsy(out:lower():find("</script", 1, true))
      local want = node(src)
      assert.matches("exit=0", want)
      assert.equal(want, node(out))
    end)
  end
end)
