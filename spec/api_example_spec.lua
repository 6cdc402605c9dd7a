-- examples/api.lua, run by the host and driven with curl over loopback.
local support = require "support"
local proc = require "support.proc"
local cjson = require "cjson"

local root, host = support.root, support.host

local q = support.quote

describe("examples/api.lua", function()
  it("loads (compiles) as a host script", function()
    assert(loadfile(root .. "/examples/api.lua"))
  end)

  -- Everything below needs lowbit.http (the server) in this tree and in
  -- the host executable.
  local ok_http, http_err = pcall(require, "lowbit.http")

  it("has lowbit.http to run on", function()
    assert(ok_http, "lowbit.http is not available yet (" .. tostring(http_err) ..
      "): this spec starts `build/bin/lowbit examples/api.lua` and needs the HTTP server")
    local out, rc = support.sh(host .. " -e " .. q("require 'lowbit.http'; require 'lowbit.muxx'; require 'lowbit.problemjson'; print('ok')") .. " 2>&1")
    assert(rc == 0 and out == "ok\n", "the host lacks lowbit.http/muxx/problemjson (run `make all`): " .. tostring(out))
  end)

  if not ok_http then return end

  local base, app

  -- curl; returns status, content type, body, headers text.
  local function curl(method, path, opts)
    opts = opts or {}
    local hdr = os.tmpname()
    local args = { "curl -s -S --max-time 5 -X", method, "-D", hdr, "-o - -w", q("\n%{http_code} %{content_type}") }
    if opts.auth ~= false then args[#args + 1] = "-H " .. q("Authorization: Bearer secret") end
    if opts.data then args[#args + 1] = "-H 'Content-Type: application/json' --data-binary " .. q(opts.data) end
    args[#args + 1] = q(base .. path)
    local out, rc = support.sh(table.concat(args, " "))
    local f = io.open(hdr)
    local headers = f and f:read("*a") or ""
    if f then f:close() end
    os.remove(hdr)
    assert(rc == 0, "curl failed (" .. tostring(rc) .. ") for " .. path .. ": " .. tostring(out))
    local body, status, ctype = out:match("^(.*)\n(%d+) (.*)$")
    return tonumber(status), ctype, body, headers
  end

  setup(function()
    base = "http://127.0.0.1:" .. support.free_port()
    app = proc.start({ host, "examples/api.lua", base:match("//(.*)") },
      { ready = function() return proc.answers(base .. "/healthz") end })
  end)

  teardown(function() if app then app.cleanup() end end)

  it("answers 200 with auth", function()
    local status, ctype, body = curl("GET", "/api/users/1")
    assert.equal(200, status)
    assert.equal("application/json", ctype)
    assert.same({ id = "1", name = "Grace" }, cjson.decode(body))
    status, _, body = curl("GET", "/api/users/")
    assert.equal(200, status)
    assert.is_true(#cjson.decode(body) >= 2)
    status, _, body = curl("GET", "/api/users")
    assert.equal(200, status)
    assert.equal("Grace", cjson.decode(body)[1].name)
  end)

  it("answers 401 with a problem without auth", function()
    local status, ctype, body, headers = curl("GET", "/api/users/1", { auth = false })
    assert.equal(401, status)
    assert.equal("application/problem+json", ctype)
    local doc = cjson.decode(body)
    assert.equal(401, doc.status)
    assert.equal("Unauthorized", doc.title)
    assert.equal("/api/users/1", doc.instance)
    assert.matches("WWW%-Authenticate: Bearer", headers)
  end)

  it("answers 404 problem JSON for unknown ids", function()
    local status, ctype, body = curl("GET", "/api/users/99")
    assert.equal(404, status)
    assert.equal("application/problem+json", ctype)
    local doc = cjson.decode(body)
    assert.equal("No such user", doc.title)
    assert.equal('user "99" does not exist', doc.detail)
    assert.equal("99", doc.user_id)
    assert.equal("/api/users/99", doc.instance)
  end)

  it("echoes path values (single and multi-segment, unescaped)", function()
    local status, _, body = curl("GET", "/api/files/a/b%20c.txt")
    assert.equal(200, status)
    local doc = cjson.decode(body)
    assert.equal("a/b c.txt", doc.path)
    assert.equal("GET /api/files/{path...}", doc.pattern)
  end)

  it("creates, validates with a 422 problem, and deletes", function()
    local status, _, body, headers = curl("POST", "/api/users", { data = '{"name":"Ada"}' })
    assert.equal(201, status)
    local u = cjson.decode(body)
    assert.equal("Ada", u.name)
    assert.matches("Location: /api/users/" .. u.id, headers)
    status, _, body = curl("POST", "/api/users", { data = '{"name":""}' })
    assert.equal(422, status)
    assert.equal("#/name", cjson.decode(body).errors[1].pointer)
    status = curl("POST", "/api/users", { data = "not json" })
    assert.equal(400, status)
    status = curl("DELETE", "/api/users/" .. u.id)
    assert.equal(204, status)
    status = curl("GET", "/api/users/" .. u.id)
    assert.equal(404, status)
  end)

  it("lets muxx answer 405 and 404 outside the routes", function()
    local status, _, _, headers = curl("PUT", "/api/users/1")
    assert.equal(405, status)
    assert.matches("Allow: DELETE, GET, HEAD", headers)
    status = curl("GET", "/nope", { auth = false })
    assert.equal(404, status)
  end)
end)
