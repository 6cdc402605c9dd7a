-- lowbit.beacon: UDP broadcast discovery, two calls.
--
--   -- seeker: broadcast a probe, take the first reply
--   local ctx, cancel = context.with_timeout(context.background(), 2)
--   local buf = string.buffer.new()
--   local n, addr = beacon.seek(ctx, "255.255.255.255:9999", "PING", buf)
--   cancel()
--   if not n then ... end            -- addr is the error; context.DEADLINE_EXCEEDED on timeout
--   print(addr, buf:tostring())       --> "192.168.1.50:9999"  "192.168.1.50:8080"
--
--   -- responder: reply to every valid probe until ctx ends
--   local err = beacon.serve(ctx, ":9999", string.buffer.new(),
--     function(probe) return probe == "PING" end, "192.168.1.50:8080")
--
-- Failures are wrapped with a sentinel (errors.with_kind, Go's "%w: %w"),
-- so errors.is matches both the sentinel and the network error inside:
-- INVALID_ADDR, LISTEN, WRITE_PROBE, READ_RESPONSE, READ_PROBE,
-- WRITE_REPLY. Context errors are never wrapped: when ctx ends, seek
-- returns nil, ctx:err() and serve returns ctx:err() as they are.
--
-- Addresses are "ip:port" with an IP literal (IPv4 or bracketed IPv6);
-- serve also takes ":port" (every IPv4 address). Neither call starts a
-- task: the socket waits with ctx on the caller's task and is closed before
-- the call returns, so nothing outlives it. Beacon does not retry, does not
-- collect several replies, and defines no probe format.
local net = require "lowbit.net"
local errors = require "lowbit.errors"
local context = require "lowbit.context"

local M = {}

local type, error, tonumber, pcall = type, error, tonumber, pcall

M.INVALID_ADDR = errors.new("beacon: invalid address")
M.LISTEN = errors.new("beacon: listen")
M.WRITE_PROBE = errors.new("beacon: write probe")
M.READ_RESPONSE = errors.new("beacon: read response")
M.READ_PROBE = errors.new("beacon: read probe")
M.WRITE_REPLY = errors.new("beacon: write reply")

local function argerr(fname, name, expected, v)
  error(("bad argument '%s' to %s: %s expected, got %s"):format(name, fname, expected, type(v)), 3)
end

local function is_buffer(b) return type(b) == "userdata" and type(b.put) == "function" and type(b.reset) == "function" end

-- Parses "ip:port" (host may be empty when allow_any). Returns host, port
-- or nil, err (an INVALID_ADDR error).
local function parse_addr(addr, allow_any)
  local host, port = net.split_host_port(addr)
  if not host then return nil, errors.with_kind(M.INVALID_ADDR, port) end
  if host == "" then
    if allow_any then return "0.0.0.0", port end
    return nil, errors.with_kind(M.INVALID_ADDR, errors.new(("missing host in %q"):format(addr)))
  end
  if host:find(":", 1, true) then
    if not host:match("^[%x:.]+$") then
      return nil, errors.with_kind(M.INVALID_ADDR, errors.new(("invalid IPv6 address %q"):format(host)))
    end
    return host, port
  end
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a or tonumber(a) > 255 or tonumber(b) > 255 or tonumber(c) > 255 or tonumber(d) > 255 then
    return nil, errors.with_kind(M.INVALID_ADDR, errors.new(("not an IP address: %q"):format(host)))
  end
  return host, port
end

local function bracket(host) return host:find(":", 1, true) and "[" .. host .. "]" or host end

--- Sends probe to target ("ip:port", typically a broadcast address) and
--- waits for the first reply, appended to buf (a string.buffer). Returns
--- n (the reply's length), addr ("ip:port" of the responder); or nil, err:
--- ctx:err() when ctx ends first (context.DEADLINE_EXCEEDED for a
--- deadline), else an INVALID_ADDR, LISTEN, WRITE_PROBE or READ_RESPONSE
--- error.
function M.seek(ctx, target, probe, buf)
  local fname = "beacon.seek"
  if not context.is_context(ctx) then argerr(fname, "ctx", "context", ctx) end
  if type(target) ~= "string" then argerr(fname, "target", "string", target) end
  if type(probe) ~= "string" then argerr(fname, "probe", "string", probe) end
  if not is_buffer(buf) then argerr(fname, "buf", "string.buffer", buf) end
  local cerr = ctx:err()
  if cerr then return nil, cerr end
  local host, port = parse_addr(target, false)
  if not host then return nil, port end
  local any = host:find(":", 1, true) and "[::]:0" or "0.0.0.0:0"
  local u, lerr = net.listen_udp(any, { broadcast = true })
  if not u then return nil, errors.with_kind(M.LISTEN, lerr) end
  local ok, werr = u:send_to(probe, bracket(host) .. ":" .. port)
  if not ok then
    u:close()
    return nil, errors.with_kind(M.WRITE_PROBE, werr)
  end
  local n, from = u:recv_from(buf, ctx)
  u:close()
  if not n then
    cerr = ctx:err()
    if cerr then return nil, cerr end
    return nil, errors.with_kind(M.READ_RESPONSE, from)
  end
  return n, from
end

--- Listens on addr ("ip:port" or ":port") and, for every datagram for
--- which is_valid(probe) is true (probe: exactly the bytes received, as a
--- string; they also land in buf, reset for each datagram), sends payload
--- back to its sender. Runs until ctx ends and returns ctx:err(); returns
--- an INVALID_ADDR, LISTEN, READ_PROBE or WRITE_REPLY error earlier on
--- failure. An error raised by is_valid closes the socket and propagates.
function M.serve(ctx, addr, buf, is_valid, payload)
  local fname = "beacon.serve"
  if not context.is_context(ctx) then argerr(fname, "ctx", "context", ctx) end
  if type(addr) ~= "string" then argerr(fname, "addr", "string", addr) end
  if not is_buffer(buf) then argerr(fname, "buf", "string.buffer", buf) end
  if type(is_valid) ~= "function" then argerr(fname, "is_valid", "function", is_valid) end
  if type(payload) ~= "string" then argerr(fname, "payload", "string", payload) end
  local cerr = ctx:err()
  if cerr then return cerr end
  local host, port = parse_addr(addr, true)
  if not host then return port end
  local u, lerr = net.listen_udp(bracket(host) .. ":" .. port, { broadcast = true })
  if not u then return errors.with_kind(M.LISTEN, lerr) end
  while true do
    buf:reset()
    local n, from = u:recv_from(buf, ctx)
    if not n then
      u:close()
      cerr = ctx:err()
      if cerr then return cerr end
      return errors.with_kind(M.READ_PROBE, from)
    end
    local ok, valid = pcall(is_valid, buf:tostring())
    if not ok then
      u:close()
      error(valid, 0)
    end
    if valid then
      local sent, werr = u:send_to(payload, from)
      if not sent then
        u:close()
        return errors.with_kind(M.WRITE_REPLY, werr)
      end
    end
  end
end

return M
