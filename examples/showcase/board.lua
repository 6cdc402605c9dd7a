-- The live board: a chat over WebSocket (/ws/chat) and the feed of server
-- events over SSE (/events). Chat messages, sent from a tab, the form or
-- the API, are published on the feed; every open tab gets them from there.
--
--   local board = require("showcase.board").new{ feed = feed, ctx = root_ctx }
--   board.post(ctx, { name = "Ada", text = "hi" }, limit.client(r))   -- after check.message
--   m:handle_func("GET /ws/chat", board.websocket)
--   m:handle_func("GET /events", board.events)
local cjson = require "cjson.safe"
local lowbit = require "lowbit"
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local log = require "lowbit.log"
local sse = require "lowbit.sse"
local websockets = require "lowbit.websockets"
local check = require "showcase.check"
local limit = require "showcase.limit"

local HISTORY = 50        -- messages kept for /api/messages and the board page
local OUTBOX = 64         -- events queued for one slow tab before it misses some
local WS_READ_LIMIT = 4096
-- Messages one client (one address) may post, through every way in: a
-- burst, then a few a second. A client past it gets TOO_FAST, not everyone
-- else's screen full of its messages. (Behind a proxy every client has
-- the proxy's address: key on what the proxy tells you instead.)
local POST_RATE, POST_BURST = 5, 20
-- Joins and leaves one client may announce: a client that opens and
-- closes sockets in a loop would otherwise push every other event out of
-- the feed's replay (and onto every screen). Past it the count still
-- changes; the next announced event carries it.
local PRESENCE_RATE, PRESENCE_BURST = 1, 6
-- Live streams (WebSockets and event streams) one client may hold open: a
-- tab of the board holds two. Each one keeps a queue of events for its
-- client; a client that opens thousands and reads none would hold them all.
local STREAMS_PER_CLIENT = 32

local M = {}

M.TOO_FAST = errors.new("showcase: too many messages from this client; wait a moment")

--- opts: feed, ctx (the app's: cancelled at shutdown).
function M.new(opts)
  local feed, app_ctx = opts.feed, opts.ctx
  local board = { online = 0 }
  local history = {}
  local posts_per_client = limit.new{ rate = POST_RATE, burst = POST_BURST }
  local presence_per_client = limit.new{ rate = PRESENCE_RATE, burst = PRESENCE_BURST }

  feed:subscribe(function(ev)
    if ev.name ~= "chat.message" then return end
    history[#history + 1] = ev.value
    if #history > HISTORY then table.remove(history, 1) end
  end)

  --- The last messages, oldest first.
  function board.history() return { unpack(history) } end

  --- Publishes a checked message from `client` (limit.client(r)): the
  --- message as sent (with `at`), or nil, err (M.TOO_FAST, Redis unreachable).
  function board.post(ctx, msg, client)
    if not posts_per_client:allow(client) then return nil, M.TOO_FAST end
    local sent = { name = msg.name, text = msg.text, at = os.date("!%Y-%m-%dT%H:%M:%SZ") }
    local ok, err = feed:publish(ctx, "chat.message", sent)
    if not ok then return nil, err end
    return sent
  end

  local function presence(kind, client)
    board.online = board.online + (kind == "chat.join" and 1 or -1)
    if presence_per_client:allow(client) then feed:publish(app_ctx, kind, { online = board.online }) end
  end

  -- Counts the live streams of each client; past STREAMS_PER_CLIENT the
  -- handler is not run and the client gets a 429.
  local open_streams = {}
  local function counted(handler)
    return function(w, r)
      local client = limit.client(r)
      local n = open_streams[client] or 0
      if n >= STREAMS_PER_CLIENT then
        local h = w:header()
        h:set("Content-Type", "text/plain; charset=utf-8")
        h:set("Retry-After", "5")
        w:write_header(429)
        w:write("too many open streams from this address\n")
        return
      end
      open_streams[client] = n + 1
      local ok, err = xpcall(handler, debug.traceback, w, r)
      n = open_streams[client] - 1
      open_streams[client] = n > 0 and n or nil
      if not ok then error(err, 0) end
    end
  end

  -- One tab: its messages in, every chat message out. Text frames of JSON
  -- {"name","text"}; a bad one gets {"error"} back, a binary frame or one
  -- over WS_READ_LIMIT ends the connection (1003, 1009).
  board.websocket = counted(function(w, r)
    local c = websockets.accept(w, r, { read_limit = WS_READ_LIMIT, check_origin = check.same_origin })
    if not c then return end -- the handshake was refused (and answered)
    local outbox, writer_done = lowbit.chan(OUTBOX), lowbit.chan(1)
    local cancel = feed:subscribe(function(ev)
      if ev.name == "chat.message" then outbox:try_send(ev.data) end -- full: this tab misses it
    end)
    lowbit.go(function()
      while true do
        local text = outbox:recv()
        if text == nil or not c:write_message(websockets.TEXT, text) then break end
      end
      writer_done:send(true)
    end)
    local conn_ctx, conn_done = context.with_cancel(app_ctx)
    lowbit.go(function() -- shutdown closes the tab's connection; it reconnects to another server
      conn_ctx:wait()
      if app_ctx:err() then c:close(1001, "server shutting down") end
    end)
    local client = limit.client(r)
    presence("chat.join", client)
    while true do
      local data, op = c:read_message()
      if not data then break end
      if op ~= websockets.TEXT then c:close(1003, "text frames only"); break end
      local msg, why = check.json_object(data)
      if msg then msg, why = check.message(msg) end
      if msg then
        local ok, err = board.post(app_ctx, msg, client)
        if errors.is(err, M.TOO_FAST) then
          why = "too many messages: wait a moment"
        elseif not ok then
          log.write("showcase: chat message not sent: " .. tostring(err))
          why = "not sent; try again in a moment"
        end
      end
      if why then outbox:try_send(cjson.encode{ error = why }) end
    end
    cancel()
    conn_done()
    outbox:close()
    writer_done:recv()
    c:close()
    presence("chat.leave", client)
  end)

  -- The feed as Server-Sent Events; a browser that reconnects sends the
  -- last id it saw and gets what it missed first.
  board.events = counted(function(w, r)
    local inbox = lowbit.chan(256) -- room for the replay
    local cancel = feed:subscribe(function(ev) inbox:try_send(ev) end, r.headers:get("Last-Event-ID"))
    local e = sse.new_emitter(w, { ctx = r.ctx })
    local hctx, stop = context.with_cancel(r.ctx)
    lowbit.go(e.serve_heartbeats, e, hctx, 15)
    e:send{ retry = 2000 }
    e:send{ name = "hello", data = cjson.encode{ shared = feed.shared, online = board.online } }
    while true do
      local i, ev = lowbit.select{ inbox, r.ctx:done() }
      if i ~= 1 or not e:send{ name = ev.name, id = ev.id, data = ev.data } then break end
    end
    stop()
    cancel()
  end)

  return board
end

return M
