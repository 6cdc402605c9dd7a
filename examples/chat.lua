-- A browser chat: messages over WebSocket, joins and leaves over an SSE
-- feed, one page served by lowbit (the page and the handlers are in
-- examples/chat_room.lua, shared with examples/cluster_chat.lua).
--
--   build/bin/lowbit examples/chat.lua 127.0.0.1:8085
--   open http://127.0.0.1:8085/ in two browser tabs
--
-- Here the room is this process: a message goes straight to every
-- browser's outbox, joins and leaves through a lowbit.topic.
local topic = require "lowbit.topic"
local chat_room = dofile(arg[0]:match("^(.-)[^/]*$") .. "chat_room.lua") -- next to this file

return function(ctx, addr)
  addr = addr or "127.0.0.1:8085"
  local presence = topic.new() -- { kind = "join" | "leave", name = ... }
  local hall
  hall = chat_room.new{
    title = "lowbit chat",
    say = function(text) hall:deliver(text) end,
    join = function(name) presence:publish(ctx, { kind = "join", name = name }) end,
    leave = function(name) presence:publish(ctx, { kind = "leave", name = name }) end,
    members = function() return hall:names() end,
    watch = function(fn) return presence:subscribe(function(_, ev) fn(ev.kind, ev.name) end) end,
  }
  io.stderr:write("chat: open http://", addr, "/\n")
  hall:serve(ctx, addr)
end
