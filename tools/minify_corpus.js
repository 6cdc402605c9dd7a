// tools/minify_corpus.js: the equivalence harness of conformance/webassets.md
// §3 for lb_minify's output (spec/minify_corpus_spec.lua drives it).
//
//   node tools/minify_corpus.js js <lib> <file>      prints the exercise digest
//   node tools/minify_corpus.js css <orig> <min>     prints "diffs N" (+ the first ones)
//
// Run with NODE_PATH=<corpus>/node_modules (jsdom, lightningcss). A JS file is
// loaded from the given path (require for the pure libraries, eval into a
// jsdom window for jquery and bootstrap), exercised, and the SHA-256 of
// JSON.stringify(results) printed: the same digest for the original and the
// minified file means the same behaviour on the exercise. CSS: both sides are
// canonicalized by lightningcss (minify) and compared declaration by
// declaration (at-rule/selector context + property:value!important).
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const path = require('path');

function digest(v) {
  return crypto.createHash('sha256').update(JSON.stringify(v)).digest('hex');
}

function pure(lib, file) {
  // Loaded as a CommonJS module body whatever package.json says (d3's
  // package is "type": "module", its dist file is UMD).
  const mod = { exports: {} };
  const src = fs.readFileSync(file, 'utf8');
  if (lib === 'vue') {
    // the global build defines `var Vue`; its compiler looks Vue up globally
    globalThis.Vue = new Function(src + '\n;return Vue')();
  } else {
    new Function('module', 'exports', 'require', '__filename', '__dirname', src)(
      mod, mod.exports, require, path.resolve(file), path.dirname(path.resolve(file)));
  }
  const m = lib === 'vue' ? globalThis.Vue : mod.exports;
  const r = [];
  if (lib === 'plus') r.push(m.v); // the harness's own mutation test
  if (lib === 'vue') {
    r.push(m.version, Object.keys(m).sort(), String(m.compile('<div :a="b" @click="f(1)">{{ c + 1 }}<span v-if="d">x</span><i v-for="i in 3">{{ i }}</i></div>')));
    r.push(m.reactive({ a: [1, { b: 2 }] }).a[1].b, m.computed(() => 6 * 7).value, m.isRef(m.ref(1)), m.toRaw(m.shallowReactive({ x: 1 })));
  }
  if (lib === 'typescript') {
    r.push(m.version, m.transpileModule('enum E { A, B = "x" } let x: number = 1; class C<T> { constructor(private a: T) {} }\n' +
      'export default async function* f(o?: { p: number }) { yield o?.p ?? x; }\nconst t = `a${x}b` as const; label: for (;;) break label;',
      { compilerOptions: { target: 1, module: 1 } }).outputText);
    const sf = m.createSourceFile('a.ts', 'let a = /re/g.test(b) ? 1 : 2; type T = { [k: string]: T };', 99, true);
    r.push(sf.statements.length, m.SyntaxKind[sf.statements[0].kind], m.createPrinter().printFile(sf));
  }
  if (lib === 'lodash') {
    const _ = m;
    r.push(_.template('hello <%= user %> <%- tag %>!')({ user: 'x', tag: '<b>' }));
    r.push(_.chunk([1, 2, 3, 4, 5], 2), _.camelCase('Foo Bar-baz'), _.kebabCase('fooBarBaz'));
    r.push(_.get({ a: [{ b: { c: 3 } }] }, 'a[0].b.c'), _.isEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }));
    r.push(_.groupBy([6.1, 4.2, 6.3], Math.floor), _.sortBy([{ n: 'b', a: 2 }, { n: 'a', a: 1 }], ['a']));
    r.push(_.merge({ a: [{ b: 2 }] }, { a: [{ c: 3 }] }), _.cloneDeep({ x: [1, { y: 2 }] }), _.uniq([2, 1, 2]));
    r.push(_.flattenDeep([1, [2, [3, [4]]]]), _.padStart('5', 3, '0'), _.range(0, 20, 5), _.zip(['a', 'b'], [1, 2]));
    r.push(_.sum([4, 2, 8]), _.escape('<a & "b">'), _.trim('  x  '), _.words('fred, barney, & pebbles'));
    r.push(_.debounce(function () {}, 10).cancel === undefined, _.memoize(x => x * 2)(21), _.toPath('a.b[0].c'));
  } else if (lib === 'underscore') {
    const _ = m;
    r.push(_.template('<%- v %> <%= w %> <% _.each(xs, function(x){ %>[<%= x %>]<% }) %>')({ v: '<&>', w: 'ok', xs: [1, 2] }));
    r.push(_.map([1, 2, 3], x => x * 3), _.filter([1, 2, 3, 4], x => x % 2), _.groupBy(['one', 'two', 'three'], 'length'));
    r.push(_.uniq([1, 2, 1, 3]), _.escape('<a&b>'), _.range(10), _.pluck([{ n: 1 }, { n: 2 }], 'n'), _.chain([3, 1, 2]).sortBy().value());
    r.push(_.isEqual({ a: 1 }, { a: 1 }), _.keys({ a: 1, b: 2 }), _.invert({ a: 'x' }), _.partition([1, 2, 3], x => x > 1));
  } else if (lib === 'moment') {
    const t = m.utc('2020-01-02T03:04:05Z');
    r.push(t.format('YYYY-MM-DD HH:mm:ss dddd MMMM Do'), t.clone().add(40, 'days').format(), t.clone().subtract(1, 'month').toISOString());
    r.push(m.duration(90, 'minutes').humanize(), m.duration({ h: 2, m: 3 }).asSeconds(), t.diff(m.utc('2019-01-01'), 'days'));
    r.push(t.from(m.utc('2021-06-01')), t.isLeapYear(), t.week(), m.utc('2020-02-30').isValid(), t.startOf('isoWeek').format());
    r.push(m.utc('12-25-1995', 'MM-DD-YYYY').valueOf(), t.calendar(m.utc('2020-01-01T00:00:00Z')));
  } else if (lib === 'd3') {
    const d3 = m;
    const s = d3.scaleLinear().domain([0, 10]).range([0, 100]);
    r.push(s(2.5), s.invert(50), s.ticks(5), d3.format('.2f')(Math.PI), d3.format(',')(1234567), d3.format('.1%')(0.123));
    r.push(d3.csvParse('a,b\n1,2\n3,"x,y"'), d3.extent([3, 1, 2]), d3.interpolate('red', 'blue')(0.5), String(d3.color('steelblue').darker()));
    r.push(d3.geoPath()({ type: 'Polygon', coordinates: [[[0, 0], [10, 0], [10, 10], [0, 0]]] }));
    r.push(d3.line()([[0, 0], [1, 2], [3, 1]]), d3.utcFormat('%Y-%m-%d %H:%M')(new Date(Date.UTC(2020, 0, 2, 3, 4))));
    const h = d3.hierarchy({ name: 'r', children: [{ name: 'a' }, { name: 'b', children: [{ name: 'c' }] }] });
    r.push(h.descendants().map(d => d.data.name + d.depth), h.sum(() => 1).value, d3.scaleOrdinal(d3.schemeCategory10)('x'));
    r.push(d3.bisectLeft([1, 2, 3, 4], 2.5), d3.quantile([1, 2, 3, 4], 0.5), d3.pie()([1, 2, 3]).map(a => +a.endAngle.toFixed(6)));
  }
  return r;
}

function dom(lib, file) {
  const { JSDOM } = require('jsdom');
  const html = '<!doctype html><html><body><ul id="l"><li class="a">one</li><li>two</li></ul>' +
    '<div class="dropdown"><button class="btn" data-bs-toggle="dropdown" id="b">x</button>' +
    '<ul class="dropdown-menu"><li><a class="dropdown-item" href="#">i</a></li></ul></div></body></html>';
  const w = new JSDOM(html, { runScripts: 'outside-only', pretendToBeVisual: true }).window;
  w.eval(fs.readFileSync(file, 'utf8'));
  const r = [];
  if (lib === 'jquery') {
    const $ = w.jQuery;
    r.push($('li').length, $('.a').text(), $('#l li:last-child').text(), $.param({ a: [1, 2], b: 'x y' }));
    r.push($.extend(true, {}, { a: { b: 1 } }, { a: { c: 2 } }));
    const d = $('<div/>').data('k', { v: 1 });
    r.push(d.data('k'), $('<p class="x">t</p>').addClass('y').attr('title', 'z').prop('outerHTML'));
    r.push($.map([1, 2, 3], x => x * 2), $.trim ? 'trim' : 'notrim', $('li').map(function () { return this.textContent; }).get());
    r.push($('<div><span>a</span><span>b</span></div>').find('span').eq(1).text(), $.isPlainObject({}), $.type ? 1 : 0);
  } else {
    const bs = w.bootstrap;
    const el = w.document.getElementById('b');
    const dd = bs.Dropdown.getOrCreateInstance(el);
    r.push(typeof dd, dd === bs.Dropdown.getInstance(el), bs.Dropdown.VERSION, Object.keys(bs).sort());
    r.push(typeof bs.Modal, typeof bs.Tooltip, bs.Collapse.NAME, bs.Tooltip.Default.placement);
  }
  return r;
}

function cssDecls(code, name) {
  const { transform } = require('lightningcss');
  const out = transform({ filename: name, code: Buffer.from(code), minify: true, errorRecovery: true }).code.toString();
  // Split the canonical form into declarations with their context: a
  // stack of preludes (at-rules and selectors) and prop:value pairs.
  const decls = [];
  const stack = [];
  let buf = '', i = 0, q = null;
  for (; i < out.length; i++) {
    const c = out[i];
    if (q) { buf += c; if (c === '\\') { buf += out[++i]; } else if (c === q) q = null; continue; }
    if (c === '"' || c === "'") { q = c; buf += c; continue; }
    if (c === '(') { let d = 0; for (; i < out.length; i++) { const e = out[i]; buf += e; if (e === '(') d++; else if (e === ')' && --d === 0) break; } continue; }
    if (c === '{') { stack.push(buf.trim()); buf = ''; continue; }
    if (c === ';' || c === '}') {
      if (buf.trim()) decls.push(stack.join(' > ') + ' | ' + squeeze(buf.trim()));
      buf = '';
      if (c === '}') stack.pop();
      continue;
    }
    buf += c;
  }
  if (buf.trim()) decls.push(stack.join(' > ') + ' | ' + buf.trim());
  return { canon: out, decls };
}

// lightningcss keeps a value that holds var() as a token list, whitespace
// included, so `a, var(--b)` and `a,var(--b)` (the same value) would
// differ: whitespace after a comma outside strings is dropped first.
function squeeze(d) {
  return d.replace(/("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|,\s+/g, (m, str) => str || ',');
}

function cssCompare(a, b) {
  const A = cssDecls(fs.readFileSync(a, 'utf8'), a), B = cssDecls(fs.readFileSync(b, 'utf8'), b);
  if (A.canon === B.canon) return [];
  if (A.decls.join('\n') === B.decls.join('\n')) return [];
  const count = new Map();
  for (const d of A.decls) count.set(d, (count.get(d) || 0) + 1);
  const diffs = [];
  for (const d of B.decls) {
    const n = count.get(d) || 0;
    if (n) count.set(d, n - 1); else diffs.push('+ ' + d);
  }
  for (const [d, n] of count) for (let k = 0; k < n; k++) diffs.push('- ' + d);
  if (!diffs.length) diffs.push('canonical forms differ in order');
  return diffs;
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'js') {
  const lib = a;
  const r = (lib === 'jquery' || lib === 'bootstrap') ? dom(lib, b) : pure(lib, b);
  console.log(digest(r));
} else if (mode === 'css') {
  const d = cssCompare(a, b);
  console.log('diffs ' + d.length);
  for (const x of d.slice(0, 10)) console.log(x);
} else {
  console.error('usage: minify_corpus.js js <lib> <file> | css <orig> <min>');
  process.exit(2);
}
