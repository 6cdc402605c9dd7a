-- Shared helpers for the specs.
local M = {}

M.root = os.getenv("LOWBIT_ROOT") or "."
M.host = M.root .. "/build/bin/lowbit"

--- Runs fn as the main task of a fresh loop (the scheduler is re-entrant
--- between runs) and returns its results.
function M.run(fn, ...)
  local lowbit = require "lowbit"
  return lowbit.run(fn, ...)
end

--- Runs a shell command, returns its stdout, exit code.
function M.sh(cmd)
  local p = io.popen(cmd .. "; echo \"__rc=$?\"")
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.*)__rc=(%d+)%s*$")
  return body, tonumber(rc)
end

--- Writes a temporary file and returns its path.
function M.tmpfile(content, suffix)
  local path = os.tmpname() .. (suffix or "")
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
  return path
end

return M
