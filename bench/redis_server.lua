-- A redis-server of a benchmark's own: on a free loopback port, with
-- --save '' --appendonly no, stopped by pid. Used as
--   local srv = dofile("bench/redis_server.lua")("name" [, { cpu = 0 }])
--   if not srv then return end       -- it printed "name: skipped (...)"
--   ... srv.addr, srv.port ...
--   srv.stop()
-- opts.cpu: pin the server to that CPU (taskset), when taskset is there
-- and the machine has more than one CPU; srv.pinned says whether it is.
local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return out
end

-- Waits up to 4 s for the log to say the server is ready; false when the
-- process died first or never got there.
local function ready(pid, log)
  for _ = 1, 200 do
    local f = io.open(log)
    local t = f and f:read("*a") or ""
    if f then f:close() end
    if t:find("Ready to accept", 1, true) then return true end
    if os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= 0 then return false end
    os.execute("sleep 0.02")
  end
  return false
end

return function(name, opts)
  local pin = ""
  if opts and opts.cpu and not sh("command -v taskset"):match("^%s*$")
     and (tonumber(sh("nproc 2>/dev/null")) or 1) > 1 then
    pin = "taskset -c " .. opts.cpu .. " "
  end
  if sh("command -v redis-server"):match("^%s*$") then
    print(name .. ": skipped (redis-server not installed: make deps)")
    return nil
  end
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000) -- apart from a run started in the same second
  for _ = 1, 8 do -- a random port may be taken: another try
    local port = math.random(20000, 32000)
    local log = dir .. "/redis.log"
    os.remove(log)
    local pid = tonumber(sh((pin .. "redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s " ..
      "--logfile %s >/dev/null 2>&1 & echo $!"):format(port, dir, log)))
    if ready(pid, log) then
      return {
        port = port, pid = pid, addr = "127.0.0.1:" .. port, pinned = pin ~= "",
        stop = function()
          os.execute("kill -9 " .. pid .. " 2>/dev/null")
          os.execute("rm -rf '" .. dir .. "'")
        end,
      }
    end
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
  end
  os.execute("rm -rf '" .. dir .. "'")
  print(name .. ": skipped (redis-server did not start)")
  return nil
end
