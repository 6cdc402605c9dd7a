-- A response header set reused from one response to the next (the server
-- keeps one per connection and empties it with _reset): nothing of the
-- previous response's fields, values or spellings is left, whatever was set
-- before (more than the eight unrolled names included), and the same names
-- set again come out in the new order with the new values.
local headers = require "lowbit.http.headers"
local buffer = require "string.buffer"

local function wire(h)
  local out = buffer.new()
  h:_write(out)
  return out:tostring()
end

describe("headers:_reset", function()
  it("leaves no field, value or spelling of the previous use", function()
    local h = headers.new()
    for round = 1, 3 do
      h:set("ETag", '"a' .. round .. '"')
      h:set("x-lower", "1")
      h:add("Vary", "Accept")
      h:add("Vary", "Origin")
      for i = 1, 10 do h:set("X-N" .. i, tostring(i)) end
      assert.are.equal(13, h:count())
      h:_reset()
      assert.are.equal("", wire(h))
      assert.is_nil(h:get("ETag"))
      assert.is_nil(h:get("Vary"))
      assert.is_nil(h:get("X-N10"))
      assert.are.equal(0, h:count())
      -- The same names again, canonical spellings now and another order.
      h:set("Vary", "Cookie")
      h:set("Etag", "x")
      h:set("X-Lower", "2")
      assert.are.equal("Vary: Cookie\r\nEtag: x\r\nX-Lower: 2\r\n", wire(h))
      assert.are.same({ "Cookie" }, h:values("Vary"))
      h:_reset()
    end
  end)

  it("forgets a deleted field's spelling and a parsed set's raw pairs", function()
    local h = headers.new()
    h:set("ETag", "1")
    h:del("etag")
    h:set("Etag", "2")
    assert.are.equal("Etag: 2\r\n", wire(h))
    h:_reset()
    local r = headers.from_raw({ "x-a", "1", "X-B", "2" })
    r:_reset()
    assert.are.equal("", wire(r))
    r:set("X-C", "3")
    assert.are.equal("X-C: 3\r\n", wire(r))
  end)
end)
