-- lowbit.url query Values: a query key never shadows a method, whatever
-- its name (issue 10, defect 3). url:parse / resolve_reference are covered
-- by http_redirect_spec.lua.
local url = require "lowbit.url"

-- Every name a key could collide with: the methods (read from url.Values
-- itself, so a method added later is covered too) and the metamethods.
local function risky_names()
  local names, seen = {}, {}
  local function add(n) if not seen[n] then seen[n] = true; names[#names + 1] = n end end
  for k in pairs(url.Values) do if type(k) == "string" then add(k) end end
  for _, n in ipairs({ "get", "values", "set", "add", "del", "has", "keys", "clone", "encode",
    "__index", "__newindex", "__metatable", "__tostring", "__pairs", "__ipairs", "__len", "__call", "__gc",
    "__eq", "__mode", "__concat", "", "1", "0", "nil", "true", "self", "DATA" }) do add(n) end
  table.sort(names)
  return names
end

describe("url.Values", function()
  it("keeps a key named like any method or metamethod apart from the methods", function()
    for _, n in ipairs(risky_names()) do
      local raw = url.query_escape(n) .. "=1&x=2&" .. url.query_escape(n) .. "=3"
      local q, err = url.parse_query(raw)
      assert.is_nil(err, n)
      assert.equal("1", q:get(n), n)
      assert.equal("2", q:get("x"), n)
      assert.same({ "1", "3" }, q:values(n), n)
      assert.is_true(q:has(n), n)
      local want = {}
      for _, k in ipairs({ n, "x" }) do want[#want + 1] = k end
      table.sort(want)
      assert.same(want, q:keys(), n)
      local enc = n < "x" and (url.query_escape(n) .. "=1&" .. url.query_escape(n) .. "=3&x=2")
        or ("x=2&" .. url.query_escape(n) .. "=1&" .. url.query_escape(n) .. "=3")
      assert.equal(enc, q:encode(), n)
      assert.equal(enc, url.encode_query(q), n)
      assert.equal(enc, tostring(q), n)
      local c = q:clone()
      assert.is_true(rawequal(q:set(n, "v"), q), n)
      assert.equal("v", q:get(n), n)
      q:add(n, "w")
      assert.same({ "v", "w" }, q:values(n), n)
      assert.equal("1", c:get(n), n) -- the clone did not change
      q:del(n)
      assert.is_false(q:has(n), n)
      assert.is_nil(q:get(n), n)
      assert.same({ "x" }, q:keys(), n)
      -- Set on an empty Values, and through a URL's query().
      local e = url.parse_query("")
      e:set(n, "a"):add(n, "b"):set("y", "c")
      assert.same({ "a", "b" }, e:values(n), n)
      local u = assert(url.parse("http://h/p?" .. raw))
      assert.equal("1", u:query():get(n), n)
      assert.equal("2", u:query():get("x"), n)
    end
  end)

  it("gets, sets, adds, deletes, lists and encodes", function()
    local q = url.parse_query("b=2&a=1&a=x+y&c=%2F")
    assert.equal("1", q:get("a"))
    assert.same({ "1", "x y" }, q:values("a"))
    assert.same({}, q:values("none"))
    assert.is_nil(q:get("none"))
    assert.same({ "a", "b", "c" }, q:keys())
    assert.equal("/", q:get("c"))
    q:set("n", 5)
    assert.equal("5", q:get("n"))
    local vals = q:values("a")
    vals[1] = "changed"
    assert.equal("1", q:get("a")) -- values() returns a copy
    assert.equal("a=1&a=x+y&b=2&c=%2F&n=5", q:encode())
  end)

  it("new_values copies a plain table or another Values", function()
    local v = url.new_values{ get = "1", b = { "2", "3" } }
    assert.equal("1", v:get("get"))
    assert.same({ "2", "3" }, v:values("b"))
    assert.equal("b=2&b=3&get=1", v:encode())
    local w = url.new_values(v)
    w:del("get")
    assert.equal("1", v:get("get"))
    assert.equal("", url.new_values():encode())
    -- encode_query still takes a plain table, whatever its keys.
    assert.equal("__index=1&get=2", url.encode_query{ get = "2", __index = "1" })
  end)

  it("refuses field assignment and bad arguments", function()
    local q = url.parse_query("a=1")
    assert.has_error(function() q.get = "x" end)
    assert.has_error(function() q.a = "x" end)
    assert.equal("1", q:get("a"))
    assert.has_error(function() q:get(1) end, "bad argument 'key' to url.Values:get: string expected, got number")
    assert.has_error(function() q:set("a", {}) end, "bad argument 'value' to url.Values:set: string or number expected, got table")
    assert.has_error(function() q:add("a") end, "bad argument 'value' to url.Values:add: string or number expected, got nil")
    assert.has_error(function() q.get("a") end, "bad argument 'self' to url.Values:get: Values expected, got string (use ':' to call)")
    assert.has_error(function() url.Values.keys({}) end, "bad argument 'self' to url.Values:keys: Values expected, got table (use ':' to call)")
    assert.has_error(function() url.new_values(1) end, "bad argument 't' to url.new_values: table or nil expected, got number")
  end)
end)
