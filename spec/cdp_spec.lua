-- The DevTools driver of the browser specs (spec/support/cdp.lua) against
-- a tiny lowbit page: it evaluates, types, clicks, waits, takes
-- screenshots, drives two tabs at once, and leaves no Chromium behind.
local lowbit = require "lowbit"
local http = require "lowbit.http"
local support = require "support"
local cdp = require "support.cdp"
local run = support.run

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>cdp spec</title>
<style>body { font: 16px sans-serif; background: #fff; } #go { width: 120px; height: 40px; }</style></head>
<body><main id="page" data-page="tiny">
<input id="name"> <button id="go">go</button>
<ul id="out"></ul>
</main>
<script>
var clicks = 0;
document.getElementById("go").addEventListener("click", function () {
  clicks++;
  var li = document.createElement("li");
  li.textContent = document.getElementById("name").value;
  document.getElementById("out").appendChild(li);
});
window.later = function (ms, v) { return new Promise(function (ok) { setTimeout(function () { ok(v); }, ms); }); };
</script></body></html>]]

local function serve()
  local hits, reports = {}, lowbit.chan(4)
  local srv, ln = support.http_server{ handler = function(w, r)
    hits[r.url.path] = (hits[r.url.path] or 0) + 1
    if r.url.path == "/report" then
      reports:try_send(r.body:read_all())
      w:write("ok")
    elseif r.url.path == "/" then
      w:header():set("Content-Type", "text/html; charset=utf-8")
      w:write(PAGE)
    elseif r.url.path == "/gone" then
      w:header():set("Content-Type", "text/html; charset=utf-8")
      w:write_header(410)
      w:write("<!doctype html><title>gone</title><main data-page='gone'>gone</main>")
    else
      http.not_found(w, r)
    end
  end }
  return srv, "http://" .. ln:addr(), hits, reports
end

local function read(path) return assert(support.read_file(path)) end

describe("support.cdp", function()
  after_each(function() cdp.cleanup() end) -- a run cut short by the watchdog leaves no Chromium

  it("decodes base64", function()
    assert.equal("", cdp.base64_decode(""))
    assert.equal("f", cdp.base64_decode("Zg=="))
    assert.equal("fo", cdp.base64_decode("Zm8="))
    assert.equal("foo", cdp.base64_decode("Zm9v"))
    assert.equal("\0\1\254\255", cdp.base64_decode("AAH+/w=="))
    assert.has_error(function() cdp.base64_decode("Zm9v!") end)
  end)

  it("evaluates, types, clicks, waits and takes a PNG screenshot of a lowbit page", function()
    local shot = os.tmpname()
    os.remove(shot) -- (tmpname made the file)
    shot = shot .. ".png"
    local dir
    run(function()
      local srv, base = serve()
      cdp.with_browser({}, function(b)
        dir = b.dir
        assert.is_true(#cdp.pids_using(dir) >= 2) -- the browser and its helpers
        local tab = b:new_tab()
        assert.equal(200, tab:navigate(base .. "/"))
        assert.equal("tiny", tab:evaluate("document.getElementById('page').dataset.page"))
        assert.equal(42, tab:evaluate("later(50, 42)"))           -- a promise is awaited
        assert.same({ a = { 1, 2 } }, tab:evaluate("({ a: [1, 2] })"))
        local v, err = tab:try_evaluate("nope.nope")
        assert.is_nil(v)
        assert.matches("ReferenceError", err)
        assert.has_error(function() tab:evaluate("throw new Error('boom')") end)
        tab:type("#name", "Ada <b>")
        tab:click("#go")
        assert.equal("Ada <b>", tab:wait_for("document.querySelector('#out li') && "
          .. "document.querySelector('#out li').textContent", "the list item"))
        assert.equal(1, tab:evaluate("clicks"))
        -- a bounded wait names what it waited for
        local ok, werr = pcall(tab.wait_for, tab, "false", "something that never comes", 0.5)
        assert.is_false(ok)
        assert.matches("waiting for something that never comes", werr)
        assert.has_error(function() tab:click("#missing") end, nil)
        -- the status of a navigation that is not a 200
        assert.equal(410, tab:navigate(base .. "/gone"))
        assert.equal(404, tab:navigate(base .. "/nowhere"))
        tab:navigate(base .. "/")
        local n = tab:screenshot(shot)
        assert.is_true(n > 1000)
        tab:close()
      end)
      srv:close()
    end)
    local png = read(shot)
    os.remove(shot)
    local w, h = cdp.png_size(png)
    assert.equal(cdp.WIDTH, w)
    assert.equal(cdp.HEIGHT, h)
    -- Chromium and its helpers are gone, and so is the profile.
    assert.is_nil(io.open(dir .. "/DevToolsActivePort"))
    assert.same({}, cdp.pids_using(dir))
  end)

  it("drives two tabs at once: a click in one does not reach the other", function()
    run(function()
      local srv, base, hits = serve()
      cdp.with_browser({}, function(b)
        local a, c = b:new_tab(base .. "/"), b:new_tab(base .. "/")
        assert.equal(2, hits["/"])
        a:type("#name", "in a")
        c:type("#name", "in c")
        a:click("#go")
        c:click("#go")
        c:click("#go")
        a:wait_for("clicks === 1", "one click in tab a")
        c:wait_for("clicks === 2", "two clicks in tab c")
        assert.same({ "in a" }, a:evaluate("[].map.call(document.querySelectorAll('#out li'), function (e) { return e.textContent; })"))
        assert.same({ "in c", "in c" }, c:evaluate("[].map.call(document.querySelectorAll('#out li'), function (e) { return e.textContent; })"))
      end)
      srv:close()
    end)
  end)

  it("turns a page's JavaScript off and on", function()
    run(function()
      local srv, base = serve()
      cdp.with_browser({}, function(b)
        local tab = b:new_tab()
        tab:set_javascript(false)
        tab:navigate(base .. "/")
        assert.equal("undefined", tab:evaluate("typeof later"))   -- the page's script did not run
        tab:type("#name", "typed without js")                  -- the driver still works
        assert.equal("typed without js", tab:evaluate("document.getElementById('name').value"))
        tab:set_javascript(true)
        tab:navigate(base .. "/")
        assert.equal("function", tab:evaluate("typeof later"))
      end)
      srv:close()
    end)
  end)

  it("notes and dismisses dialogs instead of hanging on them", function()
    run(function()
      local srv, base = serve()
      cdp.with_browser({}, function(b)
        local tab = b:new_tab(base .. "/")
        -- an alert from the evaluated script itself: evaluate returns once
        -- the driver has dismissed it
        assert.equal(1, tab:evaluate("alert('hi'); 1"))
        assert.same({ "alert: hi" }, tab.dialogs)
        -- one from the page later on: a confirm, answered no
        tab:evaluate("setTimeout(function () { window.answer = confirm('sure?'); }, 0); 1")
        tab:wait_for("window.answer === false", "the page's confirm to be answered")
        assert.same({ "alert: hi", "confirm: sure?" }, tab.dialogs)
      end)
      srv:close()
    end)
  end)

  it("receives what the page reports to the server, and says what it waited for when nothing comes", function()
    run(function()
      local srv, base, _, reports = serve()
      cdp.with_browser({}, function(b)
        local tab = b:new_tab(base .. "/")
        tab:evaluate("setTimeout(function () { fetch('/report', { method: 'POST', body: 'from the page' }); }, 50); 1")
        assert.equal("from the page", tab:receive(reports, "the page's report"))
        tab:evaluate("console.log('still waiting'); 1")
        local t0 = lowbit.now()
        local ok, err = pcall(tab.receive, tab, lowbit.chan(1), "a report that never comes", 0.5)
        assert.is_false(ok)
        assert.is_true(lowbit.now() - t0 < 5)
        assert.matches("timed out after 0.5s waiting for a report that never comes", err, 1, true)
        assert.matches("console log: still waiting", err, 1, true)
        -- Chromium dies: the wait ends at once, saying so
        require("luv").kill(b.pid, "sigkill")
        t0 = lowbit.now()
        ok, err = pcall(tab.receive, tab, lowbit.chan(1), "a report from a dead browser", 30)
        assert.is_false(ok)
        assert.is_true(lowbit.now() - t0 < 10, "the wait did not end when chromium died")
        assert.matches("chromium exited with code", err, 1, true)
        assert.matches("waiting for a report from a dead browser", err, 1, true)
      end)
      srv:close()
    end)
  end)

  it("closes Chromium when the function raises, and raises the error again", function()
    local dir
    run(function()
      local ok, err = pcall(cdp.with_browser, {}, function(b)
        dir = b.dir
        b:new_tab()
        error("failure inside", 0)
      end)
      assert.is_false(ok)
      assert.equal("failure inside", err)
    end)
    assert.same({}, cdp.pids_using(dir))
    assert.is_nil(io.open(dir))
  end)

  it("says that Chromium died when it dies under a test, at once and in every later call", function()
    local dir
    run(function()
      local srv, base = serve()
      local ok, err = pcall(cdp.with_browser, {}, function(b)
        dir = b.dir
        local tab = b:new_tab(base .. "/")
        require("luv").kill(b.pid, "sigkill")
        local t0 = lowbit.now()
        local eok, eerr = pcall(tab.evaluate, tab, "later(60000, 1)") -- an answer that never comes
        assert.is_false(eok)
        assert.matches("connection to chromium closed", eerr)
        assert.is_true(lowbit.now() - t0 < b.timeout, "the dead browser's call waited its whole timeout")
        eok, eerr = pcall(tab.evaluate, tab, "1")
        assert.is_false(eok)
        assert.matches("cannot send Runtime.evaluate: the connection to chromium closed", eerr)
        error("after the death", 0)
      end)
      assert.is_false(ok)
      assert.equal("after the death", err)
      srv:close()
    end)
    assert.same({}, cdp.pids_using(dir))
  end)

  it("fails with a clear message when Chromium cannot start", function()
    run(function()
      local saved = cdp.CHROMIUM
      cdp.CHROMIUM = "/nonexistent/chromium"
      local ok, err = pcall(cdp.launch, {})
      cdp.CHROMIUM = saved
      assert.is_false(ok)
      assert.matches("is not installed", err)
      -- a "Chromium" that exits at once, before it listens
      cdp.CHROMIUM = "/bin/false"
      ok, err = pcall(cdp.launch, {})
      cdp.CHROMIUM = saved
      assert.is_false(ok)
      assert.matches("exited with code 1 before it listened", err)
    end)
  end)
end)
