-- lowbit.timerheap: the one deadline heap of both runtime backends.
local timerheap = require "lowbit.timerheap"

describe("lowbit.timerheap", function()
  it("pops in deadline order through random pushes and removals, as a sorted list does", function()
    math.randomseed(14)
    local H = timerheap.new()
    local live = {}
    for round = 1, 2000 do
      local op = math.random(3)
      if op <= 2 or #live == 0 then
        local e = { at = math.random(1, 500) + round * 0.001 }
        local first = H.push(e)
        local min = math.huge
        for _, x in ipairs(live) do if x.at < min then min = x.at end end
        assert.equal(e.at < min, first)
        live[#live + 1] = e
      else
        local k = math.random(#live)
        local e = table.remove(live, k)
        local was = H.first() == e
        local removed, was_first = H.remove(e)
        assert.is_true(removed)
        assert.equal(was, was_first)
        assert.is_nil(e.idx)
        assert.is_false(H.remove(e))
      end
      assert.equal(#live, H.count())
    end
    table.sort(live, function(a, b) return a.at < b.at end)
    for i = 1, #live do
      local e = H.pop()
      assert.equal(live[i].at, e.at)
      assert.is_nil(e.idx)
    end
    assert.is_nil(H.pop())
    assert.is_nil(H.first())
  end)

  it("clear drops every entry; heaps made by new() are independent", function()
    local A, B = timerheap.new(), timerheap.new()
    local es = {}
    for i = 1, 10 do es[i] = { at = i }; A.push(es[i]) end
    B.push({ at = 0 })
    A.clear()
    assert.equal(0, A.count())
    for i = 1, 10 do assert.is_nil(es[i].idx) end
    assert.equal(1, B.count())
    assert.equal(0, B.first().at)
  end)
end)
