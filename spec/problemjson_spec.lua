-- lowbit.problemjson against conformance/problem.md (RFC 9457), through
-- httptest.
local pj = require "lowbit.problemjson"
local errors = require "lowbit.errors"
local httptest = require "lowbit.httptest"
local cjson = require "cjson"
local lowbit = require "lowbit"
local run = require("support").run

local function serve(p, target)
  local w = httptest.new_recorder()
  p:serve_http(w, httptest.new_request("GET", target or "/x"))
  return w
end

-- True when s is valid UTF-8 (written independently of the encoder).
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, min
    if c < 0x80 then len, min = 1, 0
    elseif c >= 0xC2 and c < 0xE0 then len, min = 2, 0x80
    elseif c >= 0xE0 and c < 0xF0 then len, min = 3, 0x800
    elseif c >= 0xF0 and c < 0xF5 then len, min = 4, 0x10000
    else return false end
    if i + len - 1 > n then return false end
    local cp = len == 1 and c or (c % (2 ^ (7 - len)))
    for k = 1, len - 1 do
      local cc = s:byte(i + k)
      if cc < 0x80 or cc > 0xBF then return false end
      cp = cp * 64 + (cc - 0x80)
    end
    if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false end
    i = i + len
  end
  return true
end

-- A writer whose write fails (returns nil, err) or raises.
local function failing_writer(mode)
  local w = httptest.new_recorder()
  local cause = errors.new("connection reset")
  function w:write(s)
    if not self.wrote_header then self:write_header(200) end
    if mode == "raise" then error("socket exploded") end
    return nil, cause
  end
  return w, cause
end

describe("lowbit.problemjson members (RFC 9457)", function()
  it("uses the media type application/problem+json", function()
    local w = serve(pj.not_found())
    assert.equal("application/problem+json", w:header():get("Content-Type"))
    assert.equal("application/problem+json", pj.CONTENT_TYPE)
  end)

  it("type is a URI reference that defaults to about:blank (and is then left out)", function()
    local p = pj.not_found()
    assert.equal("about:blank", p:type_uri())
    assert.is_nil(cjson.decode(p:encode()).type)
    local q = pj.not_found{ type = "https://example.com/probs/out-of-stock" }
    assert.equal("https://example.com/probs/out-of-stock", cjson.decode(q:encode()).type)
    assert.equal("/relative/ref", cjson.decode(pj.new{ type = "/relative/ref" }:encode()).type)
  end)

  it("status is a number equal to the HTTP status", function()
    for _, p in ipairs({ pj.not_found(), pj.teapot(), pj.new{ status = 422 }, pj.new() }) do
      local w = serve(p)
      local doc = cjson.decode(w.body)
      assert.equal("number", type(doc.status))
      assert.equal(w.status, doc.status)
      assert.equal(p.status, w.status)
    end
    assert.equal(500, pj.new().status)
  end)

  it("title defaults to the reason phrase, follows a status change while defaulted, and can be set", function()
    assert.equal("Not Found", pj.not_found().title)
    assert.equal("Unprocessable Content", pj.new{ status = 422 }.title)
    assert.equal("Gone", pj.from(pj.not_found(), { status = 410 }).title)
    local custom = pj.not_found{ title = "Product not available" }
    assert.equal("Product not available", custom.title)
    assert.equal("Product not available", pj.from(custom, { status = 410 }).title)
  end)

  it("detail describes this occurrence; detailf formats it (option or helper)", function()
    assert.equal("user 42 does not exist", pj.not_found{ detail = "user 42 does not exist" }.detail)
    assert.equal("user 42 does not exist", pj.not_found{ detailf = { "user %d does not exist", 42 } }.detail)
    assert.equal("user 42 does not exist", pj.not_found(pj.detailf("user %d does not exist", 42)).detail)
    assert.equal('product "a\\"b" is out', pj.not_found(pj.detailf("product %q is out", 'a"b')).detail)
    assert.has_error(function() pj.not_found{ detail = "x", detailf = { "y" } } end)
    assert.has_error(function() pj.not_found{ detailf = "y" } end)
  end)

  it("instance: serve_http sets it to r.url.path when unset, on a copy", function()
    local p = pj.not_found()
    local w = serve(p, "/users/7?x=1")
    assert.equal("/users/7", cjson.decode(w.body).instance)
    assert.is_nil(p.instance)
    assert.is_false(p:encode():find("instance", 1, true) ~= nil)
    local q = pj.not_found{ instance = "/errors/123" }
    assert.equal("/errors/123", cjson.decode(serve(q, "/other").body).instance)
  end)

  it("extension members sit at the top level of the object", function()
    local p = pj.new{ status = 422, title = "Validation failed",
      with = { { "field", "email" }, { "constraint", "must be a valid email address" } }, err = "bad @" }
    local doc = cjson.decode(p:encode())
    assert.equal("email", doc.field)
    assert.equal("must be a valid email address", doc.constraint)
    assert.equal("bad @", doc.reason)
    assert.equal(422, doc.status)
  end)

  it("err sets the extension reason to tostring(err)", function()
    local e = errors.wrap(errors.new("EOF"), "read body")
    assert.equal("read body: EOF", pj.bad_request{ err = e }:extension("reason"))
    assert.equal("read body: EOF", pj.bad_request(pj.err(e)):extension("reason"))
  end)

  it("extension names start with a letter, use letters, digits and _, 3+ characters", function()
    for _, ok_name in ipairs({ "abc", "sku", "a_1", "Field2", "out_of_stock" }) do
      assert.equal(1, pj.new(pj.with(ok_name, 1)):extension(ok_name))
    end
    for _, bad in ipairs({ "ab", "1abc", "_abc", "a-bc", "a bc", "", "été" }) do
      local ok, err = pcall(pj.new, { with = { { bad, 1 } } })
      assert.is_false(ok, bad)
      assert.matches("extension name", tostring(err))
    end
    assert.has_error(function() pj.new{ with = { [1] = "not a pair" } } end)
    assert.has_error(function() pj.new{ with = { [true] = 1 } } end)
  end)

  it("rejects extensions colliding with standard members at construction", function()
    for _, name in ipairs({ "type", "status", "title", "detail", "instance" }) do
      local ok, err = pcall(pj.not_found, { with = { [name] = "x" } })
      assert.is_false(ok)
      assert.matches("collides with the standard member", tostring(err))
      ok, err = pcall(pj.with, name, "x")
      ok, err = pcall(pj.from, pj.not_found(), pj.with(name, "x"))
      assert.is_false(ok)
    end
  end)

  it("consumers ignore unknown extensions and members of the wrong type (parse)", function()
    local p = assert(pj.parse('{"type":42,"status":"404","title":"Not Found","detail":["x"],"instance":"/a","balance":30,"accounts":["/a/1"]}'))
    assert.equal("about:blank", p:type_uri())
    assert.is_nil(p.status)
    assert.equal("Not Found", p.title)
    assert.is_nil(p.detail)
    assert.equal("/a", p.instance)
    assert.equal(30, p:extension("balance"))
    assert.same({ "accounts", "balance" }, p:extension_names())
    assert.is_nil(p:extension("type"))
    local q = assert(pj.parse('{"status":403,"title":"Forbidden"}'))
    assert.equal(403, q.status)
    assert.is_nil(pj.parse("[1,2]"))
    assert.is_nil(pj.parse("{"))
  end)

  it("several problems of the same type go in an extension (errors: detail + pointer)", function()
    local p = pj.unprocessable_content{ title = "Your request is not valid.", with = {
      errors = {
        { detail = "must be a positive integer", pointer = "#/age" },
        { detail = "must be 'green', 'red' or 'blue'", pointer = "#/profile/color" },
      },
    } }
    local doc = cjson.decode(p:encode())
    assert.equal(2, #doc.errors)
    assert.equal("#/age", doc.errors[1].pointer)
    assert.equal("must be 'green', 'red' or 'blue'", doc.errors[2].detail)
    assert.equal('{"status":422,"title":"Your request is not valid.","errors":[{"detail":"must be a positive integer","pointer":"#/age"},{"detail":"must be \'green\', \'red\' or \'blue\'","pointer":"#/profile/color"}]}',
      p:encode())
  end)
end)

describe("lowbit.problemjson output", function()
  it("orders members type, status, title, detail, instance, then extensions in insertion order", function()
    local p = pj.new({ type = "https://e.x/t", status = 409, title = "T", detail = "D", instance = "/i",
      with = { { "zeta", 1 }, { "alpha", 2 }, { "mid", 3 } } }, pj.with("beta", 4), { err = "E" })
    assert.equal('{"type":"https://e.x/t","status":409,"title":"T","detail":"D","instance":"/i","zeta":1,"alpha":2,"mid":3,"beta":4,"reason":"E"}',
      p:encode())
    -- Option tables apply in argument order.
    local q = pj.new({ err = "E" }, pj.with("beta", 4))
    assert.equal('{"status":500,"title":"Internal Server Error","reason":"E","beta":4}', q:encode())
  end)

  it("sorts names given as a map, keeps the first position of a name set twice", function()
    local p = pj.new{ with = { zzz = 1, aaa = 2, mmm = 3 } }
    assert.same({ "aaa", "mmm", "zzz" }, p:extension_names())
    local q = pj.from(p, pj.with("aaa", "again"), pj.with("new", true))
    assert.same({ "aaa", "mmm", "zzz", "new" }, q:extension_names())
    assert.equal('{"status":500,"title":"Internal Server Error","aaa":"again","mmm":3,"zzz":1,"new":true}', q:encode())
  end)

  it("is valid JSON for hostile strings: quotes, backslashes, control characters", function()
    local hostile = {}
    for c = 0, 31 do hostile[#hostile + 1] = string.char(c) end
    local s = table.concat(hostile) .. '"\\/\127</script>\226\128\168'
    local p = pj.bad_request{ title = s, detail = s, instance = s, type = s, with = { { "raw", s }, { "nested", { [s] = s } } } }
    local body = p:encode()
    assert.is_nil(body:find("[%z\1-\31]"))
    assert.is_true(valid_utf8(body))
    local doc = cjson.decode(body)
    for _, k in ipairs({ "type", "title", "detail", "instance", "raw" }) do assert.equal(s, doc[k]) end
    assert.equal(s, doc.nested[s])
  end)

  it("replaces invalid UTF-8 with U+FFFD and keeps valid multi-byte characters", function()
    local cases = {
      { "\255", "\239\191\189" },
      { "a\192\128b", "a\239\191\189\239\191\189b" },                 -- overlong
      { "\237\160\128", "\239\191\189\239\191\189\239\191\189" },      -- surrogate U+D800
      { "\244\144\128\128", "\239\191\189\239\191\189\239\191\189\239\191\189" }, -- > U+10FFFF
      { "\226\130", "\239\191\189\239\191\189" },                      -- truncated
      { "é€😀", "é€😀" },
      { "\240\159\152", "\239\191\189\239\191\189\239\191\189" },
    }
    for _, c in ipairs(cases) do
      local body = pj.new{ detail = c[1], with = { { "raw", c[1] } } }:encode()
      assert.is_true(valid_utf8(body), body)
      local doc = cjson.decode(body)
      assert.equal(c[2], doc.detail)
      assert.equal(c[2], doc.raw)
    end
  end)

  it("encodes numbers, booleans, null, nested arrays and objects", function()
    local p = pj.new{ with = {
      { "int", 42 }, { "neg", -7 }, { "float", 0.1 }, { "big", 2 ^ 60 }, { "tiny", 1e-300 },
      { "yes", true }, { "nay", false }, { "nil1", pj.null }, { "nil2", cjson.null },
      { "arr", { 1, "two", { 3 } } }, { "obj", { b = 1, a = { c = "d" } } },
      { "empty", {} }, { "emptyarr", pj.array() }, { "i64", 9007199254740993LL },
    } }
    local body = assert(p:encode())
    assert.matches('"int":42,"neg":%-7,"float":0%.1,', body)
    assert.matches('"obj":{"a":{"c":"d"},"b":1}', body)
    assert.matches('"empty":{},"emptyarr":%[%],"i64":9007199254740993}$', body)
    assert.matches('"nil1":null,"nil2":null', body)
    local doc = cjson.decode(body)
    assert.equal(2 ^ 60, doc.big)
    assert.equal(1e-300, doc.tiny)
    assert.equal(0.1, doc.float)
    assert.same({ 1, "two", { 3 } }, doc.arr)
    assert.is_true(doc.yes)
    assert.is_false(doc.nay)
    assert.equal(cjson.null, doc.nil1)
  end)

  it("deep-copies extension values at construction", function()
    local t = { list = { 1, 2 } }
    local p = pj.new{ with = { { "data", t } } }
    t.list[3] = 3
    t.extra = true
    assert.equal('{"list":[1,2]}', pj.encode_value(p:extension("data")))
  end)
end)

describe("lowbit.problemjson constructors", function()
  local expected = {
    { "bad_request", 400, "Bad Request" }, { "unauthorized", 401, "Unauthorized" },
    { "payment_required", 402, "Payment Required" }, { "forbidden", 403, "Forbidden" },
    { "not_found", 404, "Not Found" }, { "method_not_allowed", 405, "Method Not Allowed" },
    { "not_acceptable", 406, "Not Acceptable" },
    { "proxy_authentication_required", 407, "Proxy Authentication Required" },
    { "request_timeout", 408, "Request Timeout" }, { "conflict", 409, "Conflict" }, { "gone", 410, "Gone" },
    { "length_required", 411, "Length Required" }, { "precondition_failed", 412, "Precondition Failed" },
    { "content_too_large", 413, "Content Too Large" }, { "payload_too_large", 413, "Content Too Large" },
    { "uri_too_long", 414, "URI Too Long" }, { "unsupported_media_type", 415, "Unsupported Media Type" },
    { "range_not_satisfiable", 416, "Range Not Satisfiable" }, { "expectation_failed", 417, "Expectation Failed" },
    { "teapot", 418, "I'm a teapot" }, { "misdirected_request", 421, "Misdirected Request" },
    { "unprocessable_content", 422, "Unprocessable Content" }, { "unprocessable_entity", 422, "Unprocessable Content" },
    { "locked", 423, "Locked" }, { "failed_dependency", 424, "Failed Dependency" }, { "too_early", 425, "Too Early" },
    { "upgrade_required", 426, "Upgrade Required" }, { "precondition_required", 428, "Precondition Required" },
    { "too_many_requests", 429, "Too Many Requests" },
    { "request_header_fields_too_large", 431, "Request Header Fields Too Large" },
    { "unavailable_for_legal_reasons", 451, "Unavailable For Legal Reasons" },
    { "internal_server_error", 500, "Internal Server Error" }, { "not_implemented", 501, "Not Implemented" },
    { "bad_gateway", 502, "Bad Gateway" }, { "service_unavailable", 503, "Service Unavailable" },
    { "gateway_timeout", 504, "Gateway Timeout" }, { "http_version_not_supported", 505, "HTTP Version Not Supported" },
    { "variant_also_negotiates", 506, "Variant Also Negotiates" }, { "insufficient_storage", 507, "Insufficient Storage" },
    { "loop_detected", 508, "Loop Detected" }, { "not_extended", 510, "Not Extended" },
    { "network_authentication_required", 511, "Network Authentication Required" },
  }
  it("one per standard 4xx/5xx status, the reason phrase as title", function()
    for _, e in ipairs(expected) do
      local ctor = pj[e[1]]
      assert.is_function(ctor, e[1])
      local p = ctor()
      assert.equal(e[2], p.status, e[1])
      assert.equal(e[3], p.title, e[1])
      local w = serve(p, "/c")
      assert.equal(e[2], w.status)
      assert.equal(e[3], cjson.decode(w.body).title)
    end
  end)

  it("take options like new()", function()
    local p = pj.conflict({ detail = "d" }, pj.with("sku", "x1"))
    assert.equal('{"status":409,"title":"Conflict","detail":"d","sku":"x1"}', p:encode())
  end)

  it("raise on bad options, naming the argument", function()
    local function msg(f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok)
      return tostring(err)
    end
    assert.matches("bad argument 'opts'", msg(pj.not_found, "x"))
    assert.matches("unknown option \"titel\"", msg(pj.not_found, { titel = "x" }))
    assert.matches("bad argument 'opts.status'", msg(pj.new, { status = 99 }))
    assert.matches("bad argument 'opts.status'", msg(pj.new, { status = 404.5 }))
    assert.matches("bad argument 'opts.title'", msg(pj.new, { title = 1 }))
    assert.matches("bad argument 'base'", msg(pj.from, nil))
    assert.matches("bad argument 'fmt'", msg(pj.detailf, nil))
    assert.matches("bad argument 'value'", msg(pj.with, "abc", nil))
  end)
end)

describe("lowbit.problemjson from", function()
  it("copies the base, applies options, never modifies the base", function()
    local base = pj.not_found{ title = "Product not available", with = { { "tags", { "a", "b" } } } }
    local before = base:encode()
    local p = pj.from(base, { detailf = { "product %q is out of stock", "p1" }, with = { sku = "p1" } })
    assert.equal('{"status":404,"title":"Product not available","detail":"product \\"p1\\" is out of stock","tags":["a","b"],"sku":"p1"}',
      p:encode())
    assert.equal(before, base:encode())
    -- The copy's extension values are its own.
    assert.is_not.equal(base:extension("tags"), p:extension("tags"))
    assert.same(base:extension("tags"), p:extension("tags"))
  end)

  it("many copies made concurrently in tasks leave the base untouched", function()
    local base = pj.not_found{ title = "Base", with = { { "shared", { n = 0, list = { 1 } } } } }
    local before = base:encode()
    local results = {}
    run(function()
      local wg = lowbit.waitgroup()
      for i = 1, 200 do
        wg:add(1)
        lowbit.go(function()
          local p = pj.from(base, pj.detailf("copy %d", i), pj.with("idx", i), { status = 400 + (i % 20) })
          lowbit.sleep(0)
          local ext = p:extension("shared")
          ext.n = i             -- a copy may even be tampered with
          ext.list[1] = i
          lowbit.yield()
          local w = httptest.new_recorder()
          p:serve_http(w, httptest.new_request("GET", "/c/" .. i))
          results[i] = cjson.decode(w.body)
          wg:done()
        end)
      end
      wg:wait()
    end)
    assert.equal(before, base:encode())
    assert.is_nil(base.detail)
    assert.is_nil(base.instance)
    for i = 1, 200 do
      local d = results[i]
      assert.equal("copy " .. i, d.detail)
      assert.equal(i, d.idx)
      assert.equal("/c/" .. i, d.instance)
      assert.equal(i, d.shared.n)
      assert.equal("Base", d.title)
    end
  end)
end)

describe("lowbit.problemjson write", function()
  it("write(w) returns true and sends status, Content-Type and body", function()
    local w = httptest.new_recorder()
    assert.is_true(pj.gone{ detail = "bye" }:write(w))
    assert.equal(410, w.status)
    assert.equal('{"status":410,"title":"Gone","detail":"bye"}', w.body)
  end)

  local unencodable = {
    { "NaN", 0 / 0 }, { "infinity", math.huge }, { "-infinity", -math.huge },
    { "a function", print }, { "a coroutine", coroutine.create(print) },
    { "a mixed table", { 1, x = 2 } }, { "a sparse array", { 1, nil, 3 } },
  }
  for _, c in ipairs(unencodable) do
    it(("MARSHALLING_FAILED for %s, before anything is sent"):format(c[1]), function()
      local p = pj.new{ with = { { "bad", c[2] } } }
      local w = httptest.new_recorder()
      local ok, err = p:write(w)
      assert.is_nil(ok)
      assert.is_true(errors.is(err, pj.MARSHALLING_FAILED))
      assert.is_false(errors.is(err, pj.WRITING_FAILED))
      assert.is_false(w.wrote_header)
      assert.equal("", w.body)
      local ok2, err2 = p:encode()
      assert.is_nil(ok2)
      assert.is_true(errors.is(err2, pj.MARSHALLING_FAILED))
    end)
  end

  it("MARSHALLING_FAILED for cycles (direct and nested)", function()
    local t = {}
    t.self = t
    local a, b = {}, {}
    a[1] = b
    b[1] = a
    for _, v in ipairs({ t, a }) do
      local ok, err = pj.new{ with = { { "cyc", v } } }:write(httptest.new_recorder())
      assert.is_nil(ok)
      assert.is_true(errors.is(err, pj.MARSHALLING_FAILED))
      assert.matches("cycle", tostring(err))
    end
    -- The same table twice (no cycle) is fine.
    local shared = { 1 }
    assert.is_true(pj.new{ with = { { "twice", { shared, shared } } } }:write(httptest.new_recorder()))
  end)

  it("WRITING_FAILED when the writer fails (status already sent)", function()
    for _, mode in ipairs({ "return", "raise" }) do
      local w, cause = failing_writer(mode)
      local ok, err = pj.not_found():write(w)
      assert.is_nil(ok)
      assert.is_true(errors.is(err, pj.WRITING_FAILED))
      assert.is_false(errors.is(err, pj.MARSHALLING_FAILED))
      assert.is_true(w.wrote_header)
      assert.equal(404, w.status)
      if mode == "return" then assert.is_true(errors.is(err, cause)) end
    end
  end)

  it("serve_http falls back to a 500 problem on MARSHALLING_FAILED and swallows WRITING_FAILED", function()
    local w = serve(pj.not_found{ with = { { "bad", 0 / 0 } } }, "/fb")
    assert.equal(500, w.status)
    assert.equal("application/problem+json", w:header():get("Content-Type"))
    local doc = cjson.decode(w.body)
    assert.equal(500, doc.status)
    assert.equal("/fb", doc.instance)
    assert.is_nil(doc.bad)
    local fw = failing_writer("raise")
    assert.has_no.errors(function() pj.not_found():serve_http(fw, httptest.new_request("GET", "/")) end)
  end)

  it("a problem is a handler: mounted on muxx, or called", function()
    local muxx = require "lowbit.muxx"
    local m = muxx.new()
    m:handle("GET /healthz", pj.service_unavailable())
    m:handle_func("GET /users/{id}", function(w, r)
      pj.not_found(pj.detailf("user %s does not exist", r:path_value("id"))):serve_http(w, r)
    end)
    local w = httptest.new_recorder()
    m:serve_http(w, httptest.new_request("GET", "/healthz"))
    assert.equal(503, w.status)
    assert.equal('{"status":503,"title":"Service Unavailable","instance":"/healthz"}', w.body)
    w = httptest.new_recorder()
    m:serve_http(w, httptest.new_request("GET", "/users/9"))
    assert.equal('{"status":404,"title":"Not Found","detail":"user 9 does not exist","instance":"/users/9"}', w.body)
    w = httptest.new_recorder()
    pj.gone()(w, httptest.new_request("GET", "/g"))
    assert.equal(410, w.status)
    assert.equal("410 Not Found", tostring(pj.from(pj.not_found(), { status = 410, title = "Not Found" })))
  end)
end)
