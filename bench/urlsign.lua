-- lowbit.urlsign: sign/s and verify/s (one lb_urlsign C call each), next to
-- the raw HMAC-SHA256 of the same message bytes through the same C keyed
-- state (lb_hmac_sha256_parts via signer:signature, and lb_hmac_sha256 on
-- the joined message), and beside the Go anchor when `go` is installed:
-- bench/go/urlsign/main.go, the seed's design on the standard library
-- (url.Parse, Query().Encode(), HMAC-SHA256, hex) with GOMAXPROCS=1.
--   build/bin/lowbit bench/urlsign.lua [seconds per case, default 0.5]
local lowbit = require "lowbit"
local url = require "lowbit.url"
local urlsign = require "lowbit.urlsign"
local R = dofile("bench/report.lua").suite("urlsign")

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

-- The Go anchor's ns/op per "sign <url>" / "verify <url>", run before our
-- cases so the two never share the CPU.
local anchor = {}
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local has_go = os.execute("command -v go >/dev/null 2>&1")
if has_go == 0 or has_go == true then
  local p = io.popen(("go run %s/go/urlsign/main.go %g 2>&1"):format(dir, SECONDS))
  local out = p and p:read("*a") or ""
  if p then p:close() end
  for op, u, ns in out:gmatch("(%a+) (%S+) (%d+)\n") do anchor[op .. " " .. u] = tonumber(ns) end
  if not next(anchor) then print("(Go anchor failed: " .. out:sub(1, 200) .. ")") end
else
  print("(go not installed: no Go anchor)")
end

local URLS = {
  "https://cdn.example.com/files/report.pdf",
  "https://cdn.example.com:8443/files/2024/q3/report.pdf?format=pdf&user=12345&lang=en-GB&download=1",
}
local function line(label, r, key, raw)
  local us = 1e6 / r
  local go = anchor[key]
  local case = label .. (raw == URLS[1] and ", short URL" or ", long URL")
  R:line{ case = case, metric = "us_per_op", value = us, unit = "us", better = "lower" }
  if go then R:line{ case = case, metric = "us_per_op", impl = "go", value = go / 1e3, unit = "us", better = "lower" } end
  local tail = go and ("   Go %6.2f us  (%.1fx Go)"):format(go / 1e3, go / 1e3 / us) or ""
  print(("  %-44s %10.0f /s %7.2f us%s"):format(label, r, us, tail))
end

local s = assert(urlsign.new_signer("a 32-byte secret key for bench!!", 3600))
for _, raw in ipairs(URLS) do
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
  line("sign (parse, canonicalize, MAC, rebuild)", r_sign, "sign " .. raw, raw)
  line("verify (parse, canonicalize, MAC, compare)", r_verify, "verify " .. raw, raw)
  line("MAC of the 7 message parts (keyed state)", r_parts, nil, raw)
  line("raw HMAC-SHA256 of the joined message", r_raw, nil, raw)
end
