-- Shared helpers for the specs.
local M = {}

M.root = os.getenv("LOWBIT_ROOT") or "."
M.host = M.root .. "/build/bin/lowbit"

-- A run that has not ended after this many seconds fails, listing where
-- every task still waits: a hang costs one test, not the whole file.
M.RUN_LIMIT = tonumber(os.getenv("SPEC_RUN_LIMIT")) or 120
local watchdog

-- lowbit.run(fn, ...) under a watchdog of `limit` seconds; pcall's results.
local function watched_run(limit, fn, ...)
  local lowbit = require "lowbit"
  local uv = require "luv"
  if not watchdog then
    watchdog = uv.new_timer()
    uv.unref(watchdog) -- never keeps the loop alive by itself
    lowbit._track_tasks(true)
  end
  uv.timer_start(watchdog, math.floor(limit * 1000), 0, function()
    lowbit._abort(("lowbit.run did not end within %gs"):format(limit))
  end)
  local res = { pcall(lowbit.run, fn, ...) }
  uv.timer_stop(watchdog)
  return unpack(res, 1, table.maxn(res))
end

--- Runs fn as the main task of a fresh loop (the scheduler is re-entrant
--- between runs) and returns its results.
function M.run(fn, ...)
  local res = { watched_run(M.RUN_LIMIT, fn, ...) }
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

--- Like run with a watchdog of `limit` seconds, returning what pcall
--- would: for specs of hangs and of the watchdog itself.
M.pcall_run_within = watched_run

--- Starts http.server(opts) on host:0 (host: 127.0.0.1 by default),
--- serving in a task of the current run; returns the server, listener.
function M.http_server(opts, host)
  local lowbit, http, net = require "lowbit", require "lowbit.http", require "lowbit.net"
  local srv = http.server(opts)
  local ln = assert(net.listen((host or "127.0.0.1") .. ":0"))
  lowbit.go(function() srv:serve(ln) end)
  return srv, ln
end

--- Runs a shell command, returns its stdout, exit code.
function M.sh(cmd)
  local p = io.popen(cmd .. "; echo \"__rc=$?\"")
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.*)__rc=(%d+)%s*$")
  return body, tonumber(rc)
end

--- A shell word for s (single-quoted).
function M.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The content of the file at path, or nil when it cannot be read.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- From a task: polls f() every 20 ms until it is true, for at most secs
--- seconds (10 by default); returns f()'s last verdict.
function M.eventually(f, secs)
  local lowbit = require "lowbit"
  for _ = 1, (secs or 10) * 50 do
    if f() then return true end
    lowbit.sleep(0.02)
  end
  return f()
end

--- Writes a temporary file and returns its path.
function M.tmpfile(content, suffix)
  local path = os.tmpname() .. (suffix or "")
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
  return path
end

--- Makes a new empty temporary folder and returns its path.
function M.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'") == 0, "cannot make " .. dir)
  return dir
end

--- A free loopback TCP port: bound on 127.0.0.1:0, then released, by the
--- host (for a child that takes its address as an argument and cannot
--- report the port it got). Needs no task.
function M.free_port()
  local out = M.sh(M.host .. [[ -e 'local ln = assert(require("lowbit.net").listen("127.0.0.1:0"))
io.write(ln:port()); ln:close()']])
  local port = tonumber(out)
  assert(port, "no free port: " .. tostring(out))
  return port
end

--- Everything conn c yields until EOF (or an error).
function M.read_all(c)
  local parts = {}
  while true do
    local d = c:read()
    if not d then break end
    parts[#parts + 1] = d
  end
  return table.concat(parts)
end

--- Runs fn() with LuaJIT's trace events watched (after a jit.flush) and
--- returns the trace aborts in code whose location ("file.lua:line") or
--- chunk name (its path) holds one of `where` (a plain string or a list of
--- them), whose reason holds one of opts.reasons (default "NYI" and
--- "blacklisted") and none of opts.except, as "loc: reason" strings; then
--- how many traces were compiled in that code (STYLE rule 14). fn's error
--- is raised again once the watch is off.
function M.jit_aborts(where, fn, opts)
  opts = opts or {}
  local jutil, vmdef = require "jit.util", require "jit.vmdef"
  if type(where) == "string" then where = { where } end
  local function holds(s, list)
    for _, w in ipairs(list or {}) do if s:find(w, 1, true) then return true end end
    return false
  end
  local bad, compiled = {}, 0
  local function on_trace(what, _, func, pc, otr, oex)
    if what ~= "abort" and what ~= "stop" then return end
    local info = jutil.funcinfo(func, pc)
    local loc = info.loc or "?"
    if not (holds(loc, where) or holds(info.source or "", where)) then return end
    if what == "stop" then compiled = compiled + 1; return end
    local msg = vmdef.traceerr[otr] or tostring(otr)
    if type(oex) == "number" and msg:find("%d", 1, true) then msg = msg:format(oex) end
    if holds(msg, opts.reasons or { "NYI", "blacklisted" }) and not holds(msg, opts.except) then
      bad[#bad + 1] = loc .. ": " .. msg
    end
  end
  jit.flush()
  jit.attach(on_trace, "trace")
  local ok, err = pcall(fn)
  jit.attach(on_trace)
  if not ok then error(err, 0) end
  return bad, compiled
end

--- Makes a throwaway PKI with the openssl command line in a new temporary
--- directory, and returns the directory: ca.pem/ca.key (a test CA),
--- srv.pem/srv.key (localhost, 127.0.0.1, signed by the CA),
--- other.pem/other.key (other.test, signed by the CA), self.pem/self.key
--- (localhost, self-signed: nobody trusts it).
function M.make_pki()
  local dir = M.tmpdir()
  local function run_ok(cmd)
    local out, rc = M.sh(cmd .. " 2>&1")
    assert(rc == 0, cmd .. " failed:\n" .. tostring(out))
  end
  run_ok(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
      "-subj '/CN=lowbit spec CA' -keyout %s/ca.key -out %s/ca.pem"):format(dir, dir))
  local function make_cert(name, cn, san, ca)
    local cnf = dir .. "/" .. name .. ".cnf"
    local f = assert(io.open(cnf, "w"))
    f:write("[req]\ndistinguished_name = dn\nx509_extensions = ext\n[dn]\n[ext]\n",
            "basicConstraints = critical,CA:FALSE\nsubjectAltName = ", san, "\n")
    f:close()
    run_ok(("openssl req -x509 -config %s -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
        "-subj '/CN=%s' -keyout %s/%s.key -out %s/%s.pem %s"):format(cnf, cn, dir, name, dir, name,
        ca and ("-CA " .. dir .. "/ca.pem -CAkey " .. dir .. "/ca.key") or ""))
  end
  make_cert("srv", "localhost", "DNS:localhost,IP:127.0.0.1", true)
  make_cert("other", "other.test", "DNS:other.test", true)
  make_cert("self", "localhost", "DNS:localhost", false)
  return dir
end

--- Runs cmd with args as a child process from a task, on the luv loop (the
--- servers of the same run keep serving meanwhile). Returns exit code,
--- stdout, stderr; raises after `timeout` seconds (default 30).
function M.spawn(cmd, args, timeout)
  local uv = require "luv"
  local lowbit = require "lowbit"
  local out, errout = {}, {}
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local done = lowbit.chan(1)
  local left, code = 3, nil
  local function one() left = left - 1; if left == 0 then done:try_send(true) end end
  local h, perr
  h, perr = uv.spawn(cmd, { args = args, stdio = { nil, stdout, stderr } },
    function(c) code = c; uv.close(h); one() end)
  assert(h, perr)
  for _, p in ipairs({ { stdout, out }, { stderr, errout } }) do
    local pipe, acc = p[1], p[2]
    uv.read_start(pipe, function(_, d)
      if d then acc[#acc + 1] = d else uv.close(pipe); one() end
    end)
  end
  -- `timeout` is seconds, or a channel: the process runs until something is
  -- sent on it (then it is killed, and its code is the signal's).
  local stop = type(timeout) == "table" and timeout or lowbit.after(timeout or 30)
  local i = lowbit.select{ done, stop }
  if i ~= 1 then
    uv.process_kill(h, "sigkill")
    done:recv()
    if stop ~= timeout then error(cmd .. " timed out; stderr: " .. table.concat(errout)) end
  end
  return code, table.concat(out), table.concat(errout)
end

--- Starts a redis-server of its own on a free loopback port (`--save ''
--- --appendonly no`), waiting until it accepts connections. opts.tls = a
--- make_pki() directory: TLS only (--tls-port, no plain port). opts.args:
--- more arguments. Returns { port, addr, pid, dir, stop = fn } (stop kills
--- it by pid and waits for it to exit), or nil, reason when redis-server
--- is not installed.
function M.start_redis(opts)
  opts = opts or {}
  local _, rc = M.sh("command -v redis-server >/dev/null")
  if rc ~= 0 then return nil, "redis-server is not installed (make deps)" end
  local proc = require "support.proc"
  local dir = M.tmpdir()
  -- Seeded once per process: reseeding on every call (same second, the
  -- same table address) picked the port of the server started just before.
  if not M._redis_seeded then
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
    M._redis_seeded = true
  end
  for _ = 1, 8 do
    -- A port outside Linux's ephemeral range (32768-60999), retried when
    -- taken: redis-server exits at once then.
    local port = math.random(20000, 32000)
    local log = dir .. "/redis-" .. port .. ".log"
    local args = { "--save ''", "--appendonly no", "--bind 127.0.0.1", "--daemonize no",
                   "--dir " .. dir, "--logfile " .. log }
    if opts.tls then
      args[#args + 1] = ("--port 0 --tls-port %d --tls-cert-file %s/srv.pem --tls-key-file %s/srv.key " ..
        "--tls-ca-cert-file %s/ca.pem --tls-auth-clients no"):format(port, opts.tls, opts.tls, opts.tls)
    else
      args[#args + 1] = "--port " .. port
    end
    for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
    local out = M.sh("redis-server " .. table.concat(args, " ") .. " >/dev/null 2>&1 & echo $!")
    local pid = tonumber(out:match("(%d+)"))
    local ready = false
    for _ = 1, 200 do
      local text = M.read_file(log) or ""
      if text:find("Ready to accept connections", 1, true) then ready = true; break end
      if not proc.alive(pid) then break end
      os.execute("sleep 0.02")
    end
    if ready then
      local r = { port = port, addr = "127.0.0.1:" .. port, pid = pid, dir = dir }
      function r.stop() proc.kill_wait(pid) end
      return r
    end
    proc.kill(pid, "KILL")
  end
  error("redis-server did not start (see " .. dir .. ")")
end

--- A redis-server of the specs' own (start_redis(opts)) for the tests of
--- the enclosing describe block, or of the file when called at its top:
--- started before each test and stopped after it (opts.once: one server
--- for all of them), lowbit.redis's pooled connections closed before the
--- stop. Returns a table that holds the running server's fields (port,
--- addr, pid, dir, stop) while the tests run.
function M.use_redis(opts)
  local env = getfenv(2) -- the spec file's: busted's before_each and co. live there
  local srv = {}
  local function start()
    local r, err = M.start_redis(opts)
    assert(r, err)
    for k in pairs(srv) do srv[k] = nil end
    for k, v in pairs(r) do srv[k] = v end
  end
  local function stop()
    M.run(function() require("lowbit.redis").close_idle() end)
    if srv.stop then srv.stop() end
  end
  if opts and opts.once then
    env.setup(start); env.teardown(stop)
  else
    env.before_each(start); env.after_each(stop)
  end
  return srv
end

return M
