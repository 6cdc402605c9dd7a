-- The feed: every server event of the showcase (chat messages, joins and
-- leaves, job progress) goes through one topic, and everything that shows
-- events (the SSE stream, the WebSocket tabs, the chat history, the job
-- table) subscribes to it.
--
--   local feed = require("showcase.feed").new{ redis = "127.0.0.1:6379" }  -- or {} for memory
--   local cancel = feed:subscribe(function(ev) print(ev.id, ev.name, ev.data) end, last_id)
--   feed:publish(ctx, "chat.message", { name = "Ada", text = "hi" })
--   group:add(function(ctx) return feed:run(ctx) end, { name = "feed" })
--
-- An event is { id, name, data (the JSON text), value (the Lua table) }.
-- In memory (one process) the last KEEP events are kept for SSE clients
-- that reconnect with Last-Event-ID; on Redis (lowbit.topic.redis) the
-- events reach every process and a stream keeps the last KEEP of them.
local cjson = require "cjson.safe"
local topic = require "lowbit.topic"
local bridge = require "lowbit.topic.redis"

local KEEP = 200

local Feed = {}
Feed.__index = Feed

-- "name\njson" on the wire; a payload that does not parse is dropped.
local function encode(ev) return ev.name .. "\n" .. ev.data end
local function decode(s)
  local name, data = s:match("^([%w.]+)\n(.*)$")
  local value = name and cjson.decode(data)
  if type(value) ~= "table" then return nil end
  return { name = name, data = data, value = value }
end

local M = {}

--- opts.redis: "host:port" for the Redis bridge; nil keeps events in this process.
function M.new(opts)
  local self = setmetatable({ shared = opts.redis ~= nil }, Feed)
  if opts.redis then
    self.bridge = bridge.new{ redis = opts.redis, channel = "showcase:feed", stream = { maxlen = KEEP },
                              encode = encode, decode = decode }
  else
    self.topic, self.recent, self.last_id = topic.new(), {}, 0
  end
  return self
end

--- Sends an event to every subscriber (of every process, on Redis).
--- Returns true, or nil, err when Redis cannot be reached.
function Feed:publish(ctx, name, value)
  local ev = { name = name, data = assert(cjson.encode(value)), value = value }
  if self.bridge then
    local id, err = self.bridge:publish(ctx, ev)
    return id ~= nil, err
  end
  self.last_id = self.last_id + 1
  ev.id = tostring(self.last_id)
  local recent = self.recent
  recent[#recent + 1] = ev
  if #recent > KEEP then table.remove(recent, 1) end
  self.topic:publish(ctx, ev)
  return true
end

-- A Last-Event-ID we issued: a counter in memory, a stream id on Redis.
local function valid_id(self, id)
  if type(id) ~= "string" then return nil end
  if self.bridge then return id:match("^%d+%-%d+$") end
  return id:match("^%d+$") and #id < 16 and id
end

--- Calls fn(ev) for every event from now on, after replaying those past
--- `after` (a Last-Event-ID; anything else is ignored). Returns cancel().
function Feed:subscribe(fn, after)
  after = valid_id(self, after)
  if self.bridge then
    local function deliver(_, m)
      if m.kind == "message" and m.data then
        m.data.id = m.id
        fn(m.data)
      end
    end
    local cancel = after and self.bridge:subscribe(deliver, { after = after })
    return cancel or self.bridge:subscribe(deliver) -- a failed replay: live events only
  end
  if after then
    for _, ev in ipairs(self.recent) do
      if tonumber(ev.id) > tonumber(after) then fn(ev) end
    end
  end
  return self.topic:subscribe(function(_, ev) fn(ev) end)
end

--- Whether events flow: on Redis, once the subscriber connection is up.
function Feed:ready()
  return self.bridge == nil or self.bridge.connected
end

--- The feed's service: the Redis subscriber connection (reconnecting after
--- a drop); in memory there is nothing to run.
function Feed:run(ctx)
  if self.bridge then return self.bridge:run(ctx) end
  ctx:wait()
end

return M
