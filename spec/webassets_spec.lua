-- lowbit.webassets: the serving rules of conformance/webassets.md. Tests
-- are named by the numbered statements ("S1".."S11") and the HTTP rows
-- ("H1".."H29") they show. The path rows go over a real server with curl
-- (--path-as-is: the bytes reach the handler as written).
--
-- Specs of minified output compare with webassets.minify.js/css (the C
-- core lb_minify; its own rules are in spec/minify_spec.lua).
local support = require "support"
local lowbit = require "lowbit"
local muxx = require "lowbit.muxx"
local httptest = require "lowbit.httptest"
local webassets = require "lowbit.webassets"
local errors = require "lowbit.errors"

local run, spawn = support.run, support.spawn

local R_TXT = "0123456789abcdefghij" -- 20 bytes, as the conformance file's r.txt
local R_MTIME = "Tue, 02 Jan 2024 03:04:05 GMT"
local SITE_CSS = "body {\n  color : red ;\n}\n/* comment */\n"
local A_JS = "var a = 1 ;\n// one\nfunction f ( x ) { return x + 1 }\n"
local B_JS = "var b = f( a ) ;\n"
local PNG = "\137PNG\r\n\26\n\0\0\0\rIHDR" .. ("\0"):rep(40)
local BIG_CSS = ("body { margin : 0 ; padding : 0 }\n.a .b { color : #123456 }\n"):rep(200)

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local d = f:read("*a")
  f:close()
  return d
end

-- A fresh site: root/ (the served directory) and outside/ next to it.
local function make_site()
  local top = os.tmpname()
  os.remove(top)
  local root = top .. "/root"
  assert(os.execute(("mkdir -p %s/css %s/js %s/sub/deeper %s/_dir %s/outside"):format(root, root, root, root, top)) == 0)
  write(root .. "/r.txt", R_TXT)
  assert(os.execute(("touch -d '2024-01-02 03:04:05 UTC' %s/r.txt"):format(root)) == 0)
  write(root .. "/css/site.css", SITE_CSS)
  write(root .. "/css/big.css", BIG_CSS)
  write(root .. "/js/a.js", A_JS)
  write(root .. "/js/b.js", B_JS)
  write(root .. "/data.json", '{"k": [1, 2, 3]}')
  write(root .. "/image", PNG)
  write(root .. "/logo.png", PNG)
  write(root .. "/sub/index.html", "<!doctype html><p>sub</p>\n")
  write(root .. "/_private.txt", "secret")
  write(root .. "/_dir/x.js", "secret()")
  write(root .. "/manifest.json", '{"v": 1}')
  write(top .. "/outside/secret.txt", "OUTSIDE SECRET")
  assert(os.execute(("ln -s %s/outside/secret.txt %s/link.txt"):format(top, root)) == 0)
  assert(os.execute(("ln -s %s/outside %s/linkdir"):format(top, root)) == 0)
  assert(os.execute(("ln -s %s/css/site.css %s/inside_link.css"):format(root, root)) == 0)
  return { top = top, root = root, rm = function() os.execute("rm -rf " .. top) end }
end

-- Starts a server whose handler is h (or a muxx with h under /assets/).
local function serve(h, with_mux)
  local handler = h
  if with_mux then
    local m = muxx.new()
    m:handle("/assets/", h)
    handler = m
  end
  local srv, ln = support.http_server({ handler = handler })
  return "http://" .. ln:addr(), srv
end

-- curl -i; returns status, headers (lower-case names), body.
local function curl(url, ...)
  local args = { "-s", "-S", "-i", "--path-as-is", "--max-time", "10" }
  for _, a in ipairs({ ... }) do args[#args + 1] = a end
  args[#args + 1] = url
  local code, out, errout = spawn("curl", args)
  assert(code == 0, "curl failed: " .. tostring(errout))
  local head, body = out:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no response head: " .. out)
  local status = tonumber(head:match("^HTTP/1%.1 (%d+)"))
  local hdr = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do
    local l = name:lower()
    if hdr[l] then hdr[l] = hdr[l] .. ", " .. value else hdr[l] = value end
  end
  return status, hdr, body
end

-- Runs h on a recorded request; returns the recorder.
local function call(h, method, target, headers)
  local r = httptest.new_request(method, target, { headers = headers })
  local w = httptest.new_recorder()
  h(w, r)
  return w
end
local function hget(w, name) return (w.snapshot or w:header()):get(name) end

-- The minifier's output for s (which must minify, and shrink).
local function minified(kind, s)
  local out = assert(webassets.minify[kind](s))
  assert(#out < #s, "nothing was minified")
  return out
end

describe("webassets", function()
  local site
  before_each(function() site = make_site() end)
  after_each(function() site.rm() end)

  it("S1: new(root, opts) returns a handler; mounted under /assets with muxx, GET serves the file's bytes", function()
    run(function()
      local h = webassets.new(site.root)
      assert.is_function(getmetatable(h).__call)
      assert.is_function(h.serve_http)
      local base, srv = serve(h, true)
      local status, hdr, body = curl(base .. "/assets/css/site.css")
      assert.equal(200, status)
      assert.equal(SITE_CSS, body)
      assert.equal("text/css; charset=utf-8", hdr["content-type"])
      srv:close()
    end)
  end)

  it("S1: behind a middleware that strips a prefix (rewriting r.url), the rewritten path counts", function()
    run(function()
      local h = webassets.new(site.root, { prefix = "" })
      local function strip(prefix, next_h)
        return function(w, r)
          local u = r.url
          if u.path:sub(1, #prefix + 1) ~= prefix .. "/" then return w:write_header(404) end
          u.path = u.path:sub(#prefix + 1)
          u.raw_path = u.raw_path:sub(#prefix + 1)
          return next_h(w, r)
        end
      end
      local base, srv = serve(strip("/static", h))
      local status, _, body = curl(base .. "/static/css/site.css")
      assert.equal(200, status)
      assert.equal(SITE_CSS, body)
      srv:close()
    end)
  end)

  it("S1: minify=true serves the minified form", function()
    local logged = {}
    local h = webassets.new(site.root, { minify = true, error_logger = function(e) logged[#logged + 1] = tostring(e) end })
    local w = call(h, "GET", "/assets/css/site.css")
    assert.equal(200, w.status)
    assert.equal(minified("css", SITE_CSS), w.body)
    assert.equal(0, #logged)
  end)

  it("a file that fails to minify is served as it is and reported", function()
    local logged = {}
    local real = webassets.minify
    webassets.minify = { js = function() return nil, "line 3: unterminated string" end, css = real.css }
    local ok, err = pcall(function()
      local h = webassets.new(site.root, { minify = true, cache = true, error_logger = function(e) logged[#logged + 1] = tostring(e) end })
      local w = call(h, "GET", "/js/a.js")
      assert.equal(200, w.status)
      assert.equal(A_JS, w.body)
      assert.equal(1, #logged)
      assert.matches("js/a%.js", logged[1])
      assert.matches("line 3", logged[1])
    end)
    webassets.minify = real
    assert(ok, err)
  end)

  it("webassets.minify is lowbit.webassets.minify (js and css)", function()
    assert.equal(require("lowbit.webassets.minify"), webassets.minify)
    assert.equal("var a=1;", minified("js", "var a = 1 ;\n"))
    assert.equal("a{color:red}", minified("css", "a {\n  color: red;\n}\n")) -- whitespace out, and the ; before }
  end)

  for _, mode in ipairs({ false, true }) do
    local tag = mode and "cache on" or "cache off"

    it("S2 (" .. tag .. "): a changed file is seen only when the cache is off or the path is excluded", function()
      local h = webassets.new(site.root, { cache = mode, cache_exclude = { "/assets/manifest.json" } })
      assert.equal(SITE_CSS, call(h, "GET", "/assets/css/site.css").body)
      assert.equal('{"v": 1}', call(h, "GET", "/assets/manifest.json").body)
      write(site.root .. "/css/site.css", "changed")
      write(site.root .. "/manifest.json", '{"v": 2}')
      assert.equal(mode and SITE_CSS or "changed", call(h, "GET", "/assets/css/site.css").body)
      assert.equal('{"v": 2}', call(h, "GET", "/assets/manifest.json").body)
      -- the stripped form of the path is excluded too
      assert.equal('{"v": 2}', call(h, "GET", "/manifest.json").body)
    end)

    it("S6 / H23 (" .. tag .. "): a segment starting with _ is 403", function()
      run(function()
        local h = webassets.new(site.root, { cache = mode })
        local base, srv = serve(h)
        for _, p in ipairs({ "/assets/_private.txt", "/assets/_dir/x.js", "/assets/css/../_private.txt", "/assets/%5fprivate.txt" }) do
          local status, _, body = curl(base .. p)
          assert.equal(403, status, p)
          assert.is_nil(body:find("secret", 1, true))
        end
        srv:close()
      end)
    end)

    it("S8 H1/H2/S9 (" .. tag .. "): 200 with type, length, Last-Modified, a strong content ETag, Accept-Ranges; HEAD the same headers, no body", function()
      run(function()
        local h = webassets.new(site.root, { cache = mode })
        local base, srv = serve(h)
        local status, hdr, body = curl(base .. "/assets/r.txt")
        assert.equal(200, status)
        assert.equal(R_TXT, body)
        assert.equal("text/plain; charset=utf-8", hdr["content-type"])
        assert.equal("20", hdr["content-length"])
        assert.equal(R_MTIME, hdr["last-modified"])
        assert.equal("bytes", hdr["accept-ranges"])
        assert.matches('^"%x+"$', hdr["etag"])
        local hs, hh, hb = curl(base .. "/assets/r.txt", "-I")
        assert.equal(200, hs)
        assert.equal("", hb)
        for _, k in ipairs({ "content-type", "content-length", "last-modified", "etag", "accept-ranges" }) do
          assert.equal(hdr[k], hh[k], k)
        end
        -- the ETag is the content's: another file with the same bytes has it too
        write(site.root .. "/copy.txt", R_TXT)
        local _, ch = curl(base .. "/assets/copy.txt")
        assert.equal(hdr.etag, ch.etag)
        srv:close()
      end)
    end)

    it("S8 H3-H8 (" .. tag .. "): conditionals, If-None-Match before If-Modified-Since, 412", function()
      run(function()
        local h = webassets.new(site.root, { cache = mode, fingerprint = true, compress = true })
        local base, srv = serve(h)
        local u = base .. "/assets/r.txt"
        local _, hdr = curl(u)
        local etag = hdr.etag
        local s, hh, b = curl(u, "-H", "If-Modified-Since: " .. R_MTIME)            -- H3
        assert.equal(304, s); assert.equal("", b)
        s = curl(u, "-H", "If-Modified-Since: Mon, 01 Jan 2024 03:04:05 GMT")        -- H4
        assert.equal(200, s)
        s, hh, b = curl(u, "-H", "If-None-Match: " .. etag)                           -- H5
        assert.equal(304, s); assert.equal("", b)
        assert.equal(etag, hh.etag)
        assert.equal("no-cache", hh["cache-control"])
        -- variants exist for cached assets only: Vary with them
        assert.equal(mode and "Accept-Encoding" or nil, hh.vary)
        s = curl(u, "-H", 'If-None-Match: W/"x", ' .. etag)                          -- weak comparison, lists
        assert.equal(304, s)
        s = curl(u, "-H", 'If-None-Match: "x"', "-H", "If-None-Match: " .. etag)       -- repeated fields form one list
        assert.equal(304, s)
        s = curl(u, "-H", "If-None-Match: *")                                          -- H6
        assert.equal(304, s)
        s, _, b = curl(u, "-H", 'If-None-Match: "other"', "-H", "If-Modified-Since: " .. R_MTIME) -- H7
        assert.equal(200, s); assert.equal(R_TXT, b)
        s = curl(u, "-H", "If-Unmodified-Since: Mon, 01 Jan 2024 00:00:00 GMT")       -- H8
        assert.equal(412, s)
        s = curl(u, "-H", "If-Unmodified-Since: " .. R_MTIME)
        assert.equal(200, s)
        s = curl(u, "-H", 'If-Match: "other"')
        assert.equal(412, s)
        s = curl(u, "-H", "If-Match: " .. etag)
        assert.equal(200, s)
        -- RFC 850 and asctime dates are understood too
        s = curl(u, "-H", "If-Modified-Since: Tuesday, 02-Jan-24 03:04:05 GMT")
        assert.equal(304, s)
        s = curl(u, "-H", "If-Modified-Since: Tue Jan  2 03:04:05 2024")
        assert.equal(304, s)
        srv:close()
      end)
    end)

    it("S8 H9-H15 (" .. tag .. "): single, suffix, clamped and multiple ranges, the amplification guard, 416, If-Range", function()
      run(function()
        local h = webassets.new(site.root, { cache = mode })
        local base, srv = serve(h)
        local u = base .. "/assets/r.txt"
        local s, hdr, b = curl(u, "-H", "Range: bytes=2-5")                             -- H9
        assert.equal(206, s); assert.equal("bytes 2-5/20", hdr["content-range"]); assert.equal("4", hdr["content-length"])
        assert.equal("2345", b)
        s, hdr, b = curl(u, "-H", "Range: bytes=-3")                                    -- H10
        assert.equal(206, s); assert.equal("bytes 17-19/20", hdr["content-range"]); assert.equal("hij", b)
        s, hdr, b = curl(u, "-H", "Range: bytes=15-")
        assert.equal(206, s); assert.equal("bytes 15-19/20", hdr["content-range"]); assert.equal("fghij", b)
        s, hdr, b = curl(u, "-H", "Range: bytes=18-100")
        assert.equal(206, s); assert.equal("bytes 18-19/20", hdr["content-range"]); assert.equal("ij", b)
        s, hdr, b = curl(u, "-H", "Range: bytes=0-1,5-6")                               -- H11
        assert.equal(206, s)
        local boundary = hdr["content-type"]:match("^multipart/byteranges; boundary=(%S+)$")
        assert.truthy(boundary)
        assert.equal(tostring(#b), hdr["content-length"])
        local parts = {}
        for ct, cr, data in b:gmatch("%-%-" .. boundary .. "\r\nContent%-Type: ([^\r]+)\r\nContent%-Range: ([^\r]+)\r\n\r\n(.-)\r\n") do
          parts[#parts + 1] = { ct, cr, data }
        end
        assert.same({ { "text/plain; charset=utf-8", "bytes 0-1/20", "01" },
                      { "text/plain; charset=utf-8", "bytes 5-6/20", "56" } }, parts)
        assert.truthy(b:find("\r\n%-%-" .. boundary .. "%-%-\r\n$"))
        s, hdr, b = curl(u, "-H", "Range: bytes=0-19,0-19,0-19")                        -- H12
        assert.equal(200, s); assert.equal(R_TXT, b)
        s, hdr = curl(u, "-H", "Range: bytes=100-200")                                  -- H13
        assert.equal(416, s); assert.equal("bytes */20", hdr["content-range"])
        s, hdr = curl(u, "-H", "Range: bytes=x-y")                                      -- H14
        assert.equal(416, s); assert.equal("bytes */20", hdr["content-range"])
        s, _, b = curl(u, "-H", "Range: bytes=2-5", "-H", 'If-Range: "stale"')          -- H15
        assert.equal(200, s); assert.equal(R_TXT, b)
        local _, full = curl(u)
        s, _, b = curl(u, "-H", "Range: bytes=2-5", "-H", "If-Range: " .. full.etag)
        assert.equal(206, s); assert.equal("2345", b)
        s, _, b = curl(u, "-H", "Range: bytes=2-5", "-H", "If-Range: " .. R_MTIME)
        assert.equal(206, s); assert.equal("2345", b)
        s, hdr, b = curl(u, "-I", "-H", "Range: bytes=2-5")
        assert.equal(206, s); assert.equal("4", hdr["content-length"]); assert.equal("", b)
        srv:close()
      end)
    end)

    it("S7 H18-H22, H24-H28 (" .. tag .. "): path safety, no listings, 405", function()
      run(function()
        local logged = 0
        local h = webassets.new(site.root, { cache = mode, error_logger = function() logged = logged + 1 end })
        local base, srv = serve(h)
        local function never_outside(p, allowed)
          local s, _, b = curl(base .. p)
          assert.is_nil(b:find("OUTSIDE SECRET", 1, true), p)
          assert.is_nil(b:find("root:", 1, true), p)
          assert.truthy(allowed[s], p .. " gave " .. s)
          return s, b
        end
        local four = { [400] = true, [404] = true }
        never_outside("/assets/../../etc/passwd", four)                                 -- H18
        never_outside("/assets/../outside/secret.txt", four)
        local s, b = never_outside("/assets/sub/../css/site.css", { [200] = true })     -- H19
        assert.equal(SITE_CSS, b)
        never_outside("/assets/%2e%2e/%2e%2e/etc/passwd", four)                         -- H20
        never_outside("/assets/%2E%2E/outside/secret.txt", four)
        never_outside("/assets/..%2f..%2fetc%2fpasswd", four)
        never_outside("/assets/..%2foutside%2fsecret.txt", four)
        never_outside("/assets/..%5c..%5cetc%5cpasswd", four)
        never_outside("/assets/css%5csite.css", four)
        never_outside("/assets/css/site.css%00.txt", four)                             -- H21
        never_outside("/assets/%00", four)
        never_outside("/assets/link.txt", { [403] = true, [404] = true })              -- H22
        never_outside("/assets/linkdir/secret.txt", { [403] = true, [404] = true })
        s, b = never_outside("/assets/inside_link.css", { [200] = true })              -- a link inside the root is fine
        assert.equal(SITE_CSS, b)
        s, b = never_outside("/assets/sub", { [404] = true })                          -- H24
        assert.is_nil(b:find("index", 1, true))
        s, b = never_outside("/assets/sub/", { [403] = true, [404] = true })           -- H25
        assert.is_nil(b:find("index", 1, true))
        s, b = never_outside("/assets/", { [403] = true, [404] = true })
        assert.is_nil(b:find("css", 1, true))
        s, b = never_outside("/assets/sub/index.html", { [200] = true })               -- H26
        assert.matches("<p>sub</p>", b)
        s, b = never_outside("/assets/css/site.css?v=123", { [200] = true })           -- H28
        assert.equal(SITE_CSS, b)
        s, b = never_outside("/assets//css/site.css", { [200] = true })
        assert.equal(SITE_CSS, b)
        s, b = never_outside("/assets/css/./site.css", { [200] = true })
        assert.equal(SITE_CSS, b)
        s, b = never_outside("/assets/css/%73ite.css", { [200] = true })               -- escapes decode
        assert.equal(SITE_CSS, b)
        never_outside("/assets/css/%zzite.css", four)
        for _, m in ipairs({ "POST", "PUT", "DELETE", "OPTIONS" }) do                  -- H27
          local st, hdr = curl(base .. "/assets/css/site.css", "-X", m)
          assert.equal(405, st, m)
          assert.equal("GET, HEAD", hdr.allow)
        end
        assert.is_true(logged > 0)
        srv:close()
      end)
    end)

    it("S10 H16 (" .. tag .. "): a fixed content-type table, sniffing otherwise", function()
      local h = webassets.new(site.root, { cache = mode })
      local want = {
        ["/js/a.js"] = "text/javascript; charset=utf-8", ["/css/site.css"] = "text/css; charset=utf-8",
        ["/data.json"] = "application/json", ["/logo.png"] = "image/png", ["/image"] = "image/png",
        ["/sub/index.html"] = "text/html; charset=utf-8", ["/r.txt"] = "text/plain; charset=utf-8",
      }
      for p, ct in pairs(want) do
        local w = call(h, "GET", p)
        assert.equal(200, w.status, p)
        assert.equal(ct, hget(w, "Content-Type"), p)
      end
      assert.equal("text/javascript; charset=utf-8", webassets.TYPES.mjs)
      assert.equal("image/svg+xml", webassets.TYPES.svg)
      assert.equal("application/wasm", webassets.TYPES.wasm)
      assert.equal("font/woff2", webassets.TYPES.woff2)
    end)
  end

  it("S11 H17: with the cache off no variant is built per request (identity, no Vary)", function()
    local h = webassets.new(site.root, { compress = true })
    local w = call(h, "GET", "/css/big.css", { ["Accept-Encoding"] = "gzip, br" })
    assert.equal(200, w.status)
    assert.is_nil(hget(w, "Content-Encoding"))
    assert.is_nil(hget(w, "Vary"))
    assert.equal(BIG_CSS, w.body)
  end)

  it("S11 H17: gzip and brotli variants that decode to the identity bytes, Vary on every response, an ETag per encoding, q=0 honoured", function()
    run(function()
      local h = webassets.new(site.root, { cache = true, compress = true })
      local base, srv = serve(h)
      local u = base .. "/assets/css/big.css"
      local s, id, body = curl(u)
      assert.equal(200, s); assert.equal(BIG_CSS, body)
      assert.equal("Accept-Encoding", id.vary)
      assert.is_nil(id["content-encoding"])
      local gs, gz, gbody = curl(u, "-H", "Accept-Encoding: gzip")
      assert.equal(200, gs)
      assert.equal("gzip", gz["content-encoding"])
      assert.equal("Accept-Encoding", gz.vary)
      assert.equal(tostring(#gbody), gz["content-length"])
      assert.is_true(#gbody < #BIG_CSS)
      assert.are_not.equal(id.etag, gz.etag)
      local tmp = os.tmpname()
      write(tmp, gbody)
      local _, dec = spawn("gzip", { "-dc", tmp })
      os.remove(tmp)
      assert.equal(BIG_CSS, dec)
      local bs, br = curl(u, "-H", "Accept-Encoding: gzip, deflate, br")              -- br preferred
      assert.equal(200, bs); assert.equal("br", br["content-encoding"])
      assert.are_not.equal(gz.etag, br.etag); assert.are_not.equal(id.etag, br.etag)
      local _, _, decoded = curl(u, "--compressed")                                    -- curl decodes br
      assert.equal(BIG_CSS, decoded)
      local _, q0 = curl(u, "-H", "Accept-Encoding: br;q=0, gzip")
      assert.equal("gzip", q0["content-encoding"])
      local _, none, nb = curl(u, "-H", "Accept-Encoding: gzip;q=0, br;q=0")
      assert.is_nil(none["content-encoding"]); assert.equal(BIG_CSS, nb)
      assert.equal("Accept-Encoding", none.vary)
      local _, star = curl(u, "-H", "Accept-Encoding: *;q=0.5, br;q=0")
      assert.equal("gzip", star["content-encoding"])
      local hs, hh, hb = curl(u, "-I", "-H", "Accept-Encoding: gzip")                  -- HEAD the same
      assert.equal(200, hs); assert.equal("", hb)
      assert.equal(gz["content-length"], hh["content-length"]); assert.equal(gz.etag, hh.etag)
      local s304 = curl(u, "-H", "Accept-Encoding: gzip", "-H", "If-None-Match: " .. gz.etag)
      assert.equal(304, s304)
      local s200 = curl(u, "-H", "Accept-Encoding: gzip", "-H", "If-None-Match: " .. id.etag)
      assert.equal(200, s200)
      local rs, rh, rb = curl(u, "-H", "Accept-Encoding: gzip", "-H", "Range: bytes=0-3")   -- a range: identity bytes
      assert.equal(206, rs); assert.is_nil(rh["content-encoding"]); assert.equal("body", rb)
      local ps, ph = curl(base .. "/assets/logo.png", "-H", "Accept-Encoding: gzip, br")    -- never png
      assert.equal(200, ps); assert.is_nil(ph["content-encoding"]); assert.is_nil(ph.vary)
      srv:close()
    end)
  end)

  it("S3: 100 concurrent cold GETs read the file once and minify it once; all get the same bytes", function()
    run(function()
      local reads, minifies = 0, 0
      local fs = {
        read = function(name)
          reads = reads + 1
          lowbit.sleep(0.02) -- a slow disk: the other requests arrive meanwhile
          if name == "app.js" then return A_JS, 1700000000 end
          return nil, errors.new("no such file: " .. name)
        end,
        stat = function(name)
          if name == "app.js" then return { size = #A_JS, mtime = 1700000000 } end
          return nil, errors.new("no such file: " .. name)
        end,
      }
      local real = webassets.minify
      webassets.minify = setmetatable({}, { __index = function(_, k)
        return function(s) minifies = minifies + 1; return real[k](s) end
      end })
      local ok, err = pcall(function()
        local h = webassets.new(fs, { cache = true, minify = true })
        local wg = lowbit.waitgroup()
        local bodies = {}
        for i = 1, 100 do
          wg:add(1)
          lowbit.go(function()
            bodies[i] = call(h, "GET", "/assets/app.js").body
            wg:done()
          end)
        end
        wg:wait()
        assert.equal(1, reads)
        assert.equal(1, minifies)
        for i = 1, 100 do assert.equal(minified("js", A_JS), bodies[i]) end
      end)
      webassets.minify = real
      assert(ok, err)
    end)
  end)

  it("S3: a failure is shared with the waiting requests, then forgotten (not cached)", function()
    run(function()
      local reads, present = 0, false
      local fs = { read = function(name)
        reads = reads + 1
        lowbit.sleep(0.02)
        if present then return "ok" end
        return nil, errors.new("no such file: " .. name)
      end }
      local h = webassets.new(fs, { cache = true })
      local wg, statuses = lowbit.waitgroup(), {}
      for i = 1, 10 do
        wg:add(1)
        lowbit.go(function() statuses[i] = call(h, "GET", "/x.txt").status; wg:done() end)
      end
      wg:wait()
      assert.equal(1, reads)
      for i = 1, 10 do assert.equal(404, statuses[i]) end
      present = true
      local w = call(h, "GET", "/x.txt")
      assert.equal(200, w.status); assert.equal("ok", w.body)
      assert.equal(2, reads)
    end)
  end)

  it("S4: a bundle serves minify(a .. sep .. b) in order; a missing source is a 500, reported once, not cached", function()
    for _, mode in ipairs({ false, true }) do
      local logged = {}
      local h = webassets.new(site.root, { cache = mode, minify = true,
        bundles = { ["app.bundle.js"] = { "js/a.js", "js/b.js" }, ["site.bundle.css"] = { "css/site.css", "css/site.css" } },
        error_logger = function(e) logged[#logged + 1] = tostring(e) end })
      local w = call(h, "GET", "/assets/app.bundle.js")
      assert.equal(200, w.status)
      assert.equal(minified("js", A_JS .. ";\n" .. B_JS), w.body)
      assert.equal("text/javascript; charset=utf-8", hget(w, "Content-Type"))
      -- a source may be private (the _ rule is about what is served)
      local hp = webassets.new(site.root, { cache = mode, bundles = { ["x.bundle.js"] = { "_dir/x.js", "js/b.js" } } })
      assert.equal("secret();\n" .. B_JS, call(hp, "GET", "/x.bundle.js").body)
      assert.equal(403, call(hp, "GET", "/_dir/x.js").status)
      w = call(h, "GET", "/assets/site.bundle.css")
      assert.equal(minified("css", SITE_CSS .. "\n" .. SITE_CSS), w.body)
      -- a missing source
      local h2 = webassets.new(site.root, { cache = mode,
        bundles = { ["app.bundle.js"] = { "js/a.js", "js/gone.js" } },
        error_logger = function(e) logged[#logged + 1] = tostring(e) end })
      logged = {}
      w = call(h2, "GET", "/assets/app.bundle.js")
      assert.equal(500, w.status)
      assert.equal(1, #logged)
      assert.matches("js/gone%.js", logged[1])
      write(site.root .. "/js/gone.js", "var gone = 1\n")
      w = call(h2, "GET", "/assets/app.bundle.js")
      assert.equal(200, w.status)
      assert.equal(A_JS .. ";\n" .. "var gone = 1\n", w.body)
      os.remove(site.root .. "/js/gone.js")
    end
  end)

  it("S5: a missing file is 404 and reported; no request input raises or answers 500", function()
    local logged = {}
    local h = webassets.new(site.root, { cache = true, compress = true, fingerprint = true,
      error_logger = function(e) logged[#logged + 1] = tostring(e) end })
    local w = call(h, "GET", "/assets/nope.css")
    assert.equal(404, w.status)
    assert.equal(1, #logged)
    assert.matches("nope%.css", logged[1])
    -- random paths and header values, from a fixed seed
    math.randomseed(12345)
    local alphabet = { "/", ".", "..", "%", "%2e", "%2f", "%5c", "%00", "_", "a", "css", "site.css", "r.txt",
      "\\", "%", "%zz", "~", " ", "\255", "sub", "app.12345678.js", "-", "," }
    local hdrs = { "Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "Accept-Encoding" }
    local vals = { "bytes=", "bytes=-", "bytes=0-", "bytes=5-1", "bytes=-0", "bytes=99999999999999999999-",
      ",,,", "*", "W/", '"', '"abc', "gzip;q=", "br;q=abc", "Tue, 99 Foo 2024 99:99:99 GMT", "",
      "bytes=0-0,-1", "bytes=1-2,3-4,5-6,7-8,9-10,11-12" }
    for _ = 1, 2000 do
      local parts = { "/assets" }
      for k = 1, math.random(1, 6) do parts[k + 1] = alphabet[math.random(#alphabet)] end
      local target = table.concat(parts, math.random(2) == 1 and "/" or "")
      local hd = {}
      for _ = 1, math.random(0, 3) do hd[hdrs[math.random(#hdrs)]] = vals[math.random(#vals)] .. (math.random(2) == 1 and vals[math.random(#vals)] or "") end
      local ok, r = pcall(httptest.new_request, ({ "GET", "HEAD", "POST" })[math.random(3)], target, { headers = hd })
      if ok then
        local rw = httptest.new_recorder()
        local ok2, err = pcall(h, rw, r)
        assert(ok2, err)
        assert.is_true(rw.status ~= 500, target)
      end
    end
  end)

  it("H29: h:url gives a fingerprinted name served immutable; a stale hash is 404; plain names revalidate", function()
    run(function()
      local h = webassets.new(site.root, { cache = true, fingerprint = true,
        bundles = { ["app.bundle.js"] = { "js/a.js", "js/b.js" } } })
      local base, srv = serve(h, true)
      local u = h:url("app.bundle.js")
      assert.matches("^/assets/app%.bundle%.%x%x%x%x%x%x%x%x%.js$", u)
      assert.matches("^/assets/css/site%.%x+%.css$", h:url("css/site.css"))
      local s, hdr, b = curl(base .. u)
      assert.equal(200, s)
      assert.equal("public, max-age=31536000, immutable", hdr["cache-control"])
      assert.equal(A_JS .. ";\n" .. B_JS, b) -- minify is off by default
      s = curl(base .. "/assets/app.bundle.00000000.js")
      assert.equal(404, s)
      s, hdr = curl(base .. "/assets/app.bundle.js")
      assert.equal(200, s)
      assert.equal("no-cache", hdr["cache-control"])
      assert.truthy(hdr.etag)
      -- the cache off: a changed file gets a new hash, the old one is 404
      local h2 = webassets.new(site.root, { fingerprint = true })
      local old = h2:url("css/site.css")
      assert.equal(200, call(h2, "GET", old).status)
      write(site.root .. "/css/site.css", "changed {}")
      local new = h2:url("css/site.css")
      assert.are_not.equal(old, new)
      assert.equal(404, call(h2, "GET", old).status)
      assert.equal("changed {}", call(h2, "GET", new).body)
      -- a missing asset has no url
      local none, err = h:url("missing.js")
      assert.is_nil(none); assert.truthy(err)
      srv:close()
    end)
  end)

  -- The server's writer, with its write_prebuilt counted (the real method
  -- runs): which responses took the prebuilt path.
  local function count_prebuilt()
    local W = require("lowbit.http.server").ResponseWriter
    local orig, n = W.write_prebuilt, { sent = 0, refused = 0 }
    W.write_prebuilt = function(...)
      local ok, err = orig(...)
      if ok == true then n.sent = n.sent + 1 elseif ok == false then n.refused = n.refused + 1 end
      return ok, err
    end
    return n, function() W.write_prebuilt = orig end
  end
  -- A writer that forwards to w (another object: the handler cannot give
  -- it a prebuilt head, and answers through w:header() and w:write).
  local function proxy(w)
    return setmetatable({}, { __index = function(_, k)
      local v = w[k]
      if type(v) == "function" then return function(_, ...) return v(w, ...) end end
      return v
    end })
  end
  -- The raw response to one request (the server closes after it).
  local function raw(base, req)
    local net = require "lowbit.net"
    local c = assert(net.dial(nil, (base:gsub("^http://", ""))))
    c:set_deadline(lowbit.now() + 5)
    assert(c:write(req))
    local all = support.read_all(c)
    c:close()
    return (all:gsub("\r\nDate: [^\r\n]*\r\n", "\r\nDate: -\r\n"))
  end

  it("a cached whole 200 goes out with its prebuilt head: byte for byte what the header-by-header path sends (identity, gzip, br, immutable, no-cache, HEAD, HTTP/1.0)", function()
    run(function()
      local n, restore = count_prebuilt()
      local ok, err = pcall(function()
        local h = webassets.new(site.root, { cache = true, compress = true, fingerprint = true })
        local fast_base, srv1 = serve(h)
        local slow_base, srv2 = serve(function(w, r) return h(proxy(w), r) end)
        local fp = h:url("css/big.css")
        local reqs = {}
        for _, path in ipairs({ "/assets/css/big.css", fp, "/assets/r.txt", "/assets/logo.png" }) do
          for _, ae in ipairs({ "", "Accept-Encoding: gzip\r\n", "Accept-Encoding: gzip, br\r\n", "Accept-Encoding: br;q=0, gzip;q=0\r\n" }) do
            reqs[#reqs + 1] = "GET " .. path .. " HTTP/1.1\r\nHost: a\r\n" .. ae .. "Connection: close\r\n\r\n"
            reqs[#reqs + 1] = "HEAD " .. path .. " HTTP/1.1\r\nHost: a\r\n" .. ae .. "Connection: close\r\n\r\n"
          end
          reqs[#reqs + 1] = "GET " .. path .. " HTTP/1.0\r\n\r\n"
        end
        raw(fast_base, reqs[1]) -- fills the cache
        local sent0 = n.sent
        for _, req in ipairs(reqs) do
          local fast, slow = raw(fast_base, req), raw(slow_base, req)
          assert.equal(slow, fast)
          assert.matches("^HTTP/1%.1 200 OK\r\n", fast)
        end
        assert.equal(#reqs, n.sent - sent0) -- every fast response was prebuilt
        -- what the bytes are: the fields in order, the Date, the body
        local resp = raw(fast_base, "GET /assets/r.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        local etag = resp:match("\r\nETag: (\"%x+\")\r\n")
        assert.equal("HTTP/1.1 200 OK\r\nLast-Modified: " .. R_MTIME .. "\r\nETag: " .. etag ..
          "\r\nVary: Accept-Encoding\r\nCache-Control: no-cache\r\nContent-Type: text/plain; charset=utf-8\r\nAccept-Ranges: bytes\r\n" ..
          "Content-Length: 20\r\nDate: -\r\nConnection: close\r\n\r\n" .. R_TXT, resp)
        srv1:close(); srv2:close()
      end)
      restore()
      assert(ok, err)
    end)
  end)

  it("a header a middleware set keeps the header-by-header path, and is sent; conditional and range requests are answered as before", function()
    run(function()
      local n, restore = count_prebuilt()
      local ok, err = pcall(function()
        local h = webassets.new(site.root, { cache = true })
        local m = muxx.new()
        local g = m:group("/assets")
        g:use(function(next_h) return function(w, r)
          w:header():set("X-Frame-Options", "DENY")
          return next_h(w, r)
        end end)
        g:handle("/", h)
        local plain = muxx.new()
        plain:handle("/assets/", h)
        local srv1, ln1 = support.http_server({ handler = m })
        local srv2, ln2 = support.http_server({ handler = plain })
        local mw_base, base = "http://" .. ln1:addr(), "http://" .. ln2:addr()
        local req = "GET /assets/r.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        local want = raw(base, req)
        local sent0 = n.sent
        local got = raw(mw_base, req)
        assert.equal(sent0, n.sent) -- not prebuilt
        assert.matches("\r\nX%-Frame%-Options: DENY\r\n", got)
        assert.equal(want, (got:gsub("X%-Frame%-Options: DENY\r\n", "")))
        local s, hdr, body = curl(mw_base .. "/assets/r.txt", "-I")
        assert.equal(200, s); assert.equal("DENY", hdr["x-frame-options"]); assert.equal("20", hdr["content-length"])
        assert.equal("", body)
        -- after prebuilt responses, the other requests keep their rules
        local etag = want:match("\r\nETag: (\"%x+\")\r\n")
        for _, b in ipairs({ base, mw_base }) do
          local u = b .. "/assets/r.txt"
          assert.equal(304, (curl(u, "-H", "If-None-Match: " .. etag)))
          assert.equal(304, (curl(u, "-H", "If-Modified-Since: " .. R_MTIME)))
          assert.equal(412, (curl(u, "-H", "If-Match: \"nope\"")))
          local rs, rh, rb = curl(u, "-H", "Range: bytes=2-4")
          assert.equal(206, rs); assert.equal("234", rb); assert.equal("bytes 2-4/20", rh["content-range"])
          assert.equal(416, (curl(u, "-H", "Range: bytes=50-")))
          local fs, _, fb = curl(u, "-H", "Range: bytes=2-4", "-H", "If-Range: \"stale\"")
          assert.equal(200, fs); assert.equal(R_TXT, fb)
          assert.equal(405, (curl(u, "-X", "POST")))
          assert.equal(403, (curl(b .. "/assets/_private.txt")))
        end
        srv1:close(); srv2:close()
      end)
      restore()
      assert(ok, err)
    end)
  end)

  it("H9-H14 details: the range unit is case-insensitive, a zero suffix is unsatisfiable, If-Range with a weak tag is ignored", function()
    local h = webassets.new(site.root, { cache = true })
    local w = call(h, "GET", "/r.txt", { Range = "Bytes=1-2" })
    assert.equal(206, w.status); assert.equal("12", w.body)
    w = call(h, "GET", "/r.txt", { Range = "bytes=-0" })
    assert.equal(416, w.status); assert.equal("bytes */20", hget(w, "Content-Range"))
    w = call(h, "GET", "/r.txt", { Range = "bytes= 1-2 , 4-4" })
    assert.equal(206, w.status); assert.matches("^multipart/byteranges", hget(w, "Content-Type"))
    local etag = hget(call(h, "GET", "/r.txt"), "ETag")
    w = call(h, "GET", "/r.txt", { Range = "bytes=1-2", ["If-Range"] = "W/" .. etag })
    assert.equal(200, w.status); assert.equal(R_TXT, w.body)
  end)

  it("root as an in-memory table of files (an app shipped as one rock)", function()
    local h = webassets.new({ ["css/site.css"] = SITE_CSS, ["r.txt"] = { data = R_TXT, mtime = 1704164645 },
                              ["_secret.txt"] = "no" }, { cache = true })
    local w = call(h, "GET", "/assets/css/site.css")
    assert.equal(200, w.status); assert.equal(SITE_CSS, w.body)
    w = call(h, "GET", "/r.txt")
    assert.equal(R_MTIME, hget(w, "Last-Modified"))
    assert.equal(403, call(h, "GET", "/_secret.txt").status)
    assert.equal(404, call(h, "GET", "/css/").status)
    assert.equal(404, call(h, "GET", "/css").status)
    assert.equal(400, call(h, "GET", "/../r.txt").status)
  end)

  it("misuse raises bad argument", function()
    assert.has_error(function() webassets.new(42) end)
    assert.has_error(function() webassets.new("/nonexistent/dir/for/sure") end)
    assert.has_error(function() webassets.new(site.root, { compress = { "zstd" } }) end)
    assert.has_error(function() webassets.new(site.root, { error_logger = "x" }) end)
    assert.has_error(function() webassets.new(site.root, { bundles = { ["a.js"] = "b.js" } }) end)
    local h = webassets.new(site.root)
    assert.has_error(function() h:url(1) end)
  end)
end)
