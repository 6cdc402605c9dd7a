-- lowbit.log: the one way lowbit writes diagnostics to stderr (the
-- default lowbit.on_error, the HTTP server's error log, the host), and a
-- way for scripts to log without blocking the loop.
--
--   local log = require "lowbit.log"
--   log.write("lowbit: error in task: " .. tb)     -- never blocks
--   local line = log.limit(peer, "http: TLS handshake error from " .. peer)
--   if line then log.write(line) end                -- nil: rate-limited
--   log.flush(2)                                   -- at exit, bounded
--
-- A write never blocks the event loop, whatever stderr is: lines go out
-- through a non-blocking libuv stream (uv_try_write); what the sink does not
-- take waits in a bounded queue retried by a libuv timer. When the queue is
-- full (stderr a pipe nobody reads, a stalled terminal) lines are dropped and
-- counted, and "lowbit: N log lines dropped" is written once the queue has
-- drained. When stderr is a pipe, it is reopened (/proc/self/fd/2, Linux) so
-- that the non-blocking mode is ours alone: the processes sharing the pipe
-- keep their blocking writes. A regular file or /dev/null is written to
-- directly (such writes do not wait for a reader).
--
-- log.limit rate-limits the lines caused by one key (a peer's address, the
-- port dropped): BURST lines at once, then RATE a second; the next line let
-- through says how many were suppressed.
local uv = require "luv"

local M = {}

local type, error, min, floor, format = type, error, math.min, math.floor, string.format
local sub, match = string.sub, string.match
local hrtime, try_write = uv.hrtime, uv.try_write

--- Bytes that may wait for the sink before lines are dropped.
M.MAX_QUEUE = 64 * 1024
--- Longest line written; longer ones are cut.
M.MAX_LINE = 16 * 1024
--- Rate limit per key: lines let through at once, then lines a second.
M.BURST, M.RATE = 10, 1
--- Keys remembered by the rate limiter (all forgotten when exceeded).
M.MAX_KEYS = 4096
--- Milliseconds before the next attempt to write to a stalled sink; the
--- wait doubles (up to MAX_RETRY_MS) while the sink takes nothing.
M.RETRY_MS, M.MAX_RETRY_MS = 10, 500

-- The sink: "stream" (a luv pipe/tty/tcp handle in non-blocking mode),
-- "file" (synchronous writes to fd), "none" (everything is discarded), or
-- nil until the first write opens it.
local kind, handle, file_fd
local queue, qhead, qtail, qbytes = {}, 1, 0, 0
local dropped, dropped_total, suppressed_total = 0, 0, 0
local timer, timer_on, retry_ms = nil, false, nil

local O_WRONLY, O_NONBLOCK, O_CLOEXEC = 1, 0x800, 0x80000 -- Linux (every arch lowbit builds on)

local F_DUPFD_CLOEXEC = 1030 -- Linux
local ffi_fcntl
-- A close-on-exec duplicate of fd, or nil.
local function dup(fd)
  if not ffi_fcntl then
    local ffi = require "ffi"
    pcall(ffi.cdef, "int fcntl(int fd, int cmd, ...);")
    ffi_fcntl = ffi.C.fcntl
  end
  local n = ffi_fcntl(fd, F_DUPFD_CLOEXEC, 3)
  return n >= 0 and n or nil
end

-- A stream handle writing to fd in non-blocking mode, or nil.
local function open_stream(fd, what)
  local h
  if what == "tty" then
    h = uv.new_tty(fd, false)
  elseif what == "pipe" then
    h = uv.new_pipe(false)
    if h and not uv.pipe_open(h, fd) then uv.close(h); h = nil end
  elseif what == "tcp" then
    h = uv.new_tcp()
    if h and not uv.tcp_open(h, fd) then uv.close(h); h = nil end
  end
  if h then uv.unref(h) end
  return h
end

local function open_sink(fd)
  handle = nil
  local what = uv.guess_handle(fd)
  if what == "tty" then
    -- libuv reopens a terminal itself, so its non-blocking mode is ours.
    handle = open_stream(fd, "tty")
  elseif what == "pipe" or what == "tcp" then
    local own
    if jit and jit.os == "Linux" and fd == 2 then
      -- A fresh open file description of the same pipe: O_NONBLOCK on it
      -- leaves the one the parent shares with us blocking. (Fails for
      -- sockets, and with no reader left; then a dup is used, and a
      -- socket's non-blocking mode is shared with whoever else holds it.)
      own = uv.fs_open("/proc/self/fd/2", O_WRONLY + O_NONBLOCK + O_CLOEXEC, 0)
      if own and uv.guess_handle(own) ~= what then uv.fs_close(own); own = nil end
    end
    own = own or dup(fd)
    if own then
      handle = open_stream(own, what)
      if not handle then uv.fs_close(own) end
    end
  elseif what == "file" then
    kind, file_fd = "file", fd
    return
  end
  kind = handle and "stream" or "none"
end

local function check_string(v, name, fname)
  if type(v) ~= "string" then
    error("bad argument '" .. name .. "' to log." .. fname .. ": string expected, got " .. type(v), 3)
  end
end

local function push(s)
  qtail = qtail + 1
  queue[qtail] = s
  qbytes = qbytes + #s
end

local pump

local function on_retry()
  timer_on = false
  pump()
end

-- Schedules the next attempt; `progress`: the sink took bytes this time.
local function arm(progress)
  retry_ms = (progress or not retry_ms) and M.RETRY_MS or min(retry_ms * 2, M.MAX_RETRY_MS)
  if timer_on then return end
  if not timer then
    timer = uv.new_timer()
    uv.unref(timer) -- a stalled log never keeps the process alive
  end
  timer_on = true
  uv.timer_start(timer, retry_ms, 0, on_retry)
end

local function disarm()
  retry_ms = nil
  if timer_on then timer_on = false; uv.timer_stop(timer) end
end

local function clear()
  for i = qhead, qtail do queue[i] = nil end
  qhead, qtail, qbytes = 1, 0, 0
end

-- Writes what the sink takes now; true when the queue is empty.
pump = function()
  local progress = false
  while true do
    while qhead <= qtail do
      local s = queue[qhead]
      local n, _, name = try_write(handle, s)
      if n == nil then
        if name == "EAGAIN" or name == "EWOULDBLOCK" then arm(progress); return false end
        -- The sink is gone (EPIPE...): nobody will read what waits.
        kind = "none"
        clear()
        disarm()
        return true
      end
      if n < #s then
        queue[qhead] = sub(s, n + 1)
        qbytes = qbytes - n
        arm(true)
        return false
      end
      queue[qhead] = nil
      qhead = qhead + 1
      qbytes = qbytes - n
      progress = true
    end
    qhead, qtail, qbytes = 1, 0, 0
    if dropped == 0 then disarm(); return true end
    push(format("lowbit: %d log lines dropped\n", dropped))
    dropped = 0
  end
end

local function emit(s, force)
  if kind == nil then open_sink(2) end
  if kind == "none" then return false end
  local n = #s
  if n > M.MAX_LINE then s = sub(s, 1, M.MAX_LINE) .. " ... (cut)\n"
  elseif n == 0 or sub(s, n) ~= "\n" then s = s .. "\n" end
  if kind == "file" then
    -- A file or a device such as /dev/null: its writes wait for no reader.
    uv.fs_write(file_fd, s, -1)
    return true
  end
  if not force and qbytes + #s > M.MAX_QUEUE then
    dropped = dropped + 1
    dropped_total = dropped_total + 1
    return false
  end
  local idle = qhead > qtail
  push(s)
  if idle then pump() end
  return true
end

--- Writes msg as one line (a "\n" is added when missing). Never blocks;
--- returns false when the line was dropped (the sink is stalled and the
--- queue full, or there is no sink).
function M.write(msg)
  check_string(msg, "msg", "write")
  return emit(msg, false)
end

--- Like write, but queues msg even when the queue is full: for the last
--- words of a process (then call flush).
function M.write_always(msg)
  check_string(msg, "msg", "write_always")
  return emit(msg, true)
end

--- Waits up to `timeout` seconds (default 1) for the queue to be written,
--- without running the loop. True when nothing is left waiting.
function M.flush(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    error("bad argument 'timeout' to log.flush: number expected, got " .. type(timeout), 2)
  end
  if kind ~= "stream" then return true end
  local deadline = hrtime() + (timeout or 1) * 1e9
  while not pump() do
    local left = (deadline - hrtime()) / 1e6
    if left <= 0 then return false end
    uv.sleep(min(M.RETRY_MS, floor(left) + 1))
  end
  return true
end

-- The part of a peer address the limiter keys on: "1.2.3.4:5" -> "1.2.3.4",
-- "[::1]:5" -> "::1".
local function peer_key(key)
  local host = match(key, "^%[(.*)%]:%d+$") or match(key, "^([^:]*):%d+$")
  return host or key
end

local buckets, nbuckets = {}, 0

--- Rate-limits the lines caused by key (a peer address: its port is
--- ignored). Returns msg, with a note of the lines suppressed before it,
--- when it may be logged; nil when it is suppressed.
function M.limit(key, msg)
  check_string(key, "key", "limit")
  check_string(msg, "msg", "limit")
  key = peer_key(key)
  local t = hrtime() * 1e-9
  local b = buckets[key]
  if b == nil then
    if nbuckets >= M.MAX_KEYS then buckets, nbuckets = {}, 0 end
    b = { tokens = M.BURST, at = t, suppressed = 0 }
    buckets[key] = b
    nbuckets = nbuckets + 1
  else
    b.tokens = min(M.BURST, b.tokens + (t - b.at) * M.RATE)
    b.at = t
  end
  if b.tokens < 1 then
    b.suppressed = b.suppressed + 1
    suppressed_total = suppressed_total + 1
    return nil
  end
  b.tokens = b.tokens - 1
  if b.suppressed > 0 then
    msg = format("%s (and %d earlier lines from %s suppressed)", msg, b.suppressed, key)
    b.suppressed = 0
  end
  return msg
end

--- Counters: queued (bytes waiting), dropped (lines dropped since the last
--- report), dropped_total, suppressed_total, and the sink kind.
function M.stats()
  return { queued = qbytes, dropped = dropped, dropped_total = dropped_total,
           suppressed_total = suppressed_total, sink = kind or "unopened" }
end

--- For specs: makes fd the sink (nil: stderr again, opened on next write),
--- forgetting what waits and the rate limiter's state.
function M._set_sink(fd)
  disarm()
  clear()
  if handle and not uv.is_closing(handle) then
    uv.close(handle)
    -- Outside a run, let libuv finish the close now: a close callback left
    -- pending would fire while Lua shuts down.
    if not require("lowbit").is_running() then uv.run("nowait") end
  end
  kind, handle = nil, nil
  dropped = 0
  buckets, nbuckets = {}, 0
  if fd ~= nil then open_sink(fd) end
end

return M
