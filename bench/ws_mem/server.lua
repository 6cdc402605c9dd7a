-- ws_mem server: examples/ws_echo.lua as it is (mode "echo"), or a handler
-- that only reads (mode "read": read_message() into a new string each time,
-- dropped), with a full GC every 0.3 s, after which it prints what it
-- holds (see report).
--   build/bin/lowbit bench/ws_mem/server.lua ADDR echo|read
local lowbit = require "lowbit"
local http = require "lowbit.http"
local websockets = require "lowbit.websockets"

local ffi = require "ffi"
pcall(ffi.cdef, [[struct lb_mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost; };
struct lb_mallinfo2 mallinfo2(void);]])

-- After each GC, prints to stderr what is held: the Lua heap plus glibc's
-- bytes in use (malloc'd, not freed: zlib streams, libuv's), as opposed to
-- RSS, which also counts what the allocators keep after a free.
local function report()
  local mi = ffi.C.mallinfo2()
  local lua, c = collectgarbage("count"), (tonumber(mi.uordblks) + tonumber(mi.hblkhd)) / 1024
  io.stderr:write(("held %.0f KiB (lua %.0f, malloc %.0f)\n"):format(lua + c, lua, c))
end

return function(ctx, addr, mode)
  lowbit.go(function()
    while not ctx:err() do
      lowbit.sleep(0.3); collectgarbage(); collectgarbage()
      report()
    end
  end)
  if mode ~= "read" then return dofile("examples/ws_echo.lua")(ctx, addr) end
  local srv = http.server{ handler = function(w, r)
    local c = websockets.accept(w, r, { read_limit = websockets.READ_LIMIT_LARGE })
    if not c then return end
    while c:read_message() do end
  end }
  lowbit.go(function() ctx:wait(); srv:close() end)
  srv:listen_and_serve(addr)
end
