-- lowbit.muxx against conformance/muxx.md (Go 1.22+ ServeMux semantics),
-- through httptest.
local muxx = require "lowbit.muxx"
local httptest = require "lowbit.httptest"

local function tag(name)
  return function(w, r) w:write(name) end
end

local function serve(m, method, target, opts)
  local w = httptest.new_recorder()
  local r = httptest.new_request(method, target, opts)
  m:serve_http(w, r)
  return w, r
end

-- What the router answered: the handler's tag, or the status it wrote.
local function answer(m, method, target, opts)
  local w = serve(m, method, target, opts)
  if w.status == 200 then return w.body end
  return w.status
end

local function register(m, p, h)
  m:handle(p, h)   -- one line, so that conflict messages name this file
end

-- Registers P1 and P2 in both orders and checks every request in cases
-- ({ method, target, expected }) against each router.
local function both_orders(p1, p2, cases)
  for _, order in ipairs({ { p1, "P1", p2, "P2" }, { p2, "P2", p1, "P1" } }) do
    local m = muxx.new()
    register(m, order[1], tag(order[2]))
    register(m, order[3], tag(order[4]))
    for _, c in ipairs(cases) do
      local got = answer(m, c[1], c[2])
      assert(got == c[3], ("%s then %s: %s %s gave %s, want %s"):format(order[1], order[3], c[1], c[2], tostring(got), tostring(c[3])))
    end
  end
end

-- Registering P1 and P2, in either order, raises naming both and where
-- each was registered.
local function conflicts(p1, p2)
  for _, order in ipairs({ { p1, p2 }, { p2, p1 } }) do
    local m = muxx.new()
    register(m, order[1], tag("first"))
    local ok, err = pcall(register, m, order[2], tag("second"))
    assert.is_false(ok, order[1] .. " then " .. order[2] .. " did not raise")
    err = tostring(err)
    assert.truthy(err:find(("%q"):format(order[1]), 1, true), err)
    assert.truthy(err:find(("%q"):format(order[2]), 1, true), err)
    assert.truthy(err:find("conflicts with", 1, true), err)
    local _, sites = err:gsub("registered at [^)]*muxx_spec%.lua:%d+", "")
    assert.equal(2, sites, err)
  end
end

describe("lowbit.muxx pattern syntax", function()
  it("accepts [METHOD ][HOST]/[PATH] with spaces or tabs after the method", function()
    local m = muxx.new()
    m:handle_func("GET \t /x", tag("x"))
    m:handle_func("example.com/h", tag("h"))
    m:handle_func("POST example.com/p/{id}", tag("p"))
    assert.equal("x", answer(m, "GET", "/x"))
    assert.equal("h", answer(m, "GET", "/h", { host = "example.com" }))
    assert.equal("p", answer(m, "POST", "/p/1", { host = "example.com" }))
  end)

  local bad = {
    { "", "empty pattern" },
    { "GET", "missing /" },
    { "example.com", "missing /" },
    { "{h}.example.com/", "host contains '{'" },
    { "G(T /x", "invalid method" },
    { "/{w}x", "must end with '}'" },
    { "/x{w}", "must start with '{'" },
    { "/{}", "empty wildcard" },
    { "/{...}", "empty wildcard" },
    { "/{a}/{a}", "duplicate wildcard name" },
    { "/{a...}/b", "not at end" },
    { "/{$}/b", "not at end" },
    { "/{1a}", "bad wildcard name" },
    { "/{a-b}", "bad wildcard name" },
    { "/{%61}", "bad wildcard name" },
    { "GET //", "unclean path" },
    { "GET /a/../b", "unclean path" },
    { "GET /a/./b", "unclean path" },
  }
  for _, c in ipairs(bad) do
    it(("rejects %q (%s), naming the pattern and its site"):format(c[1], c[2]), function()
      local m = muxx.new()
      local ok, err = pcall(function() m:handle(c[1], tag("x")) end)
      assert.is_false(ok)
      err = tostring(err)
      assert.truthy(err:find(("%q"):format(c[1]), 1, true), err)
      assert.truthy(err:find(c[2], 1, true), err)
      assert.truthy(err:find("registered at [^)]*muxx_spec%.lua:%d+"), err)
    end)
  end

  it("allows an unclean path in a pattern without a method, and in CONNECT patterns", function()
    local m = muxx.new()
    m:handle("/a//b", tag("x"))
    m:handle("CONNECT /c//d", tag("c"))
    assert.equal("c", answer(m, "CONNECT", "/c//d"))
  end)

  it("unescapes literal segments: /%61 matches /a (and is the same pattern as /a)", function()
    local m = muxx.new()
    m:handle("/%61", tag("a"))
    assert.equal("a", answer(m, "GET", "/a"))
    assert.equal("a", answer(m, "GET", "/%61"))
    conflicts("/%61", "/a")
  end)

  it("does not unescape wildcard names", function()
    assert.has_error(function() muxx.new():handle("/{%61}", tag("x")) end)
    local m = muxx.new()
    m:handle("/{a}", function(w, r) w:write(r:path_value("a") .. "|" .. r:path_value("%61")) end)
    assert.equal("v|", answer(m, "GET", "/v"))
  end)

  it("a trailing slash is an anonymous {...}; {$} matches only the slash", function()
    local m = muxx.new()
    m:handle("/t/", tag("tree"))
    m:handle("/d/{$}", tag("dollar"))
    assert.equal("tree", answer(m, "GET", "/t/"))
    assert.equal("tree", answer(m, "GET", "/t/x/y"))
    assert.equal("dollar", answer(m, "GET", "/d/"))
    assert.equal(404, answer(m, "GET", "/d/x"))
  end)

  it("raises for a nil handler, naming the pattern and the argument", function()
    local m = muxx.new()
    local ok, err = pcall(function() m:handle("GET /n", nil) end)
    assert.is_false(ok)
    assert.matches("bad argument 'h'", tostring(err))
    assert.matches('"GET /n"', tostring(err))
    assert.matches("muxx_spec%.lua:%d+", tostring(err))
    ok, err = pcall(function() m:handle_func("GET /n", {}) end)
    assert.is_false(ok)
    assert.matches("bad argument 'fn'", tostring(err))
    assert.matches('"GET /n"', tostring(err))
  end)
end)

describe("lowbit.muxx precedence and conflicts (conformance table P1/P2)", function()
  it("/a vs /a: conflict (same requests)", function() conflicts("/a", "/a") end)
  it("/{x} vs /{y}: conflict", function() conflicts("/{x}", "/{y}") end)
  it("/ vs /{m...}: conflict", function() conflicts("/", "/{m...}") end)
  it("/a/{x}/ vs /a/{y}/{z...}: conflict", function() conflicts("/a/{x}/", "/a/{y}/{z...}") end)
  it("/a vs /{x}: P1 wins", function()
    both_orders("/a", "/{x}", { { "GET", "/a", "P1" }, { "GET", "/b", "P2" } })
  end)
  it("/a vs /: P1 wins", function()
    both_orders("/a", "/", { { "GET", "/a", "P1" }, { "GET", "/b", "P2" }, { "GET", "/a/b", "P2" } })
  end)
  it("/a vs /{$}: disjoint", function()
    both_orders("/a", "/{$}", { { "GET", "/a", "P1" }, { "GET", "/", "P2" }, { "GET", "/b", 404 } })
  end)
  it("/{z} vs /: P1 wins", function()
    both_orders("/{z}", "/", { { "GET", "/q", "P1" }, { "GET", "/q/r", "P2" }, { "GET", "/", "P2" } })
  end)
  it("/{z} vs /{x...}: P1 wins", function()
    both_orders("/{z}", "/{x...}", { { "GET", "/q", "P1" }, { "GET", "/q/r", "P2" } })
  end)
  it("/{$} vs /{x}: disjoint", function()
    both_orders("/{$}", "/{x}", { { "GET", "/", "P1" }, { "GET", "/q", "P2" }, { "GET", "/q/r", 404 } })
  end)
  it("/b/{$} vs /b/: P1 wins", function()
    both_orders("/b/{$}", "/b/", { { "GET", "/b/", "P1" }, { "GET", "/b/c", "P2" } })
  end)
  it("/b/{$} vs /b: disjoint", function()
    both_orders("/b/{$}", "/b", { { "GET", "/b/", "P1" }, { "GET", "/b", "P2" } })
  end)
  it("/a/{x} vs /{x}/b: conflict (overlap, neither more specific)", function() conflicts("/a/{x}", "/{x}/b") end)
  it("/a/{z}/ vs /{z}/a/: conflict", function() conflicts("/a/{z}/", "/{z}/a/") end)
  it("/{z}/{$} vs /a/: conflict", function() conflicts("/{z}/{$}", "/a/") end)
  it("/b/{m...} vs /a/{x...}: disjoint", function()
    both_orders("/b/{m...}", "/a/{x...}", { { "GET", "/b/x/y", "P1" }, { "GET", "/a/x", "P2" }, { "GET", "/c/x", 404 } })
  end)
  it("/a/{m...} vs /a/{x}/{y...}: P2 wins", function()
    both_orders("/a/{m...}", "/a/{x}/{y...}", { { "GET", "/a/q/r", "P2" }, { "GET", "/a/q/", "P2" }, { "GET", "/a/", "P1" } })
    -- /a/q matches only P1, but P2 matches /a/q/ exactly: as Go, redirect.
    both_orders("/a/{m...}", "/a/{x}/{y...}", { { "GET", "/a/q", muxx.REDIRECT_STATUS } })
  end)
  it("/{x}/{y}/{$} vs /{x}/a/{$}: P2 wins", function()
    both_orders("/{x}/{y}/{$}", "/{x}/a/{$}", { { "GET", "/q/a/", "P2" }, { "GET", "/q/b/", "P1" } })
  end)
  it("/ vs GET /: P2 wins", function()
    both_orders("/", "GET /", { { "GET", "/x", "P2" }, { "HEAD", "/x", "P2" }, { "POST", "/x", "P1" } })
  end)
  it("GET / vs HEAD /: HEAD wins for HEAD requests", function()
    both_orders("GET /", "HEAD /", { { "HEAD", "/", "P2" }, { "HEAD", "/x", "P2" }, { "GET", "/x", "P1" } })
  end)
  it("GET / vs POST /: disjoint", function()
    both_orders("GET /", "POST /", { { "GET", "/x", "P1" }, { "HEAD", "/x", "P1" }, { "POST", "/x", "P2" }, { "PUT", "/x", 405 } })
  end)
  it("GET / vs /foo: conflict", function() conflicts("GET /", "/foo") end)
  it("GET /foo vs HEAD /: conflict", function() conflicts("GET /foo", "HEAD /") end)

  it("different hosts never conflict; a host pattern beats a no-host one", function()
    local m = muxx.new()
    m:handle("a.example/x", tag("a"))
    m:handle("b.example/x", tag("b"))
    m:handle("/x", tag("any"))
    assert.equal("a", answer(m, "GET", "/x", { host = "a.example" }))
    assert.equal("b", answer(m, "GET", "/x", { host = "b.example" }))
    assert.equal("any", answer(m, "GET", "/x", { host = "c.example" }))
  end)

  it("explains an overlap with a request both patterns match", function()
    local m = muxx.new()
    m:handle("/a/{x}", tag("1"))
    local ok, err = pcall(m.handle, m, "/{y}/b", tag("2"))
    assert.is_false(ok)
    assert.matches('like "/a/b"', tostring(err))
    assert.matches("neither is more specific", tostring(err))
    m = muxx.new()
    m:handle("/same", tag("1"))
    ok, err = pcall(m.handle, m, "/same", tag("2"))
    assert.matches("matches the same requests", tostring(err))
  end)
end)

describe("lowbit.muxx matching (conformance table request/registered)", function()
  it("HEAD /item/jba goes to GET /item/{user}", function()
    local m = muxx.new()
    m:handle("GET /item/{user}", function(w, r) w:write("it:" .. r:path_value("user")) end)
    assert.equal("it:jba", answer(m, "HEAD", "/item/jba"))
  end)

  it("HEAD /headwins goes to HEAD /headwins over GET /headwins", function()
    local m = muxx.new()
    m:handle("GET /headwins", tag("get"))
    m:handle("HEAD /headwins", tag("head"))
    assert.equal("head", answer(m, "HEAD", "/headwins"))
    assert.equal("get", answer(m, "GET", "/headwins"))
  end)

  local function three()
    local m = muxx.new()
    m:handle("/a/b/{$}", tag("{$}"))
    m:handle("/a/b/{w}", tag("{w}"))
    m:handle("/a/b/{w...}", tag("{w...}"))
    return m
  end
  it("/a/b/ with /a/b/{$}, /a/b/{w}, /a/b/{w...} chooses {$}", function()
    assert.equal("{$}", answer(three(), "GET", "/a/b/"))
  end)
  it("/a/b/c with the same three chooses {w}", function()
    assert.equal("{w}", answer(three(), "GET", "/a/b/c"))
  end)
  it("/a/b/c/d with the same three chooses {w...}", function()
    assert.equal("{w...}", answer(three(), "GET", "/a/b/c/d"))
  end)
  it("/a/b with the same three matches none of them: the router redirects to /a/b/, as Go", function()
    local m = three()
    local h, pattern = m:handler(httptest.new_request("GET", "/a/b"))
    assert.is_function(h)
    -- No pattern matches /a/b, but {$} matches /a/b/ exactly: Go's
    -- matchOrRedirect redirects (the tree itself matches none).
    assert.equal("/a/b/", pattern)
    local w = serve(m, "GET", "/a/b?q=1")
    assert.equal(muxx.REDIRECT_STATUS, w.status)
    assert.equal("/a/b/?q=1", w:header():get("Location"))
    local only = muxx.new()
    only:handle("/a/b/{w}", tag("{w}"))
    assert.equal(404, answer(only, "GET", "/a/b"))
    assert.equal(404, answer(only, "GET", "/a/b/"))
  end)

  it("splits the request path on / and unescapes each segment: /a%2Fb/100%25", function()
    local m = muxx.new()
    m:handle("/{x}/{y}", function(w, r) w:write(r:path_value("x") .. "|" .. r:path_value("y")) end)
    m:handle("/lit/a%2Fb/{n}", function(w, r) w:write("lit " .. r:path_value("n")) end)
    assert.equal("a/b|100%", answer(m, "GET", "/a%2Fb/100%25"))
    assert.equal("lit 100%", answer(m, "GET", "/lit/a%2Fb/100%25"))
    assert.equal(404, answer(m, "GET", "/lit/a/b/100%25"))
  end)

  it("uses r.url.raw_path (escaped as sent) when it is there", function()
    local m = muxx.new()
    m:handle("/{x}", function(w, r) w:write(r:path_value("x")) end)
    local r = httptest.new_request("GET", "/a%2Fb")
    assert.equal("/a/b", r.url.path)
    local w = httptest.new_recorder()
    m:serve_http(w, r)
    assert.equal("a/b", w.body)
    -- Without raw_path the (unescaped) path is escaped again.
    r = httptest.new_request("GET", "/x%20y")
    r.url.raw_path = ""
    w = httptest.new_recorder()
    m:serve_http(w, r)
    assert.equal("x y", w.body)
  end)

  it("{name} never matches the empty trailing-slash segment", function()
    local m = muxx.new()
    m:handle("/a/{x}", tag("x"))
    assert.equal(404, answer(m, "GET", "/a/"))
    assert.equal("x", answer(m, "GET", "/a/q"))
  end)

  it("host: the request host without port first, then patterns with no host", function()
    local m = muxx.new()
    m:handle("example.com/", tag("host"))
    m:handle("/x", tag("nohost"))
    m:handle("::1/v6", tag("v6"))
    assert.equal("host", answer(m, "GET", "/x", { host = "example.com:8080" }))
    assert.equal("host", answer(m, "GET", "/x", { host = "example.com" }))
    assert.equal("nohost", answer(m, "GET", "/x", { host = "other.com:8080" }))
    assert.equal(404, answer(m, "GET", "/y", { host = "other.com" }))
    assert.equal("v6", answer(m, "GET", "/v6", { host = "[::1]:8080" }))
    assert.equal("nohost", answer(m, "GET", "/x", { host = "" }))
  end)

  it("falls back to no-host patterns when the host's patterns do not match", function()
    local m = muxx.new()
    m:handle("GET example.com/only", tag("host"))
    m:handle("/other", tag("nohost"))
    assert.equal("nohost", answer(m, "GET", "/other", { host = "example.com" }))
  end)

  it("method: exact first, then GET patterns for HEAD, then no-method patterns", function()
    local m = muxx.new()
    m:handle("GET /m", tag("get"))
    m:handle("/m", tag("any"))
    assert.equal("get", answer(m, "GET", "/m"))
    assert.equal("get", answer(m, "HEAD", "/m"))
    assert.equal("any", answer(m, "POST", "/m"))
    m:handle("POST /m", tag("post"))
    assert.equal("post", answer(m, "POST", "/m"))
  end)

  it("path_value: unescaped segments, {rest...} the unescaped remainder, unknown names \"\"", function()
    local m = muxx.new()
    local got
    local function rec(w, r)
      got = { p = r:path_value("p"), w = r:path_value("w"), id = r:path_value("id"), nope = r:path_value("nope") }
    end
    m:handle("/path/{p...}", rec)
    m:handle("/a/b/{w...}", rec)
    m:handle("/u/{id}/x", rec)
    serve(m, "GET", "/path/to/file")
    assert.equal("to/file", got.p)
    serve(m, "GET", "/path/to%2Fa/b%20c")
    assert.equal("to/a/b c", got.p)
    serve(m, "GET", "/a/b/")
    assert.equal("", got.w)
    serve(m, "GET", "/u/j%C3%A9r%C3%B4me/x")
    assert.equal("jérôme", got.id)
    assert.equal("", got.nope)
  end)

  it("sets r.pattern to the matched pattern", function()
    local m = muxx.new()
    m:handle("GET /users/{id}", tag("u"))
    local _, r = serve(m, "GET", "/users/7")
    assert.equal("GET /users/{id}", r.pattern)
    assert.equal("7", r:path_value("id"))
    _, r = serve(m, "GET", "/nope")
    assert.equal("", r.pattern)
  end)

  it("backtracks from a literal branch to a wildcard when the literal fails deeper", function()
    local m = muxx.new()
    m:handle("/a/b/c", tag("abc"))
    m:handle("/a/{x}/d", function(w, r) w:write("x=" .. r:path_value("x")) end)
    m:handle("/{y}/b/e", function(w, r) w:write("y=" .. r:path_value("y")) end)
    assert.equal("abc", answer(m, "GET", "/a/b/c"))
    assert.equal("x=b", answer(m, "GET", "/a/b/d"))
    assert.equal("y=a", answer(m, "GET", "/a/b/e"))
  end)

  it("keeps path values of a wildcard match when / would also match (no redirect)", function()
    local m = muxx.new()
    m:handle("/", tag("root"))
    m:handle("/p/{a}/{b...}", function(w, r) w:write(r:path_value("a") .. "+" .. r:path_value("b")) end)
    assert.equal("1+2/3", answer(m, "GET", "/p/1/2/3"))
    assert.equal("root", answer(m, "GET", "/q"))
  end)

  it("m:handler(r) returns the handler and pattern without running it or touching r", function()
    local m = muxx.new()
    local h0 = tag("h")
    m:handle("GET /h/{id}", h0)
    local r = httptest.new_request("GET", "/h/1")
    local h, pattern = m:handler(r)
    assert.equal(h0, h)
    assert.equal("GET /h/{id}", pattern)
    assert.is_nil(r.pattern)
    assert.equal("", r:path_value("id"))
    h, pattern = m:handler(httptest.new_request("GET", "/zz"))
    assert.equal("", pattern)
    local w = httptest.new_recorder()
    h(w, httptest.new_request("GET", "/zz"))
    assert.equal(404, w.status)
  end)

  it("accepts table handlers with serve_http, and is itself a handler and callable", function()
    local inner = muxx.new()
    inner:handle("/in/{x}", function(w, r) w:write("inner " .. r:path_value("x")) end)
    local outer = muxx.new()
    outer:handle("/in/", inner)
    outer:handle("/obj", { serve_http = function(self, w, r) w:write("obj") end })
    assert.equal("inner 5", answer(outer, "GET", "/in/5"))
    assert.equal("obj", answer(outer, "GET", "/obj"))
    local w = httptest.new_recorder()
    outer(w, httptest.new_request("GET", "/obj"))
    assert.equal("obj", w.body)
  end)
end)

describe("lowbit.muxx responses the router writes", function()
  it("redirects /x to /x/ when /x/ is registered, keeping the query", function()
    local m = muxx.new()
    m:handle("/x/", tag("x"))
    local w = serve(m, "GET", "/x?a=1&b=two")
    assert.equal(307, muxx.REDIRECT_STATUS)
    assert.equal(307, w.status)
    assert.equal("/x/?a=1&b=two", w:header():get("Location"))
    assert.equal("text/html; charset=utf-8", w:header():get("Content-Type"))
    assert.equal('<a href="/x/?a=1&amp;b=two">Temporary Redirect</a>.\n', w.body)
    w = serve(m, "HEAD", "/x")
    assert.equal(307, w.status)
    assert.equal("", w.body)
    w = serve(m, "POST", "/x")
    assert.equal(307, w.status)
    assert.equal("/x/", w:header():get("Location"))
  end)

  -- A browser reads "/\evil.example" as "//evil.example", another site: a
  -- cleaned path that starts "/\" must not go out with a bare backslash.
  it("escapes backslashes in the Location of a clean-path redirect (no open redirect)", function()
    local m = muxx.new()
    m:handle("/", tag("root"))
    for _, target in ipairs({ "/a/../\\evil.example/", "/./\\evil.example", "/a/b/../../\\\\evil.example" }) do
      local w = serve(m, "GET", target)
      assert.equal(307, w.status, target)
      local loc = w:header():get("Location")
      assert.falsy(loc:find("\\", 1, true), loc)
      assert.matches("^/%%5C", loc, nil, false, target)
    end
  end)

  it("redirects /x to /x/ when a trailing multi wildcard would match the empty rest, even with / registered", function()
    local m = muxx.new()
    m:handle("/", tag("root"))
    m:handle("/x/{rest...}", tag("x"))
    local w = serve(m, "GET", "/x")
    assert.equal(307, w.status)
    assert.equal("/x/", w:header():get("Location"))
    assert.equal("root", answer(m, "GET", "/y"))
  end)

  -- Go 1.22's matchOrRedirect: redirect /p to /p/ when /p has no exact
  -- match and /p/ has one (exactMatch: no multi-wildcard last, or one
  -- taking the empty rest). { patterns, method, target, answer, Location }.
  local slash_cases = {
    { { "/c/d/{$}" }, "GET", "/c/d?q=1", 307, "/c/d/?q=1" },
    { { "/c/d/{$}" }, "HEAD", "/c/d", 307, "/c/d/" },
    { { "/c/d/{$}" }, "POST", "/c/d", 307, "/c/d/" },
    { { "GET /c/d/{$}" }, "HEAD", "/c/d", 307, "/c/d/" },
    { { "/c/{x}/{$}" }, "GET", "/c/zz", 307, "/c/zz/" },
    { { "/c/d/{rest...}" }, "GET", "/c/d?a=1&a=2", 307, "/c/d/?a=1&a=2" },
    { { "/c/d/" }, "GET", "/c/d", 307, "/c/d/" },
    { { "/c/d/{$}", "/" }, "GET", "/c/d", 307, "/c/d/" },           -- "/" matches /c/d, not exactly
    { { "/c/d/{$}", "/c/{x...}" }, "GET", "/c/d", 307, "/c/d/" },   -- as does /c/{x...}
    { { "/c/d/{$}", "/c/{x}" }, "GET", "/c/d", "{x}" },             -- exact match: served
    { { "/c/d/{$}", "/c/d" }, "GET", "/c/d", "/c/d" },
    { { "/c/d/{$}", "/c/d" }, "GET", "/c/d/", "/c/d/{$}" },
    { { "/c/d/{$}" }, "GET", "/c/d/", "/c/d/{$}" },
    { { "/c/d/{$}" }, "GET", "/c/d/e", 404 },
    { { "/c/d/{$}" }, "GET", "/c", 404 },                           -- /c/ is not matched
    { { "/c/" }, "GET", "/c/d", "/c/" },                            -- /c/d/ by /c/ is not exact
    { { "/c/d/" }, "GET", "/c/d/e", "/c/d/" },
    { { "/c/d/{w}" }, "GET", "/c/d", 404 },                         -- {w} never matches ""
    { { "POST /c/d/{$}" }, "GET", "/c/d", 405 },                    -- method: no redirect
    { { "h.example/c/d/{$}" }, "GET", "/c/d", 307, "/c/d/", { host = "h.example:80" } },
    { { "h.example/c/d/{$}" }, "GET", "/c/d", 404, nil, { host = "other.example" } },
    { { "/c/d/{$}" }, "GET", "/c/./d", 307, "/c/d/" },              -- slash and clean in one
  }
  for _, c in ipairs(slash_cases) do
    it(("%s %s with %s answers %s"):format(c[2], c[3], table.concat(c[1], ", "), tostring(c[5] or c[4])), function()
      local m = muxx.new()
      for _, p in ipairs(c[1]) do
        m:handle(p, function(w, r) w:write(p == "/c/{x}" and "{x}" or p) end)
      end
      local w = serve(m, c[2], c[3], c[6])
      local got = w.status == 200 and w.body or w.status
      assert.equal(c[4], got)
      assert.equal(c[5], w:header():get("Location"))
    end)
  end

  it("does not redirect when the method does not match under /x/", function()
    local m = muxx.new()
    m:handle("POST /x/", tag("x"))
    local w = serve(m, "GET", "/x")
    assert.equal(405, w.status)
    assert.equal("POST", w:header():get("Allow"))
  end)

  local unclean = {
    { "//a", "/a" }, { "/a/./b", "/a/b" }, { "/a/../b?q=1", "/b?q=1" }, { "/a//", "/a/" },
    { "/a/b/..", "/a" }, { "/../a/", "/a/" },
  }
  for _, c in ipairs(unclean) do
    it(("redirects the unclean path %s to %s"):format(c[1], c[2]), function()
      local m = muxx.new()
      m:handle("/", tag("root"))
      -- Built by hand: url.parse would read "//a" as an authority.
      local r = httptest.new_request("GET", "/")
      local path, q = c[1]:match("^([^?]*)%??(.*)$")
      r.url.path, r.url.raw_path, r.url.raw_query = path, path, q
      local w = httptest.new_recorder()
      m:serve_http(w, r)
      assert.equal(muxx.REDIRECT_STATUS, w.status)
      assert.equal(c[2], w:header():get("Location"))
    end)
  end

  it("does not clean CONNECT paths", function()
    local m = muxx.new()
    m:handle("/", tag("root"))
    assert.equal("root", answer(m, "CONNECT", "/a/../b"))
  end)

  it("answers 405 with a sorted Allow (GET implies HEAD) when only other methods match", function()
    local m = muxx.new()
    m:handle("GET /r", tag("g"))
    m:handle("PATCH /r", tag("p"))
    m:handle("DELETE /r/{id}", tag("d"))
    m:handle("DELETE /r", tag("d"))
    local w = serve(m, "PUT", "/r")
    assert.equal(405, w.status)
    assert.equal("DELETE, GET, HEAD, PATCH", w:header():get("Allow"))
    assert.equal("Method Not Allowed\n", w.body)
    assert.equal("text/plain; charset=utf-8", w:header():get("Content-Type"))
    assert.equal("nosniff", w:header():get("X-Content-Type-Options"))
  end)

  it("answers 404 with Go's body and headers", function()
    local m = muxx.new()
    m:handle("GET /known", tag("k"))
    local w = serve(m, "GET", "/unknown")
    assert.equal(404, w.status)
    assert.equal("404 page not found\n", w.body)
    assert.equal("text/plain; charset=utf-8", w:header():get("Content-Type"))
    assert.equal("nosniff", w:header():get("X-Content-Type-Options"))
    w = serve(muxx.new(), "GET", "/")
    assert.equal(404, w.status)
  end)

  it("answers 400 to OPTIONS *", function()
    local m = muxx.new()
    m:handle("/", tag("root"))
    local r = httptest.new_request("OPTIONS", "/")
    r.request_uri = "*"
    local w = httptest.new_recorder()
    m:serve_http(w, r)
    assert.equal(400, w.status)
  end)
end)

describe("lowbit.muxx groups", function()
  it("prefixes paths; the router stays flat (r.pattern is the full pattern)", function()
    local m = muxx.new()
    local api = m:group("/api")
    local users = api:group("/users/")
    users:handle_func("GET /{id}", function(w, r) w:write("user " .. r:path_value("id")) end)
    users:handle_func("GET /", tag("list"))
    local w, r = serve(m, "GET", "/api/users/42")
    assert.equal("user 42", w.body)
    assert.equal("GET /api/users/{id}", r.pattern)
    assert.equal("list", answer(m, "GET", "/api/users/"))
    assert.equal(404, answer(m, "GET", "/users/42"))
    assert.same({ "", "/api/users" }, { users:prefix() })
  end)

  it("a prefix without a leading / is a host", function()
    local m = muxx.new()
    local h = m:group("api.example.com")
    h:handle_func("GET /users", tag("users"))
    local _, r = serve(m, "GET", "/users", { host = "api.example.com" })
    assert.equal("GET api.example.com/users", r.pattern)
    assert.equal(404, answer(m, "GET", "/users", { host = "www.example.com" }))
  end)

  it("host and path prefix in one call", function()
    local m = muxx.new()
    local admin = m:group("admin.example.com/settings")
    admin:handle_func("GET /profile", function(w, r) w:write(r.pattern) end)
    assert.equal("GET admin.example.com/settings/profile", answer(m, "GET", "/settings/profile", { host = "admin.example.com" }))
  end)

  it("rejects a host inside a host or path group, and bad prefixes", function()
    local m = muxx.new()
    assert.has_error(function() m:group("/api"):group("api.example.com") end)
    assert.has_error(function() m:group("a.example"):group("b.example") end)
    local ok, err = pcall(function() m:group("a.example"):handle("b.example/x", tag("x")) end)
    assert.is_false(ok)
    assert.matches('"b.example/x"', tostring(err))
    assert.has_error(function() m:group("GET /api") end)
    assert.has_error(function() m:group("/{rest...}") end)
    assert.has_error(function() m:group("/x{y}") end)
  end)

  it("use applies to routes registered on the group and its sub-groups after the call", function()
    local m = muxx.new()
    local trail
    local function mw(name)
      return function(next_h)
        return function(w, r)
          trail[#trail + 1] = name
          return next_h(w, r)
        end
      end
    end
    local function run(target)
      trail = {}
      local w = serve(m, "GET", target)
      trail[#trail + 1] = w.body
      return table.concat(trail, ",")
    end
    local api = m:group("/api")
    local users = api:group("/users") -- created before api:use: still inherits
    local admin = api:group("/admin")
    api:handle_func("GET /early", tag("early"))
    m:use(mw("root"))
    api:use(mw("auth"), mw("log"))
    users:use(mw("users"))
    api:handle_func("GET /late", tag("late"))
    users:handle_func("GET /{id}", tag("user"))
    admin:handle_func("GET /panel", tag("panel"))
    m:handle_func("GET /home", tag("home"))
    local other = m:group("/other")
    other:handle_func("GET /x", tag("other"))
    assert.equal("early", run("/api/early"))
    assert.equal("root,auth,log,late", run("/api/late"))
    assert.equal("root,auth,log,users,user", run("/api/users/1"))
    assert.equal("root,auth,log,panel", run("/api/admin/panel")) -- sibling of users: no "users"
    assert.equal("root,home", run("/home"))
    assert.equal("root,other", run("/other/x"))
    -- Middleware added later does not reach routes already registered.
    api:use(mw("later"))
    assert.equal("root,auth,log,late", run("/api/late"))
  end)

  it("middleware may return a table handler; a non-handler raises at registration", function()
    local m = muxx.new()
    m:use(function(next_h)
      return { serve_http = function(self, w, r) w:write("["); next_h(w, r); w:write("]") end }
    end)
    m:handle_func("/t", tag("t"))
    assert.equal("[t]", answer(m, "GET", "/t"))
    local g = m:group("/g")
    g:use(function() return 42 end)
    local ok, err = pcall(function() g:handle_func("/x", tag("x")) end)
    assert.is_false(ok)
    assert.matches("not a handler", tostring(err))
    assert.matches('"/g/x"', tostring(err))
  end)
end)

describe("lowbit.muxx.chain", function()
  it("chain(h, a, b): a is outermost and runs first", function()
    local order = {}
    local function mw(name)
      return function(next_h)
        return function(w, r) order[#order + 1] = name; next_h(w, r) end
      end
    end
    local h = muxx.chain(function(w, r) order[#order + 1] = "h" end, mw("a"), mw("b"))
    h(httptest.new_recorder(), httptest.new_request("GET", "/"))
    assert.same({ "a", "b", "h" }, order)
  end)

  it("returns h itself with no middleware, and accepts table handlers", function()
    local t = { serve_http = function() end }
    assert.equal(t, muxx.chain(t))
  end)
end)

describe("lowbit.muxx bad arguments", function()
  it("raise naming the argument", function()
    local m = muxx.new()
    local function msg(f)
      local ok, err = pcall(f)
      assert.is_false(ok)
      return tostring(err)
    end
    assert.matches("bad argument 'pattern'", msg(function() m:handle(1, tag("x")) end))
    assert.matches("bad argument 'pattern'", msg(function() m:handle_func(nil, tag("x")) end))
    assert.matches("bad argument 'h'", msg(function() m:handle("/x", 1) end))
    assert.matches("bad argument 'fn'", msg(function() m:handle_func("/x", "nope") end))
    assert.matches("bad argument #2 to muxx:use", msg(function() m:use(tag("x") and function() end, 1) end))
    assert.matches("bad argument 'prefix'", msg(function() m:group(nil) end))
    assert.matches("bad argument 'self'", msg(function() m.handle("/x", tag("x")) end))
    assert.matches("bad argument 'h' to muxx.chain", msg(function() muxx.chain(nil) end))
    assert.matches("bad argument #2 to muxx.chain", msg(function() muxx.chain(tag("x"), "nope") end))
    -- A failed registration leaves the router unchanged.
    assert.equal(0, m:count())
  end)
end)

describe("lowbit.muxx compiled matching", function()
  it("matches 200+ routes through the tree (every route finds itself)", function()
    local m = muxx.new()
    local pats = {}
    for line in io.lines((os.getenv("LOWBIT_ROOT") or ".") .. "/bench/data/github-api-routes.txt") do
      if line:sub(1, 1) ~= "#" and line ~= "" then pats[#pats + 1] = line end
    end
    for _, p in ipairs(pats) do m:handle(p, tag(p)) end
    for _, p in ipairs(pats) do
      local method, path = p:match("^(%S+) (.*)$")
      local target = path:gsub("{[^}]+}", "v1")
      local h, pattern = m:handler(httptest.new_request(method, target))
      assert.equal(p, pattern)
    end
  end)

  it("sees routes registered after requests were matched (the C copy of the tree is made again)", function()
    local m = muxx.new()
    m:handle("GET /a/{x}", tag("ax"))
    assert.equal("ax", answer(m, "GET", "/a/b"))
    assert.equal(404, answer(m, "GET", "/c"))
    m:handle("GET /a/b", tag("ab"))
    m:handle("GET /c", tag("c"))
    m:handle("POST /a/{x}/{y...}", tag("post"))
    assert.equal("ab", answer(m, "GET", "/a/b"))
    assert.equal("ax", answer(m, "GET", "/a/z"))
    assert.equal("c", answer(m, "GET", "/c"))
    local w = serve(m, "POST", "/a/1/2/3")
    assert.equal("post", w.body)
    local _, r = serve(m, "POST", "/a/1/2/3")
    assert.equal("1", r:path_value("x"))
    assert.equal("2/3", r:path_value("y"))
  end)

  it("captures more wildcards than the C descent reports (40), and %-escaped ones", function()
    local m = muxx.new()
    local segs, target, want = {}, {}, {}
    for i = 1, 40 do
      segs[i] = "{w" .. i .. "}"
      target[i] = "v" .. i
    end
    m:handle("GET /m/" .. table.concat(segs, "/"), tag("many"))
    m:handle("GET /x/{a}/{rest...}", tag("x"))
    local _, r = serve(m, "GET", "/m/" .. table.concat(target, "/"))
    assert.equal("GET /m/" .. table.concat(segs, "/"), r.pattern)
    for i = 1, 40 do want[i] = r:path_value("w" .. i) end
    assert.same(target, want)
    _, r = serve(m, "GET", "/x/a%2Fb/c%20d/e")
    assert.equal("a/b", r:path_value("a"))
    assert.equal("c d/e", r:path_value("rest"))
    -- the "%" only past the first segment of the rest {rest...} takes
    _, r = serve(m, "GET", "/x/ab/cd/e%20f")
    assert.equal("ab", r:path_value("a"))
    assert.equal("cd/e f", r:path_value("rest"))
    _, r = serve(m, "GET", "/x/ab/cd/e")
    assert.equal("ab", r:path_value("a"))
    assert.equal("cd/e", r:path_value("rest"))
  end)

  it("compiles the matching loop, with no NYI trace aborts", function()
    local jutil = require "jit.util"
    local traceerr = require("jit.vmdef").traceerr
    local m = muxx.new()
    m:handle("GET /users/{user}/repos", tag("r"))
    m:handle("GET /users/{user}/events/public", tag("e"))
    m:handle("GET /static/a", tag("s"))
    m:handle("GET /files/{path...}", tag("f"))
    local reqs = {
      httptest.new_request("GET", "/users/x/repos"),
      httptest.new_request("GET", "/users/x/events/public"),
      httptest.new_request("GET", "/static/a"),
      httptest.new_request("GET", "/files/a/b/c"),
    }
    local nyi, compiled = {}, 0
    -- The descent runs in C (lb_muxx_match), so the trace of the request
    -- loop may start in this file: every trace counts, and an NYI abort
    -- inside muxx.lua fails.
    local function on_trace(what, tr, func, pc, otr, oex)
      local info = jutil.funcinfo(func, pc)
      if what == "stop" then
        compiled = compiled + 1
      elseif what == "abort" and info.source and info.source:find("muxx.lua", 1, true) then
        local msg = traceerr[otr] or tostring(otr)
        if msg:find("NYI", 1, true) then
          nyi[#nyi + 1] = ("%s:%s %s"):format(info.source, tostring(info.currentline), msg:format(oex))
        end
      end
    end
    jit.flush()
    jit.attach(on_trace, "trace")
    for i = 1, 50000 do m:handler(reqs[i % 4 + 1]) end
    jit.attach(on_trace)
    assert.same({}, nyi)
    assert.is_true(compiled > 0)
  end)
end)
