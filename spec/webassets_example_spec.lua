-- examples/assets.lua runs as documented: a page naming a fingerprinted
-- bundle and stylesheet, both served immutable; the _ rule; Ctrl-C stops it.
local support = require "support"
local proc = require "support.proc"
local sh, host = support.sh, support.host

describe("examples/assets.lua", function()
  it("serves a page with a fingerprinted bundle and stylesheet, and stops on Ctrl-C", function()
    local addr = "127.0.0.1:" .. support.free_port()
    local base = "http://" .. addr
    proc.with({ host, "examples/assets.lua", addr }, {}, function(p)
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
      assert.truthy(p.stop("INT", 5), "still running 5 s after Ctrl-C")
    end)
  end)
end)
