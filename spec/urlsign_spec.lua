local urlsign = require "lowbit.urlsign"
local errors = require "lowbit.errors"
local url = require "lowbit.url"
local httptest = require "lowbit.httptest"

local T0 = 1700000000
local function clock(t) return function() return t end end

local function signer(key, ttl, now)
  return assert(urlsign.new_signer(key or "secret", ttl or 3600, { now = clock(now or T0) }))
end

local function param(u, name) return url.parse(u):query():get(name) end

-- Replaces the query parameter name's value in signed URL u.
local function set_param(u, name, value)
  local p = url.parse(u)
  local q = p:query()
  q:set(name, value)
  p.raw_query = url.encode_query(q)
  return p:string()
end

-- Expected signatures, computed with Python's hmac module:
--   python3 -c 'import hmac,hashlib; print(hmac.new(KEY, MSG, hashlib.sha256).hexdigest())'
local VECTORS = {
  { key = "secret", ttl = 3600, now = T0,
    url = "https://cdn.example.com/files/report.pdf",
    msg = "cdn.example.com:/files/report.pdf:1700003600:",
    sig = "3863a45b5da77ca92fb90389023f6899b2279a9459b0e7860c5e426e32544e34",
    signed = "https://cdn.example.com/files/report.pdf?exp=1700003600&sig=3863a45b5da77ca92fb90389023f6899b2279a9459b0e7860c5e426e32544e34" },
  { key = "k3y", ttl = 60, now = T0,
    url = "http://localhost:8080/a%20b/c?z=last&format=pdf&a=x%20y&a=2",
    msg = "localhost:8080:/a b/c:1700000060:a=x+y&a=2&format=pdf&z=last",
    sig = "16c0c623f315181c42a0588fe9e722521de857a2d50f15afe9c3a57557849f0e",
    signed = "http://localhost:8080/a%20b/c?a=x+y&a=2&exp=1700000060&format=pdf&sig=16c0c623f315181c42a0588fe9e722521de857a2d50f15afe9c3a57557849f0e&z=last" },
  { key = "secret", ttl = 3600, now = T0,
    url = "https://cdn.example.com:8443/files/report.pdf?format=pdf",
    msg = "cdn.example.com:8443:/files/report.pdf:1700003600:format=pdf",
    sig = "d661d3c2785ff1a02a176b7caf2b42741069318bb0c1e5b8efc212feb3ba523a" },
  { key = "another key", ttl = 86400, now = T0,
    url = "https://example.com/dl?q=a%2Bb%26c&name=r%C3%A9sum%C3%A9.pdf",
    msg = "example.com:/dl:1700086400:name=r%C3%A9sum%C3%A9.pdf&q=a%2Bb%26c",
    sig = "26c5dae1e461b75d9dce223eeee2965c43e5ca22f5f3744f15cde0398bb492a2" },
}

describe("lowbit.urlsign", function()
  it("signs with exp and sig = hex HMAC-SHA256(host:path:exp:canonical_query) (Python vectors)", function()
    for _, v in ipairs(VECTORS) do
      local s = signer(v.key, v.ttl, v.now)
      local signed = assert(s:sign(v.url))
      assert.equal(v.sig, param(signed, "sig"), v.url)
      assert.equal(tostring(v.now + v.ttl), param(signed, "exp"))
      if v.signed then assert.equal(v.signed, signed) end
      local u = url.parse(signed)
      local exp = param(signed, "exp")
      local q = u:query(); q:del("exp"); q:del("sig")
      assert.equal(v.msg, urlsign.message(u.host, u.path, exp, url.encode_query(q)))
      assert.is_true(s:verify(signed))
    end
  end)

  it("produces the same signature whatever the order of the query parameters", function()
    local s = signer()
    local a = s:sign("https://example.com/p?b=2&a=1&c=3")
    local b = s:sign("https://example.com/p?c=3&a=1&b=2")
    assert.equal(param(a, "sig"), param(b, "sig"))
    assert.is_true(s:verify("https://example.com/p?sig=" .. param(a, "sig") .. "&c=3&exp=" .. param(a, "exp") .. "&b=2&a=1"))
  end)

  it("replaces an exp or sig the URL already had", function()
    local s = signer()
    local signed = s:sign("https://example.com/p?exp=1&sig=abc&x=1")
    assert.equal(tostring(T0 + 3600), param(signed, "exp"))
    assert.is_true(s:verify(signed))
    assert.equal(1, select(2, signed:gsub("exp=", "")))
  end)

  it("verifies until exp inclusive, then returns EXPIRED", function()
    local s = signer(nil, 10)
    local signed = s:sign("https://example.com/f")
    s.now = clock(T0 + 10)
    assert.is_true(s:verify(signed))
    s.now = clock(T0 + 11)
    local ok, err = s:verify(signed)
    assert.is_nil(ok); assert.equal(urlsign.EXPIRED, err)
  end)

  it("rounds exp down to whole seconds and uses the injected clock", function()
    local s = signer(nil, 1.9, T0 + 0.5)
    assert.equal(tostring(T0 + 2), param(s:sign("https://e.com/"), "exp"))
    local real = assert(urlsign.new_signer("k", 60))
    local exp = tonumber(param(real:sign("https://e.com/"), "exp"))
    assert.is_true(math.abs(exp - (os.time() + 60)) <= 1)
  end)

  it("rejects tampering with the host", function()
    local s = signer()
    local signed = s:sign("https://cdn.example.com/files/report.pdf")
    local ok, err = s:verify((signed:gsub("cdn%.example%.com", "evil.example.com")))
    assert.is_nil(ok); assert.equal(urlsign.INVALID_SIG, err)
  end)

  it("rejects tampering with the port (added, changed or removed)", function()
    local s = signer()
    local signed = s:sign("https://cdn.example.com:8443/f")
    for _, h in ipairs{ "cdn.example.com:8444", "cdn.example.com" } do
      local ok, err = s:verify((signed:gsub("cdn%.example%.com:8443", h)))
      assert.is_nil(ok); assert.equal(urlsign.INVALID_SIG, err, h)
    end
    local plain = s:sign("https://cdn.example.com/f")
    assert.equal(urlsign.INVALID_SIG, select(2, s:verify((plain:gsub("example%.com/", "example.com:443/")))))
  end)

  it("rejects tampering with the path", function()
    local s = signer()
    local signed = s:sign("https://example.com/files/report.pdf")
    for _, p in ipairs{ "/files/report.csv", "/files/report.pdf/", "/Files/report.pdf", "/files/report%2Epdf2" } do
      local ok, err = s:verify((signed:gsub("/files/report%.pdf", (p:gsub("%%", "%%%%")))))
      assert.is_nil(ok); assert.equal(urlsign.INVALID_SIG, err, p)
    end
  end)

  it("rejects tampering with exp, even to an earlier time", function()
    local s = signer()
    local signed = s:sign("https://example.com/f")
    for _, e in ipairs{ tostring(T0 + 7200), tostring(T0 + 3599), "01700003600", "1700003600.0" } do
      local ok, err = s:verify(set_param(signed, "exp", e))
      assert.is_nil(ok); assert.equal(urlsign.INVALID_SIG, err, e)
    end
  end)

  it("rejects tampering with any other parameter: changed, added or removed", function()
    local s = signer()
    local signed = s:sign("https://example.com/f?format=pdf&user=7")
    local cases = {
      set_param(signed, "format", "csv"),
      set_param(signed, "user", "8"),
      signed .. "&admin=1",
      signed .. "&format=csv",                       -- a second value for a signed key
      (signed:gsub("format=pdf&", "")),
    }
    for _, u in ipairs(cases) do
      local ok, err = s:verify(u)
      assert.is_nil(ok); assert.equal(urlsign.INVALID_SIG, err, u)
    end
  end)

  it("rejects a changed signature, an upper-case one, or one signed with another key", function()
    local s = signer()
    local signed = s:sign("https://example.com/f")
    local sig = param(signed, "sig")
    local flipped = (sig:sub(1, 1) == "0" and "1" or "0") .. sig:sub(2)
    for _, bad in ipairs{ flipped, sig:upper(), sig:sub(1, 63), sig .. "0", ("z"):rep(64) } do
      local ok, err = s:verify(set_param(signed, "sig", bad))
      assert.is_nil(ok); assert.equal(urlsign.INVALID_SIG, err, bad)
    end
    local other = signer("other")
    assert.equal(urlsign.INVALID_SIG, select(2, other:verify(signed)))
  end)

  it("returns MISSING_PARAMS without exp or sig", function()
    local s = signer()
    local signed = s:sign("https://example.com/f?x=1")
    for _, u in ipairs{
      "https://example.com/f?x=1",
      (signed:gsub("exp=%d+&", "")),
      (signed:gsub("&sig=%x+", "")),
      set_param(signed, "sig", ""),
    } do
      local ok, err = s:verify(u)
      assert.is_nil(ok); assert.equal(urlsign.MISSING_PARAMS, err, u)
    end
  end)

  it("treats a malformed query or a repeated exp/sig as an invalid signature", function()
    local s = signer()
    local signed = s:sign("https://example.com/f")
    local ok, err = s:verify(signed .. "&x=%zz")
    assert.is_nil(ok); assert.is_true(errors.is(err, urlsign.INVALID_SIG))
    ok, err = s:verify(signed .. "&exp=1")
    assert.is_nil(ok); assert.is_true(errors.is(err, urlsign.INVALID_SIG))
  end)

  it("verifies a lowbit.http request (r.host, r.url.path, r.url.raw_query)", function()
    local s = signer()
    local signed = s:sign("https://files.example.com:8443/dl/report.pdf?format=pdf")
    local target = signed:match("^https://[^/]+(/.*)$")
    local r = httptest.new_request("GET", target, { host = "files.example.com:8443" })
    assert.is_true(s:verify_request(r))
    local wrong_host = httptest.new_request("GET", target, { host = "files.example.com" })
    assert.equal(urlsign.INVALID_SIG, select(2, s:verify_request(wrong_host)))
    s.now = clock(T0 + 3601)
    assert.equal(urlsign.EXPIRED, select(2, s:verify_request(r)))
    local bare = httptest.new_request("GET", "/dl/report.pdf", { host = "files.example.com:8443" })
    assert.equal(urlsign.MISSING_PARAMS, select(2, s:verify_request(bare)))
  end)

  it("copies the key: signatures depend on the key's bytes at construction only", function()
    local key = "k" .. "ey"
    local s = assert(urlsign.new_signer(key, 60, { now = clock(T0) }))
    key = "changed"
    local ref = assert(urlsign.new_signer("key", 60, { now = clock(T0) }))
    assert.equal(s:sign("https://e.com/x"), ref:sign("https://e.com/x"))
    collectgarbage(); collectgarbage()
    assert.is_true(s:verify(ref:sign("https://e.com/x")))
  end)

  it("computes raw HMAC-SHA256 with the keyed state (RFC 4231 case 2)", function()
    local s = assert(urlsign.new_signer("Jefe", 1))
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      s:hmac_hex("what do ya want for nothing?"))
  end)

  it("refuses an empty key or a non-positive ttl with an error value", function()
    local s, err = urlsign.new_signer("", 60)
    assert.is_nil(s); assert.equal(urlsign.EMPTY_KEY, err)
    s, err = urlsign.new_signer("k", 0)
    assert.is_nil(s); assert.equal(urlsign.INVALID_TTL, err)
    s, err = urlsign.new_signer("k", -5)
    assert.is_nil(s); assert.equal(urlsign.INVALID_TTL, err)
  end)

  it("raises naming the argument for wrong types", function()
    assert.has_error(function() urlsign.new_signer(nil, 60) end,
      "bad argument 'key' to urlsign.new_signer: string expected, got nil")
    assert.has_error(function() urlsign.new_signer("k", "60") end,
      "bad argument 'ttl' to urlsign.new_signer: number expected, got string")
    assert.has_error(function() urlsign.new_signer("k", 60, { now = 5 }) end,
      "bad argument 'opts.now' to urlsign.new_signer: function expected, got number")
    local s = signer()
    assert.has_error(function() s:sign(42) end, "bad argument 'url' to signer:sign: string expected, got number")
    assert.has_error(function() s:verify(nil) end, "bad argument 'url' to signer:verify: string expected, got nil")
    assert.has_error(function() s:verify_request("GET /") end,
      "bad argument 'r' to signer:verify_request: request expected, got string")
  end)

  it("returns INVALID_URL for a URL that does not parse", function()
    local s = signer()
    local v, err = s:sign("http://exa mple.com/\1")
    assert.is_nil(v); assert.is_true(errors.is(err, urlsign.INVALID_URL))
    v, err = s:verify("https://example.com/%zz?exp=1&sig=00")
    assert.is_nil(v); assert.is_true(errors.is(err, urlsign.INVALID_URL))
  end)

  it("signs and verifies URLs whose query keys are named like url.Values methods", function()
    local s = signer()
    local names = { "set", "get", "add", "del", "has", "values", "keys", "clone", "encode",
      "__index", "__newindex", "__metatable", "__tostring" }
    for n in pairs(url.Values) do if type(n) == "string" then names[#names + 1] = n end end
    for _, n in ipairs(names) do
      local raw = "https://h/p?" .. url.query_escape(n) .. "=1&z=2"
      local signed, err = s:sign(raw)
      assert.is_nil(err, n)
      assert.equal("1", param(signed, n), n)
      assert.equal("2", param(signed, "z"), n)
      assert.is_true(s:verify(signed), n)
      local tampered = set_param(signed, n, "2")
      local ok, verr = s:verify(tampered)
      assert.is_nil(ok, n); assert.is_true(errors.is(verr, urlsign.INVALID_SIG), n)
    end
  end)
end)
