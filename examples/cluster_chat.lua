-- The chat of examples/chat.lua, shared by any number of processes (on one
-- host or many) through one Redis server: the WebSocket messages and the
-- joins and leaves go through lowbit.topic.redis bridges, the member list
-- is a Redis hash (name -> connections, over every process). The page and
-- the handlers are examples/chat_room.lua's.
--
--   redis-server --port 6379 &
--   build/bin/lowbit examples/cluster_chat.lua 127.0.0.1:8085 127.0.0.1:6379 &
--   build/bin/lowbit examples/cluster_chat.lua 127.0.0.1:8086 127.0.0.1:6379 &
--   open http://127.0.0.1:8085/ and http://127.0.0.1:8086/: one room
--
-- (Under `lowbit -w 2` the workers of one port share the room the same way.)
-- After a Redis restart each process resubscribes by itself; messages sent
-- while it was away are lost (pub/sub), and the page is told nothing: a
-- chat can live with that (see the stream option of topic.redis for replay).
local lowbit = require "lowbit"
local redis = require "lowbit.redis"
local bridge = require "lowbit.topic.redis"
local chat_room = dofile(arg[0]:match("^(.-)[^/]*$") .. "chat_room.lua") -- next to this file

local LEAVE = "if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end return 1"

return function(ctx, addr, raddr)
  addr = addr or "127.0.0.1:8085"
  raddr = raddr or "127.0.0.1:6379"
  local MEMBERS = "chat:{members}"
  local says = bridge.new{ redis = raddr, channel = "chat:says" }         -- "name: text"
  local presence = bridge.new{ redis = raddr, channel = "chat:presence" } -- "join name" / "leave name"
  lowbit.go(function() says:run(ctx) end)
  lowbit.go(function() presence:run(ctx) end)

  local function with_redis(fn)
    local c, err = redis.connect(raddr)
    if not c then return nil, err end
    local v, e = fn(c)
    if v == nil and e ~= nil then c:close() else c:release() end
    return v, e
  end

  local hall = chat_room.new{
    title = "lowbit cluster chat",
    say = function(text) says:publish(ctx, text) end,
    join = function(name)
      with_redis(function(c) return c:call("HINCRBY", MEMBERS, name, 1) end)
      presence:publish(ctx, "join " .. name)
    end,
    leave = function(name)
      with_redis(function(c) return c:eval_script(LEAVE, { MEMBERS }, { name }) end)
      presence:publish(ctx, "leave " .. name)
    end,
    members = function()
      local all = with_redis(function(c) return c:call("HGETALL", MEMBERS) end) or {}
      local names = {}
      for i = 1, #all, 2 do
        if tonumber(all[i + 1]) > 0 then names[#names + 1] = all[i] end
      end
      return names
    end,
    watch = function(fn)
      return presence:subscribe(function(_, ev)
        if ev.kind ~= "message" then return end
        local kind, who = ev.data:match("^(%S+) (.*)$")
        fn(kind, who)
      end)
    end,
  }
  says:subscribe(function(_, m)
    if m.kind == "message" then hall:deliver(m.data) end
  end)
  io.stderr:write("cluster chat: open http://", addr, "/ (redis ", raddr, ")\n")
  hall:serve(ctx, addr)
end
