-- lowbit.backstage.schedule: the schedules of lowbit.backstage (which
-- re-exports every, daily, cron, must_cron and the error values).
--
--   local schedule = require "lowbit.backstage.schedule"
--   local s = schedule.every(900)                      -- every 15 minutes
--   local d = assert(schedule.daily(3, 0))             -- 03:00 UTC
--   local c = assert(schedule.cron("*/5 9-17 * * mon-fri", { tz = "Europe/Paris" }))
--   local n = schedule.must_cron("@hourly")            -- raises on a bad expression
--   c:next(os.time())  --> the next fire, Unix seconds (nil: never)
--
-- A schedule is any table with next(self, t) -> Unix seconds or nil
-- (conformance/backstage.md S9); these are the built-in ones:
--   every(s)     next(t) = t + s (s > 0 seconds, fractions kept). The runner
--                passes the actual fire time, so intervals are measured from
--                when the task fires.
--   cron(expr)   the smallest whole minute strictly after t (t truncated to
--                the minute first) matching the 5-field expression; nil
--                when nothing matches within 8 years. Grammar, day rule and
--                descriptors: conformance/backstage.md 4.1; the parser and
--                the search are the C core lb_cron.
--   daily(h, m)  cron(m .. " " .. h .. " * * *").
-- cron and daily take opts.tz, a zone name of the system's tzdata
-- ("America/New_York", read once per process from $TZDIR or
-- /usr/share/zoneinfo; "UTC", the default, needs no file). With a zone, a
-- fixed time (neither minute nor hour field begins with `*`) skipped by a
-- DST jump fires once at the jump, a repeated one fires once (the first);
-- other entries follow the wall clock (fire in both repeated hours).
--
-- Bad values (a malformed expression, an unknown zone, every(0),
-- daily(24, 0)) return nil, err where errors.is(err, INVALID_CRON |
-- UNKNOWN_ZONE | INVALID_SCHEDULE); must_cron raises those as errors.
-- Arguments of the wrong type raise.
local core = require "lowbit.core"
local errors = require "lowbit.errors"

local ffi = core.ffi
local C = core.C

local M = {}

local type, error, tostring, setmetatable, tonumber = type, error, tostring, setmetatable, tonumber
local floor, huge = math.floor, math.huge
local format, find, match = string.format, string.find, string.match
local io_open, getenv = io.open, os.getenv
local ffi_new, ffi_gc = ffi.new, ffi.gc

M.INVALID_CRON = errors.new("backstage: invalid cron expression")
M.UNKNOWN_ZONE = errors.new("backstage: unknown time zone")
M.INVALID_SCHEDULE = errors.new("backstage: invalid schedule")

local out64 = ffi_new("int64_t[1]")
local errcode = ffi_new("int[1]")

local FIELD_NAMES = { "minute", "hour", "day-of-month", "month", "day-of-week" }
local REASONS = {
  [C.LB_ECRONFIELDS] = "expected 5 fields (minute hour day-of-month month day-of-week) or one of "
    .. "@yearly @annually @monthly @weekly @daily @midnight @hourly",
  [C.LB_ECRONSYNTAX] = "invalid syntax",
  [C.LB_ECRONRANGE] = "value out of range",
  [C.LB_ECRONNEVER] = "never fires (no month of the expression has that day)",
}

-- Raises at `level` above the function that calls argerror (default: that
-- function's caller).
local function argerror(fn, name, want, v, level)
  error(format("bad argument '%s' to %s: %s expected, got %s", name, fn, want, type(v)), (level or 2) + 1)
end

-- ---------------------------------------------------------------- zones

local zones = {} -- name -> lb_tz* (kept for the life of the process)

local function zone_dir()
  local d = getenv("TZDIR")
  if d == nil or d == "" then d = "/usr/share/zoneinfo" end
  return d
end

-- The lb_tz* of a zone name, false for UTC, or nil, err.
local function load_zone(name)
  if name == nil or name == "UTC" then return false end
  local z = zones[name]
  if z then return z end
  -- Names are paths below the zone directory: letters, digits, _ + - and
  -- single slashes; no "..", nothing absolute.
  if not find(name, "^[%w_%+%-]+[%w_%+%-/]*$") or find(name, "//", 1, true) or find(name, "%.%.") then
    return nil, errors.with_kind(M.UNKNOWN_ZONE, nil, "%q: not a zone name", name)
  end
  local path = zone_dir() .. "/" .. name
  local f = io_open(path, "rb")
  local data = f and f:read("*a")
  if f then f:close() end
  if type(data) ~= "string" then
    return nil, errors.with_kind(M.UNKNOWN_ZONE, nil, "%q: no such zone in %s", name, zone_dir())
  end
  local tz = C.lb_tz_new(data, #data, errcode)
  if tz == nil then
    return nil, errors.with_kind(M.UNKNOWN_ZONE, nil, "%q: %s", name, core.strerror(errcode[0]))
  end
  z = ffi_gc(tz, C.lb_tz_free)
  zones[name] = z
  return z
end

-- ---------------------------------------------------------------- every

local Every = {}
Every.__index = Every
Every.__tostring = function(s) return format("every(%s)", tostring(s.interval)) end
M.Every = Every

local function check_t(fn, t)
  if type(t) ~= "number" then argerror(fn, "t", "number", t, 3) end
  if t ~= t or t == huge or t == -huge then error(format("bad argument 't' to %s: finite number expected", fn), 3) end
end

--- The next fire after t: t + interval.
function Every:next(t)
  check_t("schedule:next", t)
  return t + self.interval
end

--- A schedule firing every s seconds (s > 0), or nil, INVALID_SCHEDULE.
function M.every(s)
  if type(s) ~= "number" then argerror("backstage.every", "s", "number", s) end
  if not (s > 0) or s == huge then
    return nil, errors.with_kind(M.INVALID_SCHEDULE, nil, "every(%s): the interval must be a positive number of seconds", tostring(s))
  end
  return setmetatable({ kind = "every", interval = s }, Every)
end

-- ---------------------------------------------------------------- cron

local Cron = {}
Cron.__index = Cron
Cron.__tostring = function(s)
  if s.tz then return format("cron(%q, tz=%s)", s.expr, s.tz) end
  return format("cron(%q)", s.expr)
end
M.Cron = Cron

local T_MIN, T_MAX = -62135596800, 253370764800 -- years 1..9998, as lb_cron_next

--- The next fire strictly after t (Unix seconds; fractions truncate to the
--- minute), or nil when nothing fires within 8 years.
function Cron:next(t)
  check_t("schedule:next", t)
  t = floor(t)
  if t < T_MIN or t >= T_MAX then error("bad argument 't' to schedule:next: outside years 1..9998", 2) end
  local rc = C.lb_cron_next(self.c, self.zone or nil, t, out64)
  if rc ~= 0 then return nil end
  return tonumber(out64[0])
end

-- The item (up to the next comma or blank) at byte offset pos of expr.
local function item_at(expr, pos)
  return match(expr, "^[^,%s]*", pos + 1) or ""
end

local function parse(fn, expr, opts)
  -- called by cron, must_cron and daily (never as a tail call): errors
  -- are raised at their caller
  if type(expr) ~= "string" then argerror(fn, "expr", "string", expr, 3) end
  if opts ~= nil and type(opts) ~= "table" then argerror(fn, "opts", "table or nil", opts, 3) end
  local tz = opts and opts.tz
  if tz ~= nil and type(tz) ~= "string" then argerror(fn, "opts.tz", "string or nil", tz, 3) end
  local c = ffi_new("lb_cron")
  local rc = C.lb_cron_parse(c, expr, #expr)
  if rc ~= 0 then
    local reason = REASONS[rc] or core.strerror(rc)
    local field = c.err_field
    if field >= 1 and field <= 5 then
      return nil, errors.with_kind(M.INVALID_CRON, nil, "%q: %s field %q: %s",
        expr, FIELD_NAMES[field], item_at(expr, c.err_pos), reason)
    end
    return nil, errors.with_kind(M.INVALID_CRON, nil, "%q: %s", expr, reason)
  end
  local zone, err = load_zone(tz)
  if zone == nil then return nil, err end
  return setmetatable({ kind = "cron", expr = expr, tz = tz, c = c, zone = zone or nil }, Cron)
end

--- A schedule for a 5-field cron expression or descriptor, in UTC or in
--- opts.tz; or nil, INVALID_CRON / UNKNOWN_ZONE.
function M.cron(expr, opts)
  local s, err = parse("backstage.cron", expr, opts)
  return s, err
end

--- Like cron, but raises the error (for expressions fixed in the code).
function M.must_cron(expr, opts)
  local s, err = parse("backstage.must_cron", expr, opts)
  if s == nil then error(tostring(err), 2) end
  return s
end

--- Every day at h:m (0 <= h <= 23, 0 <= m <= 59, integers), in UTC or in
--- opts.tz: the same schedule as cron(m .. " " .. h .. " * * *"). Returns
--- nil, INVALID_SCHEDULE for values out of range.
function M.daily(h, m, opts)
  if type(h) ~= "number" then argerror("backstage.daily", "h", "number", h) end
  if type(m) ~= "number" then argerror("backstage.daily", "m", "number", m) end
  if opts ~= nil and type(opts) ~= "table" then argerror("backstage.daily", "opts", "table or nil", opts) end
  if not (h >= 0 and h <= 23 and h == floor(h)) or not (m >= 0 and m <= 59 and m == floor(m)) then
    return nil, errors.with_kind(M.INVALID_SCHEDULE, nil,
      "daily(%s, %s): the hour must be an integer 0-23 and the minute 0-59", tostring(h), tostring(m))
  end
  local s, err = parse("backstage.daily", format("%d %d * * *", m, h), opts)
  if s == nil then return nil, err end
  s.daily = { h, m }
  return s
end

return M
