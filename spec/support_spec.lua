-- The specs' own helpers (spec/support.lua, spec/support/proc.lua): a child
-- started by support.proc is stopped by pid with its children whatever the
-- body does, a failure carries its stderr; the small helpers do what the
-- specs rely on.
local lowbit = require "lowbit"
local support = require "support"
local proc = require "support.proc"

local APP = support.root .. "/spec/apps/workers_app.lua"

describe("support.proc", function()
  it("starts a child, waits until it is ready, and stops it and its children by pid even when the body fails", function()
    local pid, kids, dir
    local ok, err = pcall(proc.with, { support.host, "-w", "2", "-l", "127.0.0.1:0", APP, "127.0.0.1:0" }, {
      ready = function(p) return p.stderr():match("worker%(s%) on (127%.0%.0%.1:%d+)") end,
    }, function(p)
      pid, dir = p.pid, p.dir
      assert.matches("^127%.0%.0%.1:%d+$", p.ready)
      for _ = 1, 100 do
        kids = proc.children(pid)
        if #kids == 2 then break end
        proc.sleep(0.05)
      end
      assert.equal(2, #kids)
      assert.is_true(proc.alive(pid))
      assert.is_nil(p.status())
      error("the body failed", 0)
    end)
    assert.is_false(ok)
    assert.matches("^the body failed\n%-%- stderr of .*lowbit.* %-%-\n", err)
    assert.matches("worker%(s%) on 127%.0%.0%.1:%d+", err) -- the master's stderr
    assert.is_false(proc.alive(pid))
    for _, k in ipairs(kids) do assert.is_false(proc.alive(k)) end
    assert.is_nil(io.open(dir .. "/err")) -- its folder is gone
  end)

  it("stops the children that a stopped child leaves behind", function()
    local kids
    proc.with({ "sh", "-c", "sleep 30 & sleep 30 & wait" }, {}, function(p)
      for _ = 1, 100 do
        kids = proc.children(p.pid)
        if #kids == 2 then break end
        proc.sleep(0.02)
      end
      assert.equal(2, #kids)
    end)
    assert.is_true(proc.wait_gone(kids, 5))
  end)

  it("returns what the body returns, and gives the exit status of a child that was stopped", function()
    local a, b = proc.with({ "sleep", "30" }, {}, function(p)
      assert.equal(143, p.stop("TERM", 5)) -- 128 + SIGTERM, from the shell that waits for it
      assert.equal(143, p.status())
      assert.is_false(proc.alive(p.pid))
      return "one", 2
    end)
    assert.equal("one", a)
    assert.equal(2, b)
  end)

  it("raises with the child's stderr when it exits before it is ready, or is not ready in time", function()
    local ok, err = pcall(proc.start, { support.host, "-e", "io.stderr:write('cannot go on\\n'); os.exit(3)" },
      { ready = function() return nil end })
    assert.is_false(ok)
    assert.matches("did not start %(it exited with status 3%); stderr:\ncannot go on", err)
    local pid
    ok, err = pcall(proc.start, { "sh", "-c", "echo still starting >&2; exec sleep 30" },
      { ready = function(p) pid = p.pid; return nil end, timeout = 0.5 })
    assert.is_false(ok)
    assert.matches("did not start %(not ready after 0.5 s%); stderr:\nstill starting", err)
    assert.is_false(proc.alive(pid)) -- stopped
  end)

  it("runs in a folder, with variables added to and taken out of the environment", function()
    local dir = support.tmpdir()
    proc.with({ "sh", "-c", 'pwd; echo "a=$A b=${HOME:-unset}"' }, { cwd = dir, env = { A = "it's 1" }, unset = { "HOME" } },
      function(p)
        assert.equal(0, p.wait(5))
        assert.equal(dir .. "\na=it's 1 b=unset\n", p.stdout())
      end)
    os.execute("rm -rf " .. support.quote(dir))
  end)

  it("waits until pids are gone", function()
    proc.with({ "sleep", "30" }, {}, function(p)
      assert.is_false(proc.wait_gone(p.pid, 0.2))
      proc.kill(p.pid, "KILL")
      assert.is_true(proc.wait_gone(p.pid, 5))
    end)
  end)
end)

describe("support helpers", function()
  it("free_port gives a port nobody listens on, which a listener can take", function()
    local port = support.free_port()
    assert.is_true(port > 0 and port < 65536)
    support.run(function()
      local ln = assert(require("lowbit.net").listen("127.0.0.1:" .. port))
      assert.equal(port, ln:port())
      ln:close()
    end)
  end)

  it("tmpdir makes a new empty folder; read_file reads a file or says nil", function()
    local a, b = support.tmpdir(), support.tmpdir()
    assert.are_not.equal(a, b)
    assert.equal("", (support.sh("ls -A " .. support.quote(a))))
    local f = assert(io.open(a .. "/x", "wb"))
    f:write("bytes\0and more")
    f:close()
    assert.equal("bytes\0and more", support.read_file(a .. "/x"))
    assert.is_nil(support.read_file(a .. "/none"))
    os.execute("rm -rf " .. support.quote(a) .. " " .. support.quote(b))
  end)

  it("quote makes one shell word of anything", function()
    for _, s in ipairs({ "plain", "two words", "it's", "'';$(echo no)`x`\"\\", "" }) do
      assert.equal(s, (support.sh("printf %s " .. support.quote(s))))
    end
  end)

  it("eventually polls a condition for a bounded time", function()
    support.run(function()
      local n = 0
      assert.is_true(support.eventually(function() n = n + 1; return n == 3 end))
      assert.equal(3, n)
      local t0 = lowbit.now()
      assert.is_false(support.eventually(function() return false end, 0.2))
      assert.is_true(lowbit.now() - t0 < 5)
    end)
  end)

  it("jit_aborts reports NYI aborts in the named code only, counts its traces, and raises fn's error", function()
    if not (jit and jit.status()) then return end
    local function hot()
      local x = 0
      for i = 1, 1000 do local f = function() return i end; x = x + f() end -- a closure per pass: NYI (FNEW)
      for i = 1, 1000 do x = x + i end
      return x
    end
    local bad, compiled = support.jit_aborts("support_spec.lua", hot)
    assert.is_true(#bad >= 1)
    assert.matches("^support_spec%.lua:%d+: NYI", bad[1])
    assert.is_true(compiled >= 1)
    assert.same({}, (support.jit_aborts("elsewhere.lua", hot)))
    assert.same({}, (support.jit_aborts("support_spec.lua", hot, { except = { "NYI" } })))
    local ok, err = pcall(support.jit_aborts, "x", function() error("inside", 0) end)
    assert.is_false(ok)
    assert.equal("inside", err)
  end)
end)
