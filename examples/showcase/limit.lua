-- Rate limits: a token bucket per key (a client's address), so that one client cannot flood the chat of everyone else.
--
--   local per_client = require("showcase.limit").new{ rate = 2, burst = 10 }
--   if not per_client:allow(limit.client(r)) then ... 429 ... end
--
-- At most `keys` buckets are kept: past that they all start afresh (a full
-- bucket each), so memory stays bounded whatever clients connect.
local lowbit = require "lowbit"

local Limit = {}
Limit.__index = Limit

local M = {}

--- opts: rate (tokens a second), burst (bucket size), keys (default 10000).
function M.new(opts)
  if type(opts) ~= "table" or type(opts.rate) ~= "number" or not (opts.rate > 0) then
    error("bad argument 'rate': a number of tokens a second above 0 expected", 2)
  end
  if type(opts.burst) ~= "number" or not (opts.burst >= 1) then
    error("bad argument 'burst': a number from 1 expected", 2)
  end
  return setmetatable({ rate = opts.rate, burst = opts.burst, max_keys = opts.keys or 10000,
                        buckets = {}, count = 0 }, Limit)
end

--- Takes one token of key's bucket: true, or false when it is empty.
function Limit:allow(key)
  local now = lowbit.now()
  local b = self.buckets[key]
  if not b then
    if self.count >= self.max_keys then self.buckets, self.count = {}, 0 end
    b = { tokens = self.burst, at = now }
    self.buckets[key] = b
    self.count = self.count + 1
  end
  b.tokens = math.min(self.burst, b.tokens + (now - b.at) * self.rate)
  b.at = now
  if b.tokens < 1 then return false end
  b.tokens = b.tokens - 1
  return true
end

--- The client's address of request r, without the port.
function M.client(r)
  local a = r.remote_addr or ""
  return a:match("^%[(.*)%]:%d+$") or a:match("^(.*):%d+$") or a
end

return M
