-- lowbit.problemjson: RFC 9457 problem details (application/problem+json)
-- as handlers.
--
--   local pj = require "lowbit.problemjson"
--   m:handle("GET /healthz", pj.service_unavailable())       -- a problem is a handler
--   pj.not_found(pj.detailf("user %d does not exist", id)):serve_http(w, r)
--
--   local OUT_OF_STOCK = pj.not_found{ title = "Product not available" }
--   pj.from(OUT_OF_STOCK, { detailf = { "product %q is out of stock", id },
--                           with = { sku = id } }):serve_http(w, r)
--
--   local ok, err = p:write(w)                    -- when there is no request
--   if not ok and errors.is(err, pj.MARSHALLING_FAILED) then ... end  -- nothing sent yet
--
-- Options. Every constructor takes any number of option tables, applied in
-- order (later scalars win, extensions accumulate), so Go's functional
-- options map to either one table or helper calls:
--   status   HTTP status, integer 100..599 (new(): default 500)
--   type     URI reference; unset means "about:blank" and is left out
--   title    default: the status's reason phrase
--   detail   string; detailf = { fmt, ... } formats it (not both in one table)
--   instance URI reference; serve_http uses r.url.path when it is unset
--   with     extensions: { name = value, ... } (names sorted, since Lua
--            tables have no order) or { {"name", value}, ... } (in order);
--            setting a name twice keeps its first position
--   err      sets the extension "reason" to tostring(err)
-- Helpers returning option tables: detailf(fmt, ...), with(name, value),
-- title(s), detail(s), instance(s), type_uri(s), status(n), err(e).
--
-- Extension names must start with a letter, use letters, digits and "_",
-- and be 3+ characters (RFC 9457 3.2); the standard member names raise.
-- Values: strings (any bytes: control characters are escaped, invalid
-- UTF-8 becomes U+FFFD), finite numbers, booleans, problemjson.null or
-- cjson.null, and tables: keys 1..n exactly make an array, string keys make
-- an object (members sorted by name), an empty table is {} unless made with
-- problemjson.array(). NaN, infinities, cycles, mixed or sparse tables,
-- functions and userdata fail the write with MARSHALLING_FAILED. Values are
-- deep-copied when set, so a problem never changes after construction and
-- from() never touches its base.
local errors = require "lowbit.errors"
local buffer = require "string.buffer"

local M = {}

local type, error, tostring, tonumber, pairs, ipairs, next, select, setmetatable, getmetatable, pcall =
  type, error, tostring, tonumber, pairs, ipairs, next, select, setmetatable, getmetatable, pcall
local find, sub, byte, format, match = string.find, string.sub, string.byte, string.format, string.match
local sort, maxn = table.sort, table.maxn
local floor, huge = math.floor, math.huge
local unpack = unpack or table.unpack

M.MARSHALLING_FAILED = errors.new("problemjson: failed marshalling")
M.WRITING_FAILED = errors.new("problemjson: failed writing")
M.CONTENT_TYPE = "application/problem+json"

--- JSON null for extension values (cjson.null works too).
M.null = setmetatable({}, { __tostring = function() return "problemjson.null" end, __newindex = function()
  error("problemjson.null is read-only", 2)
end })
local NULL = M.null

local ARRAY_MT = { __name = "problemjson.array" }
--- Marks t (default a new table) as a JSON array, so that an empty one
--- encodes as [] rather than {}.
function M.array(t)
  if t ~= nil and type(t) ~= "table" then error("bad argument 't' to problemjson.array: table expected, got " .. type(t), 2) end
  return setmetatable(t or {}, ARRAY_MT)
end

---------------------------------------------------------------------------
-- Status codes
---------------------------------------------------------------------------

local STATUS = {
  { 400, "bad_request", "Bad Request" },
  { 401, "unauthorized", "Unauthorized" },
  { 402, "payment_required", "Payment Required" },
  { 403, "forbidden", "Forbidden" },
  { 404, "not_found", "Not Found" },
  { 405, "method_not_allowed", "Method Not Allowed" },
  { 406, "not_acceptable", "Not Acceptable" },
  { 407, "proxy_authentication_required", "Proxy Authentication Required" },
  { 408, "request_timeout", "Request Timeout" },
  { 409, "conflict", "Conflict" },
  { 410, "gone", "Gone" },
  { 411, "length_required", "Length Required" },
  { 412, "precondition_failed", "Precondition Failed" },
  { 413, "content_too_large", "Content Too Large", "payload_too_large" },
  { 414, "uri_too_long", "URI Too Long" },
  { 415, "unsupported_media_type", "Unsupported Media Type" },
  { 416, "range_not_satisfiable", "Range Not Satisfiable" },
  { 417, "expectation_failed", "Expectation Failed" },
  { 418, "teapot", "I'm a teapot" },
  { 421, "misdirected_request", "Misdirected Request" },
  { 422, "unprocessable_content", "Unprocessable Content", "unprocessable_entity" },
  { 423, "locked", "Locked" },
  { 424, "failed_dependency", "Failed Dependency" },
  { 425, "too_early", "Too Early" },
  { 426, "upgrade_required", "Upgrade Required" },
  { 428, "precondition_required", "Precondition Required" },
  { 429, "too_many_requests", "Too Many Requests" },
  { 431, "request_header_fields_too_large", "Request Header Fields Too Large" },
  { 451, "unavailable_for_legal_reasons", "Unavailable For Legal Reasons" },
  { 500, "internal_server_error", "Internal Server Error" },
  { 501, "not_implemented", "Not Implemented" },
  { 502, "bad_gateway", "Bad Gateway" },
  { 503, "service_unavailable", "Service Unavailable" },
  { 504, "gateway_timeout", "Gateway Timeout" },
  { 505, "http_version_not_supported", "HTTP Version Not Supported" },
  { 506, "variant_also_negotiates", "Variant Also Negotiates" },
  { 507, "insufficient_storage", "Insufficient Storage" },
  { 508, "loop_detected", "Loop Detected" },
  { 510, "not_extended", "Not Extended" },
  { 511, "network_authentication_required", "Network Authentication Required" },
}

local STATUS_TEXT = {}
for _, s in ipairs(STATUS) do STATUS_TEXT[s[1]] = s[3] end

--- The reason phrase of a 4xx/5xx status (RFC 9110 wording), or nil.
function M.status_text(code) return STATUS_TEXT[code] end

---------------------------------------------------------------------------
-- JSON encoding (deterministic; no dependency)
---------------------------------------------------------------------------

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
for c = 0, 31 do
  local ch = string.char(c)
  if not ESC[ch] then ESC[ch] = format("\\u%04x", c) end
end
ESC["\127"] = "\\u007f"

local SPECIAL = '[%z\1-\31"\\\127-\255]'

-- Length of the valid UTF-8 sequence at i, or nil when it is invalid
-- (overlong forms, surrogates and code points past U+10FFFF are invalid).
local function utf8_len(s, i, c)
  local c1 = byte(s, i + 1)
  if c >= 0xC2 and c <= 0xDF then
    if c1 and c1 >= 0x80 and c1 <= 0xBF then return 2 end
    return nil
  end
  local lo, hi = 0x80, 0xBF
  if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F
  elseif c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
  if c >= 0xE0 and c <= 0xEF then
    local c2 = byte(s, i + 2)
    if c1 and c1 >= lo and c1 <= hi and c2 and c2 >= 0x80 and c2 <= 0xBF then return 3 end
    return nil
  end
  if c >= 0xF0 and c <= 0xF4 then
    local c2, c3 = byte(s, i + 2, i + 3)
    if c1 and c1 >= lo and c1 <= hi and c2 and c2 >= 0x80 and c2 <= 0xBF and c3 and c3 >= 0x80 and c3 <= 0xBF then
      return 4
    end
  end
  return nil
end

local function put_string(buf, s)
  if not find(s, SPECIAL) then
    buf:put('"', s, '"')
    return
  end
  buf:put('"')
  local i, n = 1, #s
  while i <= n do
    local j = find(s, SPECIAL, i)
    if not j then buf:put(sub(s, i)); break end
    if j > i then buf:put(sub(s, i, j - 1)) end
    local c = byte(s, j)
    if c < 0x80 then
      buf:put(ESC[sub(s, j, j)])
      i = j + 1
    else
      local len = utf8_len(s, j, c)
      if len then
        buf:put(sub(s, j, j + len - 1))
        i = j + len
      else
        buf:put("\\ufffd")
        i = j + 1
      end
    end
  end
  buf:put('"')
end

local MAX_DEPTH = 100

local function cjson_mod()
  return package.loaded["cjson"] or package.loaded["cjson.safe"]
end

local put_value

local function put_table(buf, t, visiting, depth)
  if visiting[t] then return nil, "cycle in value" end
  if depth > MAX_DEPTH then return nil, "value nested deeper than " .. MAX_DEPTH end
  local mt = getmetatable(t)
  local cj = cjson_mod()
  local as_array = mt == ARRAY_MT or (cj ~= nil and mt ~= nil and (mt == cj.array_mt or mt == cj.empty_array_mt))
  local count, maxk, strkeys = 0, 0, false
  for k in pairs(t) do
    local kt = type(k)
    if kt == "number" and k >= 1 and k == floor(k) then
      count = count + 1
      if k > maxk then maxk = k end
    elseif kt == "string" then
      strkeys = true
    else
      return nil, "table key of type " .. kt .. " (" .. tostring(k) .. ")"
    end
  end
  visiting[t] = true
  if count > 0 or as_array then
    if strkeys then visiting[t] = nil; return nil, "table mixes array items and named members" end
    if maxk ~= count then visiting[t] = nil; return nil, "sparse array" end
    buf:put("[")
    for i = 1, count do
      if i > 1 then buf:put(",") end
      local ok, err = put_value(buf, t[i], visiting, depth + 1)
      if not ok then visiting[t] = nil; return nil, err end
    end
    buf:put("]")
  else
    local keys, n = {}, 0
    for k in pairs(t) do n = n + 1; keys[n] = k end
    sort(keys)
    buf:put("{")
    for i = 1, n do
      if i > 1 then buf:put(",") end
      local k = keys[i]
      put_string(buf, k)
      buf:put(":")
      local ok, err = put_value(buf, t[k], visiting, depth + 1)
      if not ok then visiting[t] = nil; return nil, err end
    end
    buf:put("}")
  end
  visiting[t] = nil
  return true
end

local function put_number(buf, v)
  if v ~= v then return nil, "NaN is not a JSON number" end
  if v == huge or v == -huge then return nil, "infinity is not a JSON number" end
  if v == floor(v) and v > -2^53 and v < 2^53 then
    buf:put(format("%d", v))
  else
    local s = format("%.14g", v)
    if tonumber(s) ~= v then s = format("%.17g", v) end
    buf:put(s)
  end
  return true
end

put_value = function(buf, v, visiting, depth)
  local t = type(v)
  if t == "string" then put_string(buf, v); return true end
  if t == "number" then return put_number(buf, v) end
  if t == "boolean" then buf:put(v and "true" or "false"); return true end
  if v == NULL then buf:put("null"); return true end
  if t == "table" then return put_table(buf, v, visiting, depth) end
  if t == "userdata" then
    local cj = cjson_mod()
    if cj ~= nil and v == cj.null then buf:put("null"); return true end
    if cj ~= nil and v == cj.empty_array then buf:put("[]"); return true end
  end
  if t == "cdata" then
    local s = tostring(v)
    local digits = match(s, "^(%-?%d+)U?LL$")
    if digits then buf:put(digits); return true end
  end
  if t == "nil" then buf:put("null"); return true end
  return nil, "cannot encode a value of type " .. t
end

--- Encodes any value as JSON with the same rules as extension values
--- (returns string or nil, reason).
function M.encode_value(v)
  local buf = buffer.new()
  local ok, err = put_value(buf, v, {}, 1)
  if not ok then return nil, err end
  return buf:tostring()
end

---------------------------------------------------------------------------
-- Problems
---------------------------------------------------------------------------

local Problem = {}
Problem.__index = Problem
M.Problem = Problem

local STANDARD = { type = true, status = true, title = true, detail = true, instance = true }

local function deep_copy(v, seen)
  if type(v) ~= "table" or v == NULL then return v end
  local c = seen[v]
  if c then return c end
  c = {}
  seen[v] = c
  for k, x in pairs(v) do c[deep_copy(k, seen)] = deep_copy(x, seen) end
  local mt = getmetatable(v)
  if mt ~= nil then setmetatable(c, mt) end
  return c
end

local function check_ext_name(name, where)
  if type(name) ~= "string" then
    error(format("bad argument '%s': extension name must be a string, got %s", where, type(name)), 5)
  end
  if STANDARD[name] then
    error(format("bad argument '%s': extension %q collides with the standard member %q", where, name, name), 5)
  end
  if not find(name, "^%a[%w_][%w_]+$") then
    error(format("bad argument '%s': extension name %q must start with a letter, use letters, digits and '_', and be 3+ characters",
      where, name), 5)
  end
end

local function set_ext(p, name, value, seen)
  local ext = p._ext
  if ext[name] == nil then
    local keys = p._keys
    keys[#keys + 1] = name
  end
  ext[name] = deep_copy(value, seen)
end

local OPTION = { status = true, type = true, title = true, detail = true, detailf = true, instance = true, with = true, err = true }

local function check_string(v, what)
  if v ~= nil and type(v) ~= "string" then
    error(format("bad argument '%s': string expected, got %s", what, type(v)), 5)
  end
end

local function apply(p, opts, fname)
  if opts == nil then return end
  if type(opts) ~= "table" then
    error(format("bad argument 'opts' to problemjson.%s: table expected, got %s", fname, type(opts)), 4)
  end
  for k in pairs(opts) do
    if not OPTION[k] then
      error(format("bad argument 'opts' to problemjson.%s: unknown option %q", fname, tostring(k)), 4)
    end
  end
  local st = opts.status
  if st ~= nil then
    if type(st) ~= "number" or st ~= floor(st) or st < 100 or st > 599 then
      error(format("bad argument 'opts.status' to problemjson.%s: integer 100..599 expected, got %s", fname, tostring(st)), 4)
    end
    p.status = st
    if p._auto_title then p.title = STATUS_TEXT[st] end
  end
  check_string(opts.type, "opts.type")
  check_string(opts.title, "opts.title")
  check_string(opts.detail, "opts.detail")
  check_string(opts.instance, "opts.instance")
  if opts.type ~= nil then p.type = opts.type end
  if opts.title ~= nil then p.title = opts.title; p._auto_title = false end
  if opts.detail ~= nil then p.detail = opts.detail end
  local df = opts.detailf
  if df ~= nil then
    if opts.detail ~= nil then
      error(format("bad argument 'opts' to problemjson.%s: detail and detailf both given", fname), 4)
    end
    if type(df) ~= "table" or type(df[1]) ~= "string" then
      error(format("bad argument 'opts.detailf' to problemjson.%s: { fmt, ... } expected", fname), 4)
    end
    local ok, s = pcall(format, unpack(df, 1, df.n or maxn(df)))
    if not ok then error(format("bad argument 'opts.detailf' to problemjson.%s: %s", fname, s), 4) end
    p.detail = s
  end
  if opts.instance ~= nil then p.instance = opts.instance end
  local with = opts.with
  if with ~= nil then
    if type(with) ~= "table" then
      error(format("bad argument 'opts.with' to problemjson.%s: table expected, got %s", fname, type(with)), 4)
    end
    local seen = {}
    local n = #with
    for i = 1, n do
      local pair = with[i]
      if type(pair) ~= "table" then
        error(format("bad argument 'opts.with[%d]' to problemjson.%s: {name, value} expected, got %s", i, fname, type(pair)), 4)
      end
      check_ext_name(pair[1], format("opts.with[%d]", i))
    end
    local names = {}
    for k in pairs(with) do
      if not (type(k) == "number" and k >= 1 and k <= n and k == floor(k)) then
        check_ext_name(k, "opts.with")
        names[#names + 1] = k
      end
    end
    sort(names)
    for i = 1, n do
      local pair = with[i]
      local v = pair[2]
      if v == nil then
        error(format("bad argument 'opts.with[%d]' to problemjson.%s: value of %q is nil (use problemjson.null)", i, fname, pair[1]), 4)
      end
      set_ext(p, pair[1], v, seen)
    end
    for i = 1, #names do set_ext(p, names[i], with[names[i]], seen) end
  end
  if opts.err ~= nil then set_ext(p, "reason", tostring(opts.err), {}) end
end

local function build(p, fname, ...)
  for i = 1, select("#", ...) do apply(p, (select(i, ...)), fname) end
  return p
end

local function blank(status)
  return setmetatable({ status = status, title = STATUS_TEXT[status], _auto_title = true, _keys = {}, _ext = {} }, Problem)
end

--- A problem; status defaults to 500, title to the status's reason phrase.
function M.new(...)
  return build(blank(500), "new", ...)
end

for _, s in ipairs(STATUS) do
  local code, name = s[1], s[2]
  local function ctor(...) return build(blank(code), name, ...) end
  M[name] = ctor
  if s[4] then M[s[4]] = ctor end
end

M.is_problem = function(v) return getmetatable(v) == Problem end

--- A copy of base (extensions deep-copied) with opts applied; base is
--- never modified.
function M.from(base, ...)
  if getmetatable(base) ~= Problem then
    error("bad argument 'base' to problemjson.from: problem expected, got " .. type(base), 2)
  end
  local p = setmetatable({
    status = base.status, type = base.type, title = base.title, detail = base.detail,
    instance = base.instance, _auto_title = base._auto_title, _keys = {}, _ext = {},
  }, Problem)
  local seen = {}
  for i = 1, #base._keys do
    local k = base._keys[i]
    p._keys[i] = k
    p._ext[k] = deep_copy(base._ext[k], seen)
  end
  return build(p, "from", ...)
end

-- Option helpers (Go's functional options as option tables).
function M.detailf(fmt, ...)
  if type(fmt) ~= "string" then error("bad argument 'fmt' to problemjson.detailf: string expected, got " .. type(fmt), 2) end
  return { detail = format(fmt, ...) }
end
function M.with(name, value)
  if value == nil then error("bad argument 'value' to problemjson.with: nil (use problemjson.null)", 2) end
  return { with = { { name, value } } }
end
function M.title(s) return { title = s } end
function M.detail(s) return { detail = s } end
function M.instance(s) return { instance = s } end
function M.type_uri(s) return { type = s } end
function M.status(n) return { status = n } end
function M.err(e) return { err = e } end

--- The type URI ("about:blank" when unset).
function Problem:type_uri() return self.type or "about:blank" end

--- The value of extension name (do not modify it), or nil.
function Problem:extension(name) return self._ext[name] end

--- The extension names in output order (a new array).
function Problem:extension_names()
  local t = {}
  for i = 1, #self._keys do t[i] = self._keys[i] end
  return t
end

local function encode(p, instance)
  local buf = buffer.new()
  local first = true
  local function member(name)
    if first then first = false; buf:put("{") else buf:put(",") end
    buf:put('"', name, '":')
  end
  if p.type ~= nil then member("type"); put_string(buf, p.type) end
  if p.status ~= nil then member("status"); buf:put(format("%d", p.status)) end
  if p.title ~= nil then member("title"); put_string(buf, p.title) end
  if p.detail ~= nil then member("detail"); put_string(buf, p.detail) end
  instance = p.instance or instance
  if instance ~= nil then member("instance"); put_string(buf, instance) end
  local keys, ext = p._keys, p._ext
  for i = 1, #keys do
    local k = keys[i]
    member(k)
    local ok, err = put_value(buf, ext[k], {}, 1)
    if not ok then
      return nil, errors.with_kind(M.MARSHALLING_FAILED, nil, "extension %q: %s", k, err)
    end
  end
  if first then buf:put("{") end
  buf:put("}")
  return buf:tostring()
end

--- The JSON document, or nil, err (err matches MARSHALLING_FAILED).
function Problem:encode() return encode(self) end

local function write(p, w, instance)
  local body, err = encode(p, instance)
  if not body then return nil, err end
  local ok, e = pcall(function()
    w:header():set("Content-Type", M.CONTENT_TYPE)
    w:write_header(p.status or 500)
  end)
  if not ok then return nil, errors.with_kind(M.WRITING_FAILED, e) end
  local ok2, n, e2 = pcall(w.write, w, body)
  if not ok2 then return nil, errors.with_kind(M.WRITING_FAILED, n) end
  if n == nil or n == false then return nil, errors.with_kind(M.WRITING_FAILED, e2 or "write failed") end
  return true
end

--- Writes the problem to w (Content-Type, status, JSON body). Returns true,
--- or nil, err: MARSHALLING_FAILED when an extension cannot be encoded
--- (nothing was sent; a fallback is possible), WRITING_FAILED when the
--- writer failed (the status may already be out).
function Problem:write(w) return write(self, w) end

--- Handler: writes the problem with `instance` set to r.url.path when it
--- is unset (p itself is not changed). If an extension cannot be encoded,
--- it sends a 500 problem instead (without extensions); writing failures
--- are swallowed (nothing more can be sent). Call write() to see them.
function Problem:serve_http(w, r)
  local inst = self.instance
  if inst == nil and r ~= nil and r.url ~= nil then inst = r.url.path end
  local ok, err = write(self, w, inst)
  if not ok and errors.is(err, M.MARSHALLING_FAILED) then
    local fb = blank(500)
    fb.detail = "the problem details could not be encoded"
    write(fb, w, inst)
  end
end

Problem.__call = Problem.serve_http

function Problem:__tostring()
  local s = tostring(self.status) .. " " .. (self.title or "")
  if self.detail then s = s .. ": " .. self.detail end
  return s
end

--- Reads a problem document (a consumer's view): members of the wrong type
--- are ignored, unknown members are kept as extensions (names sorted).
--- Needs lua-cjson. Returns a problem or nil, err.
function M.parse(s)
  if type(s) ~= "string" then error("bad argument 's' to problemjson.parse: string expected, got " .. type(s), 2) end
  local ok, cjson = pcall(require, "cjson.safe")
  if not ok then return nil, errors.new("problemjson.parse needs lua-cjson") end
  local doc, err = cjson.decode(s)
  if doc == nil then return nil, errors.new("problemjson: invalid JSON: " .. tostring(err)) end
  if type(doc) ~= "table" or (next(doc) ~= nil and doc[1] ~= nil) then
    return nil, errors.new("problemjson: a problem document must be a JSON object")
  end
  local p = setmetatable({ _auto_title = false, _keys = {}, _ext = {} }, Problem)
  local st = doc.status
  if type(st) == "number" and st == floor(st) and st >= 100 and st <= 599 then p.status = st end
  for _, k in ipairs({ "type", "title", "detail", "instance" }) do
    if type(doc[k]) == "string" then p[k] = doc[k] end
  end
  local names = {}
  for k in pairs(doc) do
    if type(k) == "string" and not STANDARD[k] then names[#names + 1] = k end
  end
  sort(names)
  for i = 1, #names do set_ext(p, names[i], doc[names[i]], {}) end
  return p
end

return M
