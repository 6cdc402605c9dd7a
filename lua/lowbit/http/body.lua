-- lowbit.http.body: the streaming body reader shared by the server (request
-- bodies) and the client (response bodies). Framing comes from the C core:
-- a length, chunked (decoded by lb_http1_chunked_decode), or until close.
--
--   body:read(n)          -> up to n bytes | nil, errors.EOF | nil, err
--   body:read_all(limit)  -> the rest as one string | nil, BODY_TOO_LARGE
--   body:close()          -> stops reading (the rest is discarded)
local core = require "lowbit.core"
local errors = require "lowbit.errors"

local C, ffi = core.C, core.ffi
local ffi_string = ffi.string
local concat = table.concat

local M = {}

M.NONE, M.LENGTH, M.CHUNKED, M.CLOSE = 0, 1, 2, 3

M.BODY_TOO_LARGE = errors.new("http: body too large")
M.BODY_CLOSED = errors.new("http: read on closed body")
M.BAD_CHUNKED = errors.new("http: invalid chunked encoding")

local EOF, UNEXPECTED_EOF = errors.EOF, errors.UNEXPECTED_EOF

local data_p = ffi.new("const char *[1]")
local data_n = ffi.new("size_t[1]")

local buffer = require "string.buffer"

-- A byte source over a conn, what bodies (and the parsers before them)
-- read from: `ib` holds bytes read and not yet consumed, more() appends
-- what arrives next. For conns that expose their read buffer (TCP) ib is
-- that buffer itself, parsed in place without a copy.
local Source = {}
Source.__index = Source
M.Source = Source

function Source:more()
  local conn = self.conn
  if self.inplace then
    local b, err = conn:fill()
    if not b then return false, err end
    return true
  end
  local d, err = conn:read()
  if not d then return false, err end
  self.ib:put(d)
  return true
end

--- A Source over conn; `t` (optional) is a table to make into it, `mt`
--- (optional) its metatable instead of Source (one whose __index leads
--- to Source).
function M.new_source(conn, t, mt)
  t = t or {}
  local inplace = conn.fill ~= nil and conn.read_buffer ~= nil
  t.conn, t.inplace = conn, inplace
  t.ib = inplace and conn:read_buffer() or buffer.new()
  -- Not a tail call: a root trace of this function could not return
  -- through setmetatable (it aborted, "leaving loop in root trace").
  local s = setmetatable(t, mt or Source)
  return s
end

local Body = {}
Body.__index = Body
M.Body = Body

--- src is an object with `ib` (a string.buffer of bytes already read) and
--- a method more() that appends more bytes to ib (true | false, err).
--- kind is NONE/LENGTH/CHUNKED/CLOSE; length for LENGTH. opts: limit (max
--- bytes, nil = none), on_first_read(b) (called once before the first
--- read: 100-continue), on_done(b) (called once at EOF), data (any value
--- the hooks want, kept as b.data).
function M.new(src, kind, length, opts)
  local b = setmetatable({ src = src, kind = kind, remaining = length or 0, total = 0,
                           done = kind == M.NONE or (kind == M.LENGTH and (length or 0) == 0) }, Body)
  if opts then
    b.limit, b.on_first_read, b.on_done, b.data = opts.limit, opts.on_first_read, opts.on_done, opts.data
  end
  if kind == M.CHUNKED then b.ch = ffi.new("lb_http1_chunked") end
  if b.done and b.on_done then local f = b.on_done; b.on_done = nil; f(b) end
  return b
end

local function finish(b)
  b.done = true
  local f = b.on_done
  if f then b.on_done = nil; f(b) end
end

-- Reads more from the conn into ib. false, err at EOF or failure.
local function fill(b)
  return b.src:more()
end

local function account(b, s)
  local total = b.total + #s
  b.total = total
  if b.limit and total > b.limit then
    b.err = M.BODY_TOO_LARGE
    return nil, M.BODY_TOO_LARGE
  end
  return s
end

--- Up to n bytes (n nil: what is at hand), waiting for at least one.
function Body:read(n)
  if n ~= nil and (type(n) ~= "number" or n < 1) then
    error("bad argument 'n' to body:read: positive number or nil expected", 2)
  end
  if self.closed then return nil, M.BODY_CLOSED end
  if self.err then return nil, self.err end
  if self.done then return nil, EOF end
  local f = self.on_first_read
  if f then self.on_first_read = nil; f(self) end
  n = n or 65536
  local ib = self.src.ib
  local kind = self.kind
  if kind == M.LENGTH then
    if #ib == 0 then
      local ok, err = fill(self)
      if not ok then
        self.err = (err == EOF) and UNEXPECTED_EOF or err
        return nil, self.err
      end
    end
    local rem = self.remaining
    local take = n
    if take > rem then take = rem end
    local s = ib:get(take)
    rem = rem - #s
    self.remaining = rem
    if rem == 0 then finish(self) end
    return account(self, s)
  elseif kind == M.CHUNKED then
    local ch = self.ch
    while true do
      local p, len = ib:ref()
      if len > 0 then
        -- Feed at most n bytes: data reported is a subset of what is fed.
        local feed = len < n and len or n
        local r = C.lb_http1_chunked_decode(ch, p, feed, data_p, data_n)
        if r < 0 then
          self.err = errors.wrap(M.BAD_CHUNKED, "%s", core.strerror(tonumber(r)))
          return nil, self.err
        end
        local dn = tonumber(data_n[0])
        local s = dn > 0 and ffi_string(data_p[0], dn) or nil
        ib:skip(tonumber(r))
        if C.lb_http1_chunked_done(ch) ~= 0 then finish(self) end
        if s then return account(self, s) end
        if self.done then return nil, EOF end
        if r > 0 then goto continue end
      end
      do
        local ok, err = fill(self)
        if not ok then
          self.err = (err == EOF) and UNEXPECTED_EOF or err
          return nil, self.err
        end
      end
      ::continue::
    end
  else -- CLOSE: until the peer closes
    if #ib == 0 then
      local ok, err = fill(self)
      if not ok then
        if err == EOF then finish(self); return nil, EOF end
        self.err = err
        return nil, err
      end
    end
    return account(self, ib:get(n))
  end
end

--- The rest of the body as one string; nil, BODY_TOO_LARGE past limit
--- bytes (nil: no limit beyond the body's own).
function Body:read_all(limit)
  if limit ~= nil and type(limit) ~= "number" then
    error("bad argument 'limit' to body:read_all: number or nil expected", 2)
  end
  local parts, got = {}, 0
  while true do
    local s, err = self:read(65536)
    if not s then
      if err == EOF then return concat(parts) end
      return nil, err
    end
    got = got + #s
    if limit and got > limit then
      self.err = M.BODY_TOO_LARGE
      return nil, M.BODY_TOO_LARGE
    end
    parts[#parts + 1] = s
  end
end

--- Reads and drops up to max bytes of what is left; true when the body
--- ended within them.
function Body:discard(max)
  local left = max
  while not self.done do
    if self.err or self.closed then return false end
    local s = self:read(left < 65536 and left or 65536)
    if not s then return self.done end
    left = left - #s
    if left <= 0 then return self.done end
  end
  return true
end

--- Stops reading. Further reads return BODY_CLOSED.
function Body:close()
  if self.on_close then local f = self.on_close; self.on_close = nil; f(self) end
  self.closed = true
  return true
end

function Body:is_done() return self.done end

-- The body of a message that has none: every read is EOF. Shared.
local NoBody = setmetatable({ done = true, kind = M.NONE, total = 0 }, Body)
M.NO_BODY = NoBody
function NoBody.read() return nil, EOF end
function NoBody.read_all() return "" end
function NoBody.discard() return true end
function NoBody.close() return true end

return M
