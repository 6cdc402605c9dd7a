-- Server-Sent Events throughput: events/s through the emitter path (encode
-- by the lb_sse core + write + flush into a recorder-like writer that
-- keeps only a byte count) and through the reader (lb_sse_feed over an
-- in-memory source handing out 64 KiB chunks, one Lua table per event).
--   build/bin/lowbit bench/sse.lua [N]
local lowbit = require "lowbit"
local sse = require "lowbit.sse"
local errors = require "lowbit.errors"
local R = dofile("bench/report.lua").suite("sse")

local N = tonumber(arg and arg[1]) or 1000000

-- A ResponseWriter that only counts bytes.
local function counting_writer()
  local w = { bytes = 0 }
  function w.header() return { set = function() end } end
  function w.write_header() end
  function w.write(self, s) self.bytes = self.bytes + #s; return #s end
  function w.flush() return true end
  return w
end

local function report(label, n, dt, bytes)
  print(("%-44s %9.0f events/s  %7.1f MB/s  (%d in %.3f s)"):format(label, n / dt, bytes / dt / 1e6, n, dt))
  R:line{ case = label, metric = "events_per_s", value = n / dt, unit = "events/s", better = "higher" }
end

-- Events differ from each other (id and the end of data), as in a real
-- stream: identical strings are interned (an existing one is found instead
-- of a new one made), which would flatter the copy. K variants, about
-- 8 MB of them, so earlier copies are mostly collected when one comes back.
local K
local function variants(proto)
  K = math.max(64, math.min(16384, math.floor(8e6 / (#proto.data + 32))))
  local evs = {}
  for i = 1, K do
    evs[i] = sse.event{ name = proto.name, id = tostring(100000 + i), data = proto.data .. i }
  end
  return evs
end

local function bench_emit(label, proto, n)
  local evs = variants(proto)
  local w = counting_writer()
  local e = sse.new_emitter(w)
  for i = 1, 20000 do e:send(evs[i % K + 1]) end -- warm up
  w.bytes = 0
  collectgarbage()
  local t0 = lowbit.now()
  for i = 1, n do e:send(evs[i % K + 1]) end
  report(label, n, lowbit.now() - t0, w.bytes)
end

local function bench_parse(label, proto, n)
  local wire = {}
  for i, ev in ipairs(variants(proto)) do wire[i] = sse.encode(ev) end
  local all = table.concat(wire)         -- K distinct events
  local reps = math.max(1, math.floor(65536 / #all))
  local chunk = all:rep(reps)            -- >= 64 KiB per read when events are small
  local per = K * reps
  local chunks = math.ceil(n / per)
  local function source(k)
    local i = 0
    return { read = function()
      i = i + 1
      if i > k then return nil, errors.EOF end
      return chunk
    end }
  end
  local rd = sse.new_reader(source(math.max(1, math.ceil(20000 / per))))
  while rd:read() do end -- warm up
  collectgarbage()
  rd = sse.new_reader(source(chunks))
  local got = 0
  local t0 = lowbit.now()
  while rd:read() do got = got + 1 end
  local dt = lowbit.now() - t0
  assert(got == chunks * per)
  report(label, got, dt, got * #all / K)
end

local small = { name = "tick", data = "2024-01-01T00:00:00Z " }
local json = { data = ('{"user":42,"action":"update","fields":{"a":1,"b":"two"},"pad":"%s"} '):format(("x"):rep(120)) }
local multi = { name = "log", data = ("line of text\n"):rep(8) .. "end " }
local big = { data = ("y"):rep(16 * 1024) }

bench_emit("emit: small (type, id, 25 B data)", small, N)
bench_emit("emit: 200 B JSON data", json, N)
bench_emit("emit: 9-line data", multi, N)
bench_emit("emit: 16 KiB data", big, math.floor(N / 20))
do
  local w = counting_writer()
  local e = sse.new_emitter(w)
  local t0 = lowbit.now()
  for _ = 1, N do e:comment("") end
  report("emit: heartbeat comment", N, lowbit.now() - t0, w.bytes)
end
bench_parse("parse: small (type, id, 25 B data)", small, N)
bench_parse("parse: 200 B JSON data", json, N)
bench_parse("parse: 9-line data", multi, N)
bench_parse("parse: 16 KiB data", big, math.floor(N / 20))
