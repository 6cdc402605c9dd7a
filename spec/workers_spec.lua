-- `lowbit -w N`: a master holding one SO_REUSEPORT socket per worker slot
-- (issue 15; ../shared/conformance/scale.md, list B, one test per
-- statement, named by its number). The load is spec/peers/workers_load.go:
-- 16 clients, a new connection per request, responses counted by the pid
-- in the body (spec/apps/workers_app.lua), resets and empty replies apart.
local lowbit = require "lowbit"
local support = require "support"
local proc = require "support.proc"
local sh, host = support.sh, support.host

local APP = support.root .. "/spec/apps/workers_app.lua"
local load_bin

local function load_client()
  if not load_bin then load_bin = require("wspeers").go_peer("workers_load") end
  return load_bin
end

local read, sleep, alive, children = proc.read, proc.sleep, proc.alive, proc.children

-- Runs fn(m) with a master `lowbit -w n -l 127.0.0.1:0 [extra] script
-- 127.0.0.1:0` started and its "worker(s) on" line printed: m is the
-- support.proc process, with m.addr and m.port added. Unless opts.no_wait,
-- the workers answer before fn runs (they have adopted their sockets).
-- The master and its workers are stopped by pid afterwards whatever
-- happens (a failure carries the master's stderr). Returns what fn does.
local function with_master(n, opts, fn)
  local cmd = ("%s -w %s -l %s %s %s 127.0.0.1:0"):format(host, n, opts.listen or "127.0.0.1:0",
    opts.extra or "", opts.script or APP)
  return proc.with(cmd, {
    ready = function(m) return m.stderr():match("worker%(s%) on (127%.0%.0%.1:%d+)") end,
  }, function(m)
    m.addr, m.port = m.ready, tonumber(m.ready:match(":(%d+)$"))
    if not opts.no_wait then
      for _ = 1, 100 do
        if proc.answers("http://" .. m.addr .. "/") then break end
        sleep(0.05)
      end
    end
    return fn(m)
  end)
end

-- Runs the load; returns { ok, reset, empty, other, by_pid = {pid = n},
-- new_pid_ms, samples }.
local function run_load(m, opts)
  opts = opts or {}
  local cmd = ("%s -addr %s -n %d -c 16"):format(load_client(), m.addr, opts.n or 3000)
  if opts.signal then cmd = cmd .. (" -at %d -pid %d -sig %d"):format(opts.at or 500, opts.pid, opts.signal) end
  if opts.stopkill then cmd = cmd .. " -stopkill" end
  local out = sh(cmd)
  local r = { by_pid = {}, raw = out }
  for _, k in ipairs({ "ok", "reset", "empty", "other", "held", "unread", "idle", "queued" }) do r[k] = tonumber(out:match('"' .. k .. '":(%d+)')) end
  r.new_pid_ms = tonumber(out:match('"new_pid_ms":(%-?[%d.]+)'))
  for p, c in (out:match('"by_pid":(%b{})') or ""):gmatch('"(%d+)":(%d+)') do r.by_pid[tonumber(p)] = tonumber(c) end
  return r
end

local function assert_no_errors(r)
  assert.equal(0, r.reset, r.raw)
  assert.equal(0, r.empty, r.raw)
  assert.equal(0, r.other, r.raw)
end

-- The listening sockets on port: { { ino = "123", pids = { [pid] = true } } }.
local function listeners(port)
  local out = sh(("ss -Hltnpe 'sport = :%d'"):format(port))
  local t = {}
  for line in out:gmatch("[^\n]+") do
    local s = { ino = line:match("ino:(%d+)"), pids = {} }
    for p in line:gmatch("pid=(%d+)") do s.pids[tonumber(p)] = true end
    t[#t + 1] = s
  end
  return t
end

describe("lowbit -w N (scale.md list B)", function()
  it("B1: serves through two SO_REUSEPORT sockets held by a master that never accepts; each worker gets >= 35% of 1,000 connections", function()
    with_master(2, {}, function(m)
      assert.truthy(m.addr, m.stderr())
      local kids = children(m.pid)
      assert.equal(2, #kids)
      local ls = listeners(m.port)
      assert.equal(2, #ls)
      for _, s in ipairs(ls) do assert.is_true(s.pids[m.pid]) end
      local r = run_load(m, { n = 1000 })
      assert_no_errors(r)
      for _, k in ipairs(kids) do
        assert.is_true((r.by_pid[k] or 0) >= 350, r.raw)
      end
      -- The master never accepted: it holds no connected socket.
      local est = sh(("ss -Htanp state established '( sport = :%d )'"):format(m.port))
      assert.falsy(est:find("pid=" .. m.pid .. ",", 1, true), est)
      -- Index and count reach the script (lowbit.host.worker).
      local seen = {}
      for _ = 1, 40 do seen[sh("curl -s http://" .. m.addr .. "/"):match("worker=(%S+)")] = true end
      assert.same({ ["1/2"] = true, ["2/2"] = true }, seen)
    end)
  end)

  -- A killed process takes the connections it had accepted with it: no
  -- design can answer those. So the worker is stopped first (SIGSTOP), the
  -- connections it holds and those queued on the master's sockets are
  -- counted, then it gets kill -9: every queued connection is served (the
  -- queue lives in the master's socket), and no more requests fail than
  -- the killed worker held. What it holds is little: a worker accepts one
  -- connection per loop pass (the listen callback never accepts at once,
  -- so libuv stops watching the socket until the accept task has run;
  -- strace: one accept4 per epoll_wait under this load), and with
  -- TCP_DEFER_ACCEPT (the -d default) only connections whose request
  -- bytes have arrived are accepted. Still lost on kill -9: the requests
  -- the worker had begun to receive (0 to 3 in runs here, 0 in most; the
  -- client cannot tell a request that was being handled from one not yet
  -- read, so nothing can replay them), plus the one connection libuv
  -- accept4()s before its callback hands it to the task.
  it("B2: kill -9 of a worker under 16-way load: no connection lost beyond those it held (each with request bytes), a new pid within 1 s", function()
    with_master(2, {}, function(m)
      local victim = children(m.pid)[1]
      local r = run_load(m, { signal = 9, pid = victim, at = 500, stopkill = true })
      assert.equal(0, r.other, r.raw)
      assert.is_true(r.queued >= 1, r.raw) -- connections were waiting in the victim's queue...
      assert.is_true(r.reset + r.empty <= r.held, r.raw) -- ...and only the held ones failed...
      assert.equal(0, r.idle, r.raw) -- ...each of which had received request bytes
      assert.equal(3000, r.ok + r.reset + r.empty)
      assert.is_true(r.new_pid_ms >= 0 and r.new_pid_ms < 1000, r.raw)
      assert.falsy(alive(victim))
      assert.equal(2, #children(m.pid))
      assert.matches("killed by signal 9; restarting it", m.stderr())
    end)
  end)

  it("B2: connections whose client has sent nothing yet wait in the master's socket (TCP_DEFER_ACCEPT) and survive a kill -9 of the worker; with -d 0 they die with it", function()
    local net = require "lowbit.net"
    local function scenario(defer)
      return with_master(1, { extra = "-d " .. defer }, function(m)
        local victim = children(m.pid)[1]
        return support.run(function()
          local cs = {}
          for i = 1, 4 do cs[i] = assert(net.dial(nil, m.addr)) end
          lowbit.sleep(0.3) -- (a worker accepts a connection within a loop pass)
          sh("kill -9 " .. victim)
          local out = { victim = victim, answered = 0, failed = 0, pids = {} }
          for i = 1, 4 do
            local c = cs[i]
            c:set_deadline(require("lowbit").now() + 10)
            local w = c:write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            local resp = w and support.read_all(c) or ""
            c:close()
            local pid = resp:match("pid=(%d+)")
            if pid then
              out.answered = out.answered + 1
              out.pids[tonumber(pid)] = true
            else
              out.failed = out.failed + 1
            end
          end
          return out
        end)
      end)
    end
    local r = scenario(5)
    assert.equal(4, r.answered)
    assert.is_nil(r.pids[r.victim]) -- the new worker answered them
    r = scenario(0)
    assert.equal(4, r.failed) -- accepted by the worker, gone with it
  end)

  it("B3: SIGTERM of a worker under load: 0 errors, and it exits 0 once its requests are done", function()
    with_master(2, {}, function(m)
      local victim = children(m.pid)[1]
      local r = run_load(m, { signal = 15, pid = victim, at = 500 })
      assert_no_errors(r)
      assert.equal(3000, r.ok)
      assert.matches("%(pid " .. victim .. "%) exited with status 0; restarting it", m.stderr())
      assert.equal(2, #children(m.pid))
    end)
  end)

  it("B4: SIGHUP under load: every worker pid changes, with 0 errors", function()
    with_master(2, {}, function(m)
      local before = children(m.pid)
      local r = run_load(m, { signal = 1, pid = m.pid, at = 500 })
      assert_no_errors(r)
      assert.equal(3000, r.ok)
      for _ = 1, 100 do
        if m.stderr():find("restart done", 1, true) then break end
        sleep(0.05)
      end
      assert.matches("restart done: 2 new worker", m.stderr())
      for _ = 1, 100 do if #children(m.pid) == 2 then break end; sleep(0.05) end
      local after = children(m.pid)
      assert.equal(2, #after)
      for _, p in ipairs(before) do
        assert.falsy(after[1] == p or after[2] == p)
      end
      -- The new workers serve.
      assert_no_errors(run_load(m, { n = 200 }))
    end)
  end)

  it("B5: SIGTERM of the master with a 0.5 s request in flight: it completes, the master exits 0, no child or socket remains; a second SIGTERM exits at once", function()
    local out = os.tmpname()
    with_master(2, {}, function(m)
      local kids = children(m.pid)
      sh(("(curl -s -i http://%s/slow > %s 2>&1 &)"):format(m.addr, out))
      sleep(0.2)
      sh("kill -TERM " .. m.pid)
      assert.equal(0, m.wait(10))
      local body = read(out)
      assert.matches("^HTTP/1.1 200", body)
      assert.matches("pid=%d+", body)
      for _, k in ipairs(kids) do assert.falsy(alive(k)) end
      assert.same({}, listeners(m.port))
    end)
    os.remove(out)
    -- The second signal: the master kills the draining workers and exits.
    with_master(2, {}, function(m)
      local kids = children(m.pid)
      sh(("(curl -s http://%s/slow > /dev/null 2>&1 &)"):format(m.addr))
      sleep(0.2)
      sh("kill -TERM " .. m.pid .. "; sleep 0.05; kill -TERM " .. m.pid)
      assert.equal(143, m.wait(2))
      proc.wait_gone(kids, 2)
      for _, k in ipairs(kids) do assert.falsy(alive(k)) end
      assert.same({}, listeners(m.port))
    end)
  end)

  it("B5 (orphans): the workers of a master killed with kill -9 stop too (PR_SET_PDEATHSIG)", function()
    with_master(2, {}, function(m)
      local kids = children(m.pid)
      assert.equal(2, #kids)
      sh("kill -KILL " .. m.pid)
      proc.wait_gone(kids, 5)
      for _, k in ipairs(kids) do assert.falsy(alive(k)) end
      assert.same({}, listeners(m.port))
    end)
  end)

  it("B6: a crash-looping worker is restarted with growing backoff; after K crashes in T the master exits non-zero with the last error", function()
    local script = support.tmpfile([[
local lowbit = require "lowbit"
lowbit.sleep(0.01)
error("boom at start")
]], ".lua")
    with_master(1, { script = script, no_wait = true }, function(m)
      local rc = m.wait(20)
      local log = m.stderr()
      assert.equal(1, rc, log)
      local delays = {}
      for d in log:gmatch("restarting it in ([%d.]+) s") do delays[#delays + 1] = tonumber(d) end
      assert.same({ 0.1, 0.2, 0.4, 0.8 }, delays)
      assert.matches("boom at start", log)
      assert.matches("exited with status 1: 5 unexpected exits within 10 s, giving up", log)
      assert.same({}, children(m.pid))
      assert.same({}, listeners(m.port))
    end)
    os.remove(script)
  end)

  it("B6 (bad input): a wrong -w, a missing -l, a port in use, a missing script: a message, a non-zero exit, nothing left running", function()
    local out, rc = sh(host .. " -w 0 -l 127.0.0.1:0 " .. APP .. " 2>&1")
    assert.equal(2, rc)
    assert.matches("%-w wants a number of workers from 1 to 256, got \"0\"", out)
    out, rc = sh(host .. " -w two -l 127.0.0.1:0 " .. APP .. " 2>&1")
    assert.equal(2, rc)
    assert.matches("got \"two\"", out)
    out, rc = sh(host .. " -w 2 " .. APP .. " 2>&1")
    assert.equal(2, rc)
    assert.matches("%-w needs %-l host:port", out)
    out, rc = sh(host .. " -w 2 -l 127.0.0.1:0 -d soon " .. APP .. " 2>&1")
    assert.equal(2, rc)
    assert.matches("%-d wants seconds %(0 to 3600%), got \"soon\"", out)
    out, rc = sh(host .. " -w 2 -l 127.0.0.1:0 /nonexistent/app.lua 2>&1")
    assert.equal(1, rc)
    assert.matches("cannot open /nonexistent/app.lua", out)
    -- A port held by a plain listener, then by another master (whose
    -- SO_REUSEPORT sockets would otherwise let a second one join).
    with_master(1, {}, function(m)
      support.run(function()
        local ln = assert(require("lowbit.net").listen("127.0.0.1:0"))
        out, rc = sh(("%s -w 2 -l %s %s 2>&1"):format(host, ln:addr(), APP))
        assert.equal(1, rc)
        assert.matches("listen tcp " .. ln:addr() .. ": .*address already in use", out)
        ln:close()
      end)
      out, rc = sh(("%s -w 2 -l %s %s 2>&1"):format(host, m.addr, APP))
      assert.equal(1, rc)
      assert.matches("address already in use", out)
      assert.equal(1, #listeners(m.port)) -- only the first master's
    end)
  end)

  it("a worker that never listens on the -l address is reported (its connections would wait)", function()
    local script = support.tmpfile([[require("lowbit").sleep(30)]], ".lua")
    with_master(1, { script = script, no_wait = true }, function(m)
      local log
      for _ = 1, 160 do
        log = m.stderr()
        if log:find("has not listened", 1, true) then break end
        sleep(0.05)
      end
      assert.matches("worker 1 %(pid %d+%) has not listened on " .. m.addr:gsub("%.", "%%.") .. " after 5 s", log)
    end)
    os.remove(script)
  end)

  it("B7: each worker holds only its own slot's socket (/proc/<pid>/fd)", function()
    with_master(2, {}, function(m)
      local kids = children(m.pid)
      local inos = {}
      for _, s in ipairs(listeners(m.port)) do inos[s.ino] = true end
      local held = {}
      for _, k in ipairs(kids) do
        local links = sh(("for f in /proc/%d/fd/*; do readlink $f; done"):format(k))
        local mine = {}
        for ino in links:gmatch("socket:%[(%d+)%]") do
          if inos[ino] then mine[#mine + 1] = ino end
        end
        assert.equal(1, #mine, links)
        assert.falsy(held[mine[1]])
        held[mine[1]] = true
      end
    end)
  end)

  it("B8: a connection accepted before shutdown whose request comes 50 ms later gets a full response with Connection: close", function()
    local net = require "lowbit.net"
    support.run(function()
      local srv, ln = support.http_server({
        handler = function(w) w:write("full body") end,
        read_header_timeout = 2,
      })
      local c = assert(net.dial(nil, ln:addr()))
      for _ = 1, 100 do
        if srv.nconns == 1 then break end
        lowbit.sleep(0.005)
      end
      assert.equal(1, srv.nconns)
      local done = lowbit.chan(1)
      lowbit.go(function() done:send({ srv:shutdown() }) end)
      lowbit.sleep(0.05)
      assert(c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      local resp = support.read_all(c)
      c:close()
      assert.matches("^HTTP/1.1 200 OK\r\n", resp)
      assert.matches("\r\nConnection: close\r\n", resp)
      assert.matches("\r\n\r\nfull body$", resp)
      assert.same({ true }, done:recv())
      srv:close()
    end)
  end)

  it("B8: a connection accepted before shutdown that never sends is closed after read_header_timeout", function()
    local net = require "lowbit.net"
    support.run(function()
      local srv, ln = support.http_server({ handler = function(w) w:write("x") end, read_header_timeout = 0.2 })
      local c = assert(net.dial(nil, ln:addr()))
      for _ = 1, 100 do
        if srv.nconns == 1 then break end
        lowbit.sleep(0.005)
      end
      assert.same({ true }, { srv:shutdown() })
      assert.equal("", support.read_all(c))
      c:close()
    end)
  end)

  it("B9: all of the above ran with net.ipv4.tcp_migrate_req = 0", function()
    local v = read("/proc/sys/net/ipv4/tcp_migrate_req")
    assert.is_true(v == "" or v:match("^0") ~= nil, "tcp_migrate_req is " .. v)
  end)
end)
