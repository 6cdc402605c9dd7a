-- lowbit.host: what the `lowbit` executable runs.
--
--   lowbit script.lua [args...]   run a script as the main task
--   lowbit -e 'code' [args...]    run a string
--   lowbit --version | --help
--
-- The script's chunk runs as the main task (top-level code may sleep, read,
-- accept). If it returns a function (or defines a global `main`), that is
-- called as main(ctx, args...) with the root context. The process exits when
-- every task is done, with the numeric result of the script or main as its
-- status. SIGINT/SIGTERM cancel the root context; a second signal exits now.
--
-- Signals arrive as loop callbacks, which run only when a task yields. So
-- that a task that never yields cannot make the process unkillable, the
-- executable also counts SIGINT/SIGTERM in a C handler
-- (lb_host_count_signals in runtime/host/main.c): the second one exits at
-- once (status 130 or 143), whatever Lua is doing.
--
-- Everything written to stderr goes through lowbit.log (never blocks the
-- loop); what is still queued when the script ends is flushed for at most
-- EXIT_FLUSH seconds.
local uv = require "luv"
local lowbit = require "lowbit"
local context = require "lowbit.context"
local log = require "lowbit.log"

local M = {}

local USAGE = [[
usage: lowbit script.lua [args...]
       lowbit -e 'lua code' [args...]
       lowbit --version
Runs the script as the main task on the luv loop; exits when all tasks end.]]

M.EXIT_FLUSH = 2

-- LuaJIT's limits for the executable, as OpenResty's LuaJIT sets them
-- (and four times the constants per trace):
-- with the stock ones (4000 IR instructions, 500 constants per trace) the
-- traces through a request (HTTP server loop, TLS read path, handler)
-- abort as "trace too long", get blacklisted after a few tries and leave
-- part of each request interpreted, more or less depending on which trace
-- formed first. Applied by main before the script runs.
M.JIT_OPTS = { "maxtrace=8000", "maxrecord=16000", "maxirconst=2000", "maxmcode=40960" }

local function say(...)
  log.write_always(table.concat({ "lowbit: ", ... }))
end

-- The C side of signal handling, when this runs in the `lowbit` executable
-- (under a plain luajit the Lua count below is all there is).
local function count_signals_in_c()
  local ok, ffi = pcall(require, "ffi")
  if not ok then return false end
  pcall(ffi.cdef, "int lb_host_count_signals(void);")
  local found, fn = pcall(function() return ffi.C.lb_host_count_signals end)
  return found and fn() == 0
end

local function version_line()
  return ("lowbit %s (%s, libuv %s)"):format(lowbit.VERSION, jit and jit.version or _VERSION, uv.version_string())
end

local function install_signals()
  local count = 0
  local handles = {}
  for _, name in ipairs({ "sigint", "sigterm" }) do
    local h = uv.new_signal()
    uv.signal_start(h, name, function(signame)
      count = count + 1
      if count == 1 then
        context.cancel_root()
      else
        say("second ", signame, ", exiting now")
        log.flush(0.1)
        os.exit(name == "sigint" and 130 or 143)
      end
    end)
    -- Kept referenced: a task waiting on the root context is waiting for a
    -- signal, not deadlocked. (The process still exits when tasks end.)
    handles[#handles + 1] = h
  end
  -- After libuv's handlers are in place: the C handler chains to them.
  count_signals_in_c()
  return handles
end

local function report(err)
  local tb = type(err) == "string" and err or (lowbit.last_traceback or tostring(err))
  say(tb)
end

local function main(argv)
  local args, chunk, name = {}, nil, nil
  local i = 1
  local a = argv[1]
  if a == nil or a == "-h" or a == "--help" then
    io.stdout:write(USAGE, "\n")
    return a == nil and 2 or 0
  elseif a == "--version" or a == "-v" then
    io.stdout:write(version_line(), "\n")
    return 0
  elseif a == "-e" then
    local code = argv[2]
    if not code then say("-e needs an argument"); return 2 end
    local err
    chunk, err = loadstring(code, "=(command line)")
    if not chunk then say(err); return 1 end
    name = "-e"
    i = 3
  else
    if a:sub(1, 1) == "-" and a ~= "-" then
      say("unknown option ", a, "\n", USAGE)
      return 2
    end
    local err
    chunk, err = loadfile(a ~= "-" and a or nil)
    if not chunk then say(err); return 1 end
    name = a
    i = 2
  end
  for k = i, #argv do args[#args + 1] = argv[k] end
  local argt = { [0] = name, [-1] = argv[0] }
  for k = 1, #args do argt[k] = args[k] end
  _G.arg = argt

  if jit and jit.opt then jit.opt.start(unpack(M.JIT_OPTS)) end
  local sig = install_signals()
  local ok, res = pcall(lowbit.run, function()
    local r = chunk(unpack(args))
    local main = type(r) == "function" and r or (type(rawget(_G, "main")) == "function" and rawget(_G, "main"))
    if main then r = main(context.root(), unpack(args)) end
    return r
  end)
  for _, h in ipairs(sig) do uv.close(h) end
  if not ok then
    report(res)
    return 1
  end
  if type(res) == "number" then return math.floor(res) end
  return 0
end

function M.main(argv)
  local status = main(argv)
  log.flush(M.EXIT_FLUSH)
  return status
end

return M
