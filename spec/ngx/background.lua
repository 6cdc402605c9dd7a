-- A background service started by init_worker (spec/ngx/nginx.conf.in):
-- it runs outside any request, with tasks, channels and timers, until the
-- worker's root context ends.
local lowbit = require "lowbit"

local M = { ticks = 0, got = nil }

function M.main(ctx)
  local ch = lowbit.chan(1)
  lowbit.go(function() lowbit.sleep(0.01); ch:send("from a background task") end)
  M.got = ch:recv()
  while true do
    local i = lowbit.select{ ctx:done(), lowbit.after(0.02) }
    if i == 1 then break end
    M.ticks = M.ticks + 1
  end
end

return M
