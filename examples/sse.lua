-- A clock over Server-Sent Events: /events streams a `tick` event every
-- second (id = a counter, so a reconnecting browser resumes after the last
-- one it saw), with a heartbeat comment every 15 s; / is a page that shows
-- the stream with the browser's EventSource.
--
--   build/bin/lowbit examples/sse.lua 127.0.0.1:8082
--   open http://127.0.0.1:8082/            (or: curl -N http://127.0.0.1:8082/events)
--
-- An optional third argument sets the tick interval in seconds.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local http = require "lowbit.http"
local sse = require "lowbit.sse"

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>lowbit sse clock</title>
<style>body{font:16px system-ui;margin:2em} #now{font-size:3em} #log{color:#666}</style></head>
<body><h1>lowbit sse clock</h1><div id="now">connecting…</div><pre id="log"></pre>
<script>
var es = new EventSource("/events");
var now = document.getElementById("now"), log = document.getElementById("log");
es.addEventListener("tick", function (e) {
  now.textContent = e.data;
  log.textContent = "event #" + e.lastEventId + "\n" + log.textContent.split("\n").slice(0, 9).join("\n");
});
es.onerror = function () { now.textContent = "reconnecting…"; };
</script></body></html>
]]

return function(ctx, addr, interval)
  addr = addr or "127.0.0.1:8082"
  interval = tonumber(interval) or 1
  local srv = http.server{
    handler = function(w, r)
      if r.url.path == "/" then
        w:header():set("Content-Type", "text/html; charset=utf-8")
        w:write(PAGE)
        return
      end
      if r.url.path ~= "/events" then return http.not_found(w, r) end
      -- Resume the count after the last id the client saw.
      local n = tonumber(r.headers:get("Last-Event-ID") or "") or 0
      local e = sse.new_emitter(w, { ctx = r.ctx })
      local hctx, stop = context.with_cancel(r.ctx)
      lowbit.go(e.serve_heartbeats, e, hctx, 15)
      e:send{ retry = 2000 }
      while true do
        n = n + 1
        local ok = e:send{ name = "tick", id = tostring(n), data = os.date("!%Y-%m-%dT%H:%M:%SZ") }
        if not ok then break end                        -- the client is gone
        if not lowbit.sleep_ctx(r.ctx, interval) then break end
      end
      stop()
    end,
    -- No read_timeout or write_timeout: an event stream is one response
    -- that lasts (write_timeout would end it). A client that stops reading
    -- holds its stream only until shutdown, which ends a stalled write.
    read_header_timeout = 10,
    idle_timeout = 60,
  }
  -- Ctrl-C: in-flight requests get 5 s to finish (their ctx is cancelled,
  -- and a write to a client that stopped reading ends), then the rest is cut.
  lowbit.go(function()
    ctx:wait()
    srv:shutdown(context.with_timeout(context.background(), 5))
    srv:close()
  end)
  io.stderr:write("sse: listening on http://", addr, "/\n")
  local _, err = srv:listen_and_serve(addr)
  if err ~= http.SERVER_CLOSED then error(err) end
end
