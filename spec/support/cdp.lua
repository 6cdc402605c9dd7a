-- A small Chrome DevTools Protocol driver for the browser specs: it starts
-- Debian's headless Chromium, talks CDP over lowbit's own WebSocket client,
-- and stops Chromium again, whatever happened in between.
--
--   local cdp = require "support.cdp"
--   run(function()
--     cdp.with_browser({}, function(b)
--       local tab = b:new_tab()
--       tab:navigate("http://" .. ln:addr() .. "/")
--       tab:type("#name", "Ada")
--       tab:click("#send")
--       tab:wait_for("document.querySelectorAll('li').length > 0", "a list item")
--       tab:screenshot("build/screenshots/page.png")
--     end)
--   end)
--
-- Everything runs inside a lowbit task. Every wait is bounded (opts.timeout,
-- 20 s by default; Chromium on a loaded machine is slow) and a wait that ends
-- without its result raises an error naming what it waited for. Failures of
-- the browser (it cannot start, a JS exception, a dialog) raise too: a spec
-- fails with the reason, it never skips.
local lowbit = require "lowbit"
local websockets = require "lowbit.websockets"
local uv = require "luv"
local cjson = require "cjson"
local support = require "support"

local M = {}

M.CHROMIUM = os.getenv("CHROMIUM") or "/usr/bin/chromium" -- Debian's (its launcher script execs the browser)
M.TIMEOUT = 20         -- seconds for each wait unless told otherwise
M.START_TIMEOUT = 60   -- seconds for Chromium to write DevToolsActivePort
M.WIDTH, M.HEIGHT = 1200, 800

local function fmt_err(v)
  if type(v) == "table" then return cjson.encode(v) end
  return tostring(v)
end

-- A JS string literal for s (JSON's string syntax is valid JavaScript).
function M.js_string(s) return cjson.encode(tostring(s)) end

---------------------------------------------------------------------------
-- base64 (CDP carries screenshots as base64 PNG)

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local dec = {}
for i = 1, 64 do dec[B64:byte(i)] = i - 1 end

--- Decodes standard base64 (padding optional); raises on other characters.
function M.base64_decode(s)
  local buf = require("string.buffer").new()
  local byte, char = string.byte, string.char
  s = s:gsub("[\r\n]", ""):gsub("=+$", "")
  local n = #s
  local i = 1
  while i <= n do
    local a, b, c, d = byte(s, i, i + 3)
    local va, vb = dec[a], dec[b]
    local vc, vd = c and dec[c], d and dec[d]
    if not va or not vb or (c and not vc) or (d and not vd) then
      error("base64: bad character near offset " .. i, 2)
    end
    local v = va * 262144 + vb * 4096 + (vc or 0) * 64 + (vd or 0)
    local b1, b2, b3 = math.floor(v / 65536), math.floor(v / 256) % 256, v % 256
    if d then buf:put(char(b1, b2, b3))
    elseif c then buf:put(char(b1, b2))
    else buf:put(char(b1)) end
    i = i + 4
  end
  return buf:tostring()
end

---------------------------------------------------------------------------
-- The browser process

-- Browsers started and not yet closed: M.cleanup() stops them without a
-- task, for a run that was aborted (a watchdog) before their close.
local live = {}

local Browser = {}
Browser.__index = Browser
local Tab = {}
Tab.__index = Tab
M.Browser, M.Tab = Browser, Tab

local read_file = support.read_file

--- The pids of the processes of the browser whose profile is dir: those
--- with the argument --user-data-dir=dir (Chromium's helpers: zygote,
--- renderers, GPU, network service carry it) or LOWBIT_CDP_PROFILE=dir in
--- their environment (launch sets it; crashpad's handlers, which leave the
--- process group, inherit it). Read from /proc directly (a grep's own
--- command line would name dir too).
function M.pids_using(dir)
  -- (Chromium rewrites its helpers' titles: the arguments may be joined
  -- by spaces rather than NULs)
  local want = "--user-data-dir=" .. dir
  local marker = "\0LOWBIT_CDP_PROFILE=" .. dir .. "\0"
  local pids = {}
  local h = uv.fs_scandir("/proc")
  while h do
    local name = uv.fs_scandir_next(h)
    if not name then break end
    local pid = tonumber(name)
    if pid and pid ~= uv.os_getpid() then
      local cmd = read_file("/proc/" .. name .. "/cmdline")
      local at = cmd and cmd:find(want, 1, true)
      local after = at and cmd:sub(at + #want, at + #want)
      local env = not at and read_file("/proc/" .. name .. "/environ")
      if after == "" or after == "\0" or after == " " or (env and ("\0" .. env):find(marker, 1, true)) then
        pids[#pids + 1] = pid
      end
    end
  end
  return pids
end

--- Starts headless Chromium with a fresh profile in a temporary folder and
--- connects to it. opts: timeout (seconds for each later wait, M.TIMEOUT),
--- start_timeout (M.START_TIMEOUT), args (more command-line switches),
--- width/height (each tab's viewport). Raises when Chromium is missing or
--- does not start, with its stderr.
function M.launch(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument 'opts' to cdp.launch: table or nil expected, got " .. type(opts), 2)
  end
  opts = opts or {}
  lowbit._need_task("cdp.launch")
  local f = io.open(M.CHROMIUM, "rb")
  if not f then
    error("cdp: " .. M.CHROMIUM .. " is not installed (Debian package chromium; run make deps)", 2)
  end
  f:close()
  local dir = support.tmpdir()
  local self = setmetatable({
    dir = dir, timeout = opts.timeout or M.TIMEOUT,
    width = opts.width or M.WIDTH, height = opts.height or M.HEIGHT,
    next_id = 0, pending = {}, listeners = {}, tabs = {}, errout = {}, errlen = 0,
    exited = lowbit.chan(1), closed = false,
  }, Browser)
  local args = {
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
    "--user-data-dir=" .. dir, "--window-size=" .. self.width .. "," .. self.height,
  }
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  args[#args + 1] = "about:blank"
  local stderr = uv.new_pipe(false)
  local stdout = uv.new_pipe(false)
  local h, pid_or_err
  -- The profile is also named in the environment, which every process
  -- Chromium starts inherits (crashpad's handlers, which do not carry
  -- --user-data-dir and leave the process group, included).
  local env = {}
  for k, v in pairs(uv.os_environ()) do env[#env + 1] = k .. "=" .. v end
  env[#env + 1] = "LOWBIT_CDP_PROFILE=" .. dir
  h, pid_or_err = uv.spawn(M.CHROMIUM, { args = args, env = env, stdio = { nil, stdout, stderr } }, function(code, sig)
    self.exit_code, self.exit_signal = code, sig
    uv.close(h)
    self.exited:try_send(true)
  end)
  if not h then
    os.execute("rm -rf '" .. dir .. "'")
    error("cdp: cannot start " .. M.CHROMIUM .. ": " .. tostring(pid_or_err), 2)
  end
  self.handle, self.pid = h, pid_or_err
  live[self] = true
  -- stderr is kept (its last 16 KB) for the error messages; stdout dropped.
  uv.read_start(stderr, function(_, d)
    if d then
      self.errout[#self.errout + 1] = d
      self.errlen = self.errlen + #d
      while self.errlen > 16384 and #self.errout > 1 do
        self.errlen = self.errlen - #table.remove(self.errout, 1)
      end
    else uv.close(stderr) end
  end)
  uv.read_start(stdout, function(_, d) if not d then uv.close(stdout) end end)
  local ok, err = pcall(function()
    -- Chromium writes its port and browser target path once it listens.
    local deadline = lowbit.now() + (opts.start_timeout or M.START_TIMEOUT)
    local port, path
    while true do
      local s = read_file(dir .. "/DevToolsActivePort")
      if s then port, path = s:match("^(%d+)\r?\n([^\r\n]+)") end
      if port then break end
      if self.exit_code then
        error(("cdp: %s exited with code %s%s before it listened; stderr:\n%s"):format(M.CHROMIUM,
          self.exit_code, (self.exit_signal or 0) ~= 0 and (" (signal " .. self.exit_signal .. ")") or "",
          self:stderr()), 0)
      end
      if lowbit.now() > deadline then
        error(("cdp: timed out after %gs waiting for chromium's DevToolsActivePort in %s; stderr:\n%s")
          :format(opts.start_timeout or M.START_TIMEOUT, dir, self:stderr()), 0)
      end
      lowbit.sleep(0.05)
    end
    self.port = tonumber(port)
    self.ws_url = "ws://127.0.0.1:" .. port .. path
    local c, derr = websockets.dial(self.ws_url, { read_limit = 256 * 1024 * 1024, compression = false })
    if not c then
      error(("cdp: cannot connect to %s: %s; stderr:\n%s"):format(self.ws_url, tostring(derr), self:stderr()), 0)
    end
    self.ws = c
    self.reader = lowbit.go(function() self:_read_loop() end)
  end)
  if not ok then
    self:close()
    error(err, 2)
  end
  return self
end

--- The tail of Chromium's stderr so far.
function Browser:stderr()
  local s = table.concat(self.errout)
  -- DBus complaints fill every log of a container and say nothing useful.
  s = s:gsub("[^\n]*dbus[^\n]*\n", "")
  if #s > 4000 then s = "..." .. s:sub(-4000) end
  return s
end

function Browser:_read_loop()
  while true do
    local msg, err = self.ws:read_message()
    if not msg then
      self.read_err = err
      break
    end
    local ok, m = pcall(cjson.decode, msg)
    if ok and type(m) == "table" then
      if m.id then
        local ch = self.pending[m.id]
        if ch then self.pending[m.id] = nil; ch:try_send(m) end
      elseif m.method then
        self:_dispatch(m)
      end
    end
  end
  -- The connection is over: every call still waiting learns it now, and
  -- every later call at once.
  self.conn_over = true
  for id, ch in pairs(self.pending) do
    self.pending[id] = nil
    ch:try_send({ error = { message = self:_gone() } })
  end
end

-- Why the connection to Chromium is over, as best known.
function Browser:_gone()
  local why = "the connection to chromium closed (" .. tostring(self.read_err) .. ")"
  if self.exit_code then
    why = why .. "; chromium exited with code " .. tostring(self.exit_code)
      .. ((self.exit_signal or 0) ~= 0 and (" (signal " .. self.exit_signal .. ")") or "")
  end
  local e = self:stderr()
  if e ~= "" then why = why .. "; stderr:\n" .. e end
  return why
end

function Browser:_dispatch(m)
  local tab = m.sessionId and self.tabs[m.sessionId]
  if tab then tab:_event(m) end
  local ls = self.listeners[m.method]
  if ls then
    for i = #ls, 1, -1 do
      local l = ls[i]
      if (not l.session or l.session == m.sessionId) and (not l.pred or l.pred(m.params or {})) then
        table.remove(ls, i)
        l.ch:try_send(m.params or {})
      end
    end
  end
end

--- Registers interest in the next event `method` (of session, when given,
--- matching pred(params) when given) and returns a function(timeout, what)
--- that waits for it and returns its params. Register before the command
--- that causes the event, so that it cannot be missed.
function Browser:expect(method, session, pred)
  local l = { ch = lowbit.chan(1), session = session, pred = pred }
  local ls = self.listeners[method]
  if not ls then ls = {}; self.listeners[method] = ls end
  ls[#ls + 1] = l
  return function(timeout, what)
    timeout = timeout or self.timeout
    local i, params = lowbit.select{ l.ch, lowbit.after(timeout) }
    if i ~= 1 then
      for k = #ls, 1, -1 do if ls[k] == l then table.remove(ls, k) end end
      error(("cdp: timed out after %gs waiting for %s (event %s)"):format(timeout, what or method, method), 2)
    end
    return params
  end
end

--- Sends one CDP command and waits for its answer (bounded); returns the
--- result table, or raises naming the method and Chromium's error.
function Browser:call(method, params, session, timeout)
  if self.closed then error("cdp: " .. method .. " on a closed browser", 2) end
  if self.conn_over then error("cdp: cannot send " .. method .. ": " .. self:_gone(), 2) end
  timeout = timeout or self.timeout
  self.next_id = self.next_id + 1
  local id = self.next_id
  local ch = lowbit.chan(1)
  self.pending[id] = ch
  -- (cjson encodes an empty table as {}, the empty params object)
  local msg = { id = id, method = method, params = params or {} }
  if session then msg.sessionId = session end
  local ok, werr = self.ws:write_message(websockets.TEXT, cjson.encode(msg))
  if not ok then
    self.pending[id] = nil
    error(("cdp: cannot send %s: %s"):format(method, tostring(werr)), 2)
  end
  local i, m = lowbit.select{ ch, lowbit.after(timeout) }
  if i ~= 1 then
    self.pending[id] = nil
    error(("cdp: timed out after %gs waiting for the answer to %s"):format(timeout, method), 2)
  end
  if m.error then
    error(("cdp: %s failed: %s"):format(method, fmt_err(m.error.message or m.error)), 2)
  end
  return m.result or {}
end

--- Opens a new tab (its own target, attached with a flat session), with
--- the Page and Runtime domains enabled and the viewport set, on `url`
--- (about:blank by default; another URL is navigated to and awaited).
function Browser:new_tab(url)
  local t = self:call("Target.createTarget", { url = "about:blank" })
  local a = self:call("Target.attachToTarget", { targetId = t.targetId, flatten = true })
  local tab = setmetatable({
    browser = self, target = t.targetId, session = a.sessionId, timeout = self.timeout,
    console = {}, exceptions = {}, dialogs = {}, closed = false,
  }, Tab)
  self.tabs[tab.session] = tab
  tab:call("Page.enable")
  tab:call("Runtime.enable")
  tab:call("Emulation.setDeviceMetricsOverride",
    { width = self.width, height = self.height, deviceScaleFactor = 1, mobile = false })
  if url and url ~= "about:blank" then tab:navigate(url) end
  return tab
end

--- Stops Chromium (a Browser.close, then SIGKILL by pid if it has not
--- exited within 5 s, then any helper process of its profile still
--- running), and removes its profile folder. Safe to call twice; never
--- raises.
function Browser:close()
  if self.closed then return end
  self.closed = true
  if self.ws then
    -- Ask politely first: Chromium then stops its helpers itself.
    pcall(function()
      self.next_id = self.next_id + 1
      self.ws:write_message(websockets.TEXT, cjson.encode({ id = self.next_id, method = "Browser.close" }))
    end)
  end
  if self.handle and not self.exit_code then
    local i = lowbit.select{ self.exited, lowbit.after(5) }
    if i ~= 1 and not self.exit_code then
      pcall(uv.process_kill, self.handle, "sigkill")
      lowbit.select{ self.exited, lowbit.after(10) }
    end
  end
  if self.ws then pcall(self.ws.close, self.ws) end
  -- Helpers left behind (they normally die with the browser process).
  for _ = 1, 50 do
    local left = M.pids_using(self.dir)
    if #left == 0 then break end
    for _, pid in ipairs(left) do uv.kill(pid, "sigkill") end
    lowbit.sleep(0.1)
  end
  os.execute("rm -rf '" .. self.dir .. "'")
  live[self] = nil
end

--- Kills every browser launched and not closed (SIGKILL by pid, then its
--- helpers), and removes their profiles; needs no task. For the end of a
--- spec whose run may have been cut short before Browser:close ran.
function M.cleanup()
  for b in pairs(live) do
    live[b] = nil
    b.closed = true
    if not b.exit_code then uv.kill(b.pid, "sigkill") end -- (a reaped pid may be another's now)
    for _ = 1, 40 do
      local left = M.pids_using(b.dir)
      if #left == 0 then break end
      for _, pid in ipairs(left) do uv.kill(pid, "sigkill") end
      os.execute("sleep 0.05")
    end
    os.execute("rm -rf '" .. b.dir .. "'")
  end
end

--- Runs fn(browser) with a launched browser and always closes it, also
--- when fn raises (the error is raised again afterwards).
function M.with_browser(opts, fn)
  local b = M.launch(opts)
  local res = { pcall(fn, b) }
  b:close()
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

---------------------------------------------------------------------------
-- Tabs

function Tab:_event(m)
  local p = m.params or {}
  if m.method == "Runtime.consoleAPICalled" then
    local parts = {}
    for _, a in ipairs(p.args or {}) do
      parts[#parts + 1] = a.value ~= nil and fmt_err(a.value) or a.description or a.type
    end
    self.console[#self.console + 1] = p.type .. ": " .. table.concat(parts, " ")
  elseif m.method == "Runtime.exceptionThrown" then
    local d = p.exceptionDetails or {}
    self.exceptions[#self.exceptions + 1] = (d.exception and d.exception.description) or d.text or "exception"
  elseif m.method == "Page.javascriptDialogOpening" then
    -- A dialog blocks the page: note it and dismiss it (from another task,
    -- since this is the reader's).
    self.dialogs[#self.dialogs + 1] = p.type .. ": " .. tostring(p.message)
    lowbit.go(function()
      pcall(self.call, self, "Page.handleJavaScriptDialog", { accept = false })
    end)
  end
end

--- A CDP command in this tab's session.
function Tab:call(method, params, timeout)
  if self.closed then error("cdp: " .. method .. " on a closed tab", 2) end
  return self.browser:call(method, params, self.session, timeout or self.timeout)
end

--- Like Browser:expect, for this tab's session.
function Tab:expect(method, pred)
  return self.browser:expect(method, self.session, pred)
end

--- What the page logged and threw so far, for error messages.
function Tab:diagnostics()
  local lines = {}
  for _, s in ipairs(self.console) do lines[#lines + 1] = "console " .. s end
  for _, s in ipairs(self.exceptions) do lines[#lines + 1] = "exception " .. s end
  for _, s in ipairs(self.dialogs) do lines[#lines + 1] = "dialog " .. s end
  return table.concat(lines, "\n")
end

--- Navigates to url and waits for its load event. Returns the main
--- document's HTTP status (from the Navigation Timing entry; nil for
--- non-HTTP pages). Raises when the navigation fails (errorText) or the
--- load does not come within the timeout.
function Tab:navigate(url, timeout)
  timeout = timeout or self.timeout
  local wait_load = self:expect("Page.loadEventFired")
  local r = self:call("Page.navigate", { url = url }, timeout)
  if r.errorText and r.errorText ~= "" then
    error(("cdp: navigating to %s failed: %s"):format(url, r.errorText), 2)
  end
  local ok, err = pcall(wait_load, timeout, "the load event of " .. url)
  if not ok then error(err .. "\n" .. self:diagnostics(), 2) end
  -- Loaded is not yet scriptable everywhere: wait until the new document
  -- answers (bounded like the rest).
  local v = self:wait_for("document.readyState === 'complete' && "
    .. "((performance.getEntriesByType('navigation')[0] || {}).responseStatus || true)",
    "the document of " .. url .. " to be complete", timeout)
  return v ~= true and v or nil
end

--- Evaluates a JS expression in the page (awaiting a promise it returns)
--- and returns its value (JSON-able values only; undefined is nil).
--- Raises when it throws, with the exception.
function Tab:evaluate(js, timeout)
  local v, err = self:try_evaluate(js, timeout)
  if err then error(err, 2) end
  return v
end

--- Like evaluate, but returns nil, err when the script throws.
function Tab:try_evaluate(js, timeout)
  local r = self:call("Runtime.evaluate", {
    expression = js, awaitPromise = true, returnByValue = true, userGesture = true,
  }, timeout)
  if r.exceptionDetails then
    local d = r.exceptionDetails
    return nil, ("cdp: evaluating %s threw: %s"):format(js,
      (d.exception and (d.exception.description or fmt_err(d.exception.value))) or d.text or "?")
  end
  local v = r.result and r.result.value
  if v == cjson.null then v = nil end
  return v
end

--- Polls the JS condition (every 0.1 s) until it is truthy and returns its
--- value; raises after timeout seconds naming `what` (and the condition,
--- its last value or exception, and the page's console). A throwing
--- condition counts as not yet (the page may be between documents).
function Tab:wait_for(js, what, timeout)
  timeout = timeout or self.timeout
  local deadline = lowbit.now() + timeout
  local last
  while true do
    local ok, v, err = pcall(self.try_evaluate, self, js, math.max(1, deadline - lowbit.now()))
    if ok and not err and v ~= nil and v ~= false and v ~= 0 and v ~= "" then return v end
    last = not ok and v or err or ("value " .. fmt_err(v))
    if lowbit.now() >= deadline then
      local diag = self:diagnostics()
      error(("cdp: timed out after %gs waiting for %s (condition: %s; last: %s)%s")
        :format(timeout, what or "a condition", js, tostring(last), diag ~= "" and ("\n" .. diag) or ""), 2)
    end
    lowbit.sleep(0.1)
  end
end

--- Waits (bounded) for a value on the lowbit channel ch, which the spec's
--- server fills when the page reports (a POST from the page, a WebSocket
--- message...), and returns it. Raises naming `what` when the timeout
--- passes first, or at once when Chromium exits meanwhile, with the
--- page's console and exceptions and Chromium's stderr.
function Tab:receive(ch, what, timeout)
  timeout = timeout or self.timeout
  local b = self.browser
  local i, v = lowbit.select{ ch, b.exited, lowbit.after(timeout) }
  if i == 1 then return v end
  local why = i == 2 and ("chromium exited with code " .. tostring(b.exit_code)
      .. ((b.exit_signal or 0) ~= 0 and (" (signal " .. b.exit_signal .. ")") or ""))
    or ("timed out after " .. timeout .. "s")
  local diag = self:diagnostics()
  error(("cdp: %s waiting for %s%s; chromium's stderr:\n%s"):format(why, what or "a value",
    diag ~= "" and ("\n" .. diag) or "", b:stderr()), 2)
end

-- The element's box center, scrolled into view, or raises.
local function center_of(self, sel)
  local r = self:evaluate(([[(function () {
    var e = document.querySelector(%s);
    if (!e) return null;
    e.scrollIntoView({ block: "center", inline: "center" });
    var r = e.getBoundingClientRect();
    return { x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height };
  })()]]):format(M.js_string(sel)))
  if not r then error("cdp: no element matches " .. sel, 3) end
  if r.w == 0 or r.h == 0 then error("cdp: element " .. sel .. " has no size (hidden?)", 3) end
  return r
end

--- Clicks the element matching the CSS selector the way a user does: a
--- mouse press and release at its center (Input.dispatchMouseEvent).
function Tab:click(sel)
  local r = center_of(self, sel)
  for _, kind in ipairs { "mouseMoved", "mousePressed", "mouseReleased" } do
    self:call("Input.dispatchMouseEvent",
      { type = kind, x = r.x, y = r.y, button = kind == "mouseMoved" and "none" or "left", clickCount = 1 })
  end
end

--- Focuses the element matching sel and types text into it as keyboard
--- input would (Input.insertText: input events fire). opts.clear: empty
--- the field first (default true).
function Tab:type(sel, text, clear)
  local found = self:evaluate(([[(function () {
    var e = document.querySelector(%s);
    if (!e) return false;
    e.focus();
    if (%s) { e.value = ""; }
    return document.activeElement === e;
  })()]]):format(M.js_string(sel), clear == false and "false" or "true"))
  if not found then error("cdp: no focusable element matches " .. sel, 2) end
  self:call("Input.insertText", { text = text })
end

--- Presses one key (e.g. "Enter") in the focused element.
function Tab:press(key)
  local codes = { Enter = 13, Tab = 9, Escape = 27, Backspace = 8 }
  local code = codes[key]
  for _, kind in ipairs { "keyDown", "keyUp" } do
    self:call("Input.dispatchKeyEvent", { type = kind, key = key, code = key,
      windowsVirtualKeyCode = code, nativeVirtualKeyCode = code,
      text = (kind == "keyDown" and key == "Enter") and "\r" or nil })
  end
end

--- Turns the page's own JavaScript off (on = false) or back on, as a user
--- who disabled it would have it; evaluate still works (it is DevTools').
--- Applies to the documents loaded afterwards.
function Tab:set_javascript(on)
  self:call("Emulation.setScriptExecutionDisabled", { value = not on })
end

--- Saves a PNG screenshot of the viewport (opts.full_page: of the whole
--- page) to path, making its folder; returns the PNG's size in bytes.
function Tab:screenshot(path, opts)
  opts = opts or {}
  local params = { format = "png" }
  if opts.full_page then
    local m = self:call("Page.getLayoutMetrics")
    local cs = m.cssContentSize or m.contentSize
    params.captureBeyondViewport = true
    params.clip = { x = 0, y = 0, width = math.ceil(cs.width), height = math.ceil(cs.height), scale = 1 }
  end
  local r = self:call("Page.captureScreenshot", params, math.max(self.timeout, 30))
  local png = M.base64_decode(r.data)
  if png:sub(1, 8) ~= "\137PNG\r\n\26\n" then error("cdp: the screenshot is not a PNG", 2) end
  local folder = path:match("^(.*)/[^/]*$")
  if folder then assert(os.execute("mkdir -p '" .. folder .. "'") == 0, "cdp: cannot make " .. folder) end
  local f = assert(io.open(path, "wb"))
  f:write(png)
  f:close()
  return #png
end

--- Closes the tab (its target).
function Tab:close()
  if self.closed then return end
  self.browser:call("Target.closeTarget", { targetId = self.target })
  self.closed = true
  self.browser.tabs[self.session] = nil
end

--- Width and height of a PNG (from its IHDR chunk), or nil, reason.
function M.png_size(png)
  if type(png) ~= "string" or png:sub(1, 8) ~= "\137PNG\r\n\26\n" or png:sub(13, 16) ~= "IHDR" then
    return nil, "not a PNG"
  end
  local function u32(i)
    local a, b, c, d = png:byte(i, i + 3)
    return ((a * 256 + b) * 256 + c) * 256 + d
  end
  return u32(17), u32(21)
end

return M
