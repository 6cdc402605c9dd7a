-- lowbit.urlsign: sign/s and verify/s, next to the raw HMAC-SHA256 of the
-- same message bytes through the same C keyed state (lb_hmac_sha256_parts
-- via signer:signature, and lb_hmac_sha256 on the joined message).
--   build/bin/lowbit bench/urlsign.lua [seconds per case, default 0.5]
local lowbit = require "lowbit"
local url = require "lowbit.url"
local urlsign = require "lowbit.urlsign"

local SECONDS = tonumber(arg and arg[1]) or 0.5

local function rate(fn)
  fn(100)
  local n = 100
  while true do
    collectgarbage()
    local t0 = lowbit.now()
    fn(n)
    local dt = lowbit.now() - t0
    if dt >= SECONDS then return n / dt end
    n = n * (dt < SECONDS / 8 and 8 or 2)
  end
end

local s = assert(urlsign.new_signer("a 32-byte secret key for bench!!", 3600))
for _, raw in ipairs{
  "https://cdn.example.com/files/report.pdf",
  "https://cdn.example.com:8443/files/2024/q3/report.pdf?format=pdf&user=12345&lang=en-GB&download=1",
} do
  local signed = assert(s:sign(raw))
  assert(s:verify(signed))
  local u = url.parse(signed)
  local q = u:query()
  local exp = q:get("exp")
  q:del("exp"); q:del("sig")
  local canon = url.encode_query(q)
  local msg = urlsign.message(u.host, u.path, exp, canon)
  print(("url: %s (%d-byte MAC message)"):format(raw, #msg))
  local r_sign = rate(function(n) for _ = 1, n do s:sign(raw) end end)
  local r_verify = rate(function(n) for _ = 1, n do assert(s:verify(signed)) end end)
  local r_parts = rate(function(n) for _ = 1, n do s:signature(u.host, u.path, exp, canon) end end)
  local r_raw = rate(function(n) for _ = 1, n do s:hmac_hex(msg) end end)
  print(("  %-44s %10.0f /s"):format("sign (parse, canonicalize, MAC, rebuild)", r_sign))
  print(("  %-44s %10.0f /s"):format("verify (parse, canonicalize, MAC, compare)", r_verify))
  print(("  %-44s %10.0f /s"):format("MAC of the 7 message parts (keyed state)", r_parts))
  print(("  %-44s %10.0f /s"):format("raw HMAC-SHA256 of the joined message", r_raw))
end
