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
  "lowbit.wireframe.stream", "lowbit.wireframe.checksum", "lowbit.http.headers" }

-- Calls where a number is a valid argument and the call rightly waits.
local WAITS = { ["lowbit.sleep"] = true }

local WRONG = { 12345, { "a table" }, true }

describe("wrong argument types", function()
  for _, name in ipairs(MODULES) do
    it(name .. ": every public function names the bad argument", function()
      local m = require(name)
      local fns = {}
      for k, v in pairs(m) do
        if type(v) == "function" and not k:find("^_") and not WAITS[name .. "." .. k] then fns[#fns + 1] = k end
      end
      table.sort(fns)
      assert.is_true(#fns > 0, name .. " has no public functions")
      local bad = {}
      support.run(function()
        for _, k in ipairs(fns) do
          for _, v in ipairs(WRONG) do
            local done = lowbit.chan(1)
            lowbit.go(function() done:send({ pcall(m[k], v, v, v) }) end)
            local i, res = lowbit.select{ done, lowbit.after(2) }
            local what = ("%s.%s(%s)"):format(name, k, type(v))
            if i ~= 1 then
              bad[#bad + 1] = what .. ": did not return within 2 s"
            elseif not res[1] then
              local msg = tostring(res[2])
              -- Ours name the argument ('x') or, for a variadic list, its
              -- position in our function ("#2 to schema.new"); Lua's own
              -- builtins say "bad argument #1 to 'gsub'".
              if msg:find("attempt to ") or msg:find("bad argument #%d+ to '") or not msg:find("bad argument ") then
                bad[#bad + 1] = what .. ": " .. msg:sub(1, 160)
              end
            end
          end
        end
      end)
      assert.same({}, bad)
    end)
  end
end)
