/* test_minify.c: lb_minify, JavaScript and CSS. Each vector is a hazard row
 * of conformance/webassets.md §2 (named by the defect it guards against):
 * the exact output is checked, the output is checked to re-lex to the
 * input's tokens, and minifying the output again changes nothing. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "lb_test.h"
#include "lowbit/lb_minify.h"

typedef struct { const char *name, *in, *want; } vec;

static ptrdiff_t run(int css, const char *in, size_t n, uint8_t **out, size_t *line) {
  size_t cap = lb_minify_max_len(n);
  *out = malloc(cap + 1);
  ptrdiff_t r = css ? lb_minify_css((const uint8_t *)in, n, *out, cap, line)
                    : lb_minify_js((const uint8_t *)in, n, *out, cap, line);
  return r;
}

static ptrdiff_t feed_any(int css, const uint8_t *in, size_t n, size_t step, uint8_t **out, size_t *line);

/* Feeds in[0..n) to lb_minify_js_feed (or _css_feed) in chunks of `step` bytes (the caller
 * keeps the unconsumed bytes and gives them again with the next chunk).
 * Returns the output length or the error; *out is malloc'd. */
static ptrdiff_t feed_js(const uint8_t *in, size_t n, size_t step, uint8_t **out, size_t *line) {
  return feed_any(0, in, n, step, out, line);
}

static ptrdiff_t feed_any(int css, const uint8_t *in, size_t n, size_t step, uint8_t **out, size_t *line) {
  lb_minify_js_state m;
  lb_minify_css_state cs;
  lb_minify_js_init(&m);
  lb_minify_css_init(&cs);
  uint8_t *pend = malloc(n + 1), *o = malloc(lb_minify_max_len(n) + 1);
  uint8_t *tmp = malloc(lb_minify_max_len(n) + 16);
  size_t have = 0, at = 0, w = 0;
  ptrdiff_t r = 0;
  for (;;) {
    size_t c = n - at < step ? n - at : step;
    memcpy(pend + have, in + at, c);
    have += c;
    at += c;
    int fin = at == n;
    size_t used;
    r = css ? lb_minify_css_feed(&cs, pend, have, fin, tmp, lb_minify_max_len(have), &used, line)
            : lb_minify_js_feed(&m, pend, have, fin, tmp, lb_minify_max_len(have), &used, line);
    if (r < 0) break;
    memcpy(o + w, tmp, (size_t)r);
    w += (size_t)r;
    memmove(pend, pend + used, have - used);
    have -= used;
    if (fin) { r = have == 0 ? (ptrdiff_t)w : -9999; break; }
  }
  free(pend);
  free(tmp);
  *out = o;
  return r;
}

/* Token texts of a JS source, comments skipped, `<\/` read as `</`. */
static size_t tokens(const uint8_t *s, size_t n, char *buf, size_t cap);

/* The token texts with every `;` that comes just before a `}` left out: the
 * minifier drops those where it is safe (the exact outputs check where). */
static void drop_semis(char *buf) {
  int again = 1;
  while (again) {
    char *r = buf, *w = buf;
    again = 0;
    while (*r) {
      if (r[0] == ';' && r[1] && r[2] == '\x01' && r[3] == '}' && r[4] && r[5] == '\x01') {
        r += 3;
        again = 1;
        continue;
      }
      *w++ = *r++;
    }
    *w = 0;
  }
}

static size_t tokens(const uint8_t *s, size_t n, char *buf, size_t cap) {
  lb_minify_js_lexer lx;
  lb_minify_token t;
  lb_minify_js_lexer_init(&lx, s, n);
  size_t w = 0;
  int r;
  while ((r = lb_minify_js_next(&lx, &t)) > 0) {
    if (t.kind == LB_MINIFY_TOK_COMMENT) continue;
    for (size_t i = 0; i < t.len && w + 4 < cap; i++) {
      if (s[t.off + i] == '\\' && i > 0 && s[t.off + i - 1] == '<' && i + 1 < t.len &&
          s[t.off + i + 1] == '/')
        continue;
      buf[w++] = (char)s[t.off + i];
    }
    if (w + 4 < cap) { buf[w++] = (char)('0' + t.kind); buf[w++] = '\x01'; }
  }
  if (r < 0 && w + 1 < cap) buf[w++] = '!';
  buf[w] = 0;
  return w;
}

static void check_js(const vec *v) {
  uint8_t *out, *out2;
  size_t line, n = strlen(v->in);
  ptrdiff_t r = run(0, v->in, n, &out, &line);
  if (r < 0 || (size_t)r != strlen(v->want) || memcmp(out, v->want, (size_t)r) != 0) {
    fprintf(stderr, "  FAIL js %s: got [%.*s] want [%s] (r=%td)\n", v->name,
            r < 0 ? 0 : (int)r, out, v->want, r);
    lb__t_cur_failed = 1;
    free(out);
    return;
  }
  /* fed byte by byte and in 3-byte chunks: the same output */
  for (size_t step = 1; step <= 3; step += 2) {
    uint8_t *f;
    size_t fl;
    ptrdiff_t fr = feed_js((const uint8_t *)v->in, n, step, &f, &fl);
    if (fr != r || memcmp(f, out, (size_t)r) != 0) {
      fprintf(stderr, "  FAIL js %s: fed in %zu-byte pieces: [%.*s] (r=%td)\n", v->name, step,
              fr < 0 ? 0 : (int)fr, f, fr);
      lb__t_cur_failed = 1;
    }
    free(f);
  }
  static char a[8192], b[8192];
  tokens((const uint8_t *)v->in, n, a, sizeof a);
  tokens(out, (size_t)r, b, sizeof b);
  drop_semis(a);
  drop_semis(b);
  if (strcmp(a, b) != 0) {
    fprintf(stderr, "  FAIL js %s: tokens differ\n", v->name);
    lb__t_cur_failed = 1;
  }
  ptrdiff_t r2 = run(0, (const char *)out, (size_t)r, &out2, &line);
  if (r2 != r || memcmp(out, out2, (size_t)r) != 0) {
    fprintf(stderr, "  FAIL js %s: not idempotent\n", v->name);
    lb__t_cur_failed = 1;
  }
  if (memmem(out, (size_t)r, "</script", 8) || memmem(out, (size_t)r, "</SCRIPT", 8)) {
    fprintf(stderr, "  FAIL js %s: </script in output\n", v->name);
    lb__t_cur_failed = 1;
  }
  free(out);
  free(out2);
}

static void check_css(const vec *v) {
  uint8_t *out, *out2;
  size_t line, n = strlen(v->in);
  ptrdiff_t r = run(1, v->in, n, &out, &line);
  if (r < 0 || (size_t)r != strlen(v->want) || memcmp(out, v->want, (size_t)r) != 0) {
    fprintf(stderr, "  FAIL css %s: got [%.*s] want [%s] (r=%td)\n", v->name,
            r < 0 ? 0 : (int)r, out, v->want, r);
    lb__t_cur_failed = 1;
    free(out);
    return;
  }
  if ((size_t)r > n) { fprintf(stderr, "  FAIL css %s: grew\n", v->name); lb__t_cur_failed = 1; }
  for (size_t step = 1; step <= 3; step += 2) {
    uint8_t *f;
    size_t fl;
    ptrdiff_t fr = feed_any(1, (const uint8_t *)v->in, n, step, &f, &fl);
    if (fr != r || memcmp(f, out, (size_t)r) != 0) {
      fprintf(stderr, "  FAIL css %s: fed in %zu-byte pieces: [%.*s] (r=%td)\n", v->name, step,
              fr < 0 ? 0 : (int)fr, f, fr);
      lb__t_cur_failed = 1;
    }
    free(f);
  }
  ptrdiff_t r2 = run(1, (const char *)out, (size_t)r, &out2, &line);
  if (r2 != r || memcmp(out, out2, (size_t)r) != 0) {
    fprintf(stderr, "  FAIL css %s: not idempotent\n", v->name);
    lb__t_cur_failed = 1;
  }
  free(out);
  free(out2);
}

static const vec JS[] = {
  {"regex after if(...) parsed as division (tdewolff#132)",
   "if (1) /^data:[^;]*;base64,/.test(b) ? r=1 : r=2", "if(1)/^data:[^;]*;base64,/.test(b)?r=1:r=2"},
  {"regex after while(...)", "while (x) /a/.test(s)", "while(x)/a/.test(s)"},
  {"division chain read as regex", "x = a /g/ i", "x=a/g/i"},
  {"division after )", "x = (4) / 2 / 1", "x=(4)/2/1"},
  {"division after ]", "x = a[0] / 2 / 2", "x=a[0]/2/2"},
  {"regex after return", "function f(s) { return /=+/.test(s) }", "function f(s){return/=+/.test(s)}"},
  {"regex after typeof/case/yield", "switch (x) { case /a/.source: y = typeof /b/ }", "switch(x){case/a/.source:y=typeof/b/}"},
  {"regex after => (jsmin-php#23)", "f = e => /Edg\\//.test(e)", "f=e=>/Edg\\//.test(e)"},
  {"regex after a {} block", "{}\n/foo/g.test(x)", "{}/foo/g.test(x)"},
  {"/ inside a regex class ends it (matthiasmullie#59)", "x = /[/]/; y = /\\// ; z = /a\\/b/", "x=/[/]/;y=/\\//;z=/a\\/b/"},
  {"spaces inside a regex squeezed (JSMin#19)", "x = /(NaN| {2}|^$)/", "x=/(NaN| {2}|^$)/"},
  {"newline then / is a division, not ASI", "x = a\n/b/g.exec(c)", "x=a/b/g.exec(c)"},
  {"restricted return lost its newline", "function f(){return\n42}", "function f(){return\n42}"},
  {"newline hidden in a block comment", "function f(){return/*\n*/42}", "function f(){return\n42}"},
  {"postfix restriction (rapidus#6)", "a\n++b", "a\n++b"},
  {"no ASI before (", "var y=f\n(function(){return 5})", "var y=f(function(){return 5})"},
  {"let as an identifier", "var let=1\nlet\nx=2", "var let=1\nlet\nx=2"},
  {"a + ++b became a+++b (node-jsmin#4)", "a + ++b; a - --b; a- -1; a + +b; a++ +b", "a+ ++b;a- --b;a- -1;a+ +b;a++ +b"},
  {"--> at a line start is a comment (Annex B)", "while(x-- > 0)\n--> comment\ny", "while(x-- >0)\ny"},
  {"x-->0 keeps a space", "while(x-->0);", "while(x-- >0);"},
  {"<!-- starts a comment (Annex B)", "a < ! --b", "a<! --b"},
  {"<!-- comment removed", "a = 1 <!-- gone\nb", "a=1\nb"},
  {"comment markers inside strings", "x = \"/* not */\" + '// nor'", "x=\"/* not */\"+'// nor'"},
  {"template: // inside", "x = `${u}//not a comment ${u}`", "x=`${u}//not a comment ${u}`"},
  {"template: spaces kept", "x = `  two  spaces  `", "x=`  two  spaces  `"},
  {"template: $${ (tdewolff#538)", "x = `$${u}`", "x=`$${u}`"},
  {"template: nested with braces", "x = `x${ `y${ a }  z` }  w${ {a:1}.a }`", "x=`x${`y${a}  z`}  w${{a:1}.a}`"},
  {"</script in a string", "x = \"</script>\"", "x=\"<\\/script>\""},
  {"</SCRIPT in a template and a regex", "x = `</SCRIPT>`; y = /<\\/script>|<\\/Script/", "x=`<\\/SCRIPT>`;y=/<\\/script>|<\\/Script/"},
  {"< then a regex would form </script", "x = a < /script/.test(s)", "x=a< /script/.test(s)"},
  {"\\x3c not decoded (esbuild#1322)", "x = \"\\x3c/script>\"", "x=\"\\x3c/script>\""},
  {"unicode escapes kept (tdewolff#449/#654)", "var \\u0061bc = 5; y = '\\u0022'; z = \"\\u2028\"", "var \\u0061bc=5;y='\\u0022';z=\"\\u2028\""},
  {"non-ASCII identifier before in (esbuild#2910)", "x = a.\xcf\x80 in a", "x=a.\xcf\x80 in a"},
  {"string before in, typeof string", "x = \"b\" in a; y = typeof \"s\"", "x=\"b\"in a;y=typeof\"s\""},
  {"1..toString kept", "x = 1..toString()", "x=1..toString()"},
  {"1 .toString space kept (esbuild#1706)", "x = 2147483647 .toString(16)", "x=2147483647 .toString(16)"},
  {"exponent number (tdewolff#339)", "x = 1e-10 + .5e+3 - 0x1F", "x=1e-10+.5e+3-0x1F"},
  {"NBSP and BOM are whitespace", "a\xc2\xa0=\xef\xbb\xbf" "1", "a=1"},
  {"U+2028 inside a string verbatim", "x = \"a\xe2\x80\xa8" "b\"", "x=\"a\xe2\x80\xa8" "b\""},
  {"U+2028 between tokens is a line break", "a\xe2\x80\xa8" "b", "a\nb"},
  {"license comment kept", "/*! keep */\nvar a = 1 /* drop */", "/*! keep */var a=1"},
  {"license comment after / (would become //)", "x = a / /*! k */ b", "x=a/ /*! k */b"},
  {"hashbang loses its newline (tdewolff 2.12.4)", "#!/usr/bin/env node\nconsole.log(1)", "#!/usr/bin/env node\nconsole.log(1)"},
  {"for-header semicolons (tdewolff#53)", "for (a; ;) {}", "for(a;;){}"},
  {"missing-semicolon join (tdewolff#109)", "a.b={}\n\"foo\"&&x()", "a.b={}\n\"foo\"&&x()"},
  {"} then identifier keeps its newline", "a = function(){}\nb()", "a=function(){}\nb()"},
  {"throw/break/continue restricted", "for(;;){break\nlabel; continue\nx}", "for(;;){break\nlabel;continue\nx}"},
  {"newline dropped after operators", "a =\n1 +\n2;\nb", "a=1+2;b"},
  {"identifiers separated", "var a = new Foo; return this", "var a=new Foo;return this"},
  {"regex flags then identifier", "x = /a/g in y", "x=/a/g in y"},
  {"regex then division", "x = /a/ / 2", "x=/a/ /2"},
  {"x / /re/", "x = y / /re/.exec(s)[0]", "x=y/ /re/.exec(s)[0]"},
  {"private names", "class A { #x = 1; m() { return #x in this } }", "class A{#x=1;m(){return#x in this}}"},
  {"optional chaining vs ?.5", "x = a ?.5 : b; y = a?.b", "x=a?.5:b;y=a?.b"},
  {"spread and arrow", "f(... a, (b) => c)", "f(...a,(b)=>c)"},
  {"string line continuation", "x = 'a\\\nb'", "x='a\\\nb'"},
  {"; before } dropped (size: esbuild drops it)", "function f(){ a(); return; }", "function f(){a();return}"},
  {"; before } dropped across comments", "function f(){ a() ; // c\n /* d */ }", "function f(){a()}"},
  {"; before } dropped in a class body", "class A { x = 1; m() {}; }", "class A{x=1;m(){}}"},
  {"empty statement in a block dropped", "{ ; }", "{}"},
  {";; before }: both go", "{ a;; }", "{a}"},
  {";; before } after if(...): the body stays", "{ if (a);; }", "{if(a);}"},
  {"16 ;s before }: all go (feed capacity: at most 16 held)", "{a;;;;;;;;;;;;;;;;}", "{a}"},
  {"17 ;s before }: all stay (a feed call could not write them)", "{a;;;;;;;;;;;;;;;;;}", "{a;;;;;;;;;;;;;;;;;}"},
  {";; then a statement: both stay", "a;; b; for (;;) {}", "a;;b;for(;;){}"},
  {"; before a kept comment stays", "function f(){ a(); /*! k */ }", "function f(){a();/*! k */}"},
  {"; at the end of input stays", "a();", "a();"},
  {"; before } kept: if(...) body", "{ if (a) ; }", "{if(a);}"},
  {"; before } kept: if((...)) body, nested parens", "{ if ((a) && f(b)) ; }", "{if((a)&&f(b));}"},
  {"; before } kept: while/for/with body", "{ while (a); for (;;); for (x of y); with (o); }", "{while(a);for(;;);for(x of y);with(o);}"},
  {"; before } kept: else body", "{ if (a) b; else; }", "{if(a)b;else;}"},
  {"; before } kept: do body", "{ do ; while (a) }", "{do;while(a)}"},
  {"; before } kept: label body", "{ l: ; }", "{l:;}"},
  {"; before } kept: case and default", "switch (x) { case 1: ; default: ; }", "switch(x){case 1:;default:;}"},
  {"; before } dropped after a call's )", "{ f(a); }", "{f(a)}"},
  {"; before } dropped inside a for header's function", "for (a = function(){ b; }; c;) {}", "for(a=function(){b};c;){}"},
  {"newline after a block statement's } dropped", "function f(a = {}, b = function(){}) { g() }\nx()\nif (a) { b }\nc\nelse_()\ntry { d } finally { e }\n++f\n{ g }\n'h'", "function f(a={},b=function(){}){g()}x()\nif(a){b}c\nelse_()\ntry{d}finally{e}++f\n{g}\n'h'"},
  {"newline after an expression's } kept: object, function, arrow, class", "a = {}\nb\nc = function(){}\nd\ne = () => {}\nf\ng = class {}\nh\nfor (;;) { i = function j(){}\nk }", "a={}\nb\nc=function(){}\nd\ne=()=>{}\nf\ng=class{}\nh\nfor(;;){i=function j(){}\nk}"},
  {"newline after } kept where the kind is not tracked: switch, catch, class", "switch (a) {}\nb\ntry {} catch (e) {}\nc\nclass D {}\ne", "switch(a){}\nb\ntry{}catch(e){}\nc\nclass D{}\ne"},
  {"function after ASI or in an expression: its } keeps the newline", "x = y\nfunction f(){}\nz\nq = function(){ return function(){} }\nr", "x=y\nfunction f(){}\nz\nq=function(){return function(){}}\nr"},
  {"empty input", "", ""},
  {"only comments", "// a\n/* b */", ""},
};

static const vec CSS[] = {
  {"comment markers inside strings", "a { content: \"/* not a comment */ ; } {\" }", "a{content:\"/* not a comment */ ; } {\"}"},
  {"string escapes", "a { content: \"\\201C\" }", "a{content:\"\\201C\"}"},
  {"url with spaces, quoted", "a { background: url( \"a b.png\" ) }", "a{background:url(\"a b.png\")}"},
  {"url unquoted trimmed, escapes kept", "a{b:url( a;b\\)c.png )}", "a{b:url(a;b\\)c.png)}"},
  {"calc spaces lost (tdewolff#767)", "a { width: calc(100% - 2px); height: calc(24px + 2.25em) }", "a{width:calc(100% - 2px);height:calc(24px + 2.25em)}"},
  {"! important", "a { color: red ! important }", "a{color:red!important}"},
  {"and( became a function (GoWDK#189)", "@media screen and (max-width: 100px) , print and (color) { a { b: c } }", "@media screen and (max-width:100px),print and (color){a{b:c}}"},
  {"empty custom properties deleted (cssnano#1165)", ":root { --x: ; --y:; --z:   }", ":root{--x: ;--y:;--z: }"},
  {"custom property value verbatim", "a { --X:  A  B ; --json: {\"k\": 1} ; --f: calc( 1px+2px ) }", "a{--X:A  B;--json:{\"k\": 1};--f:calc( 1px+2px )}"},
  {"descendant space", ".a .b, .a.b { x: y }", ".a .b,.a.b{x:y}"},
  {"a :hover differs from a:hover", "a :hover { x: y } a:hover { x: y }", "a :hover{x:y}a:hover{x:y}"},
  {"child and sibling combinators", "a > b ~ c + d { x: y }", "a>b~c + d{x:y}"},
  {"attribute selector flags", "a[href$=\".pdf\" i] { x: y }", "a[href$=\".pdf\" i]{x:y}"},
  {"escaped selectors keep the escape's space", ".sm\\:p-4 { x: y } .\\31 0 { x: y }", ".sm\\:p-4{x:y}.\\31 0{x:y}"},
  {"hacks", "a { *zoom: 1; _height: 1px }", "a{*zoom:1;_height:1px}"},
  {"nesting, @layer, @container", "a { &:hover { x: y } } @layer base { a { x: y } } @container (min-width: 1px) { a { x: y } }",
   "a{&:hover{x:y}}@layer base{a{x:y}}@container (min-width:1px){a{x:y}}"},
  {"license comment kept", "/*! keep me */\na { x: y } /* drop */", "/*! keep me */ a{x:y}"},
  {"font shorthand slash", "a { font: 12px/1.5 serif }", "a{font:12px/1.5 serif}"},
  {"grid-template-areas strings", "a { grid-template-areas: \"a  b\"\n  \"c  d\" }", "a{grid-template-areas:\"a  b\" \"c  d\"}"},
  {"@charset and @import", "@charset \"UTF-8\";\n@import url(x.css) screen;\na { x: y }", "@charset \"UTF-8\";@import url(x.css) screen;a{x:y}"},
  {"negative value keeps its space", "a { margin: 0 -1px }", "a{margin:0 -1px}"},
  {"comment between tokens is a space", "a/**/b { x: y }", "a b{x:y}"},
  {"shorthands not rewritten", "a { padding: 0px 0px 0px 0px; flex: 1 1 0%; color: #FFFFFF }", "a{padding:0px 0px 0px 0px;flex:1 1 0%;color:#FFFFFF}"},
  {"var() fallback units kept (tdewolff#371)", "a { x: var(--a, 0px) }", "a{x:var(--a, 0px)}"},
  {"; before } dropped (size: esbuild drops it)", "a { b: c; d: e; }\nf { g: h ; /* x */ }", "a{b:c;d:e}f{g:h}"},
  {";; before } and empty declarations dropped", "a { b: c;; ; } d { ; }", "a{b:c}d{}"},
  {"; before } in nested rules and @media", "@media print { a { b: c; & x { d: e; } } }", "@media print{a{b:c;& x{d:e}}}"},
  {"; before } kept before a kept comment", "a { b: c; /*! k */ }", "a{b:c;/*! k */}"},
  {"; before } kept after a custom property (cssnano#1165)", "a { --x: ; } b { --y:; } c { --z: 1; }", "a{--x: ;}b{--y:;}c{--z:1;}"},
  {"; before } kept after an at-rule statement", "@media print { @import url(x.css); @layer a, b; }", "@media print{@import url(x.css);@layer a,b;}"},
  {"; inside a string or url() is not a separator", "a { b: \";}\"; c: url(a;}) }", "a{b:\";}\";c:url(a;})}"},
};

static void test_js_hazard_rows(void) {
  for (size_t i = 0; i < sizeof JS / sizeof JS[0]; i++) check_js(&JS[i]);
}

static void test_css_hazard_rows(void) {
  for (size_t i = 0; i < sizeof CSS / sizeof CSS[0]; i++) check_css(&CSS[i]);
}

static void test_regex_or_division_tokens(void) {
  struct { const char *src; int nth; uint32_t kind; } c[] = {
    {"if(1)/^a/.test(b)", 4, LB_MINIFY_TOK_REGEX},
    {"a /g/ i", 1, LB_MINIFY_TOK_PUNCT},
    {"{}/foo/g", 2, LB_MINIFY_TOK_REGEX},
    {"x=e=>/a/", 4, LB_MINIFY_TOK_REGEX},
    {"a++ /2", 2, LB_MINIFY_TOK_PUNCT},
    {"return /x/", 1, LB_MINIFY_TOK_REGEX},
    {"this / 2", 1, LB_MINIFY_TOK_PUNCT},
    {"`a${ {} }b`/2", 4, LB_MINIFY_TOK_PUNCT},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    lb_minify_js_lexer lx;
    lb_minify_token t;
    lb_minify_js_lexer_init(&lx, (const uint8_t *)c[i].src, strlen(c[i].src));
    int k = -1, r = 0;
    while (k < c[i].nth && (r = lb_minify_js_next(&lx, &t)) > 0) k++;
    if (r <= 0 || t.kind != c[i].kind) {
      fprintf(stderr, "  FAIL token %d of %s: kind %u r %d\n", c[i].nth, c[i].src, t.kind, r);
      lb__t_cur_failed = 1;
    }
  }
}

static void check_err(int css, const char *src, ptrdiff_t code, size_t line) {
  uint8_t *out;
  size_t got = 99;
  ptrdiff_t r = run(css, src, strlen(src), &out, &got);
  if (r != code || got != line) {
    fprintf(stderr, "  FAIL error for [%s]: r=%td line=%zu (want %td, %zu)\n", src, r, got, code, line);
    lb__t_cur_failed = 1;
  }
  free(out);
  got = 99;
  r = feed_any(css, (const uint8_t *)src, strlen(src), 1, &out, &got);
  if (r != code || got != line) {
    fprintf(stderr, "  FAIL error fed byte by byte [%s]: r=%td line=%zu (want %td, %zu)\n", src, r, got, code, line);
    lb__t_cur_failed = 1;
  }
  free(out);
}

static void test_errors_name_the_line(void) {
  check_err(0, "a\nb = 'x\n", LB_ESTRING, 2);
  check_err(0, "a\n\nb = \"x", LB_ESTRING, 3);
  check_err(0, "a\n/* open", LB_ECOMMENT, 2);
  check_err(0, "/*! open", LB_ECOMMENT, 1);
  check_err(0, "x\ny = /abc\n/", LB_EREGEXP, 2);
  check_err(0, "x\ny = /[/\n", LB_EREGEXP, 2);
  check_err(0, "x = `a${b", LB_ETEMPLATE, 1);
  check_err(0, "x\ny = {} / 2\n", LB_EREGEXP, 2); /* `}` then `/`: a regex */
  check_err(0, "x = `abc", LB_ETEMPLATE, 1);
  check_err(0, "x\n\ny = /</script/", LB_EREGEXP, 3); /* flags "script": would write </script */
  check_err(0, "a\r\nb\r\nc = 'x", LB_ESTRING, 3);
  check_err(1, "a{}\nb { content: \"x\n }", LB_ESTRING, 2);
  check_err(1, "a{}\n\n/* x", LB_ECOMMENT, 3);
  check_err(1, "a { b: url(x", LB_EURLTOKEN, 1);
  /* a template nesting beyond the limit is refused, not overflowed */
  char deep[64 * 3 + 8];
  size_t w = 0;
  for (int i = 0; i < 65; i++) { deep[w++] = '`'; deep[w++] = '$'; deep[w++] = '{'; }
  deep[w] = 0;
  check_err(0, deep, LB_ETOOMANY, 1);
}

static void test_capacity(void) {
  const char *src = "var a = 1 ;\n x";
  uint8_t out[64];
  size_t line;
  LB_CHECK_EQ(lb_minify_js((const uint8_t *)src, strlen(src), out, 3, &line), LB_ENOSPACE);
  LB_CHECK_EQ(lb_minify_css((const uint8_t *)"a { b: c }", 10, out, 3, &line), LB_ENOSPACE);
  LB_CHECK_EQ(lb_minify_js(NULL, 3, out, 3, &line), LB_EINVAL);
  LB_CHECK_EQ(lb_minify_js(NULL, 0, NULL, 0, &line), 0);
  LB_CHECK_EQ(lb_minify_max_len(10), 52);
  /* worst case growth stays within max_len */
  const char *grow = "1$1$1$1$x-->0";
  size_t n = strlen(grow);
  ptrdiff_t r = lb_minify_js((const uint8_t *)grow, n, out, lb_minify_max_len(n), &line);
  LB_CHECK(r > 0 && (size_t)r <= lb_minify_max_len(n));
  LB_CHECK_MEM(out, "1 $1$1$1$x-- >0", (size_t)r);
}

static void test_feed_capacity_and_held_tokens(void) {
  lb_minify_js_state m;
  uint8_t out[128];
  size_t used, line;
  lb_minify_js_init(&m);
  /* too small an output buffer: refused before anything is consumed */
  LB_CHECK_EQ(lb_minify_js_feed(&m, (const uint8_t *)"var a", 5, 0, out, 8, &used, &line), LB_ENOSPACE);
  LB_CHECK_EQ(used, 0);
  /* `1` may continue (`1e5`) and `=` may be `==`: held back; `var a` is
   * complete (LB_MINIFY_LOOKAHEAD bytes follow it) */
  LB_CHECK_EQ(lb_minify_js_feed(&m, (const uint8_t *)"var a = 1", 9, 0, out, sizeof out, &used, &line), 5);
  LB_CHECK_MEM(out, "var a", 5);
  LB_CHECK_EQ(used, 5);
  ptrdiff_t r = lb_minify_js_feed(&m, (const uint8_t *)" = 1", 4, 1, out, sizeof out, &used, &line);
  LB_CHECK_MEM(out, "=1", (size_t)r);
  LB_CHECK_EQ(used, 4);
  /* `;`s before a possible `}` are held across calls (at most
   * LB_MINIFY_MAX_HELD), then written by a later call given few bytes: its
   * lb_minify_max_len covers them */
  lb_minify_js_init(&m);
  const char *semis = "a;;;;;;;;;;;;;;;;    ";
  r = lb_minify_js_feed(&m, (const uint8_t *)semis, 21, 0, out, sizeof out, &used, &line);
  LB_CHECK_EQ(r, 1);
  LB_CHECK_EQ(used, 17);
  LB_CHECK_EQ(m.pend_semi, 16);
  r = lb_minify_js_feed(&m, (const uint8_t *)"    b", 5, 1, out, lb_minify_max_len(5), &used, &line);
  LB_CHECK_EQ(r, 17);
  LB_CHECK_MEM(out, ";;;;;;;;;;;;;;;;b", (size_t)r);
}

int main(void) {
  LB_RUN(test_js_hazard_rows);
  LB_RUN(test_css_hazard_rows);
  LB_RUN(test_regex_or_division_tokens);
  LB_RUN(test_errors_name_the_line);
  LB_RUN(test_capacity);
  LB_RUN(test_feed_capacity_and_held_tokens);
  return LB_DONE();
}
