-- Child processes of the specs (the `lowbit` host, an example, a peer),
-- started in the background through a shell and stopped by pid whatever
-- happens in between:
--
--   local proc = require "support.proc"
--   proc.with({ support.host, "examples/hello.lua", addr }, {
--     ready = function(p) return p.stderr():match("listening on (%S+)") end,
--   }, function(p)
--     -- p.ready is what ready returned; p.pid, p.stderr(), p.stop("INT")...
--   end)
--
-- The child's stdout and stderr go to files in a temporary folder of its
-- own, and the shell that started it writes its exit status there: a
-- spec reads them at any time, and the status is known even after the
-- child is gone. Everything here is synchronous (shell sleeps, no lowbit
-- task): callable outside lowbit.run, and inside it (it then holds the
-- loop while it waits).
local support = require "support"
local uv = require "luv"

local M = {}

M.quote = support.quote
local q = M.quote

--- The content of file path, or "" when it cannot be read.
function M.read(path) return support.read_file(path) or "" end
local read = M.read

--- Sleeps s seconds (a shell sleep: no task needed).
function M.sleep(s) os.execute("sleep " .. s) end

--- Whether process pid runs (a zombie, dead and not yet reaped, does not).
function M.alive(pid)
  local stat = read("/proc/" .. tonumber(pid) .. "/stat")
  return stat ~= "" and stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- The pids of the children of pid, sorted.
function M.children(pid)
  local t = {}
  for p in (support.sh("pgrep -P " .. tonumber(pid)) or ""):gmatch("%d+") do t[#t + 1] = tonumber(p) end
  table.sort(t)
  return t
end

--- Sends signal sig ("TERM", "KILL", ...; default "KILL") to pid; never raises.
function M.kill(pid, sig)
  pcall(uv.kill, tonumber(pid), "sig" .. (sig or "KILL"):lower())
end

--- Waits (at most secs seconds, 10 by default) until none of the pids
--- (a pid or a list) exists; true when they are all gone.
function M.wait_gone(pids, secs)
  if type(pids) ~= "table" then pids = { pids } end
  for _ = 1, (secs or 10) * 20 do
    local any = false
    for _, p in ipairs(pids) do if M.alive(p) then any = true; break end end
    if not any then return true end
    M.sleep(0.05)
  end
  return false
end

--- Kills pid with SIGKILL and waits (bounded) until it is gone.
function M.kill_wait(pid)
  M.kill(pid, "KILL")
  return M.wait_gone(pid, 2)
end

--- Whether an HTTP GET of url gets any answer (curl, 1 s at most).
function M.answers(url)
  return select(2, support.sh("curl -s -o /dev/null -m 1 " .. q(url))) == 0
end

-- The last n bytes of s.
local function tail(s, n)
  n = n or 4000
  return #s > n and ("..." .. s:sub(-n)) or s
end

--- Starts cmd in the background: an argv list (each word quoted here) or
--- one simple shell command as a string (its redirections are added
--- here). opts:
---   cwd     folder to run in (support.root by default)
---   env     { NAME = value } added to the environment
---   unset   { NAME, ... } taken out of it
---   ready   function(p) polled (every 20 ms) until it returns a value,
---           which becomes p.ready; start raises, with the child's stderr,
---           when the child exits first or `timeout` passes (then the child
---           is stopped). Without ready, start returns at once.
---   timeout seconds for ready (20 by default)
--- Returns p = { pid, dir, cmd, ready } and functions:
---   p.stdout(), p.stderr()  what the child wrote so far
---   p.status()              its exit status, nil while it runs
---   p.wait(secs)            its exit status once it exits (nil after secs, 10 by default)
---   p.signal(sig)           sends SIGsig ("TERM" by default)
---   p.stop(sig, secs)       p.signal(sig), then p.wait(secs)
---   p.cleanup()             stops what is left (SIGTERM, SIGKILL after 10 s,
---                           SIGKILL to the children it had), removes the folder;
---                           safe to call twice
function M.start(cmd, opts)
  opts = opts or {}
  if type(cmd) == "table" then
    local words = {}
    for i, w in ipairs(cmd) do words[i] = q(w) end
    cmd = table.concat(words, " ")
  end
  local env = {}
  for _, k in ipairs(opts.unset or {}) do env[#env + 1] = "-u " .. q(k) end
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. q(v) end
  if #env > 0 then cmd = "env " .. table.concat(env, " ") .. " " .. cmd end
  local dir = support.tmpdir()
  local p = { dir = dir, cmd = cmd }
  support.sh(("(cd %s && ( %s >%s/out 2>%s/err </dev/null & echo $! >%s/pid; wait $!; echo $? >%s/rc ) >/dev/null 2>&1 &)")
    :format(q(opts.cwd or support.root), cmd, dir, dir, dir, dir))
  function p.stdout() return read(dir .. "/out") end
  function p.stderr() return read(dir .. "/err") end
  function p.status() return tonumber(read(dir .. "/rc"):match("%d+")) end
  function p.wait(secs)
    for _ = 1, (secs or 10) * 20 do
      local rc = p.status()
      if rc then return rc end
      M.sleep(0.05)
    end
    return p.status()
  end
  function p.signal(sig) if p.pid and not p.status() then M.kill(p.pid, sig or "TERM") end end
  function p.stop(sig, secs)
    p.signal(sig)
    return p.wait(secs)
  end
  function p.cleanup()
    if p.cleaned then return end
    p.cleaned = true
    if p.pid and not p.status() then
      local kids = M.children(p.pid)
      if not p.stop("TERM", 10) then
        M.kill(p.pid, "KILL")
        p.wait(5)
      end
      for _, k in ipairs(kids) do M.kill(k, "KILL") end
    end
    os.execute("rm -rf " .. q(dir))
  end
  for _ = 1, 250 do
    p.pid = tonumber(read(dir .. "/pid"):match("%d+"))
    if p.pid then break end
    M.sleep(0.02)
  end
  if not p.pid then
    p.cleanup()
    error("cannot start " .. cmd, 2)
  end
  if opts.ready then
    local timeout = opts.timeout or 20
    local t0 = uv.hrtime()
    while true do
      p.ready = opts.ready(p)
      if p.ready then break end
      local rc = p.status()
      if rc or (uv.hrtime() - t0) / 1e9 > timeout then
        local why = rc and ("it exited with status " .. rc) or ("not ready after " .. timeout .. " s")
        local err = p.stderr()
        p.cleanup()
        error(("%s did not start (%s); stderr:\n%s"):format(cmd, why, tail(err)), 2)
      end
      M.sleep(0.02)
    end
  end
  return p
end

--- Runs fn(p) for a started process p (M.start) and always stops it
--- afterwards (p.cleanup), also when fn raises: the error is raised again
--- with the tail of the child's stderr. Returns what fn returns.
function M.using(p, fn)
  local res = { pcall(fn, p) }
  local err = not res[1] and p.stderr()
  p.cleanup()
  if not res[1] then
    local e = res[2]
    if type(e) == "string" then e = e .. "\n-- stderr of " .. p.cmd .. " --\n" .. tail(err) end
    error(e, 0)
  end
  return unpack(res, 2, table.maxn(res))
end

--- M.using(M.start(cmd, opts), fn).
function M.with(cmd, opts, fn)
  return M.using(M.start(cmd, opts), fn)
end

return M
