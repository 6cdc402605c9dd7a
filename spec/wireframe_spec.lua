local lowbit = require "lowbit"
local net = require "lowbit.net"
local errors = require "lowbit.errors"
local context = require "lowbit.context"
local buffer = require "string.buffer"
local ffi = require "ffi"
local wireframe = require "lowbit.wireframe"
local frame, checksum, schema, stream = wireframe.frame, wireframe.checksum, wireframe.schema, wireframe.stream
local support = require "support"
local run = support.run

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function unhex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end

-- The seed's example format: AA 55 | version type flags length(16 LE) | payload | CRC-32.
local function seed_format(max)
  return frame.format{
    prefix = "\xAA\x55",
    header = { frame.uint8("version"), frame.uint8("type"), frame.uint8("flags"), frame.payload_length_le("length") },
    checksum = checksum.crc32_ieee(),
    max_payload = max or 65535,   -- the seed writes 64 * 1024: one more than 16 bits hold
  }
end

describe("wireframe.checksum", function()
  local CHECK = "123456789"
  local expected = {
    crc32_ieee = 0xCBF43926, crc32c = 0xE3069283, adler32 = 0x091E01DE,
    crc16_modbus = 0x4B37, crc16_ccitt = 0x29B1, crc16_kermit = 0x2189, crc16_xmodem = 0x31C3,
  }

  it("gives the catalogue check value of every 16/32-bit kind, as a number", function()
    for name, want in pairs(expected) do
      local v = checksum[name]():sum(CHECK)
      assert.equal("number", type(v), name)
      assert.equal(want, v, name)
    end
  end)

  it("gives the check values of CRC-64 ISO and ECMA as uint64_t", function()
    assert.is_true(checksum.crc64_iso():sum(CHECK) == 0xB90956C775A41001ULL)
    assert.is_true(checksum.crc64_ecma():sum(CHECK) == 0x995DC9BBDF1939FAULL)
    assert.equal("b90956c775a41001", checksum.crc64_iso():hex(CHECK))
    assert.equal("cbf43926", checksum.crc32_ieee():hex(CHECK))
  end)

  it("matches known vectors beyond the check string (zlib crc32/adler32 of 'Wikipedia')", function()
    assert.equal(0xADAAC02E, checksum.crc32_ieee():sum("Wikipedia"))
    assert.equal(0x11E60398, checksum.adler32():sum("Wikipedia"))
    assert.equal(0x00000000, checksum.crc32_ieee():sum(""))
    assert.equal(1, checksum.adler32():sum(""))
  end)

  it("updates incrementally to the same result at every split, both styles", function()
    local data = {}
    for i = 1, 300 do data[i] = string.char((i * 37 + 11) % 256) end
    data = table.concat(data)
    for _, name in ipairs{ "crc32_ieee", "crc32c", "crc64_iso", "crc64_ecma", "adler32", "crc16_modbus",
                           "crc16_ccitt", "crc16_kermit", "crc16_xmodem" } do
      do
        local ck = checksum[name]()
        do
          local whole = ck:sum(data)
          for _, cut in ipairs{ 0, 1, 7, 64, 150, 299, 300 } do
            local st = ck:new():update(data:sub(1, cut)):update(data:sub(cut + 1))
            assert.is_true(st:sum() == whole, name .. " cut " .. cut)
            assert.is_true(ck:update(ck:update(ck.init, data:sub(1, cut)), data:sub(cut + 1)) == whole)
          end
          assert.is_true(ck:new():update("x"):reset():update(data):sum() == whole)
        end
      end
    end
  end)

  it("accepts a string.buffer and a pointer with a length", function()
    local ck = checksum.crc32c()
    local b = buffer.new():put(CHECK)
    assert.equal(0xE3069283, ck:sum(b))
    local p = ffi.new("uint8_t[9]")
    ffi.copy(p, CHECK, 9)
    assert.equal(0xE3069283, ck:sum(p, 9))
  end)

  it("raises naming the argument for wrong input types", function()
    assert.has_error(function() checksum.crc32_ieee():sum(42) end,
      "bad argument 's' to checksum:sum: string, string.buffer or pointer expected, got number")
    assert.has_error(function() checksum.crc32_ieee():sum(ffi.new("uint8_t[1]")) end,
      "bad argument 'n' to checksum:sum: length expected with a pointer, got nil")
  end)
end)

describe("wireframe.frame", function()
  it("encodes the seed's format byte for byte (checksum big-endian after the payload)", function()
    local f = seed_format()
    local wire = assert(f:encode("hello", { version = 1, type = 0x42, flags = 0 }))
    -- python3: "%08x" % zlib.crc32(bytes.fromhex("0142000500") + b"hello") == "5e2656f5"
    assert.equal("aa55" .. "01420005" .. "00" .. hex("hello") .. "5e2656f5", hex(wire))
    assert.equal(2 + 5 + 5 + 4, #wire)
  end)

  it("covers everything after the prefix up to the end of the payload", function()
    local f = seed_format()
    local wire = f:encode("abc", { version = 9 })
    local covered = wire:sub(3, #wire - 4)
    assert.equal(("%08x"):format(checksum.crc32_ieee():sum(covered)), hex(wire:sub(-4)))
  end)

  it("writes the checksum little-endian with checksum_order = 'le' (Modbus RTU)", function()
    local f = frame.format{
      header = { frame.uint8("address"), frame.uint8("function"), frame.payload_length8("count") },
      checksum = checksum.crc16_modbus(), checksum_order = "le",
    }
    local wire = assert(f:encode("\x00\x00\x00\x0A", { address = 1, ["function"] = 3 }))
    local crc = checksum.crc16_modbus():sum(wire:sub(1, -3))
    assert.equal(crc % 256, wire:byte(-2))
    assert.equal(math.floor(crc / 256), wire:byte(-1))
    local vals = f:new_values()
    assert.equal("\x00\x00\x00\x0A", f:decode(wire, vals))
    assert.equal(3, vals["function"])
  end)

  it("round-trips every field type with its byte order, including 64-bit values", function()
    local f = frame.format{
      prefix = "LB",
      header = {
        frame.uint8("a"), frame.uint16_be("b"), frame.uint16_le("c"), frame.uint32_be("d"),
        frame.uint32_le("e"), frame.uint64_be("g"), frame.uint64_le("h"), frame.payload_length32_be("len"),
      },
    }
    local vals = { a = 0xFE, b = 0x0102, c = 0x0102, d = 0x01020304, e = 0x01020304,
                   g = 0x0102030405060708ULL, h = 0xFFFFFFFFFFFFFFFFULL }
    local wire = assert(f:encode("p", vals))
    assert.equal("4c42" .. "fe" .. "0102" .. "0201" .. "01020304" .. "04030201"
      .. "0102030405060708" .. "ffffffffffffffff" .. "00000001" .. "70", hex(wire))
    local out = f:new_values()
    assert.equal("p", (f:decode(wire, out)))
    assert.equal(0xFE, out.a); assert.equal(0x0102, out.b); assert.equal(0x0102, out.c)
    assert.equal(0x01020304, out.d); assert.equal(0x01020304, out.e); assert.equal(1, out.len)
    assert.is_true(out.g == 0x0102030405060708ULL)
    assert.is_true(out.h == 0xFFFFFFFFFFFFFFFFULL)
  end)

  it("has payload-length fields of 8, 16 (be/le) and 32 (be/le) bits", function()
    local cases = {
      { frame.payload_length8, "03" }, { frame.payload_length_be, "0003" }, { frame.payload_length_le, "0300" },
      { frame.payload_length32_be, "00000003" }, { frame.payload_length32_le, "03000000" },
    }
    for _, c in ipairs(cases) do
      local f = frame.format{ header = { c[1]("n") } }
      assert.equal(c[2] .. hex("xyz"), hex(f:encode("xyz")))
      local vals = f:new_values()
      assert.equal("xyz", f:decode(f:encode("xyz"), vals))
      assert.equal(3, vals.n)
    end
  end)

  it("validates lazily on first use and explicitly, naming the problem", function()
    local f = frame.format{ header = { frame.uint8("a") } }       -- no length field: not yet an error
    assert.has_error(function() f:encode("x") end, "wireframe: invalid format: no payload-length field")
    assert.has_error(function() f:validate() end, "wireframe: invalid format: no payload-length field")
    assert.has_error(function()
      frame.format{ header = { frame.payload_length8("a"), frame.payload_length8("b") } }:validate()
    end, 'wireframe: invalid format: two payload-length fields (field 2 "b")')
    assert.has_error(function()
      frame.format{ prefix = ("x"):rep(17), header = { frame.payload_length8("n") } }:validate()
    end, "wireframe: invalid format: prefix is 17 bytes, at most 16 allowed")
    local many = {}
    for i = 1, 17 do many[i] = frame.uint8("f" .. i) end
    assert.has_error(function() frame.format{ header = many }:validate() end,
      "wireframe: invalid format: 17 header fields, at most 16 allowed")
    assert.has_error(function()
      frame.format{ header = { frame.uint8("a"), frame.payload_length8("a") } }:validate()
    end, 'wireframe: invalid format: field 2: duplicate field name "a"')
    local ok, err = pcall(function()
      frame.format{ header = { frame.payload_length8("n") }, max_payload = 256 }:validate()
    end)
    assert.is_false(ok)
    assert.matches("max_payload", err)
    local g = seed_format()
    assert.equal(g, g:validate())                 -- valid: returns the format, and again
    assert.equal(g, g:validate())
  end)

  it("raises naming the argument for wrong declaration types", function()
    assert.has_error(function() frame.format("x") end, "bad argument 'spec' to frame.format: table expected, got string")
    assert.has_error(function() frame.format{ prefix = 1, header = {} } end,
      "bad argument 'prefix' to frame.format: string expected, got number")
    assert.has_error(function() frame.format{ header = "x" } end,
      "bad argument 'header' to frame.format: table of fields expected, got string")
    assert.has_error(function() frame.format{ header = { "version" } } end,
      "bad argument 'header' to frame.format: entry 1 is not a field (use frame.uint8(name), ...), got string")
    assert.has_error(function() frame.format{ header = {}, checksum = "crc32" } end,
      "bad argument 'checksum' to frame.format: checksum object (checksum.crc32_ieee(), ...) or nil expected, got string")
    assert.has_error(function() frame.format{ header = {}, checksum_order = "middle" } end,
      "bad argument 'checksum_order' to frame.format: \"be\", \"le\" or nil expected, got middle")
    assert.has_error(function() frame.format{ header = {}, max_payload = -1 } end,
      "bad argument 'max_payload' to frame.format: non-negative integer or nil expected, got -1")
    assert.has_error(function() frame.uint8(nil) end, "bad argument 'name' to frame.uint8: non-empty string expected, got nil")
  end)

  it("returns INCOMPLETE for every truncated prefix of a frame", function()
    local f = seed_format()
    local wire = f:encode("hello world", { type = 1 })
    for i = 0, #wire - 1 do
      local p, err = f:decode(wire:sub(1, i))
      assert.is_nil(p)
      assert.equal(wireframe.INCOMPLETE, err)
    end
    assert.equal("hello world", (f:decode(wire)))
  end)

  it("returns CHECKSUM when any covered byte changes", function()
    local f = seed_format()
    local wire = f:encode("hello", { type = 1 })
    for i = 3, #wire do
      local bad = wire:sub(1, i - 1) .. string.char((wire:byte(i) + 1) % 256) .. wire:sub(i + 1)
      local p, err = f:decode(bad)
      assert.is_nil(p)
      if i == 6 or i == 7 then
        -- the length field changed: the frame now ends elsewhere
        assert.is_true(err == wireframe.CHECKSUM or err == wireframe.INCOMPLETE, tostring(err))
      else
        assert.equal(wireframe.CHECKSUM, err)
      end
    end
  end)

  it("returns TOO_LARGE as soon as the length field says so, and on encode", function()
    local f = seed_format(16)
    local p, err = f:decode("\xAA\x55\x01\x00\x00\x11\x00")   -- declares 17 bytes; nothing more sent
    assert.is_nil(p); assert.equal(wireframe.TOO_LARGE, err)
    p, err = f:encode(("x"):rep(17))
    assert.is_nil(p); assert.equal(wireframe.TOO_LARGE, err)
    assert.equal(16 + f:overhead(), #assert(f:encode(("x"):rep(16))))
    assert.equal(f:overhead() + 16, f:encoded_len(16))
    assert.equal(wireframe.TOO_LARGE, select(2, f:encoded_len(17)))
  end)

  it("returns BAD_PREFIX and finds the next prefix candidate", function()
    local f = seed_format()
    local wire = f:encode("x")
    local p, err = f:decode("zz" .. wire)
    assert.is_nil(p); assert.equal(wireframe.BAD_PREFIX, err)
    assert.equal(2, f:find_prefix("zz" .. wire))
    assert.equal(3, f:find_prefix("zzz\xAA"))      -- a partial prefix at the end is a candidate
    assert.equal(3, f:find_prefix("zzz"))
  end)

  it("returns INVALID_VALUE for header values that do not fit, and raises for wrong types", function()
    local f = seed_format()
    for _, v in ipairs{ 256, -1, 1.5 } do
      local p, err = f:encode("x", { version = v })
      assert.is_nil(p)
      assert.is_true(errors.is(err, wireframe.INVALID_VALUE))
      assert.matches('"version"', tostring(err))
    end
    assert.has_error(function() f:encode("x", { version = "1" }) end,
      "bad argument 'vals' to format:encode: field \"version\" must be an integer, got string")
    assert.has_error(function() f:encode(42) end,
      "bad argument 'payload' to format:encode: string or string.buffer expected, got number")
    assert.has_error(function() f:encode("x", nil, {}) end,
      "bad argument 'dst' to format:encode: string.buffer or nil expected, got table")
    assert.has_error(function() f:decode(42) end,
      "bad argument 'src' to format:decode: string, string.buffer or pointer expected, got number")
    assert.has_error(function() f:decode("x", 5) end,
      "bad argument 'vals' to format:decode: table or nil expected, got number")
  end)

  it("appends into a reusable string.buffer and decodes from it (and from a pointer)", function()
    local f = seed_format()
    local dst = buffer.new()
    assert.equal(dst, f:encode("one", { type = 1 }, dst))
    assert.equal(dst, f:encode("two", { type = 2 }, dst))
    local vals = f:new_values()
    local p, used = f:decode(dst, vals)
    assert.equal("one", p); assert.equal(1, vals.type)
    dst:skip(used)
    local ptr, len = dst:ref()
    p, used = f:decode(ptr, len, vals)
    assert.equal("two", p); assert.equal(2, vals.type)
    assert.equal(len, used)
  end)

  it("fills the values table in place without adding keys", function()
    local f = seed_format()
    local vals = f:new_values()
    assert.same({ version = 0, type = 0, flags = 0, length = 0 }, vals)
    local _, _, same = f:decode(f:encode("abc", { version = 7, type = 8, flags = 9 }), vals)
    assert.equal(vals, same)
    assert.same({ version = 7, type = 8, flags = 9, length = 3 }, vals)
    local _, _, fresh = f:decode(f:encode("", {}))
    assert.same({ version = 0, type = 0, flags = 0, length = 0 }, fresh)
  end)

  it("compiles the decode loop, with no NYI trace aborts", function()
    local f = seed_format()
    local wire = f:encode(("p"):rep(64), { type = 3 })
    local vals = f:new_values()
    local n = 0
    local nyi, compiled = support.jit_aborts("wireframe", function()
      for _ = 1, 20000 do
        local p = f:decode(wire, vals)
        n = n + #p
      end
    end, { reasons = { "NYI" } })
    assert.same({}, nyi)
    assert.is_true(compiled > 0)
    assert.equal(20000 * 64, n)
  end)

  it("decodes inside the caller's trace: no trace of its own, nothing allocated but the payload", function()
    -- Every 64-bit-free format decodes with straight-line code (no loop in
    -- frame.lua to start a trace of its own and leave the caller's loop to
    -- the interpreter) and no allocation: with the payload string already
    -- interned, a compiled decode loop allocates nothing at all.
    local f = frame.format{
      prefix = "\xAA\x55",
      header = { frame.uint8("version"), frame.uint16_be("type"), frame.uint32_le("seq"),
        frame.payload_length32_le("length") },
      checksum = checksum.crc32c(), max_payload = 4096,
    }
    local wire = f:encode(("q"):rep(64), { version = 1, type = 0x0102, seq = 0xA0B0C0D0 })
    local keep = ("q"):rep(64)        -- the payload, interned: decode returns this same string
    local vals = f:new_values()
    local function loop(n)
      local sum = 0
      for _ = 1, n do
        local p, used, v = f:decode(wire, vals)
        if p ~= keep or used ~= #wire or v ~= vals then error("bad decode") end
        sum = sum + vals.type + vals.length
      end
      return sum
    end
    -- No trace aborts in frame.lua (a loop there gave "leaving loop in
    -- root trace"), no loop trace of frame.lua's own, and the caller's loop
    -- is one looping trace.
    local jutil = require "jit.util"
    local loops = {}
    local function on_trace(what, tr, func, pc)
      if what == "stop" and jutil.traceinfo(tr).linktype == "loop" then
        loops[#loops + 1] = jutil.funcinfo(func, pc).source
      end
    end
    local bad = support.jit_aborts("frame.lua", function()
      jit.attach(on_trace, "trace")
      local ok, err = pcall(loop, 20000)
      jit.attach(on_trace)
      assert(ok, err)
    end, { reasons = { "" } })
    assert.same({}, bad)
    local in_spec = 0
    for _, src in ipairs(loops) do
      assert.is_nil(src:find("wireframe/frame.lua", 1, true), "a loop trace in frame.lua")
      if src:find("wireframe_spec", 1, true) then in_spec = in_spec + 1 end
    end
    assert.is_true(in_spec > 0)
    loop(20000)                       -- compiled now: measure the allocations of the same loop
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    assert.equal(20000 * (0x0102 + 64), loop(20000))
    local grew = (collectgarbage("count") - before) * 1024
    collectgarbage("restart")
    -- Any allocation per call (a table, a boxed 64-bit value, a string)
    -- is 16 bytes or more: 20000 calls would add 320 KB. What remains is
    -- one-off (a side trace's constants).
    assert.is_true(grew < 20000, "decode allocated " .. grew .. " bytes over 20000 calls")
    assert.same({ version = 1, type = 0x0102, seq = 0xA0B0C0D0, length = 64 }, vals)
  end)

  it("stores values under any field name and record key (quotes, newlines, keywords)", function()
    -- The stores are generated code with the names as constants.
    local names = { 'say "hi"', "line\nbreak", "back\\slash", "]]", "end", "\0nul", "wide" }
    local header = {}
    for i = 1, 6 do header[i] = frame.uint16_le(names[i]) end
    header[7] = frame.uint64_be(names[7])
    header[8] = frame.payload_length8("len")
    local f = frame.format{ header = header }
    local vals = { len = 0 }
    for i = 1, 6 do vals[names[i]] = 1000 + i end
    vals.wide = 0xFFFFFFFFFFFFFFFFULL
    local p, used, got = f:decode(f:encode("x", vals))
    assert.equal("x", p)
    assert.equal(f:overhead() + 1, used)
    vals.len = 1
    assert.same(vals, got)
    assert.equal("cdata", type(got.wide))
    local shape = {}
    for i = 1, 7 do shape["k" .. names[i]] = names[i] end
    shape.len = "len"
    local T = f:bind(shape)
    local _, _, rec = T:decode(f:encode("yz", vals))
    for i = 1, 6 do assert.equal(1000 + i, rec["k" .. names[i]]) end
    assert.equal(0xFFFFFFFFFFFFFFFFULL, rec["kwide"])
    assert.equal(2, rec.len)
  end)

  it("decodes through the compiled format exactly as the C reference does, every field kind", function()
    -- Random formats, frames and mutations: format:decode (the compiled C
    -- path) against lb_frame_decode on the same bytes (result, payload,
    -- every value), and the typed decode against format:decode.
    local C = require("lowbit.core").C
    local kinds = { "uint8", "uint16_be", "uint16_le", "uint32_be", "uint32_le", "uint64_be", "uint64_le" }
    local lens = { "payload_length8", "payload_length_be", "payload_length_le", "payload_length32_be", "payload_length32_le" }
    local cks = { false, "crc32_ieee", "crc32c", "crc64_iso", "crc64_ecma", "adler32", "crc16_modbus", "crc16_ccitt_false" }
    local seed = 12345
    local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return math.floor(seed / 65536) % n end
    local function rbytes(n) local t = {} for i = 1, n do t[i] = string.char(rnd(256)) end return table.concat(t) end
    local codes = { [0] = 0 }
    for _ = 1, 150 do
      local header, nf = {}, 1 + rnd(5)
      local at = 1 + rnd(nf)
      for i = 1, nf do
        header[i] = i == at and frame[lens[1 + rnd(#lens)]]("len") or frame[kinds[1 + rnd(#kinds)]]("f" .. i)
      end
      local ck = cks[1 + rnd(#cks)]
      local f = frame.format{ prefix = rbytes(rnd(11)), header = header, checksum = ck and checksum[ck]() or nil,
        checksum_order = rnd(2) == 0 and "le" or "be", max_payload = rnd(3) == 0 and 40 or nil }
      local T = f:bind()
      local cvals, off, plen = ffi.new("uint64_t[16]"), ffi.new("size_t[1]"), ffi.new("size_t[1]")
      for _ = 1, 12 do
        local vals = {}
        for i = 1, nf do
          if i ~= at then vals["f" .. i] = header[i].width == 8 and 0ULL + rnd(2^31) * 2^20 + rnd(2^20) or rnd(256 ^ header[i].width) end
        end
        local wire = assert(f:encode(rbytes(rnd(f.max_payload and 41 or 60)), vals))
        local m = rnd(7)
        if m == 1 then local i = 1 + rnd(#wire); wire = wire:sub(1, i - 1) .. string.char(rnd(256)) .. wire:sub(i + 1)
        elseif m == 2 then wire = wire:sub(1, rnd(#wire))
        elseif m == 3 then wire = wire .. rbytes(rnd(10))
        elseif m == 4 then wire = f.prefix .. rbytes(rnd(20))
        elseif m == 5 and #f.prefix > 0 then wire = string.char((wire:byte(1) + 1) % 256) .. wire:sub(2)
        elseif m == 6 then            -- the largest length the field holds
          local lo = #f.prefix
          for i = 1, at - 1 do lo = lo + header[i].width end
          wire = wire:sub(1, lo) .. ("\255"):rep(header[at].width) .. wire:sub(lo + header[at].width + 1)
        end
        local r = tonumber(C.lb_frame_decode(f.cf, wire, #wire, cvals, off, plen))
        local p, used, got = f:decode(wire)
        local tp, tused, rec = T:decode(wire)
        if r < 0 then
          assert.is_nil(p)
          assert.equal(frame._code_err[r], used)
          assert.is_nil(tp)
          assert.equal(used, tused)
          codes[r] = (codes[r] or 0) + 1
        else
          assert.equal(r, used)
          assert.equal(wire:sub(tonumber(off[0]) + 1, tonumber(off[0] + plen[0])), p)
          for i = 1, nf do
            local name = header[i].name
            local want = header[i].width == 8 and cvals[i - 1] or tonumber(cvals[i - 1])
            assert.equal(want, got[name])
            assert.equal(want, rec[name])
          end
          assert.equal(p, tp)
          assert.equal(used, tused)
          codes[0] = codes[0] + 1
        end
      end
    end
    -- frames, INCOMPLETE, BAD_PREFIX, CHECKSUM and TOO_LARGE all seen
    for _, c in ipairs{ 0, C.LB_EAGAIN, C.LB_EPREFIX, C.LB_ECHECKSUM, C.LB_ETOOLARGE } do
      assert.is_true((codes[c] or 0) > 0, "outcome " .. c .. " never seen")
    end
  end)
end)

describe("wireframe.frame typed formats", function()
  it("binds fields to a record shape and round-trips through it", function()
    local f = seed_format()
    local Msg = f:bind{ version = "version", kind = "type", flags = "flags", size = "length" }
    local rec = Msg:new{ version = 1, kind = 0x42 }
    local wire = assert(Msg:encode("hello", rec))
    assert.equal(wire, f:encode("hello", { version = 1, type = 0x42 }))
    local out = Msg:new()
    local p, used, same = Msg:decode(wire, out)
    assert.equal("hello", p); assert.equal(#wire, used); assert.equal(out, same)
    assert.equal(0x42, out.kind); assert.equal(5, out.size)
    local p2, _, made = frame.typed(f):decode(wire)
    assert.equal("hello", p2); assert.equal(0x42, made.type)
  end)

  it("rejects a typo or an unmapped field at bind time", function()
    local f = seed_format()
    assert.has_error(function() f:bind{ version = "vesrion", kind = "type", flags = "flags", size = "length" } end,
      'bad argument \'shape\' to format:bind: key "version" maps to unknown wire field "vesrion"')
    assert.has_error(function() f:bind{ version = "version", kind = "type", size = "length" } end,
      'bad argument \'shape\' to format:bind: wire field "flags" is not mapped')
    assert.has_error(function() frame.typed("f") end, "bad argument 'f' to frame.typed: format expected, got string")
  end)

  it("makes strict records: unknown keys raise", function()
    local Msg = seed_format():bind()
    local rec = Msg:new()
    assert.has_error(function() return rec.vesrion end, 'wireframe record: no field "vesrion"')
    assert.has_error(function() rec.vesrion = 1 end, 'wireframe record: no field "vesrion"')
    assert.has_error(function() Msg:new{ nope = 1 } end, 'bad argument \'init\' to typed:new: no field "nope" in the shape')
  end)
end)

describe("wireframe.frame batches", function()
  local function run_of(f, n, extra)
    local b = buffer.new()
    for i = 1, n do f:encode(("p"):rep(i * 7 % 50), { version = i % 256, type = i, flags = 3 }, b) end
    if extra then b:put(extra) end
    return b:tostring()
  end

  -- What f:decode gives frame after frame: { payload, used, vals } until it fails.
  local function one_by_one(f, src)
    local out, pos = {}, 1
    while true do
      local p, used, vals = f:decode(src:sub(pos))
      if not p then return out, pos - 1, used end
      out[#out + 1] = { p, used, vals }
      pos = pos + used
    end
  end

  it("decodes every complete frame in a buffer, as decode does frame after frame", function()
    local f = seed_format()
    local src = run_of(f, 10, "\xAA\x55\x01")            -- and the start of an 11th
    local want, want_used = one_by_one(f, src)
    assert.equal(10, #want)
    local b = f:new_batch()
    local count, used, stop = b:decode(src)
    assert.equal(10, count); assert.equal(want_used, used); assert.equal(frame.INCOMPLETE, stop)
    local pos = 0
    for i = 1, count do
      local w = want[i]
      assert.equal(w[1], b:payload(i))
      local ptr, len = b:payload_ptr(i)
      assert.equal(w[1], ffi.string(ptr, len))
      local poff, plen, start, flen = b:span(i)
      assert.same({ pos + 7, #w[1], pos, w[2] }, { poff, plen, start, flen })   -- 2-byte prefix, 5-byte header
      assert.same(w[3], b:values(i))
      assert.equal(i, b:value(i, "type"))
      assert.equal(#w[1], b:value(i, "length"))
      pos = pos + w[2]
    end
    -- A full batch stops with nil: decode again past `used`.
    local small = f:new_batch(4)
    local got, at = 0, 0
    repeat
      local c, u, st = small:decode(src:sub(at + 1))
      for i = 1, c do got = got + 1; assert.equal(want[got][1], small:payload(i)) end
      at = at + u
      if got < 10 then assert.is_nil(st) end
    until st ~= nil
    assert.equal(10, got); assert.equal(want_used, at)
    -- An empty source: nothing, INCOMPLETE.
    assert.same({ 0, 0, frame.INCOMPLETE }, { b:decode("") })
  end)

  it("stops at a bad frame with its error, after the frames before it", function()
    local f = seed_format(100)
    local src = run_of(f, 5)
    local ends = {}
    do
      local pos = 0
      for i, w in ipairs((one_by_one(f, src))) do pos = pos + w[2]; ends[i] = pos end
    end
    local b = f:new_batch()
    -- a flipped payload byte in frame 3
    local bad = src:sub(1, ends[2] + 7) .. string.char((src:byte(ends[2] + 8) + 1) % 256) .. src:sub(ends[2] + 9)
    assert.same({ 2, ends[2], frame.CHECKSUM }, { b:decode(bad) })
    -- a wrong prefix byte at frame 2
    bad = src:sub(1, ends[1]) .. "\x00" .. src:sub(ends[1] + 2)
    assert.same({ 1, ends[1], frame.BAD_PREFIX }, { b:decode(bad) })
    -- frame 4 announces 101 bytes with max_payload 100
    bad = src:sub(1, ends[3] + 5) .. "\x65\x00" .. src:sub(ends[3] + 8)
    assert.same({ 3, ends[3], frame.TOO_LARGE }, { b:decode(bad) })
  end)

  it("decodes from a string.buffer and from a pointer with a length", function()
    local f = seed_format()
    local src = run_of(f, 3)
    local sb = buffer.new():put(src)
    local b = f:new_batch()
    assert.same({ 3, #src, frame.INCOMPLETE }, { b:decode(sb) })
    assert.equal(("p"):rep(21), b:payload(3))
    local ptr, n = sb:ref()
    assert.same({ 3, #src, frame.INCOMPLETE }, { b:decode(ptr, n) })
    assert.equal(("p"):rep(14), b:payload(2))
  end)

  it("gives 64-bit fields as uint64_t and fills typed records", function()
    local f = frame.format{ header = { frame.uint64_be("id"), frame.payload_length8("len") } }
    local src = f:encode("a", { id = 0xFFFFFFFFFFFFFFFFULL }) .. f:encode("bc", { id = 5 })
    local b = f:new_batch()
    assert.equal(2, (b:decode(src)))
    assert.equal(0xFFFFFFFFFFFFFFFFULL, b:value(1, "id"))
    assert.is_true(ffi.istype("uint64_t", b:value(2, "id")))
    local T = f:bind{ ident = "id", size = "len" }
    local tb = T:new_batch(2)
    assert.equal(2, (tb:decode(src)))
    local rec = tb:values(2)
    assert.equal(5ULL, rec.ident); assert.equal(2, rec.size)
    assert.has_error(function() return rec.id end)          -- a strict record
  end)

  it("raises naming the argument for bad input", function()
    local f = seed_format()
    local src = run_of(f, 2)
    assert.has_error(function() f:new_batch(0) end,
      "bad argument 'max_frames' to format:new_batch: integer in 1..65536 expected, got 0")
    assert.has_error(function() f:new_batch(2.5) end,
      "bad argument 'max_frames' to format:new_batch: integer in 1..65536 expected, got 2.5")
    assert.has_error(function() f:new_batch("8") end,
      "bad argument 'max_frames' to format:new_batch: integer in 1..65536 expected, got 8")
    local b = f:new_batch()
    assert.has_error(function() b:payload(1) end, "bad argument 'i' to batch:payload: frame index in 1..0 expected, got 1")
    assert.has_error(function() b:decode(42) end,
      "bad argument 'src' to batch:decode: string, string.buffer or pointer expected, got number")
    assert.has_error(function() b:decode(ffi.cast("const uint8_t *", src)) end,
      "bad argument 'len' to batch:decode: length expected after a pointer, got nil")
    b:decode(src)
    assert.has_error(function() b:payload(3) end, "bad argument 'i' to batch:payload: frame index in 1..2 expected, got 3")
    assert.has_error(function() b:span(0) end, "bad argument 'i' to batch:span: frame index in 1..2 expected, got 0")
    assert.has_error(function() b:payload_ptr(1.5) end,
      "bad argument 'i' to batch:payload_ptr: frame index in 1..2 expected, got 1.5")
    assert.has_error(function() b:value(1, "nope") end, 'bad argument \'name\' to batch:value: no header field "nope"')
    assert.has_error(function() b:value(1, 7) end, "bad argument 'name' to batch:value: no header field number")
    assert.has_error(function() b:values(1, 5) end, "bad argument 'vals' to batch:values: table or nil expected, got number")
    assert.has_error(function() f:bind():new_batch(-1) end,
      "bad argument 'max_frames' to typed:new_batch: integer in 1..65536 expected, got -1")
  end)

  it("compiles the batch decode loop, with no NYI trace aborts", function()
    local f = seed_format()
    local src = run_of(f, 1)
    local one = src
    for _ = 1, 5 do src = src .. src end                  -- 32 frames
    local b = f:new_batch(64)
    local n, types = 0, 0
    local nyi, compiled = support.jit_aborts("wireframe", function()
      for _ = 1, 2000 do
        local count = b:decode(src)
        for i = 1, count do
          local _, len = b:payload_ptr(i)
          n = n + len
          types = types + b:value(i, "type")
        end
      end
    end, { reasons = { "NYI" } })
    assert.same({}, nyi)
    assert.is_true(compiled > 0)
    assert.equal(2000 * 32 * (#one - 11), n)
    assert.equal(2000 * 32, types)
  end)
end)

describe("wireframe.schema", function()
  it("encodes and decodes the seed's schema, the length field taken from the data", function()
    local s = schema.new(schema.uint8("command"), schema.uint16_be("seq"), schema.var_bytes("data", "seq"))
    local b = assert(s:encode{ command = 1, seq = 42, data = "hello" })
    assert.equal("01" .. "0005" .. hex("hello"), hex(b))
    local vals, used = s:decode(b .. "trailing")
    assert.equal(8, used)
    assert.same({ command = 1, seq = 5, data = "hello" }, vals)
  end)

  it("handles every integer width and order, fixed bytes, and appends to dst", function()
    local s = schema.new(schema.uint16_le("a"), schema.uint32_be("b"), schema.uint32_le("c"),
      schema.uint64_be("d"), schema.uint64_le("e"), schema.bytes("tag", 2))
    local dst = buffer.new():put(">")
    assert.equal(dst, s:encode({ a = 0x0102, b = 0x01020304, c = 0x01020304, d = 1ULL, e = 0x0102ULL, tag = "ok" }, dst))
    assert.equal(hex(">") .. "0201" .. "01020304" .. "04030201" .. "0000000000000001" .. "0201000000000000" .. hex("ok"),
      hex(dst:tostring()))
    dst:skip(1)
    local v = s:decode(dst)
    assert.equal(0x0102, v.a); assert.equal(0x01020304, v.c); assert.is_true(v.e == 0x0102ULL); assert.equal("ok", v.tag)
  end)

  it("returns SHORT for a truncated payload and INVALID_VALUE for values that do not fit", function()
    local s = schema.new(schema.uint8("n"), schema.var_bytes("data", "n"))
    local b = s:encode{ data = "abc" }
    for i = 0, #b - 1 do
      local v, err = s:decode(b:sub(1, i))
      assert.is_nil(v); assert.equal(schema.SHORT, err)
    end
    local v, err = s:encode{ data = ("x"):rep(256) }
    assert.is_nil(v); assert.is_true(errors.is(err, schema.INVALID_VALUE))
    local dst = buffer.new():put("keep")
    v, err = s:encode({ data = ("x"):rep(256) }, dst)
    assert.is_nil(v); assert.equal("keep", dst:tostring())
    v, err = schema.new(schema.uint8("x")):encode{ x = 300 }
    assert.is_nil(v); assert.is_true(errors.is(err, schema.INVALID_VALUE))
  end)

  it("raises on bad declarations and wrong argument types", function()
    assert.has_error(function() schema.new(schema.var_bytes("d", "n"), schema.uint8("n")) end,
      'schema.new: var_bytes "d": length field "n" must be declared before it')
    assert.has_error(function() schema.new(schema.bytes("n", 1), schema.var_bytes("d", "n")) end,
      'schema.new: var_bytes "d": length field "n" is not an integer field')
    assert.has_error(function() schema.new(schema.uint8("a"), schema.uint8("a")) end, 'schema.new: duplicate field name "a"')
    assert.has_error(function() schema.new("x") end,
      "bad argument #1 to schema.new: field expected (schema.uint8(name), ...), got string")
    local s = schema.new(schema.uint8("a"))
    assert.has_error(function() s:encode("x") end, "bad argument 'vals' to schema:encode: table expected, got string")
    assert.has_error(function() s:encode{ a = "1" } end, 'bad argument \'vals\' to schema:encode: field "a" must be an integer, got string')
    assert.has_error(function() s:decode(1) end,
      "bad argument 'src' to schema:decode: string, string.buffer or pointer expected, got number")
  end)

  it("has a typed variant bound to a record shape", function()
    local s = schema.new(schema.uint8("command"), schema.uint16_be("seq"), schema.var_bytes("data", "seq"))
    local Cmd = s:bind{ cmd = "command", len = "seq", body = "data" }
    local b = Cmd:encode(Cmd:new{ cmd = 2, body = "hi" })
    assert.equal("020002" .. hex("hi"), hex(b))
    local rec = Cmd:decode(b)
    assert.equal(2, rec.cmd); assert.equal(2, rec.len); assert.equal("hi", rec.body)
    assert.has_error(function() return rec.command end, 'wireframe schema record: no field "command"')
    assert.has_error(function() s:bind{ cmd = "comand", len = "seq", body = "data" } end,
      'bad argument \'shape\' to schema:bind: key "cmd" maps to unknown wire field "comand"')
  end)
end)

describe("wireframe.stream", function()
  local f = seed_format(1024)

  local function frames(n)
    local b = buffer.new()
    for i = 1, n do f:encode("payload " .. i, { type = i % 256 }, b) end
    return b:tostring()
  end

  -- Writes data to conn in chunks of `step` bytes, then closes it.
  local function feed(conn, data, step, close)
    lowbit.go(function()
      for i = 1, #data, step do
        conn:write(data:sub(i, i + step - 1))
        lowbit.yield()
      end
      if close ~= false then conn:close_write() end
    end)
  end

  it("returns frames one at a time whatever the split, then EOF at a clean boundary", function()
    run(function()
      for _, step in ipairs{ 1, 3, 7, 1000 } do
        local a, b = net.pipe()
        feed(a, frames(20), step)
        local sr = stream.new_reader(b, f)
        local prev
        for i = 1, 20 do
          local p, vals = sr:next()
          assert.equal("payload " .. i, p)
          assert.equal(i, vals.type)
          if prev then assert.equal(prev, vals) end      -- the values table is reused
          prev = vals
        end
        local p, err = sr:next()
        assert.is_nil(p); assert.equal(errors.EOF, err)
        assert.equal(errors.EOF, select(2, sr:next()))
      end
    end)
  end)

  it("reads from a TCP conn", function()
    run(function()
      local ln = assert(net.listen("127.0.0.1:0"))
      lowbit.go(function()
        local c = ln:accept()
        c:write(frames(100))
        c:close()
      end)
      local c = assert(net.dial(context.background(), ln:addr()))
      local sr = stream.new_reader(c, f)
      for i = 1, 100 do assert.equal("payload " .. i, (sr:next())) end
      assert.equal(errors.EOF, select(2, sr:next()))
      c:close(); ln:close()
    end)
  end)

  it("returns UNEXPECTED_EOF when the stream ends mid-frame", function()
    run(function()
      local data = frames(2)
      for _, cut in ipairs{ 1, 2, 5, #data / 2 - 1 } do
        local a, b = net.pipe()
        feed(a, data:sub(1, #data - cut), 1000)
        local sr = stream.new_reader(b, f)
        assert.equal("payload 1", (sr:next()))
        local p, err = sr:next()
        assert.is_nil(p)
        assert.equal(errors.UNEXPECTED_EOF, err)
      end
    end)
  end)

  it("resynchronizes past bytes that are not a prefix (resync, the default)", function()
    run(function()
      local one, two = f:encode("one"), f:encode("two")
      local a, b = net.pipe()
      feed(a, "garbage\xAA" .. one .. "\xAA\x00\x01" .. two, 2)
      local sr = stream.new_reader(b, f)
      assert.equal("one", (sr:next()))
      assert.equal("two", (sr:next()))
      assert.equal(errors.EOF, select(2, sr:next()))
      assert.equal(8 + 3, sr.skipped)
    end)
  end)

  it("reports a checksum error and goes on with the next frame (resync)", function()
    run(function()
      local bad = f:encode("bad")
      bad = bad:sub(1, -2) .. string.char((bad:byte(-1) + 1) % 256)
      local a, b = net.pipe()
      feed(a, f:encode("one") .. bad .. f:encode("two"), 5)
      local sr = stream.new_reader(b, f)
      assert.equal("one", (sr:next()))
      local p, err = sr:next()
      assert.is_nil(p); assert.equal(wireframe.CHECKSUM, err)
      assert.equal("two", (sr:next()))
      assert.equal(errors.EOF, select(2, sr:next()))
    end)
  end)

  it("hands out frames decoded in batches: more than a batch per read, an error inside one, buffered()", function()
    run(function()
      local n = stream.BATCH * 2 + 5
      local data = frames(n)
      local bad = f:encode("bad")
      bad = bad:sub(1, -2) .. string.char((bad:byte(-1) + 1) % 256)
      local cut = #frames(stream.BATCH - 3)             -- the bad frame lands inside the first batch
      data = data:sub(1, cut) .. bad .. data:sub(cut + 1)
      local a, b = net.pipe()
      feed(a, data, #data)                                -- one write: every frame in one read
      local sr = stream.new_reader(b, f)
      for i = 1, n do
        if i == stream.BATCH - 2 then
          local p, err = sr:next()
          assert.is_nil(p); assert.equal(wireframe.CHECKSUM, err)
        end
        local p, vals = sr:next()
        assert.equal("payload " .. i, p)
        assert.equal(i % 256, vals.type)
        if i == 1 then assert.equal(#data - #f:encode("payload 1"), sr:buffered()) end
      end
      assert.equal(0, sr:buffered())
      assert.equal(errors.EOF, select(2, sr:next()))
      assert.equal(#bad, sr.skipped)                      -- the bad frame was skipped past
    end)
  end)

  it("reports TOO_LARGE without waiting for the oversized payload", function()
    run(function()
      local a, b = net.pipe()
      a:write("\xAA\x55\x01\x00\x00\xFF\xFF")      -- 65535 declared, max 1024; the pipe stays open
      local sr = stream.new_reader(b, f)
      local p, err = sr:next()
      assert.is_nil(p); assert.equal(wireframe.TOO_LARGE, err)
      a:close()
    end)
  end)

  it("fails for good on a bad prefix with resync = false", function()
    run(function()
      local a, b = net.pipe()
      feed(a, "x" .. f:encode("one"), 100)
      local sr = stream.new_reader(b, f, { resync = false })
      local p, err = sr:next()
      assert.is_nil(p); assert.equal(wireframe.BAD_PREFIX, err)
      assert.equal(wireframe.BAD_PREFIX, select(2, sr:next()))
    end)
  end)

  it("passes on a read error (a deadline) without ending the reader", function()
    run(function()
      local a, b = net.pipe()
      local sr = stream.new_reader(b, f)
      b:set_read_deadline(lowbit.now() + 0.05)
      local p, err = sr:next()
      assert.is_nil(p); assert.equal(errors.TIMEOUT, err)
      b:set_read_deadline(nil)
      feed(a, f:encode("late"), 100)
      assert.equal("late", (sr:next()))
    end)
  end)

  it("reads into records with a typed format", function()
    run(function()
      local a, b = net.pipe()
      feed(a, frames(3), 4)
      local sr = stream.new_reader(b, f:bind{ v = "version", kind = "type", fl = "flags", n = "length" })
      local p, rec = sr:next()
      assert.equal("payload 1", p); assert.equal(1, rec.kind); assert.equal(9, rec.n)
    end)
  end)

  it("raises naming the argument for a wrong conn or format", function()
    assert.has_error(function() stream.new_reader(nil, f) end,
      "bad argument 'conn' to stream.new_reader: conn with read(max) expected, got nil")
    assert.has_error(function() stream.new_reader(net.pipe(), {}) end,
      "bad argument 'f' to stream.new_reader: frame format expected, got table")
    assert.has_error(function() stream.new_reader(net.pipe(), f, { read_size = 0 }) end,
      "bad argument 'opts.read_size' to stream.new_reader: positive number expected")
  end)
end)

describe("wireframe", function()
  it("re-exports the submodules and the decode errors", function()
    assert.equal(require "lowbit.wireframe.frame", wireframe.frame)
    assert.equal(require "lowbit.wireframe.schema", wireframe.schema)
    assert.equal(require "lowbit.wireframe.stream", wireframe.stream)
    assert.equal(require "lowbit.wireframe.checksum", wireframe.checksum)
    assert.equal(frame.CHECKSUM, wireframe.CHECKSUM)
    assert.equal(frame.INCOMPLETE, wireframe.INCOMPLETE)
    assert.equal(frame.TOO_LARGE, wireframe.TOO_LARGE)
    assert.equal(frame.BAD_PREFIX, wireframe.BAD_PREFIX)
  end)
end)
