-- TLS over loopback, lowbit client <-> lowbit server in one process:
-- full handshakes per second (C concurrent clients, each dialing,
-- handshaking and closing in a loop) and bulk throughput (one conn, 64 KiB
-- writes one way). The certificate is made with the openssl command line.
--   build/bin/lowbit bench/tls.lua [clients] [seconds] [MB]
local lowbit = require "lowbit"
local tls = require "lowbit.tls"
local R = dofile("bench/report.lua").suite("tls")

local C = tonumber(arg and arg[1]) or 8
local D = tonumber(arg and arg[2]) or 3
local MB = tonumber(arg and arg[3]) or 256

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local made = os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 " ..
  "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout %s/key.pem -out %s/cert.pem 2>/dev/null"):format(dir, dir))
assert(made == 0 or made == true, "openssl req failed")

local scfg = assert(tls.server_config{ cert = dir .. "/cert.pem", key = dir .. "/key.pem" })
local ccfg = assert(tls.client_config{ ca_file = dir .. "/cert.pem", server_name = "localhost" })
os.execute("rm -rf " .. dir)

local ln = assert(tls.listen("127.0.0.1:0", scfg))
local sink = 0
lowbit.go(function()
  while true do
    local c = ln:accept()
    if not c then return end
    lowbit.go(function()
      while true do
        local d = c:read()
        if not d then break end
        sink = sink + #d
        if d == "x" then c:write("y") end
      end
      c:close()
    end)
  end
end)

-- Handshakes: each client dials, does the handshake plus one round trip
-- (so the server has finished its side too), and closes.
local count = 0
local stop = lowbit.now() + D
local wg = lowbit.waitgroup()
for _ = 1, C do
  wg:add(1)
  lowbit.go(function()
    while lowbit.now() < stop do
      local c = assert(tls.dial(nil, ln:addr(), ccfg))
      c:write("x")
      assert(c:read() == "y")
      c:close()
      count = count + 1
    end
    wg:done()
  end)
end
local t0 = lowbit.now()
wg:wait()
local dt = lowbit.now() - t0
print(("tls handshakes (%d concurrent clients, TLS 1.3, P-256): %.0f handshakes/s"):format(C, count / dt))
R:line{ case = ("handshakes, %d clients, TLS 1.3, P-256, in-process"):format(C), metric = "handshakes_per_s",
  value = count / dt, unit = "handshakes/s", better = "higher" }

-- Bulk: MB megabytes client -> server.
local c = assert(tls.dial(nil, ln:addr(), ccfg))
local chunk = string.rep("z", 64 * 1024)
local total = MB * 1024 * 1024
local before = sink
t0 = lowbit.now()
local sent = 0
while sent < total do
  assert(c:write(chunk))
  sent = sent + #chunk
end
while sink - before < total do lowbit.sleep(0.001) end
dt = lowbit.now() - t0
print(("tls bulk (one conn, 64 KiB writes, %s): %.0f MB/s"):format(c:version(), total / dt / 1e6))
R:line{ case = "bulk, one conn, 64 KiB writes", metric = "mb_per_s", value = total / dt / 1e6, unit = "MB/s", better = "higher" }
c:close()
ln:close()
