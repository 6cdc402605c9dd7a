-- lowbit.timerheap: the min-heap of timer deadlines under every backend of
-- the runtime (luv's, in lowbit/init.lua, and nginx's, in lowbit/ngx.lua).
-- Internal.
--
--   local H = require("lowbit.timerheap").new()
--   H.push(e)       -- e.at: the deadline; sets e.idx; true when e is first
--   H.first()       -- the earliest entry, or nil
--   H.pop()         -- removes and returns the earliest (its idx = nil)
--   H.remove(e)     -- false when e is not in the heap; else true, was_first
--   H.count(), H.clear()
--
-- Each heap is a set of closures over its own array and count (upvalues:
-- as fast as the locals each backend had), made once per backend.
local floor = math.floor

local M = {}

function M.new()
  local heap, n = {}, 0

  local function swap(i, j)
    local a, b = heap[i], heap[j]
    heap[i], heap[j] = b, a
    b.idx, a.idx = i, j
  end

  local function up(i)
    while i > 1 do
      local p = floor(i / 2)
      if heap[p].at <= heap[i].at then break end
      swap(i, p)
      i = p
    end
  end

  local function down(i)
    while true do
      local l = 2 * i
      if l > n then break end
      local m = l
      if l < n and heap[l + 1].at < heap[l].at then m = l + 1 end
      if heap[i].at <= heap[m].at then break end
      swap(i, m)
      i = m
    end
  end

  local H = {}

  function H.push(e)
    n = n + 1
    heap[n] = e
    e.idx = n
    up(n)
    return e.idx == 1
  end

  function H.first() return heap[1] end

  function H.pop()
    local e = heap[1]
    if e == nil then return nil end
    local last = heap[n]
    heap[n] = nil
    n = n - 1
    if n > 0 then
      heap[1] = last
      last.idx = 1
      down(1)
    end
    e.idx = nil
    return e
  end

  function H.remove(e)
    local i = e.idx
    if i == nil or i == false then return false end
    e.idx = nil
    if i == n then
      heap[n] = nil
      n = n - 1
    else
      local last = heap[n]
      heap[n] = nil
      n = n - 1
      heap[i] = last
      last.idx = i
      up(i)
      down(last.idx)
    end
    return true, i == 1
  end

  function H.count() return n end

  --- Drops every entry (their idx = nil).
  function H.clear()
    for i = 1, n do heap[i].idx = nil; heap[i] = nil end
    n = 0
  end

  return H
end

return M
