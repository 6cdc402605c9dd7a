-- lowbit.host: what the `lowbit` executable runs.
--
--   lowbit script.lua [args...]   run a script as the main task
--   lowbit -e 'code' [args...]    run a string
--   lowbit -w N -l host:port [-g secs] [-d secs] script.lua [args...]
--                                 N worker processes serving one address
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
       lowbit -w N -l host:port [-g grace_seconds] [-d defer_seconds] script.lua [args...]
       lowbit --version
Runs the script as the main task on the luv loop; exits when all tasks end.
With -w, a master process holds one SO_REUSEPORT socket per worker on
host:port and runs N workers (`lowbit script.lua args...`); net.listen of
that address in a worker adopts its socket. SIGHUP restarts the workers one
by one; SIGTERM/SIGINT drain them (killed after -g seconds, default 30).
A connection reaches a worker once its client has sent something, or after
-d seconds (default 1; 0: at once, for protocols where the server speaks
first).]]

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


---------------------------------------------------------------------------
-- lowbit -w N -l addr script.lua: a master and N workers
---------------------------------------------------------------------------
-- The master runs no user code. Per worker slot it creates a listening
-- socket on addr (SO_REUSEPORT, close-on-exec) and never accepts on it.
-- Each worker is this executable run again (spawn + exec: a clean LuaJIT
-- and luv state) as `lowbit script.lua args...` in its own process group, with
-- its slot's socket as fd 3 and the write end of a readiness pipe as fd 4,
-- and in its environment:
--   LOWBIT_LISTEN_FDS=1         a socket is inherited (fd 3)
--   LOWBIT_LISTEN=ip:port       the address it is bound to
--   LOWBIT_LISTEN_PORT=p        the port given to -l (0 when any)
--   LOWBIT_READY_FD=4           written to once the socket is adopted
--   LOWBIT_MASTER_PID=pid       the worker dies with the master
--   LOWBIT_WORKER=i, LOWBIT_WORKERS=n (also M.worker = {index, count})
-- A worker's net.listen(addr) adopts the inherited socket (lowbit.net).
-- Because the master keeps every socket, connections queued on a slot
-- survive its worker's exit or crash: the next worker of the slot accepts
-- them (scale.md §2.3: 0 errors on kill -9, where per-process sockets lose
-- their queue).
--
-- Supervision: a worker that exits when not asked to is restarted after a
-- backoff (RESTART.min doubling to RESTART.max, reset when it had stayed
-- up RESTART.reset seconds); after RESTART.crashes such exits within
-- RESTART.within seconds the master stops all workers and exits 1.
-- SIGTERM/SIGINT: TERM to every worker (each drains: the script's root
-- context is cancelled), KILL after the grace period, then the sockets are
-- closed and the master exits 0; a second signal KILLs the workers and
-- exits at once (130/143). SIGHUP: the workers are replaced one slot at a
-- time (the new worker starts on the same socket; once it has adopted it,
-- or after RESTART.ready seconds, the old one gets TERM).

M.MAX_WORKERS = 256
M.GRACE = 30
M.BACKLOG = 511
-- TCP_DEFER_ACCEPT on the slot sockets (seconds; -d): a connection is
-- queued for accept once its first bytes have arrived (or this long
-- after, for protocols where the server speaks first; -d 0 turns it off).
-- Until then it lives in the master's socket, so a worker never holds a
-- connection whose client has sent nothing yet: what a worker's kill -9
-- loses is only connections whose request it had started to receive.
M.DEFER_ACCEPT = 1
M.RESTART = { min = 0.1, max = 5, reset = 10, crashes = 5, within = 10, ready = 1, adopt_warn = 5 }

--- In a worker of `lowbit -w N -l addr`: { index = 1..N, count = N, addr =
--- the "ip:port" the master listens on (net.listen(addr) adopts it) }; nil
--- otherwise.
M.worker = nil

local ffi = require "ffi"
local C = ffi.C
for _, decl in ipairs({
  "int listen(int, int);",
  "int fcntl(int, int, ...);",
  "int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long);",
  "int getppid(void);",
  "int setpgid(int, int);",
  "int close(int);",
  "int setsockopt(int, int, int, const void *, unsigned int);",
}) do pcall(ffi.cdef, decl) end
pcall(ffi.cdef, "long write(int, const void *, unsigned long);")

local function set_cloexec(fd)
  local F_GETFD, F_SETFD, FD_CLOEXEC = 1, 2, 1
  local fl = C.fcntl(fd, F_GETFD)
  if fl >= 0 then C.fcntl(fd, F_SETFD, ffi.cast("int", bit.bor(fl, FD_CLOEXEC))) end
end

local function now_s() return uv.hrtime() / 1e9 end

local function after(secs, fn)
  local t = uv.new_timer()
  uv.timer_start(t, math.max(0, math.floor(secs * 1000)), 0, function()
    uv.close(t)
    fn()
  end)
  return t
end

local function cancel_timer(t)
  if t and not uv.is_closing(t) then uv.timer_stop(t); uv.close(t) end
end

-- The port a handle is bound to (0 when the bind did not happen: libuv
-- defers EADDRINUSE to listen, which this master never calls through it).
local function bound(h)
  local sa = uv.tcp_getsockname(h)
  return sa and sa.port or 0, sa and sa.ip
end

-- One listening socket per slot, all on one port. nil, message on failure
-- (every socket opened so far closed).
local function open_slots(n, addr, defer)
  local net = require "lowbit.net"
  local host, port = net.split_host_port(addr)
  if not host then return nil, tostring(port) end
  local ips, err = net._resolve(nil, host, "stream")
  if not ips then return nil, tostring(err) end
  local ip = ips[1]
  local family = ip:find(":", 1, true) and "inet6" or "inet"
  local what = "listen tcp " .. addr .. ": "
  if port ~= 0 then
    -- Joining a group of SO_REUSEPORT sockets (another master's, say) is
    -- allowed, and would split the traffic with it: a probe without
    -- SO_REUSEPORT tells whether any socket holds the port.
    local probe = uv.new_tcp(family)
    local _, e = uv.tcp_bind(probe, ip, port)
    local p = bound(probe)
    uv.close(probe)
    if p ~= port then return nil, what .. (e and tostring(e) or "address already in use") end
  end
  local slots = {}
  local function fail(msg)
    for _, s in ipairs(slots) do uv.close(s.h) end
    return nil, what .. msg
  end
  local one = ffi.new("int[1]", 1)
  local bound_ip
  for i = 1, n do
    local h = uv.new_tcp(family) -- created close-on-exec by libuv
    slots[i] = { index = i, h = h, backoff = M.RESTART.min }
    local fd = uv.fileno(h)
    if not fd or C.setsockopt(fd, 1, 15, one, 4) ~= 0 then return fail("cannot set SO_REUSEPORT") end
    local _, e = uv.tcp_bind(h, ip, port)
    local p, bip = bound(h)
    if p == 0 then return fail(e and tostring(e) or "address already in use") end
    port, bound_ip = p, bip
    if C.listen(fd, M.BACKLOG) ~= 0 then return fail("listen failed: " .. ffi.string(ffi.C.strerror(ffi.errno()))) end
    if defer > 0 and C.setsockopt(fd, 6, 9, ffi.new("int[1]", math.ceil(defer)), 4) ~= 0 then -- IPPROTO_TCP, TCP_DEFER_ACCEPT
      return fail("cannot set TCP_DEFER_ACCEPT")
    end
    slots[i].fd = fd
  end
  return slots, net.join_host_port(bound_ip, port), select(2, net.split_host_port(addr))
end
pcall(ffi.cdef, "char *strerror(int);")

local function worker_env(st, slot)
  local env = {}
  for k, v in pairs(uv.os_environ()) do
    if not (k:match("^LOWBIT_LISTEN") or k:match("^LOWBIT_WORKER") or k == "LOWBIT_READY_FD" or k == "LOWBIT_MASTER_PID") then
      env[#env + 1] = k .. "=" .. v
    end
  end
  env[#env + 1] = "LOWBIT_LISTEN_FDS=1"
  env[#env + 1] = "LOWBIT_LISTEN=" .. st.addr
  env[#env + 1] = "LOWBIT_LISTEN_PORT=" .. st.spec_port
  env[#env + 1] = "LOWBIT_READY_FD=4"
  env[#env + 1] = "LOWBIT_MASTER_PID=" .. uv.os_getpid()
  env[#env + 1] = "LOWBIT_WORKER=" .. slot.index
  env[#env + 1] = "LOWBIT_WORKERS=" .. #st.slots
  return env
end

local on_worker_exit, on_ready

-- Starts a worker for slot; nil, err when it cannot be spawned.
local function spawn(st, slot)
  local ready = uv.new_pipe(false)
  local w = { slot = slot, started = now_s(), ready = false, pipe = ready }
  local args = { st.script }
  for _, a in ipairs(st.args) do args[#args + 1] = a end
  local proc, pid = uv.spawn(st.exe, {
    args = args, env = worker_env(st, slot), stdio = { 0, 1, 2, slot.fd, ready },
  }, function(code, sig) on_worker_exit(st, w, code, sig) end)
  if not proc then
    uv.close(ready)
    return nil, tostring(pid)
  end
  w.proc, w.pid = proc, pid
  st.live[w] = true
  st.nlive = st.nlive + 1
  -- Connections queue on the slot's socket until a worker adopts it: say
  -- so when a worker does not (a script listening on another address).
  w.warn_timer = after(M.RESTART.adopt_warn, function()
    w.warn_timer = nil
    if not w.ready and not w.exited then
      say(("worker %d (pid %d) has not listened on %s after %g s: connections wait in its queue")
        :format(slot.index, pid, st.addr, M.RESTART.adopt_warn))
    end
  end)
  uv.read_start(ready, function(err, data)
    if data and not err then
      on_ready(st, w)
    else
      if not uv.is_closing(ready) then uv.close(ready) end
    end
  end)
  return w
end

local function kill(w, sig)
  if not w.exited and w.proc and not uv.is_closing(w.proc) then pcall(uv.process_kill, w.proc, sig) end
end

local function finish(st)
  if st.finished then return end
  st.finished = true
  cancel_timer(st.grace_timer)
  for _, t in pairs(st.timers) do cancel_timer(t) end
  for _, s in ipairs(st.slots) do if not uv.is_closing(s.h) then uv.close(s.h) end end
  for _, h in ipairs(st.signals) do if not uv.is_closing(h) then uv.close(h) end end
  uv.stop()
end

local function stop(st, status)
  if st.stopping then return end
  st.stopping = true
  st.status = status
  for _, t in pairs(st.timers) do cancel_timer(t) end
  st.timers = {}
  for w in pairs(st.live) do kill(w, "sigterm") end
  if st.nlive == 0 then return finish(st) end
  st.grace_timer = after(st.grace, function()
    st.grace_timer = nil
    if st.nlive > 0 then
      say(("grace period (%g s) over, killing %d worker(s)"):format(st.grace, st.nlive))
      for w in pairs(st.live) do kill(w, "sigkill") end
    end
  end)
end

local respawn

local function roll_next(st)
  st.roll_i = st.roll_i + 1
  local slot = st.slots[st.roll_i]
  if not slot then
    st.rolling = false
    say("restart done: ", #st.slots, " new worker(s)")
    return
  end
  local w, err = spawn(st, slot)
  if not w then
    st.rolling = false
    say("restart stopped: cannot start a worker for slot ", slot.index, ": ", err)
    return
  end
  slot.next = w
  w.ready_timer = after(M.RESTART.ready, function() w.ready_timer = nil; on_ready(st, w, true) end)
end

-- The new worker of a slot has adopted its socket (or had its time):
-- during a rolling restart, it replaces the old one.
function on_ready(st, w, timed_out)
  if not timed_out then
    w.ready = true
    cancel_timer(w.warn_timer)
    w.warn_timer = nil
    if w.pipe and not uv.is_closing(w.pipe) then uv.close(w.pipe) end
  end
  cancel_timer(w.ready_timer)
  w.ready_timer = nil
  local slot = w.slot
  if slot.next ~= w then return end
  slot.next = nil
  local old = slot.worker
  slot.worker = w
  if old then old.retiring = true; kill(old, "sigterm") end
  if not st.stopping then roll_next(st) end
end

function on_worker_exit(st, w, code, sig)
  w.exited = true
  if w.proc then uv.close(w.proc) end
  cancel_timer(w.warn_timer)
  if w.pipe and not uv.is_closing(w.pipe) then uv.close(w.pipe) end
  cancel_timer(w.ready_timer)
  st.live[w] = nil
  st.nlive = st.nlive - 1
  local slot = w.slot
  local how = sig ~= 0 and ("killed by signal " .. sig) or ("exited with status " .. code)
  if st.stopping then
    if code ~= 0 or sig ~= 0 then say("worker ", slot.index, " (pid ", w.pid, ") ", how) end
    if st.nlive == 0 then finish(st) end
    return
  end
  if w.retiring then return end
  if slot.next == w then
    slot.next = nil
    st.rolling = false
    say("restart stopped: the new worker ", slot.index, " (pid ", w.pid, ") ", how, "; the old one keeps serving")
    return
  end
  if slot.worker == w then slot.worker = nil end
  local t = now_s()
  if t - w.started >= M.RESTART.reset then slot.backoff = M.RESTART.min end
  local recent = {}
  for _, c in ipairs(st.crashes) do if t - c < M.RESTART.within then recent[#recent + 1] = c end end
  recent[#recent + 1] = t
  st.crashes = recent
  if #recent >= M.RESTART.crashes then
    say(("worker %d (pid %d) %s: %d unexpected exits within %g s, giving up"):format(
      slot.index, w.pid, how, #recent, M.RESTART.within))
    return stop(st, 1)
  end
  local delay = slot.backoff
  slot.backoff = math.min(slot.backoff * 2, M.RESTART.max)
  say(("worker %d (pid %d) %s; restarting it in %g s"):format(slot.index, w.pid, how, delay))
  respawn(st, slot, delay)
end

function respawn(st, slot, delay)
  st.timers[slot] = after(delay, function()
    st.timers[slot] = nil
    if st.stopping or slot.worker then return end
    local w, err = spawn(st, slot)
    if w then
      slot.worker = w
    else
      say("cannot start worker ", slot.index, ": ", err)
      local fake = { slot = slot, started = now_s(), pid = -1, proc = false }
      st.live[fake] = true
      st.nlive = st.nlive + 1
      on_worker_exit(st, fake, 127, 0)
    end
  end)
end

local function run_master(n, addr, grace, script, args, defer)
  local slots, bound_addr, spec_port = open_slots(n, addr, defer)
  if not slots then say(bound_addr); return 1 end
  local st = {
    slots = slots, addr = bound_addr, spec_port = spec_port, grace = grace, script = script, args = args,
    exe = uv.exepath(), live = {}, nlive = 0, crashes = {}, timers = {}, signals = {}, status = 0,
    stopping = false, finished = false, rolling = false, roll_i = 0,
  }
  -- Signals first: a SIGTERM right after the spawns must not kill the master.
  local nsig = 0
  for _, name in ipairs({ "sigterm", "sigint" }) do
    local h = uv.new_signal()
    uv.signal_start(h, name, function()
      nsig = nsig + 1
      if nsig == 1 then
        say(name == "sigint" and "SIGINT" or "SIGTERM", ": stopping ", st.nlive, " worker(s)")
        stop(st, 0)
      else
        say("second ", name == "sigint" and "SIGINT" or "SIGTERM", ", killing the workers and exiting now")
        for w in pairs(st.live) do kill(w, "sigkill") end
        for _, s in ipairs(st.slots) do if not uv.is_closing(s.h) then uv.close(s.h) end end
        log.flush(0.1)
        os.exit(name == "sigint" and 130 or 143)
      end
    end)
    st.signals[#st.signals + 1] = h
  end
  local hup = uv.new_signal()
  uv.signal_start(hup, "sighup", function()
    if st.stopping then return end
    if st.rolling then say("SIGHUP: a restart is already under way"); return end
    say("SIGHUP: restarting the workers one by one")
    st.rolling, st.roll_i = true, 0
    roll_next(st)
  end)
  st.signals[#st.signals + 1] = hup
  for _, slot in ipairs(slots) do
    local w, err = spawn(st, slot)
    if not w then
      say("cannot start worker ", slot.index, ": ", err)
      stop(st, 1)
      break
    end
    slot.worker = w
  end
  if not st.stopping then
    say(("master %d: %d worker(s) on %s"):format(uv.os_getpid(), n, bound_addr))
  end
  if st.nlive == 0 then finish(st) end
  if not st.finished then uv.run() end
  return st.status
end

-- In a worker: reads what the master passed, and readies the adoption.
local function worker_setup()
  if not os.getenv("LOWBIT_LISTEN_FDS") then return true end
  local idx, cnt = tonumber(os.getenv("LOWBIT_WORKER")), tonumber(os.getenv("LOWBIT_WORKERS"))
  local master = tonumber(os.getenv("LOWBIT_MASTER_PID"))
  local net = require "lowbit.net"
  local listen = os.getenv("LOWBIT_LISTEN")
  local host, port = net.split_host_port(listen or "")
  local spec_port = tonumber(os.getenv("LOWBIT_LISTEN_PORT"))
  for _, k in ipairs({ "LOWBIT_LISTEN_FDS", "LOWBIT_LISTEN", "LOWBIT_LISTEN_PORT", "LOWBIT_READY_FD", "LOWBIT_MASTER_PID" }) do
    uv.os_unsetenv(k)
  end
  M.worker = { index = idx, count = cnt, addr = listen }
  -- Its own process group (in the master's session, so the scheduler
  -- still groups it with the master): a Ctrl-C on the terminal reaches the
  -- master alone, which then TERMs each worker once.
  C.setpgid(0, 0)
  set_cloexec(3) -- not for the script's own child processes
  set_cloexec(4)
  -- The worker ends (gracefully) with its master, even a killed one.
  C.prctl(1 --[[PR_SET_PDEATHSIG]], 15 --[[SIGTERM]], 0, 0, 0)
  if master and C.getppid() ~= master then
    say("worker ", tostring(idx), ": master ", master, " is gone")
    return false
  end
  if host then
    local ready_fd = 4
    net._inherited = {
      fd = 3, ip = host, port = port, spec_port = spec_port,
      on_ready = function()
        if ready_fd then
          C.write(ready_fd, "1", 1)
          C.close(ready_fd)
          ready_fd = nil
        end
      end,
    }
  end
  return true
end

local function master_main(argv)
  local n, addr, grace, defer
  local i = 1
  while true do
    local a = argv[i]
    if a == "-w" or a == "-l" or a == "-g" or a == "-d" then
      local v = argv[i + 1]
      if v == nil then say(a, " needs an argument\n", USAGE); return 2 end
      if a == "-w" then
        n = v:match("^%d+$") and tonumber(v)
        if not n or n < 1 or n > M.MAX_WORKERS then
          say(("-w wants a number of workers from 1 to %d, got %q"):format(M.MAX_WORKERS, v))
          return 2
        end
      elseif a == "-l" then
        addr = v
      elseif a == "-d" then
        defer = tonumber(v)
        if not defer or defer < 0 or defer > 3600 or defer ~= defer then
          say(("-d wants seconds (0 to 3600), got %q"):format(v))
          return 2
        end
      else
        grace = tonumber(v)
        if not grace or grace < 0 or grace ~= grace then
          say(("-g wants a grace period in seconds, got %q"):format(v))
          return 2
        end
      end
      i = i + 2
    else
      break
    end
  end
  if not n then say("-l, -g and -d go with -w N\n", USAGE); return 2 end
  if not addr then say("-w needs -l host:port, the address the workers serve\n", USAGE); return 2 end
  local script = argv[i]
  if not script or script == "-" or script:sub(1, 1) == "-" then
    say("-w needs a script file\n", USAGE)
    return 2
  end
  local chunk, err = loadfile(script)
  if not chunk then say(err); return 1 end
  local args = {}
  for k = i + 1, #argv do args[#args + 1] = argv[k] end
  return run_master(n, addr, grace or M.GRACE, script, args, defer or M.DEFER_ACCEPT)
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
  elseif a == "-w" or a == "-l" or a == "-g" or a == "-d" then
    return master_main(argv)
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

  if not worker_setup() then return 1 end
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
