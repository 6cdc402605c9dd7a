-- wss:// and https:// paths of lowbit.websockets and lowbit.cooper, over
-- lowbit.tls: a lowbit TLS server with a certificate for 127.0.0.1 made
-- here by a throwaway CA; clients verify it (SNI and name from the URL).
local lowbit = require "lowbit"
local net = require "lowbit.net"
local http = require "lowbit.http"
local tls = require "lowbit.tls"
local errors = require "lowbit.errors"
local cooper = require "lowbit.cooper"
local websockets = require "lowbit.websockets"
local support = require "support"
local run = support.run

local dir

local function sh(cmd)
  local out, rc = support.sh(cmd .. " 2>&1")
  assert(rc == 0, cmd .. " failed:\n" .. tostring(out))
  return out
end

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  sh("mkdir -p " .. dir)
  sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
      "-subj '/CN=lowbit ws CA' -keyout %s/ca.key -out %s/ca.pem"):format(dir, dir))
  local f = assert(io.open(dir .. "/srv.cnf", "w"))
  f:write("[req]\ndistinguished_name = dn\nx509_extensions = ext\n[dn]\n[ext]\n",
          "basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n")
  f:close()
  sh(("openssl req -x509 -config %s/srv.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
      "-subj '/CN=localhost' -keyout %s/srv.key -out %s/srv.pem -CA %s/ca.pem -CAkey %s/ca.key")
      :format(dir, dir, dir, dir, dir))
end)

teardown(function()
  run(function() lowbit.sleep(0.01) end)
  if dir then os.execute("rm -rf '" .. dir .. "'") end
end)

local function serve_tls(handler)
  local cfg = assert(tls.server_config{ cert = dir .. "/srv.pem", key = dir .. "/srv.key" })
  local srv = http.server{ handler = handler, tls = cfg, error_log = function() end }
  local ln = assert(net.listen("127.0.0.1:0"))
  lowbit.go(function() srv:serve(ln) end)
  return ln:addr(), srv
end

local function echo(w, r)
  local c = websockets.accept(w, r, { read_limit = websockets.READ_LIMIT_LARGE })
  if not c then return end
  while true do
    local m, op = c:read_message()
    if not m then break end
    c:write_message(op, m)
  end
end

describe("websockets over TLS (wss://)", function()
  it("dials wss://, verifies the certificate for the URL host, echoes with and without deflate", function()
    run(function()
      local addr, srv = serve_tls(echo)
      for _, z in ipairs({ false, true }) do
        local c, resp = websockets.dial("wss://" .. addr .. "/ws", { compression = z,
          tls = { ca_file = dir .. "/ca.pem" }, read_limit = websockets.READ_LIMIT_LARGE })
        assert.is_truthy(c, tostring(resp))
        assert.equal(z, c:compression() ~= nil)
        local big = string.rep("wss payload ", 200000)
        for _, m in ipairs({ "hello", big }) do
          assert.is_true(c:write_message(websockets.TEXT, m))
          assert.is_true((c:read_message()) == m)
        end
        assert.is_true(c:close())
      end
      srv:close()
    end)
  end)

  it("refuses a certificate it cannot verify", function()
    run(function()
      local addr, srv = serve_tls(echo)
      local c, err = websockets.dial("wss://" .. addr .. "/ws", { tls = {} })
      assert.is_nil(c)
      assert.is_truthy(err)
      srv:close()
    end)
  end)

  it("cooper.dial over https:// keeps bytes sent right after the 101", function()
    run(function()
      local addr, srv = serve_tls(cooper.hijack(function(conn, proto)
        conn:write("hi " .. proto)
        conn:close()
      end, { protocols = { "myproto/1" } }))
      local conn, resp = cooper.dial({ url = "https://" .. addr .. "/s", headers = { Upgrade = "myproto/1" } },
        { tls = { ca_file = dir .. "/ca.pem" } })
      assert.is_truthy(conn, tostring(resp))
      local got = ""
      while true do
        local d = conn:read()
        if not d then break end
        got = got .. d
      end
      assert.equal("hi myproto/1", got)
      srv:close()
    end)
  end)
end)
