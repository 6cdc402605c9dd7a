-- The machine-readable figure lines of `make bench` (format: bench/README.md).
--   local report = dofile("bench/report.lua")
--   local R = report.suite("tasks")
--   R:line{ case = "chan ping-pong", metric = "ns_per_op", value = 387, unit = "ns", better = "lower" }
-- impl defaults to "lowbit"; an anchor measured in the same run gets a line
-- of its own with impl = its name ("go", "openresty", "bullmq", ...).
-- A value that is not a finite number is not written (the human line says
-- what went wrong): the report then has no figure for it.
local M = {}

local function str(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function num(v)
  if v == math.floor(v) and math.abs(v) < 1e15 then return ("%d"):format(v) end
  return ("%.6g"):format(v)
end

local KEYS = { "suite", "case", "metric", "impl", "value", "unit", "better" }

-- Formats one line (without the newline); nil when value is no finite number.
function M.format(t)
  local v = tonumber(t.value)
  if not v or v ~= v or v == math.huge or v == -math.huge then return nil end
  assert(t.better == "lower" or t.better == "higher", "bench line: better must be lower or higher")
  local parts = {}
  for _, k in ipairs(KEYS) do
    local x = t[k]
    if k == "value" then parts[#parts + 1] = '"value":' .. num(v)
    elseif k == "impl" then parts[#parts + 1] = '"impl":' .. str(x or "lowbit")
    elseif k == "case" and x == nil then -- optional
    else parts[#parts + 1] = str(k) .. ":" .. str(assert(x, "bench line: missing " .. k)) end
  end
  return "@bench {" .. table.concat(parts, ",") .. "}"
end

-- Writes one line to stdout.
function M.line(t)
  local s = M.format(t)
  if s then io.stdout:write(s, "\n"); io.stdout:flush() end
end

-- A writer with the suite filled in: R:line{ case = ..., metric = ..., ... }.
function M.suite(name)
  return { line = function(_, t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    c.suite = name
    M.line(c)
  end }
end

return M
