-- lowbit.urlsign: signed, time-limited URLs (HMAC-SHA256).
--
--   local urlsign = require "lowbit.urlsign"
--   local s = assert(urlsign.new_signer(secret, 3600))      -- ttl in seconds
--   local signed = assert(s:sign("https://cdn.example.com/files/report.pdf?format=pdf"))
--   --> https://cdn.example.com/files/report.pdf?exp=1747123456&format=pdf&sig=9f3a...
--   local ok, err = s:verify(signed)            -- or s:verify_request(r) in a handler
--   if not ok then
--     -- errors.is(err, urlsign.EXPIRED | urlsign.INVALID_SIG | urlsign.MISSING_PARAMS)
--   end
--
-- sign adds two query parameters: exp (Unix seconds when the URL expires:
-- now + ttl, rounded down) and sig, the lower-case hex HMAC-SHA256 of
--     host ":" path ":" exp ":" canonical_query
-- where host includes the port when the URL has one, path is the decoded
-- path (url.path), and canonical_query is every other query parameter
-- (exp and sig excluded) sorted by key and URL-encoded as url.encode_query
-- does ("a=1&b=x+y"; values of one key keep their order). The signed URL's
-- query is written in that canonical form too, with exp and sig in it.
--
-- verify checks, in this order: exp and sig present (else MISSING_PARAMS);
-- the signature, compared in constant time by the C core
-- (lb_hmac_verify_hex), over the parameters as received (else
-- INVALID_SIG; a malformed query or a repeated exp/sig is INVALID_SIG too);
-- then the expiry: the URL is valid while now <= exp (else EXPIRED). The
-- signature is checked before exp is interpreted, so nothing unauthenticated
-- decides the outcome.
--
-- The key is copied into the C keyed state at new_signer (the caller's
-- string is not kept); an empty key is refused with nil, EMPTY_KEY, as the
-- seed's NewSigner returns an error. The clock is s.now (Unix seconds,
-- os.time by default), replaceable for tests or given as opts.now.
local core = require "lowbit.core"
local errors = require "lowbit.errors"
local url = require "lowbit.url"

local ffi = core.ffi
local C = core.C

local M = {}

local type, error, tostring, tonumber, setmetatable =
  type, error, tostring, tonumber, setmetatable
local floor = math.floor
local format, find = string.format, string.find
local ffi_string, ffi_gc = ffi.string, ffi.gc

M.EXPIRED = errors.new("urlsign: URL expired")
M.INVALID_SIG = errors.new("urlsign: invalid signature")
M.MISSING_PARAMS = errors.new("urlsign: missing exp or sig parameter")
M.EMPTY_KEY = errors.new("urlsign: empty key")
M.INVALID_TTL = errors.new("urlsign: ttl must be a positive number of seconds")
M.INVALID_URL = errors.new("urlsign: invalid URL")

local Signer = {}
Signer.__index = Signer
M.Signer = Signer

--- A signer with key (string, copied into the C keyed state) and ttl
--- (seconds > 0). opts.now: the clock (Unix seconds). Returns the signer,
--- or nil, EMPTY_KEY / INVALID_TTL. Wrong argument types raise.
function M.new_signer(key, ttl, opts)
  if type(key) ~= "string" then error("bad argument 'key' to urlsign.new_signer: string expected, got " .. type(key), 2) end
  if type(ttl) ~= "number" then error("bad argument 'ttl' to urlsign.new_signer: number expected, got " .. type(ttl), 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument 'opts' to urlsign.new_signer: table or nil expected, got " .. type(opts), 2)
  end
  local now = opts and opts.now or os.time
  if type(now) ~= "function" then
    error("bad argument 'opts.now' to urlsign.new_signer: function expected, got " .. type(now), 2)
  end
  if #key == 0 then return nil, M.EMPTY_KEY end
  if not (ttl > 0) or ttl == math.huge then return nil, M.INVALID_TTL end
  local h = C.lb_hmac_new(key, #key)
  if h == nil then return nil, errors.new("urlsign: cannot create the HMAC state (out of memory)") end
  ffi_gc(h, C.lb_hmac_free)
  return setmetatable({
    h = h, ttl = ttl, now = now,
    parts = ffi.new("lb_hmac_part[7]"),
    mac = ffi.new("uint8_t[32]"), hex = ffi.new("char[64]"),
    -- lb_urlsign scratch: sized for URLs of up to cap bytes, grown on demand.
    cap = -1, work = nil, work_len = 0, out = nil, out_len = 0,
    expd = ffi.new("double[1]"), exp_t = nil, exp_s = nil,
  }, Signer)
end

local MAX_EXP_LEN = 40 -- room for the exp digits in the out buffer
-- Longer inputs take the general path, so one odd request does not leave
-- megabytes of scratch in the signer.
local MAX_FAST = 65536

-- Makes the lb_urlsign buffers big enough for an input of n bytes.
local function reserve(s, n)
  local cap = s.cap * 2
  if cap < n then cap = n end
  if cap < 256 then cap = 256 end
  s.work_len = tonumber(C.lb_urlsign_work_len(cap + MAX_EXP_LEN))
  s.out_len = tonumber(C.lb_urlsign_sign_max_len(cap, MAX_EXP_LEN))
  s.work = ffi.new("char[?]", s.work_len)
  s.out = ffi.new("char[?]", s.out_len)
  s.cap = cap
end

-- exp for a URL signed now: the clock is read once per sign; the string is
-- kept while the second does not change.
local function exp_now(s)
  local t = floor(s.now() + s.ttl)
  if t ~= s.exp_t then s.exp_t, s.exp_s = t, format("%d", t) end
  return s.exp_s
end

-- Fills the 7 message parts: host : path : exp : query. The strings are
-- kept alive by the caller's locals for the duration of the C call.
local function set_parts(s, host, path, exp, query)
  local parts = s.parts
  parts[0].ptr, parts[0].len = host, #host
  parts[1].ptr, parts[1].len = ":", 1
  parts[2].ptr, parts[2].len = path, #path
  parts[3].ptr, parts[3].len = ":", 1
  parts[4].ptr, parts[4].len = exp, #exp
  parts[5].ptr, parts[5].len = ":", 1
  parts[6].ptr, parts[6].len = query, #query
  return parts
end

--- The MAC message for the given pieces (for tests and other languages).
function M.message(host, path, exp, canonical_query)
  for i, name in ipairs({ "host", "path", "exp", "canonical_query" }) do
    local v = select(i, host, path, exp, canonical_query)
    if type(v) ~= "string" then
      error(("bad argument '%s' to urlsign.message: string expected, got %s"):format(name, type(v)), 2)
    end
  end
  return host .. ":" .. path .. ":" .. exp .. ":" .. canonical_query
end

--- The hex signature of host, path, exp (string) and canonical query.
function Signer:signature(host, path, exp, query)
  for i, name in ipairs({ "host", "path", "exp", "query" }) do
    local v = select(i, host, path, exp, query)
    if type(v) ~= "string" then
      error(("bad argument '%s' to signer:signature: string expected, got %s"):format(name, type(v)), 2)
    end
  end
  local parts = set_parts(self, host, path, exp, query)
  local rc = C.lb_hmac_sha256_parts(self.h, parts, 7, self.mac)
  if rc ~= 0 then error("urlsign: HMAC failed: " .. core.strerror(rc), 2) end
  C.lb_hex_encode(self.mac, 32, self.hex)
  return ffi_string(self.hex, 64)
end

-- Canonical query: the parsed values without exp and sig, encoded sorted.
-- Deletes exp and sig from values (a fresh parse_query result).
local function canonical(values)
  return values:del("exp"):del("sig"):encode()
end
M._canonical = canonical

-- The general path (lowbit.url): every URL the C core leaves to it.
local function sign_lua(self, raw_url, exp)
  local u, perr = url.parse(raw_url)
  if not u then return nil, errors.wrap(M.INVALID_URL, "%s", tostring(perr)) end
  local values, qerr = url.parse_query(u.raw_query)
  if qerr then return nil, errors.wrap(M.INVALID_URL, "%s", tostring(qerr)) end
  local sig = self:signature(u.host, u.path, exp, canonical(values))
  values:set("exp", exp)
  values:set("sig", sig)
  u.raw_query = url.encode_query(values)
  u.force_query = false
  return u:string()
end

--- Signs raw_url: returns it with exp and sig added (any exp or sig it had
--- is replaced), or nil, err for a URL that does not parse.
---
--- One C call (lb_urlsign_sign) parses, canonicalizes, MACs and rebuilds a
--- plain URL; the C core refuses what it does not handle exactly as
--- lowbit.url (userinfo, fragments, odd hosts, bad escapes, > 64 pairs...),
--- and those take the general path above, so results never differ.
function Signer:sign(raw_url)
  if type(raw_url) ~= "string" then error("bad argument 'url' to signer:sign: string expected, got " .. type(raw_url), 2) end
  local exp = exp_now(self)
  local n = #raw_url
  if n > self.cap then
    if n > MAX_FAST then return sign_lua(self, raw_url, exp) end
    reserve(self, n)
  end
  local r = C.lb_urlsign_sign(self.h, raw_url, n, exp, #exp, self.work, self.work_len, self.out, self.out_len)
  if r >= 0 then return ffi_string(self.out, r) end
  return sign_lua(self, raw_url, exp)
end

local function verify_parts(self, host, path, raw_query)
  local values, qerr = url.parse_query(raw_query)
  local exps, sigs = values:values("exp"), values:values("sig")
  if not exps[1] or not sigs[1] or exps[1] == "" or sigs[1] == "" then return nil, M.MISSING_PARAMS end
  if qerr then return nil, errors.wrap(M.INVALID_SIG, "malformed query: %s", tostring(qerr)) end
  if #exps > 1 or #sigs > 1 then return nil, errors.wrap(M.INVALID_SIG, "exp or sig repeated") end
  local exp, sig = exps[1], sigs[1]
  local query = canonical(values)
  local parts = set_parts(self, host, path, exp, query)
  local ok = C.lb_hmac_verify_hex(self.h, parts, 7, sig, #sig)
  if ok ~= 1 then
    if ok < 0 then error("urlsign: HMAC failed: " .. core.strerror(ok), 3) end
    return nil, M.INVALID_SIG
  end
  -- Authentic: exp is what we signed (digits), so it parses.
  local e = find(exp, "^%d+$") and tonumber(exp)
  if not e then return nil, errors.wrap(M.INVALID_SIG, "malformed exp") end
  if self.now() > e then return nil, M.EXPIRED end
  return true
end

-- The outcome of lb_urlsign_verify* (r >= 0) as verify returns it.
local function fast_result(self, r)
  if r == 0 then
    if self.now() > self.expd[0] then return nil, M.EXPIRED end
    return true
  end
  if r == 1 then return nil, M.INVALID_SIG end
  if r == 2 then return nil, M.MISSING_PARAMS end
  if r == 3 then return nil, errors.wrap(M.INVALID_SIG, "exp or sig repeated") end
  return nil, errors.wrap(M.INVALID_SIG, "malformed exp")
end

local function verify_lua(self, raw_url)
  local u, perr = url.parse(raw_url)
  if not u then return nil, errors.wrap(M.INVALID_URL, "%s", tostring(perr)) end
  return verify_parts(self, u.host, u.path, u.raw_query)
end

--- Verifies a signed URL: true, or nil, EXPIRED | INVALID_SIG |
--- MISSING_PARAMS (INVALID_URL when it does not parse). One C call
--- (lb_urlsign_verify) for plain URLs, the general path for the rest.
function Signer:verify(raw_url)
  if type(raw_url) ~= "string" then error("bad argument 'url' to signer:verify: string expected, got " .. type(raw_url), 2) end
  local n = #raw_url
  if n > self.cap then
    if n > MAX_FAST then return verify_lua(self, raw_url) end
    reserve(self, n)
  end
  local r = C.lb_urlsign_verify(self.h, raw_url, n, self.work, self.work_len, self.expd)
  if r >= 0 then return fast_result(self, r) end
  return verify_lua(self, raw_url)
end

--- Verifies a lowbit.http request: host from r.host, path and query from
--- r.url. Same results as verify.
function Signer:verify_request(r)
  if type(r) ~= "table" or type(r.url) ~= "table" then
    error("bad argument 'r' to signer:verify_request: request expected, got " .. type(r), 2)
  end
  local host = r.host
  if type(host) ~= "string" then host = r.url.host or "" end
  local path, query = r.url.path or "", r.url.raw_query or ""
  local n = #host + #path + #query
  if n > self.cap then
    if n > MAX_FAST then return verify_parts(self, host, path, query) end
    reserve(self, n)
  end
  local rc = C.lb_urlsign_verify_parts(self.h, host, #host, path, #path, query, #query,
    self.work, self.work_len, self.expd)
  if rc >= 0 then return fast_result(self, rc) end
  return verify_parts(self, host, path, query)
end

-- The general (Lua) paths, for the differential spec.
function M._sign_lua(s, raw_url) return sign_lua(s, raw_url, exp_now(s)) end
M._verify_lua = verify_lua
M._verify_parts_lua = verify_parts

--- Raw HMAC-SHA256 (hex) of msg with the signer's key (benchmarks, tests).
function Signer:hmac_hex(msg)
  if type(msg) ~= "string" then error("bad argument 'msg' to signer:hmac_hex: string expected, got " .. type(msg), 2) end
  local rc = C.lb_hmac_sha256(self.h, msg, #msg, self.mac)
  if rc ~= 0 then error("urlsign: HMAC failed", 2) end
  C.lb_hex_encode(self.mac, 32, self.hex)
  return ffi_string(self.hex, 64)
end

function Signer:__tostring() return format("urlsign signer (ttl %gs)", self.ttl) end

return M
