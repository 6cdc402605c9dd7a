-- lowbit.backstage.schedule: every / daily / cron / must_cron and next(t)
-- (conformance/backstage.md 4 and the must-have statements 19-22 and 25
-- that do not need the job runner).
local schedule = require "lowbit.backstage.schedule"
local errors = require "lowbit.errors"
local support = require "support"

-- "2024-03-10T03:00:00Z" -> Unix seconds
local function utc(s)
  local y, mo, d, h, mi, se = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  assert(y, "bad time " .. s)
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days from civil (proleptic Gregorian)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

-- The conformance vectors: $LB_CRON_VECTORS, else ../shared/conformance/
-- beside the repository.
local function vectors()
  local path = os.getenv("LB_CRON_VECTORS")
  if path == nil or path == "" then path = support.root .. "/../shared/conformance/cron_vectors.tsv" end
  local f = assert(io.open(path, "r"), "cannot open " .. path .. " (set LB_CRON_VECTORS)")
  local rows = {}
  for line in f:lines() do
    line = line:gsub("\r$", "")
    if line ~= "" and not line:find("^id\t") then
      local id, expr, tz, from, want, note = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$")
      assert(id, "malformed row: " .. line)
      rows[#rows + 1] = { id = id, expr = expr, tz = tz, from = from, want = want, note = note }
    end
  end
  f:close()
  return rows
end

describe("backstage.every", function()
  it("next(t) = t + s, measured from the time passed in (statement 19, 4.3)", function()
    local s = assert(schedule.every(900))
    assert.equal(1700000900, s:next(1700000000))
    assert.equal(1700000000.5 + 900, s:next(1700000000.5))
    -- a runner feeding fire times back: start+s, start+2s, ...; a late fire
    -- resumes from the fire time, no catch-up burst
    local t, fires = 1000, {}
    for _ = 1, 3 do t = s:next(t); fires[#fires + 1] = t end
    assert.same({ 1900, 2800, 3700 }, fires)
    assert.equal(3700 + 5000 + 900, s:next(3700 + 5000))
    assert.equal(1.5, assert(schedule.every(0.5)):next(1))
  end)

  it("every(0), negative, NaN or infinite intervals are errors (nil, INVALID_SCHEDULE)", function()
    for _, v in ipairs({ 0, -1, 0 / 0, math.huge, -math.huge }) do
      local s, err = schedule.every(v)
      assert.is_nil(s)
      assert.is_true(errors.is(err, schedule.INVALID_SCHEDULE), tostring(err))
    end
  end)
end)

describe("backstage.daily", function()
  it("daily(3, 0) fires at 03:00 UTC, strictly after t (4.3)", function()
    local d = assert(schedule.daily(3, 0))
    assert.equal(utc("2024-03-11T03:00:00Z"), d:next(utc("2024-03-10T03:00:00Z")))
    assert.equal(utc("2024-03-10T03:00:00Z"), d:next(utc("2024-03-10T02:59:59Z")))
  end)

  it("daily(h, m) is cron('m h * * *') in UTC (statement 20)", function()
    for _, hm in ipairs({ { 0, 0 }, { 3, 0 }, { 23, 59 }, { 12, 30 }, { 7, 5 } }) do
      local d = assert(schedule.daily(hm[1], hm[2]))
      local c = assert(schedule.cron(hm[2] .. " " .. hm[1] .. " * * *"))
      for t = utc("2024-02-27T00:00:00Z"), utc("2024-03-03T00:00:00Z"), 3607 do
        assert.equal(c:next(t), d:next(t))
      end
    end
  end)

  it("daily(24, 0), daily(3, 60), negative or fractional values are errors", function()
    for _, hm in ipairs({ { 24, 0 }, { 3, 60 }, { -1, 0 }, { 3, -1 }, { 3.5, 0 }, { 3, 0.5 }, { 0 / 0, 0 } }) do
      local s, err = schedule.daily(hm[1], hm[2])
      assert.is_nil(s)
      assert.is_true(errors.is(err, schedule.INVALID_SCHEDULE), tostring(err))
    end
  end)

  it("takes opts.tz like cron", function()
    local d = assert(schedule.daily(2, 30, { tz = "America/New_York" }))
    assert.equal(utc("2024-03-10T07:00:00Z"), d:next(utc("2024-03-10T05:00:00Z")))
  end)
end)

describe("backstage.cron", function()
  it("passes every row of cron_vectors.tsv; ERROR rows fail to parse (statements 21, 25)", function()
    local rows = vectors()
    assert.is_true(#rows >= 37, "rows: " .. #rows)
    local bad, zoned, errs = {}, 0, 0
    for _, r in ipairs(rows) do
      local opts = r.tz ~= "UTC" and { tz = r.tz } or nil
      if r.tz ~= "UTC" then zoned = zoned + 1 end
      local s, err = schedule.cron(r.expr, opts)
      if r.want == "ERROR" then
        errs = errs + 1
        if s ~= nil or not errors.is(err, schedule.INVALID_CRON) then
          bad[#bad + 1] = r.id .. ": parsed, or a wrong error: " .. tostring(err)
        end
        -- must_cron raises on the same inputs
        if pcall(schedule.must_cron, r.expr, opts) then bad[#bad + 1] = r.id .. ": must_cron did not raise" end
      elseif s == nil then
        bad[#bad + 1] = r.id .. ": " .. tostring(err)
      else
        local got = s:next(utc(r.from))
        if got ~= utc(r.want) then bad[#bad + 1] = ("%s: %q from %s: want %s, got %s"):format(r.id, r.expr, r.from, r.want, got and iso(got) or "nil") end
        assert.equal(getmetatable(s), getmetatable(schedule.must_cron(r.expr, opts)))
      end
    end
    assert.same({}, bad)
    assert.is_true(zoned >= 9 and errs >= 8)
  end)

  it("truncates a fractional t to the minute, then gives the next minute strictly after", function()
    local s = assert(schedule.cron("* * * * *"))
    assert.equal(utc("2024-01-01T10:08:00Z"), s:next(utc("2024-01-01T10:07:00Z") + 0.25))
    assert.equal(utc("2024-01-01T10:08:00Z"), s:next(utc("2024-01-01T10:07:59Z") + 0.999))
    assert.equal(utc("2024-01-01T10:08:00Z"), s:next(utc("2024-01-01T10:07:00Z")))
  end)

  it("searches 8 years (Feb 29 across 2100) and returns nil when nothing fires", function()
    local s = assert(schedule.cron("0 0 29 2 *"))
    assert.equal(utc("2104-02-29T00:00:00Z"), s:next(utc("2096-03-01T00:00:00Z")))
    -- Feb 29 on a Sunday (day of week starred: both must match): 2004 -> 2032
    local never = assert(schedule.cron("0 0 29 2 */7"))
    assert.is_nil(never:next(utc("2004-03-01T00:00:00Z")))
  end)

  it("knows descriptors, names, steps and the day rule", function()
    local function nxt(expr, from) return iso(assert(schedule.cron(expr)):next(utc(from))) end
    assert.equal("2024-01-07T00:00:00Z", nxt("@WEEKLY", "2024-01-01T00:00:00Z"))
    assert.equal("2024-01-01T01:00:00Z", nxt("@hourly", "2024-01-01T00:00:00Z"))
    assert.equal("2024-02-01T00:00:00Z", nxt("@monthly", "2024-01-01T00:00:00Z"))
    assert.equal("2025-01-01T00:00:00Z", nxt("@annually", "2024-01-01T00:00:00Z"))
    assert.equal("2024-01-02T00:00:00Z", nxt("@midnight", "2024-01-01T00:00:00Z"))
    assert.equal("2024-01-08T00:00:00Z", nxt("0 0 * * mon-FRI", "2024-01-06T00:00:00Z"))
    -- `*`-prefixed day of week: both fields must match (first 7 days AND Mondays... any weekday)
    assert.equal("2025-02-01T00:00:00Z", nxt("0 0 1-7 * */1", "2025-01-07T00:00:00Z"))
    -- both restricted: either matches
    assert.equal("2025-01-13T00:00:00Z", nxt("0 0 1-7 * 1", "2025-01-07T00:00:00Z"))
  end)

  it("returns nil and a clear INVALID_CRON error for bad expressions", function()
    local cases = {
      { "* * * *", "expected 5 fields" },
      { "0 * * * * *", "expected 5 fields" },
      { "@reboot", "expected 5 fields" },
      { "@every 5m", "expected 5 fields" },
      { "60 * * * *", 'minute field "60": value out of range' },
      { "* 24 * * *", 'hour field "24": value out of range' },
      { "0 0 L * *", 'day%-of%-month field "L": invalid syntax' },
      { "* * * 13 *", 'month field "13": value out of range' },
      { "0 0 * * SAT-SUN", 'day%-of%-week field "SAT%-SUN": value out of range' },
      { "1,,2 * * * *", 'minute field "": invalid syntax' },
      { "0 0 30 2 *", "never fires" },
      { "0 0 31 4,6 *", "never fires" },
    }
    for _, c in ipairs(cases) do
      local s, err = schedule.cron(c[1])
      assert.is_nil(s)
      assert.is_true(errors.is(err, schedule.INVALID_CRON), tostring(err))
      assert.truthy(tostring(err):find(c[2]), tostring(err))
      assert.truthy(tostring(err):find(c[1], 1, true), tostring(err))
      local ok, msg = pcall(schedule.must_cron, c[1])
      assert.is_false(ok)
      assert.truthy(tostring(msg):find("invalid cron expression", 1, true), tostring(msg))
    end
  end)

  it("follows rule B in a zone: skipped fixed times fire at the jump, repeated ones once (statement 25)", function()
    local ny = { tz = "America/New_York" }
    local function fires(expr, opts, from, to)
      local s, t, out = assert(schedule.cron(expr, opts)), utc(from), {}
      while true do
        t = s:next(t)
        if t > utc(to) then return out end
        out[#out + 1] = iso(t)
      end
    end
    -- spring forward: 02:30 does not exist on 2024-03-10 -> 03:00 EDT once
    assert.same({ "2024-03-09T07:30:00Z", "2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z" },
      fires("30 2 * * *", ny, "2024-03-09T00:00:00Z", "2024-03-11T12:00:00Z"))
    -- fall back: 01:30 happens twice on 2024-11-03 -> once, the first
    assert.same({ "2024-11-02T05:30:00Z", "2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z" },
      fires("30 1 * * *", ny, "2024-11-02T00:00:00Z", "2024-11-04T12:00:00Z"))
    -- wildcard entries follow the wall clock: both 01:00s, no 02:00 in spring
    assert.same({ "2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z", "2024-11-03T07:00:00Z" },
      fires("0 * * * *", ny, "2024-11-03T04:30:00Z", "2024-11-03T07:30:00Z"))
    assert.same({ "2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z", "2024-03-10T08:00:00Z" },
      fires("0 * * * *", ny, "2024-03-10T05:30:00Z", "2024-03-10T08:30:00Z"))
    -- "UTC" is the default zone and needs no file
    assert.equal(utc("2024-01-01T03:00:00Z"), assert(schedule.cron("0 3 * * *", { tz = "UTC" })):next(utc("2024-01-01T00:00:00Z")))
  end)

  it("an unknown zone is an error (nil, UNKNOWN_ZONE), never a path outside tzdata", function()
    for _, tz in ipairs({ "Mars/Olympus_Mons", "../../etc/passwd", "/etc/passwd", "America", "", "right/UTC",
      "America//New_York", "zone.tab" }) do
      local s, err = schedule.cron("0 3 * * *", { tz = tz })
      assert.is_nil(s, tz)
      assert.is_true(errors.is(err, schedule.UNKNOWN_ZONE), tostring(err))
      assert.truthy(tostring(err):find(tz, 1, true), tostring(err))
      assert.has_error(function() schedule.must_cron("0 3 * * *", { tz = tz }) end)
    end
    local s, err = schedule.daily(3, 0, { tz = "Nowhere/City" })
    assert.is_nil(s)
    assert.is_true(errors.is(err, schedule.UNKNOWN_ZONE))
  end)

  it("reads zones from $TZDIR when set", function()
    -- a zone file copied under another name into a temporary TZDIR
    local dir = support.tmpdir()
    assert(os.execute("mkdir -p " .. dir .. "/Test && cp /usr/share/zoneinfo/Asia/Kolkata " .. dir .. "/Test/Zone") == 0)
    local env = require("ffi")
    pcall(env.cdef, [[ int setenv(const char *name, const char *value, int overwrite); int unsetenv(const char *name); ]])
    env.C.setenv("TZDIR", dir, 1)
    local s, err = schedule.cron("0 12 * * *", { tz = "Test/Zone" })
    env.C.unsetenv("TZDIR")
    os.execute("rm -rf " .. dir)
    assert.is_not_nil(s, tostring(err))
    assert.equal(utc("2024-06-01T06:30:00Z"), s:next(utc("2024-06-01T00:00:00Z")))
  end)
end)

describe("schedule arguments", function()
  it("wrong argument types raise, naming the argument", function()
    -- (no tail calls: the error must point at the calling line)
    local calls = {
      { "backstage.every", "'s'", function() local r = schedule.every("900"); return r end },
      { "backstage.daily", "'h'", function() local r = schedule.daily("3", 0); return r end },
      { "backstage.daily", "'m'", function() local r = schedule.daily(3, nil); return r end },
      { "backstage.daily", "'opts'", function() local r = schedule.daily(3, 0, "UTC"); return r end },
      { "backstage.cron", "'expr'", function() local r = schedule.cron(nil); return r end },
      { "backstage.cron", "'opts'", function() local r = schedule.cron("* * * * *", "UTC"); return r end },
      { "backstage.cron", "'opts.tz'", function() local r = schedule.cron("* * * * *", { tz = 1 }); return r end },
      { "backstage.must_cron", "'expr'", function() local r = schedule.must_cron(42); return r end },
      { "schedule:next", "'t'", function() local r = assert(schedule.cron("* * * * *")):next("now"); return r end },
      { "schedule:next", "'t'", function() local r = assert(schedule.cron("* * * * *")):next(0 / 0); return r end },
      { "schedule:next", "'t'", function() local r = assert(schedule.cron("* * * * *")):next(1e18); return r end },
      { "schedule:next", "'t'", function() local r = assert(schedule.every(5)):next(nil); return r end },
    }
    for _, c in ipairs(calls) do
      local ok, msg = pcall(c[3])
      assert.is_false(ok, c[1])
      msg = tostring(msg)
      assert.truthy(msg:find("bad argument " .. c[2] .. " to " .. c[1], 1, true), msg)
      -- raised at the caller's level: the message points at this file
      assert.truthy(msg:find("backstage_schedule_spec.lua", 1, true), msg)
    end
  end)

  it("every public function names the bad argument for numbers, tables and booleans", function()
    for _, name in ipairs({ "every", "daily", "cron", "must_cron" }) do
      for _, v in ipairs({ 12345, { "a table" }, true }) do
        local ok, msg = pcall(schedule[name], v, v, v)
        if not ok then
          msg = tostring(msg)
          assert.truthy(msg:find("bad argument '") and not msg:find("attempt to "), name .. ": " .. msg)
        end
      end
    end
  end)

  it("schedules print what they are", function()
    assert.equal("every(900)", tostring(schedule.every(900)))
    assert.equal('cron("0 3 * * *")', tostring(schedule.daily(3, 0)))
    assert.equal('cron("@daily", tz=Europe/London)', tostring(schedule.cron("@daily", { tz = "Europe/London" })))
  end)
end)

describe("schedule:next performance shape", function()
  it("runs compiled without garbage: no NYI aborts in schedule code (STYLE rule 14)", function()
    if not (jit and jit.status()) then return end
    local c = assert(schedule.cron("30 2 * * *", { tz = "America/New_York" }))
    local u = assert(schedule.cron("*/15 * * * *"))
    local acc = 0
    local function hot(n)
      for i = 1, n do acc = acc + c:next(1704067200 + i * 7919) + u:next(1704067200 + i * 61) end
    end
    local bad = support.jit_aborts("schedule.lua", function() hot(20000) end,
      { reasons = { "NYI", "blacklisted", "disabled" } })
    assert.same({}, bad)
    -- warm: a next() allocates nothing (a table or cdata per call would be
    -- >= 16 bytes * 2 * N = 6.4 MB)
    local N = 200000
    collectgarbage("collect")
    collectgarbage("stop")
    local before = collectgarbage("count")
    hot(N)
    local grown = (collectgarbage("count") - before) * 1024
    collectgarbage("restart")
    assert.is_true(grown < 64 * 1024, ("next allocated %d bytes over %d calls"):format(grown, 2 * N))
    assert.is_true(acc > 0)
  end)
end)
