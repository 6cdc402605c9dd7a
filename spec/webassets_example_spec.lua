-- examples/assets.lua runs as documented: a page naming a fingerprinted
-- bundle and stylesheet, both served immutable; the _ rule; Ctrl-C stops it.
local support = require "support"
local sh, host = support.sh, support.host

local function port() return 21000 + math.random(0, 8999) end

describe("examples/assets.lua", function()
  it("serves a page with a fingerprinted bundle and stylesheet, and stops on Ctrl-C", function()
    local p = port()
    local base = "http://127.0.0.1:" .. p
    local pidfile = os.tmpname()
    sh(("cd %s && (%s examples/assets.lua 127.0.0.1:%d >/dev/null 2>&1 & echo $! > %s)"):format(support.root, host, p, pidfile))
    local pid = io.open(pidfile):read("*l")
    os.remove(pidfile)
    local ok, err = pcall(function()
      local page = ""
      for _ = 1, 100 do
        page = sh("curl -s " .. base .. "/")
        if page:find("</html>", 1, true) then break end
        sh("sleep 0.05")
      end
      local js = page:match('src="(/assets/app%.bundle%.%x%x%x%x%x%x%x%x%.js)"')
      local css = page:match('href="(/assets/css/site%.%x%x%x%x%x%x%x%x%.css)"')
      assert.truthy(js, page)
      assert.truthy(css, page)
      local head = sh("curl -s -D - -o /dev/null " .. base .. js)
      assert.matches("HTTP/1%.1 200", head)
      assert.matches("Cache%-Control: public, max%-age=31536000, immutable", head)
      assert.matches("Content%-Type: text/javascript; charset=utf%-8", head)
      local bundle = sh("curl -s " .. base .. js)
      -- both sources, in order (minified or as they are)
      local g, d = bundle:find("greet", 1, true), bundle:find("DOMContentLoaded", 1, true)
      assert.truthy(g and d and g < d, bundle)
      assert.matches("Content%-Encoding: br", (sh("curl -s --compressed -D - -o /dev/null " .. base .. css)))
      assert.equal("404", (sh("curl -s -o /dev/null -w '%{http_code}' " .. base .. js:gsub("%.%x+%.js$", ".00000000.js"))))
      assert.equal("403", (sh("curl -s -o /dev/null -w '%{http_code}' " .. base .. "/assets/_drafts/notes.txt")))
    end)
    local out = sh(("kill -INT %s; for i in $(seq 100); do kill -0 %s 2>/dev/null || break; sleep 0.05; done; " ..
      "kill -0 %s 2>/dev/null && echo running || echo exited"):format(pid, pid, pid))
    sh("kill -9 " .. pid .. " 2>/dev/null")
    assert(ok, err)
    assert.equal("exited", out:match("%a+"))
  end)
end)
