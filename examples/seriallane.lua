-- seriallane: stock kept per location, adjusted and moved by many tasks at
-- once. Every change to a location runs in that location's lane; a transfer
-- holds both lanes (run_multi takes them in a fixed order, so transfers in
-- opposite directions never deadlock). Each step yields (a stand-in for a
-- database round trip), so without the lanes the read-modify-write would
-- lose updates. A cleanup service drops lanes of locations gone quiet.
--
--   build/bin/lowbit examples/seriallane.lua
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local rungroup = require "lowbit.rungroup"
local seriallane = require "lowbit.seriallane"

local OUT_OF_STOCK = errors.new("out of stock")

local stock = { 100, 100, 100, 100 }   -- units per location
local lanes = seriallane.new(0.05)     -- lanes idle for 50 ms may go

local function location(id) return seriallane.namespace("stock", id) end

-- A slow read-modify-write: the yield lets other tasks run in between.
local function adjust(ctx, id, delta)
  local n = stock[id]
  lowbit.sleep(0.001)
  if n + delta < 0 then return nil, errors.wrap(OUT_OF_STOCK, "location %d", id) end
  stock[id] = n + delta
  return stock[id]
end

local function transfer(ctx, from, to, qty)
  return lanes:run_multi(ctx, { location(from), location(to) }, function(ctx)
    local _, err = adjust(ctx, from, -qty)
    if err then return nil, err end
    return adjust(ctx, to, qty)
  end)
end

return function(root)
  local ctx, stop = context.with_cancel(root)
  local g = rungroup.new()
  g:add(lanes:cleanup_service(0.02))
  local done = lowbit.chan(1)
  lowbit.go(function() done:send(g:run(ctx)) end)

  math.randomseed(7)
  local wg = lowbit.waitgroup()
  local moved, refused, sold = 0, 0, 0
  for _ = 1, 40 do
    wg:add(1)
    lowbit.go(function()
      for _ = 1, 10 do
        local a, b = math.random(4), math.random(4)
        if a ~= b then
          local _, err = transfer(ctx, a, b, math.random(1, 30))
          if err == nil then moved = moved + 1
          elseif errors.is(err, OUT_OF_STOCK) then refused = refused + 1
          else error(err) end
        else
          local _, err = lanes:run(ctx, location(a), function(ctx) return adjust(ctx, a, -1) end)
          if err == nil then sold = sold + 1 end
        end
      end
      wg:done()
    end)
  end
  wg:wait()

  local total = 0
  for i, n in ipairs(stock) do
    print(("location %d: %3d units"):format(i, n))
    total = total + n
  end
  print(("%d transfers, %d refused (out of stock), %d sold; %d units in all (400 - sold = %d)")
    :format(moved, refused, sold, total, 400 - sold))
  assert(total == 400 - sold, "lost an update")

  print(("lanes in the table: %d"):format(lanes:count()))
  lowbit.sleep(0.15)                    -- quiet: the cleanup service removes them
  print(("lanes after 150 ms idle: %d"):format(lanes:count()))
  stop()
  done:recv()
end
