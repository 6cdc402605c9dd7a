-- lowbit.errors: error values with Go's semantics.
--
--   local E = errors.new("not found")          -- a sentinel
--   local err = errors.wrap(E, "user %d", 42)  -- "user 42: not found"
--   errors.is(err, E) --> true
--
-- Expected failures are returned as `nil, err`; an err is one of these
-- values (or, from foreign code, a plain string, which every function here
-- accepts). tostring(err) prints the whole chain.
local M = {}

local setmetatable, getmetatable, tostring, type, select = setmetatable, getmetatable, tostring, type, select
local format, concat = string.format, table.concat

local Error = {}
Error.__index = Error
Error.__tostring = function(e)
  if e.cause ~= nil then
    if e.msg == "" then return tostring(e.cause) end
    return e.msg .. ": " .. tostring(e.cause)
  end
  return e.msg
end
M.Error = Error

local Joined = {}
Joined.__index = Joined
Joined.__tostring = function(j)
  local parts = {}
  for i = 1, j.n do parts[i] = tostring(j[i]) end
  return concat(parts, "\n")
end

--- Returns a new distinct error value (a sentinel when kept in a module
--- field). Two errors made with the same text are still different.
function M.new(msg)
  if type(msg) ~= "string" then
    error("bad argument 'msg' to errors.new: string expected, got " .. type(msg), 2)
  end
  return setmetatable({ msg = msg }, Error)
end

--- Wraps err with context, like Go's fmt.Errorf("...: %w", err).
--- errors.wrap(nil, ...) returns nil, so `return errors.wrap(err, "x")` is
--- safe after a call that may or may not have failed.
function M.wrap(err, fmt, ...)
  if err == nil then return nil end
  if type(fmt) ~= "string" then
    error("bad argument 'fmt' to errors.wrap: string expected, got " .. type(fmt), 2)
  end
  local msg = select("#", ...) > 0 and format(fmt, ...) or fmt
  return setmetatable({ msg = msg, cause = err }, Error)
end

--- Makes an error that wraps `cause` and also matches `kind` with errors.is,
--- like Go's fmt.Errorf("%w: %w", kind, cause). Its text is
--- "<kind>: <cause>".
function M.with_kind(kind, cause, fmt, ...)
  local msg = fmt and (select("#", ...) > 0 and format(fmt, ...) or fmt) or nil
  local inner = cause
  if msg then inner = cause ~= nil and M.wrap(cause, msg) or M.new(msg) end
  if inner == nil then return kind end
  return setmetatable({ msg = tostring(kind), cause = inner, kind = kind }, Error)
end

--- Returns the error err wraps, or nil.
function M.unwrap(err)
  if type(err) == "table" and getmetatable(err) == Error then return err.cause end
  return nil
end

--- Joins errors, skipping nils: nil when all are nil, else a joined value
--- (even for one error, as Go's errors.Join) whose text has one line per
--- error; errors.list gives them back.
function M.join(...)
  local j, n = { n = 0 }, 0
  for i = 1, select("#", ...) do
    local e = select(i, ...)
    if e ~= nil then n = n + 1; j[n] = e end
  end
  if n == 0 then return nil end
  j.n = n
  return setmetatable(j, Joined)
end

--- Reports whether err or anything it wraps or joins is target. Plain
--- strings match equal strings. A value with an `is(self, target)` method
--- decides for itself.
local function is(err, target)
  while err ~= nil do
    if err == target then return true end
    if type(err) ~= "table" then return false end
    local mt = getmetatable(err)
    if mt == Joined then
      for i = 1, err.n do
        if is(err[i], target) then return true end
      end
      return false
    end
    if mt == Error then
      if err.kind ~= nil and is(err.kind, target) then return true end
      err = err.cause
    elseif type(err.is) == "function" then
      return err:is(target) and true or false
    else
      return false
    end
  end
  return false
end
M.is = is

--- The errors a joined error holds (an array), or nil for any other value.
function M.list(err)
  if type(err) == "table" and getmetatable(err) == Joined then
    local t = {}
    for i = 1, err.n do t[i] = err[i] end
    return t
  end
  return nil
end

--- True for values made by this module (new, wrap, join).
function M.is_error(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt == Error or mt == Joined
end

-- System error sentinels, one per libuv error name ("ECONNREFUSED"), made on
-- first use so errors.is(err, errors.sys("ECONNREFUSED")) works for every
-- I/O error lowbit returns.
local sys = {}
function M.sys(name)
  local e = sys[name]
  if e == nil then
    e = setmetatable({ msg = name, code = name }, Error)
    sys[name] = e
  end
  return e
end

--- Turns a luv error ("ECONNREFUSED: connection refused", "ECONNREFUSED")
--- into an error wrapping the sentinel errors.sys(name).
function M.from_uv(uverr, name, what)
  name = name or (type(uverr) == "string" and uverr:match("^(E%u+)")) or "EIO"
  local e = setmetatable({ msg = tostring(uverr), code = name, kind = M.sys(name) }, Error)
  if what then return M.wrap(e, what) end
  return e
end

M.EOF = M.new("EOF")
M.UNEXPECTED_EOF = M.new("unexpected EOF")
M.CLOSED = M.new("use of closed connection")
M.TIMEOUT = M.new("i/o timeout")

return M
