-- Handlers the ngx specs call inside nginx (spec/ngx_spec.lua), one per
-- statement of conformance/openresty.md list A. Worker state (one worker)
-- lets a later request report what an earlier one's tasks did.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local lngx = require "lowbit.ngx"

local state = {}
local P = {}

P["/probe/core"] = function(w)
  local core = require "lowbit.core"
  local urlsign = require "lowbit.urlsign"
  local s = assert(urlsign.new_signer("secret key", 60))
  local signed = assert(s:sign("https://cdn.example.com/f.pdf?x=1"))
  local ok, err = s:verify(signed)
  local bad = s:verify(signed:gsub("x=1", "x=2"))
  w:write(("version=%s path=%s verify=%s %s tampered=%s\n"):format(core.version,
    core.path:match("[^/]+$"), tostring(ok), tostring(err), tostring(bad)))
end

P["/probe/request"] = function(w, r)
  w:write(("%s %s host=%s proto=%s remote=%s cl=%d ua=%s\n"):format(r.method, r.request_uri, r.host, r.proto,
    tostring(r.remote_addr):gsub("%d+$", "P"), r.content_length, tostring(r.headers:get("user-agent"))))
end

P["/probe/luv"] = function(w)
  w:write("luv loaded: " .. tostring(package.loaded.luv ~= nil) .. "\n")
end

-- sleep, chan, select+after, mutex hand-off, with_timeout, waitgroup.
P["/probe/sync"] = function(w, r)
  local out = {}
  local t0 = lowbit.now()
  lowbit.sleep(0.05)
  out[#out + 1] = ("slept %s"):format(lowbit.now() - t0 >= 0.045 and "ok" or "short")
  local ch = lowbit.chan(0)
  lowbit.go(function() ch:send("v") end)
  out[#out + 1] = "recv " .. tostring(ch:recv())
  local i = lowbit.select{ lowbit.chan(0), lowbit.after(0.02) }
  out[#out + 1] = "select " .. i
  local mu, order, wg = lowbit.mutex(), {}, lowbit.waitgroup()
  mu:lock()
  for k = 1, 3 do
    wg:add(1)
    lowbit.go(function() mu:lock(); order[#order + 1] = k; mu:unlock(); wg:done() end)
  end
  lowbit.sleep(0.01)
  mu:unlock()
  wg:wait()
  out[#out + 1] = "mutex " .. table.concat(order, ",")
  local ctx = context.with_timeout(r.ctx, 0.03)
  local j = lowbit.select{ ctx:done(), lowbit.after(1) }
  out[#out + 1] = ("with_timeout %d %s"):format(j, tostring(ctx:err()))
  local retry = require "lowbit.retry"
  local n = 0
  local res, rerr = retry.run(r.ctx, retry.max_attempts(3, retry.constant(0.01)), function()
    n = n + 1
    if n < 3 then return nil, "again" end
    return "done"
  end)
  out[#out + 1] = ("retry %s %s %d"):format(tostring(res), tostring(rerr), n)
  w:write(table.concat(out, "\n") .. "\n")
end

P["/probe/timeouts"] = function(w, r)
  local n = tonumber(r.url.raw_query:match("n=(%d+)")) or 10000
  local before = lowbit._timer_count()
  local ctxs = {}
  for i = 1, n do ctxs[i] = context.with_timeout(r.ctx, 0.05 + (i % 10) * 0.001) end
  for i = 1, n do ctxs[i]:wait() end
  local expired = 0
  for i = 1, n do if ctxs[i]:err() == context.DEADLINE_EXCEEDED then expired = expired + 1 end end
  w:write(("expired %d of %d, timers added and not released %d\n"):format(expired, n,
    math.max(0, lowbit._timer_count() - before)))
end

P["/probe/deadline"] = function(w, r)
  local port = r.url.raw_query:match("port=(%d+)")
  local c = assert(lngx.dial(r.ctx, "127.0.0.1:" .. port))
  local t0 = lowbit.now()
  c:set_read_deadline(lowbit.now() + 0.2)
  local data, err = c:read()
  local dt = lowbit.now() - t0
  c:close()
  w:write(("read %s %s after %.3f\n"):format(tostring(data), tostring(err), dt))
end

-- A task still waiting when the handler returns: cancelled, then killed.
P["/probe/leave"] = function(w, r)
  state.leave = "started"
  lowbit.go(function()
    r.ctx:wait()
    state.leave = "cancelled: " .. tostring(r.ctx:err())
    lowbit.chan(0):recv() -- never returns: the grace period ends it
    state.leave = "not killed"
  end)
  w:write("leaving\n")
end

P["/probe/state"] = function(w)
  w:write("leave=" .. tostring(state.leave) .. " abort=" .. tostring(state.abort) .. " sse=" .. tostring(state.sse) .. "\n")
end

P["/probe/raw"] = function(w, r)
  local c, err = w:hijack()
  if not c then w:write_header(500); w:write(tostring(err)); return end
  local data = c:read()
  local ok, cerr = c:close_write()
  local body = ("read=%s close_write=%s %s"):format(data, tostring(ok), tostring(cerr))
  c:write({ "HTTP/1.1 200 OK\r\nContent-Length: ", tostring(#body), "\r\nConnection: close\r\n\r\n", body })
  c:close()
end

P["/probe/rawfull"] = function(w, r)
  local c = assert(w:hijack())
  c:write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
  local data, err = c:read_full(10)
  state.rawfull = tostring(data) .. " " .. tostring(err)
end

P["/probe/rawfull_state"] = function(w) w:write(tostring(state.rawfull) .. "\n") end

P["/probe/h2"] = function(w, r)
  local c, err = w:hijack()
  if c then w:write("hijacked\n"); return end
  w:header():set("Content-Type", "text/plain; charset=utf-8")
  w:write_header(500)
  w:write("hijack refused: " .. tostring(err) .. "\n")
end

-- SSE-like stream: the first event is flushed at once; an empty flush is
-- not an error; a client that goes away cancels r.ctx.
P["/probe/stream"] = function(w, r)
  w:header():set("Content-Type", "text/event-stream")
  w:write("data: first\n\n")
  local ok, err = w:flush()
  local ok2, err2 = w:flush() -- nothing pending: not an error
  w:write(("data: flushes %s %s %s %s\n\n"):format(tostring(ok), tostring(err), tostring(ok2), tostring(err2)))
  w:flush()
  state.abort = "waiting"
  local t0 = lowbit.now()
  local i = lowbit.select{ r.ctx:done(), lowbit.after(10) }
  state.abort = ("case %d %s after %.1f"):format(i, tostring(r.ctx:err()), lowbit.now() - t0)
end

-- lowbit.sse's emitter, unchanged: headers sent and flushed at once, a
-- heartbeat task, and the first event flushed when sent.
P["/probe/sse"] = function(w, r)
  local sse = require "lowbit.sse"
  local e = sse.new_emitter(w)
  local hctx, stop = context.with_cancel(r.ctx)
  lowbit.go(e.serve_heartbeats, e, hctx, 0.05)
  for i = 1, 3 do
    local ok, err = e:send{ name = "tick", id = tostring(i), data = "event " .. i }
    if not ok then state.sse = tostring(err); break end
    lowbit.sleep(0.02)
  end
  state.sse = tostring(e:err())
  stop()
end

-- WebSocket echo through lowbit.websockets, unchanged; a message "big"
-- makes two light threads write 1 MiB messages at once; "close" makes the
-- server close with 1000.
P["/probe/ws"] = function(w, r)
  local websockets = require "lowbit.websockets"
  local c, err = websockets.accept(w, r)
  if not c then state.ws = "accept: " .. tostring(err); return end
  while true do
    local msg, op = c:read_message()
    if not msg then
      state.ws = ("read: %s code %s"):format(tostring(op), tostring(type(op) == "table" and op.code))
      break
    end
    if msg == "big" then
      local wg = lowbit.waitgroup()
      for k = 1, 2 do
        wg:add(1)
        lowbit.go(function()
          local ok, werr = c:write_message(2, string.rep(string.char(64 + k), 1024 * 1024))
          if not ok then state.ws = "write: " .. tostring(werr) end
          wg:done()
        end)
      end
      wg:wait()
    elseif msg == "close" then
      local ok, cerr = c:close(1000, "bye")
      state.ws = "closed " .. tostring(ok) .. " " .. tostring(cerr)
      break
    else
      local ok, werr = c:write_message(op, msg)
      if not ok then state.ws = "write: " .. tostring(werr); break end
    end
  end
end

P["/probe/background"] = function(w)
  local bg = require "background"
  w:write(("%s, ticks>0: %s\n"):format(tostring(bg.got), tostring(bg.ticks > 0)))
end

local SNIFF = { html = " \n<!DOCTYPE html><p>", p = "<P>x", png = "\137PNG\r\n\26\nxx", text = "hello",
  bin = "a\0b", esc = "a\27[1mb\tc\r\n\f", longbin = ("x"):rep(200) .. "\1", longtext = ("x\t"):rep(100), xml = "<?xml version='1.0'?>", pdf = "%PDF-1.4", gif = "GIF89a" }
P["/probe/sniff"] = function(w, r) w:write(SNIFF[r.url.raw_query]) end

-- Fields made on first use, read in an order that loads them one by one:
-- r.url before r.headers (Host from one variable), the body and the
-- Content-Length after.
P["/probe/lazy"] = function(w, r)
  local u = r.url
  local out = { r.method, u.host, u.path, u.raw_query, r.proto, tostring(r.proto_minor), r.request_uri,
                r.headers:get("X-A") or "-", tostring(r.content_length), r.host, r.body:read_all() or "" }
  w:write(table.concat(out, "|") .. "\n")
end

P["/probe/ws_state"] = function(w) w:write(tostring(state.ws) .. "\n") end

-- Writers are pooled per worker: what one response set (status, headers,
-- buffered body) must not show in the next. "?set" sets them, "?none" not.
P["/probe/pooled"] = function(w, r)
  if r.url.raw_query == "set" then
    w:header():set("X-Pooled", "yes")
    w:header():add("Set-Cookie", "a=1")
    w:write_header(418)
    w:write("first ")
    w:write("response\n")
  else
    w:write("second\n")
  end
end

-- The shared lowbit.redis cases (spec/redis_cases.lua) over cosockets:
-- ?port=P&case=I runs case I against the redis-server on 127.0.0.1:P.
-- Answers "ok", or the failure.
P["/probe/redis"] = function(w, r)
  local redis_cases = require "redis_cases"
  local q = r.url.raw_query
  local addr = "127.0.0.1:" .. q:match("port=(%d+)")
  local cs = redis_cases.cases[tonumber(q:match("case=(%d+)"))]
  local redis = require "lowbit.redis"
  local T = { assert = require "luassert", client = function(opts)
    local conn = redis_cases.counting(assert(lngx.dial(nil, addr)))
    opts = opts or {}
    opts.conn = conn
    return assert(redis.connect(opts)), conn
  end }
  local ok, err = pcall(cs.fn, T)
  w:write(ok and "ok\n" or ("failed: " .. tostring(err) .. "\n"))
end

-- redis.connect by address inside nginx (lowbit.net's dial is
-- ngx.socket.tcp()): pooled within a request, not across requests.
P["/probe/redis_pool"] = function(w, r)
  local redis = require "lowbit.redis"
  local addr = "127.0.0.1:" .. r.url.raw_query:match("port=(%d+)")
  local c = assert(redis.connect(addr))
  local first = c.conn
  assert(c:call("SET", "pool", "v"))
  c:release()
  local c2 = assert(redis.connect(addr))
  local same = c2.conn == first
  local v = c2:call("GET", "pool")
  c2:release()
  w:write(("%s same=%s idle=%d\n"):format(tostring(v), tostring(same), redis.pool_idle(addr)))
end

-- Connections a client pool released go to nginx's keepalive pool at the
-- end of the request: the next request gets the same one (CLIENT ID, and
-- nginx's $connection number of the fetched location).
P["/probe/redis_keepalive"] = function(w, r)
  local redis = require "lowbit.redis"
  local addr = "127.0.0.1:" .. r.url.raw_query:match("port=(%d+)")
  local c = assert(redis.connect(addr))
  local id = assert(c:call("CLIENT", "ID"))
  c:release()
  w:write(("id=%s\n"):format(tostring(id)))
end
P["/probe/conn_id"] = function(w) w:write(ngx.var.connection) end
P["/probe/http_keepalive"] = function(w)
  local http = require "lowbit.http"
  local resp = assert(http.get("http://127.0.0.1:" .. ngx.var.server_port .. "/probe/conn_id"))
  w:write("conn=" .. resp.body:read_all() .. "\n")
end

-- lowbit.http's client inside nginx: fetches other locations of this
-- nginx (and itself keeps the conn for the second request).
P["/probe/httpclient"] = function(w, r)
  local http = require "lowbit.http"
  local base = "http://127.0.0.1:" .. ngx.var.server_port
  local out = {}
  for _, path in ipairs({ "/probe/core", "/probe/sniff?html", "/users/42" }) do
    local resp, err = http.get(base .. path)
    if not resp then out[#out + 1] = path .. " error " .. tostring(err)
    else
      local body = resp.body:read_all()
      out[#out + 1] = ("%s %d %s %d"):format(path, resp.status, tostring(resp.headers:get("Content-Type")), #body)
    end
  end
  -- A body streamed in chunks, and a POST with a body.
  local resp = assert(http.request{ method = "POST", url = base .. "/probe/lazy?x=1", body = "payload" })
  out[#out + 1] = "POST " .. resp.status .. " " .. resp.body:read_all()
  w:write(table.concat(out, "\n") .. "\n")
end

return function(w, r)
  local h = P[r.url.path]
  if not h then w:write_header(404); w:write("no probe " .. r.url.path .. "\n"); return end
  return h(w, r)
end
