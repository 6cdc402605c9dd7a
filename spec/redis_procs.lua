-- Helpers for the specs of the Redis-backed topic bridge and lanes: child
-- lowbit processes (with their pid, for SIGSTOP/SIGCONT) and a redis-server
-- restarted on the same port.
local support = require "support"

local M = {}

--- Starts `build/bin/lowbit script args...` (script: Lua source, written to
--- a temporary file). Returns { pid, wait = fn(limit) -> code, stdout }:
--- wait kills the child (SIGKILL, by its handle) when it has not exited
--- within limit seconds.
function M.child(source, ...)
  return M.start(support.tmpfile(source, ".lua"), true, ...)
end

--- The same for a script file (removed at the end when temporary).
function M.start(path, temporary, ...)
  local uv = require "luv"
  local lowbit = require "lowbit"
  local args = { path, ... }
  local out = {}
  local stdout = uv.new_pipe(false)
  local done = lowbit.chan(1)
  local left, code = 2, nil
  local function one() left = left - 1; if left == 0 then done:try_send(true) end end
  local h, err
  h, err = uv.spawn(support.host, { args = args, stdio = { nil, stdout, 2 } },
    function(c) code = c; uv.close(h); one() end)
  assert(h, err)
  uv.read_start(stdout, function(_, d)
    if d then out[#out + 1] = d else uv.close(stdout); one() end
  end)
  local r = { pid = h:get_pid() }
  function r.wait(limit)
    local i = lowbit.select{ done, lowbit.after(limit or 20) }
    if i ~= 1 then
      uv.process_kill(h, "sigkill")
      done:recv()
    end
    if temporary then os.remove(path) end
    return code, table.concat(out)
  end
  return r
end

--- Kills redis server r (support.start_redis) and starts a new one on the
--- same port; r.stop then stops the new one.
function M.restart_redis(r)
  r.stop()
  local log = r.dir .. "/restart-" .. r.port .. ".log"
  local out = support.sh(("redis-server --port %d --save '' --appendonly no --bind 127.0.0.1 --dir %s " ..
    "--logfile %s >/dev/null 2>&1 & echo $!"):format(r.port, r.dir, log))
  local pid = tonumber(out:match("(%d+)"))
  for _ = 1, 250 do
    local text = support.read_file(log) or ""
    if text:find("Ready to accept connections", 1, true) then break end
    os.execute("sleep 0.02")
  end
  r.pid = pid
  function r.stop() require("support.proc").kill_wait(pid) end
  return r
end

--- The arguments of a MONITOR line (redis-cli's quoting: \\ \" \n \r
-- \t \a \b \xHH) and its source ("lua" for a script's commands).
function M.parse_monitor(line)
  local src, rest = line:match("^%d+%.%d+ %[%d+ ([^%]]*)%] (.*)$")
  if not src then return nil end
  local args, i, esc = {}, 1, { n = "\n", r = "\r", t = "\t", a = "\a", b = "\b" }
  while i <= #rest do
    if rest:sub(i, i) == '"' then
      local buf = {}
      i = i + 1
      while i <= #rest do
        local ch = rest:sub(i, i)
        if ch == "\\" then
          local e = rest:sub(i + 1, i + 1)
          if e == "x" then buf[#buf + 1] = string.char(tonumber(rest:sub(i + 2, i + 3), 16)); i = i + 4
          else buf[#buf + 1] = esc[e] or e; i = i + 2 end
        elseif ch == '"' then i = i + 1; break
        else buf[#buf + 1] = ch; i = i + 1 end
      end
      args[#args + 1] = table.concat(buf)
    else
      i = i + 1
    end
  end
  return src, args
end

return M
