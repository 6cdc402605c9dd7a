-- Helpers for the websocket specs: subprocess peers (Go's gorilla, Node's
-- ws, Chromium) run on the luv loop, so a lowbit server in the same process
-- keeps serving while they talk to it.
local uv = require "luv"
local lowbit = require "lowbit"
local support = require "support"

local M = {}

M.root = support.root
M.tmp = "/tmp/lowbit-wspeers-" .. (os.getenv("USER") or "u")

local function sh(cmd)
  local out, rc = support.sh(cmd .. " 2>&1")
  assert(rc == 0, cmd .. " failed:\n" .. tostring(out))
  return out
end
M.sh = sh

--- Builds spec/peers/NAME.go into the temp dir (again only when the source
--- is newer) and returns the binary's path.
function M.go_peer(name)
  local src = M.root .. "/spec/peers/" .. name .. ".go"
  local bin = M.tmp .. "/" .. name
  sh(("mkdir -p %s && ( [ %s -nt %s ] || GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=/tmp/lowbit-gocache go build -o %s %s )")
    :format(M.tmp, bin, src, bin, src))
  return bin
end

--- Makes sure Node's ws@8 is installed under build/npm; returns NODE_PATH.
function M.node_path()
  local dir = M.root .. "/build/npm"
  local mods = dir .. "/node_modules"
  local f = io.open(mods .. "/ws/package.json")
  if f then f:close() else sh(("mkdir -p %s && npm install --silent --no-audit --no-fund --prefix %s ws@8"):format(dir, dir)) end
  return mods
end

--- Spawns argv (argv[1] is looked up on PATH) with stdout and stderr
--- collected. Must run in a task. Returns a process with wait(timeout) ->
--- exit code (nil on timeout), output; kill(); output().
function M.spawn(argv)
  local out = {}
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local ch = lowbit.chan(3)
  local args = {}
  for i = 2, #argv do args[i - 1] = argv[i] end
  local proc = { code = nil }
  local handle, pid = uv.spawn(argv[1], { args = args, stdio = { nil, stdout, stderr } }, function(code, sig)
    proc.code = code ~= 0 and code or (sig ~= 0 and 128 + sig or 0)
    ch:try_send("exit")
  end)
  assert(handle, "spawn " .. argv[1] .. ": " .. tostring(pid))
  proc.handle, proc.pid = handle, pid
  local open = 2
  local function reader(pipe)
    return function(err, data)
      if data then out[#out + 1] = data; if proc.on_output then proc.on_output(table.concat(out)) end
      else
        uv.read_stop(pipe)
        if not uv.is_closing(pipe) then uv.close(pipe) end
        open = open - 1
        if open == 0 then ch:try_send("eof") end
      end
    end
  end
  uv.read_start(stdout, reader(stdout))
  uv.read_start(stderr, reader(stderr))
  local finished = false
  function proc.wait(timeout)
    local deadline = lowbit.now() + (timeout or 60)
    while not finished do
      if proc.code ~= nil and open == 0 then finished = true; break end
      local left = deadline - lowbit.now()
      if left <= 0 then return nil, table.concat(out) end
      lowbit.select{ ch, lowbit.after(left) }
    end
    if not uv.is_closing(handle) then uv.close(handle) end
    return proc.code, table.concat(out)
  end
  function proc.output() return table.concat(out) end
  function proc.kill(sig)
    if proc.code == nil then pcall(uv.process_kill, handle, sig or "sigterm") end
    local code = proc.wait(5)
    if code == nil then pcall(uv.process_kill, handle, "sigkill"); proc.wait(5) end
  end
  --- Waits until the output contains pattern (plain), or timeout.
  function proc.wait_output(pat, timeout)
    local deadline = lowbit.now() + (timeout or 20)
    while not table.concat(out):find(pat, 1, true) do
      if proc.code ~= nil or lowbit.now() > deadline then return false end
      lowbit.sleep(0.02)
    end
    return true
  end
  return proc
end

--- Waits until addr accepts TCP connections (up to timeout seconds).
function M.wait_port(addr, timeout)
  local net = require "lowbit.net"
  local deadline = lowbit.now() + (timeout or 10)
  while lowbit.now() < deadline do
    local c = net.dial(nil, addr)
    if c then c:close(); return true end
    lowbit.sleep(0.05)
  end
  return false
end

return M
