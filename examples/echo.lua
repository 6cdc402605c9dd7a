-- A TCP echo server: every byte a client sends comes back.
--
--   build/bin/lowbit examples/echo.lua 127.0.0.1:7000
--   printf 'hello\n' | nc -q1 127.0.0.1 7000     (or: curl telnet://127.0.0.1:7000)
--
-- A client silent for IDLE seconds is dropped, and so is one that does not
-- take its echo within WRITE seconds. Ctrl-C cancels the root context: the
-- server stops accepting, gives the open connections GRACE seconds, then
-- closes them and exits.
local lowbit = require "lowbit"
local net = require "lowbit.net"

local IDLE, WRITE, GRACE = 60, 10, 5
local conns = {}      -- the open connections
local closing = nil   -- when they end, once Ctrl-C came

local function serve_conn(conn)
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
  conn:close()
end

return function(ctx, addr)
  local ln = assert(net.listen(addr or "127.0.0.1:7000"))
  io.stderr:write("echo: listening on ", ln:addr(), "\n")
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
  io.stderr:write("echo: shutting down\n")
end
