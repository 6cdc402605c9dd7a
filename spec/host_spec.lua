-- The `lowbit` executable, driven as a user would drive it.
local support = require "support"
local sh, host, tmpfile = support.sh, support.host, support.tmpfile

local q = support.quote

-- Starts `host script` in the background, waits until it has printed "ready"
-- (so its signal handlers are in place), sends the signals (with `gap`
-- seconds between them), and returns what it printed and its exit status.
-- A host still running 20 s after the signals is killed (status 137).
local function signal_when_ready(script, signals, gap)
  local kills = {}
  for _, sig in ipairs(signals) do kills[#kills + 1] = "kill -" .. sig .. " $pid" end
  return sh(("(out=$(mktemp); (%s %s > $out 2>/dev/null) & pid=$!; " ..
    "for i in $(seq 500); do grep -q ready $out && break; sleep 0.02; done; %s; " ..
    "for i in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; kill -KILL $pid 2>/dev/null; " ..
    "wait $pid; rc=$?; cat $out; rm -f $out; exit $rc)"):format(host, script, table.concat(kills, "; sleep " .. (gap or 0) .. "; ")))
end

describe("lowbit host", function()
  it("prints its version", function()
    local out, rc = sh(host .. " --version")
    assert.equal(0, rc)
    assert.matches("^lowbit %d+%.%d+%.%d+ %(LuaJIT", out)
  end)

  it("runs a script with arguments and exits with its numeric result", function()
    local f = tmpfile([[
local lowbit = require "lowbit"
lowbit.sleep(0.01)
print(arg[0] ~= nil, ...)
return tonumber(arg[2])
]], ".lua")
    local out, rc = sh(host .. " " .. f .. " hello 7")
    assert.equal(7, rc)
    assert.equal("true\thello\t7\n", out)
    os.remove(f)
  end)

  it("runs -e code", function()
    local out, rc = sh(host .. " -e " .. q("print(require('lowbit.net') ~= nil, ...)") .. " x")
    assert.equal(0, rc)
    assert.equal("true\tx\n", out)
  end)

  it("works from any directory without LUA_PATH (modules are embedded)", function()
    local out, rc = sh("cd / && env -u LUA_PATH -u LUA_CPATH -u LOWBIT_LIB " .. host ..
      " -e " .. q("local c = require('lowbit.core'); print(c.path, c.strerror(-1))"))
    assert.equal(0, rc)
    assert.equal("executable\tneed more input\n", out)
  end)

  -- The traces through an HTTP(S) request are longer than stock LuaJIT's
  -- limits (500 constants, 4000 IR instructions per trace): they aborted as
  -- "trace too long" and part of each request ran interpreted.
  it("lets LuaJIT compile a loop longer than its stock trace limits", function()
    local out, rc = sh(host .. " -e " .. q([[
local parts = { "local s = ... for i = 1, 200 do s = s" }
for k = 1, 800 do parts[#parts + 1] = (" + %d.25"):format(k) end
parts[#parts + 1] = " end return s"
local f = assert(loadstring(table.concat(parts)))
local stopped, aborted = 0, 0
local function on_trace(what)
  if what == "stop" then stopped = stopped + 1 elseif what == "abort" then aborted = aborted + 1 end
end
jit.attach(on_trace, "trace")
f(0)
jit.attach(on_trace)
print(stopped > 0, aborted)]]))
    assert.equal(0, rc)
    assert.equal("true\t0\n", out)
  end)

  it("waits for every task before exiting", function()
    local out, rc = sh(host .. " -e " .. q([[
local lowbit = require "lowbit"
lowbit.go(function() lowbit.sleep(0.05); print("late task") end)
print("main done")]]))
    assert.equal(0, rc)
    assert.equal("main done\nlate task\n", out)
  end)

  it("calls a returned main(ctx, ...) with the root context", function()
    local f = tmpfile([[
return function(ctx, a) print(require("lowbit.context").root() == ctx, a); return 4 end
]], ".lua")
    local out, rc = sh(host .. " " .. f .. " A")
    assert.equal(4, rc)
    assert.equal("true\tA\n", out)
    os.remove(f)
  end)

  it("reports an uncaught error with message and traceback and exits 1", function()
    local f = tmpfile([[
local lowbit = require "lowbit"
local function inner() error("kaboom") end
lowbit.sleep(0)
inner()
]], ".lua")
    local out, rc = sh(host .. " " .. f .. " 2>&1")
    assert.equal(1, rc)
    assert.matches("kaboom", out)
    assert.matches("stack traceback", out)
    assert.matches("in function 'inner'", out)
    os.remove(f)
  end)

  it("reports errors in other tasks and keeps running", function()
    local out, rc = sh(host .. " -e " .. q([[
local lowbit = require "lowbit"
lowbit.go(function() error("side task broke") end)
lowbit.sleep(0.01)
print("still here")]]) .. " 2>&1")
    assert.equal(0, rc)
    assert.matches("side task broke", out)
    assert.matches("still here", out)
  end)

  it("reports a missing script and a syntax error", function()
    local out, rc = sh(host .. " /nonexistent/x.lua 2>&1")
    assert.equal(1, rc)
    assert.matches("cannot open", out)
    out, rc = sh(host .. " -e 'local = 1' 2>&1")
    assert.equal(1, rc)
    assert.matches("expected near", out)
  end)

  it("cancels the root context on SIGTERM, so the script shuts down cleanly", function()
    local f = tmpfile([[
local context = require "lowbit.context"
io.stdout:write("ready\n"); io.stdout:flush()
local err = context.root():wait()
print("stopped: " .. tostring(err))
return 0
]], ".lua")
    local out, rc = signal_when_ready(f, { "TERM" })
    assert.equal(0, rc)
    assert.equal("ready\nstopped: context canceled\n", out)
    os.remove(f)
  end)

  it("exits at once on a second signal", function()
    local f = tmpfile([[
local lowbit = require "lowbit"
local context = require "lowbit.context"
io.stdout:write("ready\n"); io.stdout:flush()
context.root():wait()
lowbit.sleep(30) -- a shutdown that takes too long
]], ".lua")
    local t0 = os.time()
    local _, rc = signal_when_ready(f, { "INT", "INT" }, 0.2)
    assert.equal(130, rc)
    assert.is_true(os.time() - t0 < 10)
    os.remove(f)
  end)

  for _, case in ipairs({ { "TERM", 143 }, { "INT", 130 } }) do
    it("exits on a second SIG" .. case[1] .. " while a task never yields", function()
      local f = tmpfile([[
local lowbit = require "lowbit"
lowbit.go(function()
  io.stdout:write("ready\n"); io.stdout:flush()
  while true do end
end)
]], ".lua")
      local _, rc = signal_when_ready(f, { case[1], case[1] }, 0.2)
      assert.equal(case[2], rc)
      os.remove(f)
    end)
  end

  it("keeps its stderr pipe blocking for the processes sharing it", function()
    -- lowbit.log writes to a reopened description of the pipe in
    -- non-blocking mode; the shell's own description keeps its mode.
    local out, rc = sh("(" .. host .. " -e " .. q([[
lowbit = require "lowbit"
lowbit.go(function() error("to stderr") end)
lowbit.sleep(0.01)]]) .. " 2>&1; python3 -c 'import fcntl,os; print(\"nonblock\" if fcntl.fcntl(2, fcntl.F_GETFL) & os.O_NONBLOCK else \"blocking\")' 2>&1) | cat")
    assert.equal(0, rc)
    assert.matches("to stderr", out)
    assert.matches("blocking\n$", out)
  end)
end)

describe("examples/echo.lua", function()
  it("echoes over TCP and stops cleanly on Ctrl-C (SIGINT)", function()
    local port = support.free_port()
    local client = tmpfile(([[
local lowbit = require "lowbit"
local net = require "lowbit.net"
local c
for _ = 1, 500 do
  c = net.dial(nil, "127.0.0.1:%d")
  if c then break end
  lowbit.sleep(0.02)
end
c:write("hello echo")
print(c:read_full(10))
c:close()
]]):format(port), ".lua")
    local out, rc = sh("cd " .. support.root .. " && (" .. host .. " examples/echo.lua 127.0.0.1:" .. port ..
      " 2>/dev/null & pid=$!; " .. host .. " " .. client .. "; kill -INT $pid; wait $pid; echo server=$?)")
    assert.equal(0, rc)
    assert.equal("hello echo\nserver=0\n", out)
    os.remove(client)
  end)
end)

describe("rungroup under the host", function()
  it("SIGTERM ends the process even when a service ignores its shutdown (it is abandoned and detached)", function()
    local f = tmpfile([[
local lowbit = require "lowbit"
local rungroup = require "lowbit.rungroup"
return function(ctx)
  local g = rungroup.new{ shutdown_timeout = 0.3 }
  g:add(function(c) c:wait() end, { name = "polite" })
  g:add(function() lowbit.chan(0):recv() end, { name = "stuck" }) -- never returns
  io.stdout:write("ready\n"); io.stdout:flush()
  local err = g:run(ctx)
  print("run returned: " .. tostring(err))
  return 0
end
]], ".lua")
    local out, rc = signal_when_ready(f, { "TERM" })
    assert.equal(0, rc)
    assert.equal("ready\nrun returned: service stuck: shutdown timeout\n", out)
    os.remove(f)
  end)
end)
