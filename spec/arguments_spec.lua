-- Every public function of every module, called with arguments of the
-- wrong type: it raises an error that names the argument ("bad argument
-- 'x' to module.fn: ... expected, got ..."), returns nil, err, or accepts
-- the value. Never a Lua runtime error from deep inside ("attempt to index
-- a number value"), never an unnamed "bad argument #1", never a hang.
local lowbit = require "lowbit"
local support = require "support"

local MODULES = { "lowbit", "lowbit.context", "lowbit.errors", "lowbit.net", "lowbit.http", "lowbit.tls",
  "lowbit.muxx", "lowbit.problemjson", "lowbit.cooper", "lowbit.websockets", "lowbit.sse", "lowbit.retry",
  "lowbit.topic", "lowbit.rungroup", "lowbit.seriallane", "lowbit.urlsign",
  "lowbit.beacon", "lowbit.url", "lowbit.wireframe.frame", "lowbit.wireframe.schema",
  "lowbit.wireframe.stream", "lowbit.wireframe.checksum", "lowbit.http.headers", "lowbit.log", "lowbit.stencil" }

-- Calls where a number is a valid argument and the call rightly waits.
local WAITS = { ["lowbit.sleep"] = true }

local WRONG = { 12345, { "a table" }, true }

-- The sorted names of the public functions in t, but those in skip.
local function public_functions(t, skip)
  local names = {}
  for k, v in pairs(t) do
    if type(v) == "function" and not k:find("^_") and not skip(k) then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

-- Calls fn(self?, v, v, v) in a task for each wrong value v; adds to bad
-- what did not return within 2 s or raised an error unclear(msg) rejects.
-- `self` is passed only for methods.
local function probe(bad, what, fn, self, unclear)
  for _, v in ipairs(WRONG) do
    local done = lowbit.chan(1)
    if self ~= nil then
      lowbit.go(function() done:send({ pcall(fn, self, v, v, v) }) end)
    else
      lowbit.go(function() done:send({ pcall(fn, v, v, v) }) end)
    end
    local i, res = lowbit.select{ done, lowbit.after(2) }
    local call = ("%s(%s)"):format(what, type(v))
    if i ~= 1 then
      bad[#bad + 1] = call .. ": did not return within 2 s"
    elseif not res[1] then
      local msg = tostring(res[2])
      if unclear(msg) then bad[#bad + 1] = call .. ": " .. msg:sub(1, 160) end
    end
  end
end

-- Ours name the argument ('x') or, for a variadic list, its position in
-- our function ("#2 to schema.new"); Lua's own builtins say "bad argument
-- #1 to 'gsub'".
local function unclear_function_error(msg)
  return msg:find("attempt to ") or msg:find("bad argument #%d+ to '") or not msg:find("bad argument ")
end

-- Methods may also refuse with their own words (a closed conn, an unlocked
-- mutex); what must not come out is a runtime or conversion error.
local function unclear_method_error(msg)
  return msg:find("attempt to ") or msg:find("bad argument #%d+ to '") or msg:find("cannot convert")
end

describe("wrong argument types", function()
  for _, name in ipairs(MODULES) do
    it(name .. ": every public function names the bad argument", function()
      local m = require(name)
      local fns = public_functions(m, function(k) return WAITS[name .. "." .. k] end)
      assert.is_true(#fns > 0, name .. " has no public functions")
      local bad = {}
      support.run(function()
        for _, k in ipairs(fns) do probe(bad, name .. "." .. k, m[k], nil, unclear_function_error) end
      end)
      assert.same({}, bad)
    end)
  end
end)

describe("wrong argument types to methods", function()
  -- Methods that wait by design (a read, a lock, a full channel) are left
  -- out; the others raise a clear error, return nil, err, or accept.
  local WAITING = { close = true, wait = true, lock = true, recv = true, send = true, accept = true, run = true,
    serve = true, read = true, read_message = true, listen_and_serve = true, recv_from = true, fill = true,
    read_full = true, done = true, shutdown = true }
  it("conns, channels, contexts, headers, routers, topics, groups, lanes, websockets, signers", function()
    local bad = {}
    support.run(function()
      local net, context = require "lowbit.net", require "lowbit.context"
      local a, b = net.pipe()
      local ln = assert(net.listen("127.0.0.1:0"))
      local udp = assert(net.listen_udp("127.0.0.1:0"))
      local objs = {
        conn = a, listener = ln, udp = udp, chan = lowbit.chan(1), waitgroup = lowbit.waitgroup(),
        mutex = lowbit.mutex(), ctx = (context.with_cancel(context.background())),
        headers = require("lowbit.http.headers").new(), url = require("lowbit.url").parse("http://a/b?c=d"),
        values = require("lowbit.url").parse_query("get=1&c=d"),
        muxx = require("lowbit.muxx").new(), topic = require("lowbit.topic").new(),
        rungroup = require("lowbit.rungroup").new(), seriallane = require("lowbit.seriallane").new(1),
        websocket = require("lowbit.websockets").new(b, { server = true }),
        signer = require("lowbit.urlsign").new_signer("k", 60),
        server = require("lowbit.http").server{ handler = function() end },
        stencil = require("lowbit.stencil").new{ views = { ["v.html"] = "x" } },
      }
      for oname, o in pairs(objs) do
        local mt = getmetatable(o)
        local idx = mt and type(mt.__index) == "table" and mt.__index or o
        for _, k in ipairs(public_functions(idx, function(k) return WAITING[k] end)) do
          probe(bad, oname .. ":" .. k, o[k], o, unclear_method_error)
        end
      end
      a:close(); b:close(); ln:close(); udp:close()
    end)
    assert.same({}, bad)
  end)
end)
