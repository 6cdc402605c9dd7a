-- A TCP echo server: every byte a client sends comes back.
--
--   build/bin/lowbit examples/echo.lua 127.0.0.1:7000
--   printf 'hello\n' | nc -q1 127.0.0.1 7000     (or: curl telnet://127.0.0.1:7000)
--
-- Ctrl-C cancels the root context: the server stops accepting, lets the
-- open connections finish and exits.
local lowbit = require "lowbit"
local net = require "lowbit.net"

local function serve_conn(ctx, conn)
  while true do
    local data, err = conn:read()
    if not data then break end                 -- errors.EOF: the client is done
    if not conn:write(data) then break end
  end
  conn:close()
end

return function(ctx, addr)
  local ln = assert(net.listen(addr or "127.0.0.1:7000"))
  io.stderr:write("echo: listening on ", ln:addr(), "\n")
  lowbit.go(function() ctx:wait(); ln:close() end)  -- stop accepting on Ctrl-C
  while true do
    local conn = ln:accept(ctx)
    if not conn then break end
    lowbit.go(serve_conn, ctx, conn)
  end
  io.stderr:write("echo: shutting down\n")
end
