-- A TLS echo server: every byte a client sends comes back, encrypted.
--
-- Make a throwaway certificate for localhost first (valid for 30 days):
--
--   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
--     -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
--     -keyout key.pem -out cert.pem
--
-- then run the server and talk to it:
--
--   build/bin/lowbit examples/tls_echo.lua cert.pem key.pem 127.0.0.1:7443
--   openssl s_client -connect 127.0.0.1:7443 -servername localhost -CAfile cert.pem -quiet
--
-- (A certificate signed by your own CA works the same way: give cert.pem
-- with the chain after the leaf, and clients the CA with -CAfile.)
--
-- A client silent for IDLE seconds is dropped, and so is one that does not
-- take its echo within WRITE seconds. Ctrl-C cancels the root context: the
-- server stops accepting, gives the open connections GRACE seconds, then
-- closes them and exits.
local lowbit = require "lowbit"
local tls = require "lowbit.tls"
local log = require "lowbit.log"

local IDLE, WRITE, GRACE = 60, 10, 5
local conns = {}      -- the open connections
local closing = nil   -- when they end, once Ctrl-C came

local function serve_conn(conn)
  conn:set_deadline(lowbit.now() + 10) -- bounds the handshake
  local ok, err = conn:handshake()
  if not ok then
    -- rate-limited per peer and never blocking: a flood of bad handshakes
    -- cannot stall the loop on a slow stderr
    local line = log.limit(tostring(conn:remote_addr()), "tls_echo: " .. tostring(conn:remote_addr()) .. ": " .. tostring(err))
    if line then log.write(line) end
    conn:close()
    return
  end
  conns[conn] = true
  while true do
    local t = lowbit.now() + IDLE
    conn:set_read_deadline(closing and closing < t and closing or t)
    local data = conn:read()
    if not data then break end                 -- errors.EOF: the client is done (or a deadline)
    conn:set_write_deadline(lowbit.now() + WRITE)
    if not conn:write(data) then break end
  end
  conns[conn] = nil
  conn:set_write_deadline(lowbit.now() + WRITE)
  conn:close()                                 -- sends close_notify
end

return function(ctx, cert, key, addr)
  if not cert or not key then
    io.stderr:write("usage: lowbit examples/tls_echo.lua cert.pem key.pem [host:port]\n")
    return 2
  end
  local config = assert(tls.server_config{ cert = cert, key = key })
  local ln = assert(tls.listen(addr or "127.0.0.1:7443", config))
  io.stderr:write("tls_echo: listening on ", ln:addr(), "\n")
  lowbit.go(function()                         -- Ctrl-C
    ctx:wait()
    ln:close()                                 -- stop accepting
    closing = lowbit.now() + GRACE
    for c in pairs(conns) do c:set_read_deadline(closing) end
    while next(conns) and lowbit.now() < closing do lowbit.sleep(0.05) end
    for c in pairs(conns) do c:close() end     -- then cut what is left
  end)
  while true do
    local conn = ln:accept(ctx)
    if not conn then break end
    lowbit.go(serve_conn, conn)
  end
  io.stderr:write("tls_echo: shutting down\n")
end
