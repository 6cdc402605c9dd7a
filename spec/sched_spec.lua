-- The backend seam (lowbit/sched.lua): channels, select, mutexes,
-- waitgroups, after and the blocking helpers park and wake only through
-- the backend they are given. Here they run on a second, minimal backend
-- (plain coroutines, a ready list and a clock that jumps to the next
-- timer), with no luv and no lowbit scheduler underneath.
local build = require "lowbit.sched"

local function new_backend()
  local B, ready, timers, clock = {}, {}, {}, 0
  local current
  function B.now() return clock end
  function B.need_task(what)
    if not current or coroutine.running() ~= current.co then
      error(what .. ": must be called from a lowbit task", 3)
    end
    return current
  end
  function B.park() return coroutine.yield() end
  function B.wake(u, a, b) ready[#ready + 1] = { u, a, b } end
  function B.timer_add(at, fn, data)
    local e = { at = at, fn = fn, data = data, idx = true }
    timers[#timers + 1] = e
    return e
  end
  function B.timer_cancel(e) local was = e.idx; e.idx = nil; return was ~= nil end
  local M = build({}, B)
  function M.go(fn, ...)
    local args = { ... }
    local u = { co = coroutine.create(function() fn(unpack(args)) end) }
    B.wake(u)
    return u
  end
  function M.run(fn)
    M.go(fn)
    while true do
      while #ready > 0 do
        local r = table.remove(ready, 1)
        current = r[1]
        if coroutine.status(current.co) == "suspended" then
          assert(coroutine.resume(current.co, r[2], r[3]))
        end
        current = nil
      end
      table.sort(timers, function(a, b) return a.at < b.at end)
      local e = table.remove(timers, 1)
      while e and not e.idx do e = table.remove(timers, 1) end
      if not e then return end
      if e.at > clock then clock = e.at end
      e.idx = nil
      e.fn(e)
    end
  end
  return M
end

describe("lowbit.sched on another backend", function()
  it("channels, select with after, mutex hand-off and waitgroups work through the interface only", function()
    local M = new_backend()
    local log = {}
    M.run(function()
      local ch = M.chan(0)
      local wg = M.waitgroup()
      local mu = M.mutex()
      wg:add(2)
      for i = 1, 2 do
        M.go(function()
          mu:lock()
          log[#log + 1] = "lock" .. i
          ch:send(i)
          mu:unlock()
          wg:done()
        end)
      end
      local a = ch:recv()
      local b = ch:recv()
      log[#log + 1] = a + b
      wg:wait()
      local i = M.select{ M.chan(0), M.after(5) }
      log[#log + 1] = "after " .. i
      -- _block with a deadline: the timeout fires through B.timer_add.
      local sel = M._sel("test")
      local why = M._block(sel, nil, 10)
      log[#log + 1] = why
    end)
    assert.same({ "lock1", "lock2", 3, "after 2", "timeout" }, log)
  end)

  it("outside a unit, a blocking call raises the backend's error", function()
    local M = new_backend()
    assert.has_error(function() M.chan(0):recv() end, "chan:recv: must be called from a lowbit task")
  end)
end)
