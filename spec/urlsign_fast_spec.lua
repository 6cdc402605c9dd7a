-- lowbit.urlsign's C path (lb_urlsign_sign / lb_urlsign_verify*) against
-- its general Lua path (lowbit.url): the same results, byte for byte, on
-- generated URLs, plain and odd; and plain URLs take one C call, with no
-- lowbit.url work and no trace aborts in a hot loop.
local urlsign = require "lowbit.urlsign"
local url = require "lowbit.url"
local errors = require "lowbit.errors"

local T0 = 1700000000
local function clock(t) return function() return t end end

-- A small deterministic generator (no dependence on math.random's state).
local seed = 12345
local function rnd(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return math.floor(seed / 65536) % n + 1
end
local function pick(t) return t[rnd(#t)] end

local SCHEMES = { "https", "http", "HTTPS", "Http", "a+b.c-d", "1x", "" }
local HOSTS = { "cdn.example.com", "localhost:8080", "h", "", "h:", "EXAMPLE.com:443", "a_b~c-d.e",
  "user@h", "u:p@h:1", "[::1]:80", "[::1]", "a b", "h%20", "h:80:90", "h!", "h:8x", "é.com" }
local PATHS = { "", "/", "/files/report.pdf", "/a%20b/c", "/a+b", "/%zz", "/a b", "/é", "/a%2Fb",
  "//x", "/%41%42", "/%4", "/~user/!$&'()*,;=:@", "/a%", "/%e9" }
local KEY_PARTS = { "a", "b", "z", "exp", "sig", "format", "ex", "expa", "si", "sigz", "A", "", "é",
  "a%20b", "a+b", "%2B", "%zz", "x=y", "%", "%e9", "get", "set", "__index", ";", "a;b", "~", "-_." }
local VAL_PARTS = { "", "1", "x y", "x+y", "a%2Bb%26c", "r%C3%A9sum%C3%A9", "%zz", "=", "a=b", "é",
  "1700003600", "0", "%7E", "*", "!", "%20" }
local FRAGS = { "", "", "", "", "#top", "#", "#a b" }

-- Pieces the C core handles (plain) and pieces it leaves to lowbit.url.
local PLAIN_SCHEMES = { "https", "http", "HTTPS", "Http", "a+b.c-d" }
local PLAIN_HOSTS = { "cdn.example.com", "localhost:8080", "h", "", "h:", "EXAMPLE.com:443", "a_b~c-d.e" }
local PLAIN_PATHS = { "", "/", "/files/report.pdf", "/a%20b/c", "/a+b", "/a b", "/é", "/a%2Fb", "//x",
  "/%41%42", "/~user/!$&'()*,;=:@", "/%e9" }
local PLAIN_KEYS = { "a", "b", "z", "exp", "sig", "format", "ex", "expa", "si", "sigz", "A", "", "é",
  "a%20b", "a+b", "%2B", "x=y", "%e9", "get", "set", "__index", ";", "a;b", "~", "-_.", "Exp", "SIG" }
local PLAIN_VALS = { "", "1", "x y", "x+y", "a%2Bb%26c", "r%C3%A9sum%C3%A9", "=", "a=b", "é",
  "1700003600", "0", "%7E", "*", "!", "%20", "%00", "%ff" }

local function gen_query(plain)
  local n = rnd(8) - 1
  if n == 0 then return pick{ "", "?", "" } end
  local keys, vals = plain and PLAIN_KEYS or KEY_PARTS, plain and PLAIN_VALS or VAL_PARTS
  local parts = {}
  for i = 1, n do
    local r = rnd(10)
    if r == 1 then parts[i] = ""                                    -- an empty piece ("&&")
    elseif r == 2 then parts[i] = pick(keys)                        -- a key without "="
    else parts[i] = pick(keys) .. "=" .. pick(vals) end
  end
  return "?" .. table.concat(parts, "&")
end

local function gen_url()
  if rnd(3) > 1 then
    return pick(PLAIN_SCHEMES) .. "://" .. pick(PLAIN_HOSTS) .. pick(PLAIN_PATHS) .. gen_query(true)
  end
  local scheme = pick(SCHEMES)
  local pre = scheme == "" and pick{ "", "//" } or scheme .. pick{ "://", "://", "://", ":", ":/" }
  return pre .. pick(HOSTS) .. pick(PATHS) .. gen_query(false) .. pick(FRAGS)
end

-- What a call returned, as a comparable string.
local function outcome(v, err)
  if v == nil then return "nil: " .. tostring(err) end
  return tostring(v)
end

-- Mutations of a signed URL that verify must judge.
local function variants(signed)
  local out = { signed }
  out[#out + 1] = signed .. "&exp=1"
  out[#out + 1] = signed .. "&sig=00"
  out[#out + 1] = signed .. "&x=1"
  out[#out + 1] = signed .. "&x=%zz"
  out[#out + 1] = (signed:gsub("sig=%x+", "sig="))
  out[#out + 1] = (signed:gsub("sig=(%x)", function(c) return "sig=" .. (c == "0" and "1" or "0") end))
  out[#out + 1] = (signed:gsub("sig=%x+", function(s) return s:upper() end))
  out[#out + 1] = (signed:gsub("exp=%d+", "exp=1700003600x"))
  out[#out + 1] = (signed:gsub("exp=%d+&?", ""))
  out[#out + 1] = (signed:gsub("exp=", "exp=0"))
  out[#out + 1] = (signed:gsub("exp=%d+", "exp=1234567890123456789"))
  out[#out + 1] = (signed:gsub("exp=%d+", "exp="))
  out[#out + 1] = (signed:gsub("&", "&&"))
  out[#out + 1] = (signed:gsub("%?", "?&"))
  return out
end

describe("lowbit.urlsign C path", function()
  it("signs every generated URL exactly as the Lua path does", function()
    local s = assert(urlsign.new_signer("k3y", 60, { now = clock(T0) }))
    local seen_ok, seen_err, general = 0, 0, 0
    local parse = url.parse
    local function counting(...) general = general + 1; return parse(...) end
    for _ = 1, 3000 do
      local u = gen_url()
      url.parse = counting
      local a = outcome(s:sign(u))
      url.parse = parse
      local b = outcome(urlsign._sign_lua(s, u))
      assert.equal(b, a, u)
      if a:sub(1, 4) == "nil:" then seen_err = seen_err + 1 else seen_ok = seen_ok + 1 end
    end
    -- The generator reaches both outcomes.
    assert.is_true(seen_ok > 500 and seen_err > 100)
    -- ... and both paths: most URLs in the C core, the odd ones in Lua.
    assert.is_true(general > 300 and general < 1500, general)
  end)

  it("verifies every generated signed URL and its mutations exactly as the Lua path does", function()
    local s = assert(urlsign.new_signer("k3y", 60, { now = clock(T0) }))
    local valid = 0
    for i = 1, 1500 do
      local u = gen_url()
      local signed = s:sign(u)
      local cands = signed and variants(signed) or { u }
      for _, c in ipairs(cands) do
        for _, now in ipairs{ T0, T0 + 60, T0 + 61 } do
          s.now = clock(now)
          local a = outcome(s:verify(c))
          local b = outcome(urlsign._verify_lua(s, c))
          assert.equal(b, a, c .. " at " .. now)
          if a == "true" then valid = valid + 1 end
        end
        s.now = clock(T0)
      end
      -- verify_request: host, decoded path and raw query as a server has them.
      local p = signed and url.parse(signed)
      if p and i % 3 == 0 then
        local r = { host = p.host, url = { path = p.path, raw_query = p.raw_query } }
        assert.equal(outcome(urlsign._verify_parts_lua(s, p.host, p.path, p.raw_query)),
          outcome(s:verify_request(r)), signed)
      end
    end
    assert.is_true(valid > 500)
  end)

  it("agrees on the signed URLs of the spec's vectors and on long queries", function()
    local s = assert(urlsign.new_signer("secret", 3600, { now = clock(T0) }))
    local many = {}
    for i = 1, 80 do many[i] = "k" .. (i % 7) .. "=" .. i end
    for _, u in ipairs{
      "https://cdn.example.com/files/report.pdf",
      "http://localhost:8080/a%20b/c?z=last&format=pdf&a=x%20y&a=2",
      "https://example.com/dl?q=a%2Bb%26c&name=r%C3%A9sum%C3%A9.pdf",
      "https://h/p?" .. table.concat(many, "&", 1, 64),
      "https://h/p?" .. table.concat(many, "&"),         -- over the core's 64 pairs: Lua path
      "https://h/" .. ("x"):rep(5000) .. "?a=" .. ("%41"):rep(2000),
      "https://h/" .. ("y"):rep(70000) .. "?b=" .. ("%42"):rep(20),   -- over 64 KiB: Lua path
    } do
      local a, b = s:sign(u), urlsign._sign_lua(s, u)
      assert.equal(b, a, u)
      assert.equal(outcome(urlsign._verify_lua(s, a)), outcome(s:verify(a)))
      assert.is_true(s:verify(a))
    end
  end)

  it("signs and verifies a plain URL in one C call, without lowbit.url", function()
    local s = assert(urlsign.new_signer("secret", 3600, { now = clock(T0) }))
    local calls = 0
    local parse, parse_query = url.parse, url.parse_query
    url.parse = function(...) calls = calls + 1; return parse(...) end
    url.parse_query = function(...) calls = calls + 1; return parse_query(...) end
    local ok, err = pcall(function()
      local signed = assert(s:sign("https://cdn.example.com:8443/files/report.pdf?format=pdf&user=7"))
      assert.equal("https://cdn.example.com:8443/files/report.pdf?exp=1700003600&format=pdf&"
        .. "sig=" .. signed:match("sig=(%x+)") .. "&user=7", signed)
      assert.is_true(s:verify(signed))
      local r = { host = "cdn.example.com:8443",
        url = { path = "/files/report.pdf", raw_query = signed:match("%?(.*)$") } }
      assert.is_true(s:verify_request(r))
    end)
    url.parse, url.parse_query = parse, parse_query
    assert(ok, err)
    assert.equal(0, calls)
  end)

  it("compiles the sign and verify loops without trace aborts", function()
    local s = assert(urlsign.new_signer("secret", 3600, { now = clock(T0) }))
    local raw = "https://cdn.example.com/files/report.pdf?format=pdf"
    local signed = s:sign(raw)
    -- Aborts that leave code interpreted (NYI bytecodes, blacklisting...);
    -- "leaving loop in root trace" is the recorder retrying from the loop.
    local traceerr = require("jit.vmdef").traceerr
    local aborts = {}
    local function on_trace(what, tr, func, pc, otr, oex)
      local msg = what == "abort" and traceerr[otr] or nil
      if msg and msg ~= "leaving loop in root trace" and msg ~= "retry recording" then
        aborts[#aborts + 1] = msg:format(oex)
      end
    end
    jit.flush()
    jit.attach(on_trace, "trace")
    local n = 0
    for _ = 1, 2000 do
      if s:sign(raw) and s:verify(signed) then n = n + 1 end
    end
    jit.attach(on_trace)
    assert.equal(2000, n)
    assert.same({}, aborts)
  end)

  it("keeps misuse errors and error values", function()
    local s = assert(urlsign.new_signer("secret", 3600, { now = clock(T0) }))
    assert.has_error(function() s:sign(1) end, "bad argument 'url' to signer:sign: string expected, got number")
    local v, err = s:verify("https://h/p?exp=1&sig=ab&exp=2")
    assert.is_nil(v); assert.is_true(errors.is(err, urlsign.INVALID_SIG))
    v, err = s:verify("https://h/p?exp=&sig=ab")
    assert.is_nil(v); assert.equal(urlsign.MISSING_PARAMS, err)
  end)
end)
