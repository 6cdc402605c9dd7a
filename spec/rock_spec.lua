-- The rock (conformance/openresty.md, list D): a fresh clone of the
-- checkout installs into an empty tree with `luarocks make`, a spec subset
-- passes against that tree from a directory outside the checkout, and
-- `luarocks remove` leaves no lowbit file behind.
local support = require "support"

-- A command's stdout and stderr, and its exit status.
local function sh(cmd) return support.sh("(" .. cmd .. ") 2>&1") end
local q = support.quote

local root = support.root
local LR = "luarocks --lua-version 5.1"
-- Debian's node-llhttp: include/llhttp/llhttp.h and llhttp/*.c under /usr/share.
local LLHTTP = "LLHTTP_DIR=/usr/share"

describe("the lowbit rock", function()
  local tmp, tree, src

  setup(function()
    tmp = (sh("mktemp -d")):gsub("%s+$", "")
    tree, src = tmp .. "/tree", tmp .. "/src"
    local out, rc = sh("git clone -q " .. q(root) .. " " .. q(src))
    assert(rc == 0, out)
  end)

  teardown(function()
    if tmp and tmp:match("^/tmp/") then sh("rm -rf " .. q(tmp)) end
  end)

  it("luarocks lint finds nothing to say", function()
    local out, rc = sh("cd " .. q(src) .. " && " .. LR .. " lint rockspec/lowbit-scm-1.rockspec")
    assert.equal(0, rc, out)
    assert.equal("", (out:gsub("%s+", "")))
  end)

  it("a missing external dependency fails before compiling, naming its variable", function()
    local out, rc = sh("cd " .. q(src) .. " && " .. LR .. " make --tree " .. q(tmp .. "/bad") .. " "
      .. LLHTTP .. " LIBUV_DIR=" .. q(tmp .. "/nowhere") .. " rockspec/lowbit-scm-1.rockspec")
    assert.is_not.equal(0, rc)
    assert.truthy(out:find("LIBUV", 1, true), out)
    assert.truthy(out:find("LIBUV_DIR", 1, true), out)
    assert.falsy(out:find("make rock", 1, true), out) -- nothing was compiled
    assert.falsy(io.open(src .. "/build/lib/liblowbit.so"))
    -- llhttp's sources are an external dependency too.
    out, rc = sh("cd " .. q(src) .. " && " .. LR .. " make --tree " .. q(tmp .. "/bad") .. " "
      .. "LLHTTP_DIR=" .. q(tmp .. "/nowhere") .. " rockspec/lowbit-scm-1.rockspec")
    assert.is_not.equal(0, rc)
    assert.truthy(out:find("LLHTTP_DIR", 1, true), out)
  end)

  it("installs into a clean tree, passes specs there from outside the checkout, and removes cleanly", function()
    local out, rc = sh("cd " .. q(src) .. " && " .. LR .. " make --tree " .. q(tree) .. " " .. LLHTTP
      .. " rockspec/lowbit-scm-1.rockspec")
    assert.equal(0, rc, out)
    assert.truthy(io.open(tree .. "/lib/lua/5.1/liblowbit.so"), "library installed")
    assert.truthy(io.open(tree .. "/share/lua/5.1/lowbit/cdef.lua"), "declarations installed")
    -- The host builds here (Debian's luv archive exists), so it is a bin.
    local bin = tree .. "/bin/lowbit"
    assert.truthy(io.open(bin), "bin/lowbit installed")

    -- Specs copied out of the checkout run from a directory outside it,
    -- against the tree only: no ./lua, no LOWBIT_LIB, no LOWBIT_ROOT.
    local run = tmp .. "/run"
    local specs = { "errors_spec.lua", "url_spec.lua", "urlsign_spec.lua", "retry_spec.lua",
                    "context_spec.lua", "scheduler_spec.lua", "net_spec.lua", "http_server_spec.lua" }
    assert.equal(0, select(2, sh("mkdir -p " .. q(run .. "/spec") .. " && cp " .. q(root .. "/spec") .. "/*.lua "
      .. q(run .. "/spec/"))))
    local env = "cd " .. q(run) .. " && eval \"$(" .. LR .. " --tree " .. q(tree) .. " path)\" && "
      .. "unset LOWBIT_LIB LOWBIT_ROOT && export LUA_PATH=\"$LUA_PATH;" .. run .. "/spec/?.lua;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua\" && "
    -- Where each module comes from: the tree, never the checkout.
    out, rc = sh(env .. "luajit -e 'local c = require \"lowbit.core\"; print(c.path); "
      .. "print(package.searchpath(\"lowbit\", package.path)); print(c.version)'")
    assert.equal(0, rc, out)
    assert.truthy(out:find(tree .. "/lib/lua/5.1/liblowbit.so", 1, true), out)
    assert.truthy(out:find(tree .. "/share/lua/5.1/lowbit/init.lua", 1, true), out)
    assert.falsy(out:find(root, 1, true), out)
    for _, s in ipairs(specs) do
      out, rc = sh(env .. "luajit " .. q(root .. "/tools/busted.lua") .. " -o plainTerminal spec/" .. s)
      assert.equal(0, rc, s .. ":\n" .. out)
      assert.truthy(out:match("%d+ successes / 0 failures / 0 errors / 0 pending"), s .. ":\n" .. out)
    end
    -- The installed host serves an app from outside the checkout.
    out, rc = sh(q(bin) .. " -e 'print(require(\"lowbit.core\").version)' 2>&1 || " .. q(bin) .. " --version")
    assert.truthy(out:find(require("lowbit").VERSION, 1, true), out)

    out, rc = sh(LR .. " --tree " .. q(tree) .. " remove lowbit")
    assert.equal(0, rc, out)
    out = sh("find " .. q(tree) .. " -iname '*lowbit*'")
    assert.equal("", (out:gsub("%s+", "")))
  end)

  it("refuses PUC Lua: the rock requires luajit >= 2.1", function()
    local f = assert(io.open(root .. "/rockspec/lowbit-scm-1.rockspec"))
    local text = f:read("*a")
    f:close()
    local spec = {}
    assert(load(text, "rockspec", "t", spec))()
    local found
    for _, d in ipairs(spec.dependencies) do
      if d:match("^luajit >= 2%.1") then found = d end
    end
    assert.truthy(found, "a luajit >= 2.1 dependency")
  end)

  it("without string.buffer, require 'lowbit' fails with one clear message", function()
    local out, rc = sh("cd " .. q(root) .. " && LUA_PATH='lua/?.lua;lua/?/init.lua;;' luajit -e "
      .. "'package.preload[\"string.buffer\"] = nil; package.loaded[\"string.buffer\"] = nil; require \"lowbit\"'")
    assert.is_not.equal(0, rc)
    assert.truthy(out:find("lowbit needs LuaJIT 2.1 with string.buffer", 1, true), out)
  end)

  it("refuses a luv whose libuv is not liblowbit's, with what to do", function()
    local net = require "lowbit.net"
    local uv = require "luv"
    assert.is_nil(net._libuv_mismatch(uv.version(), uv.version()))
    local msg = net._libuv_mismatch(0x012c00, 0x012d00)
    assert.truthy(msg:find("luv runs libuv 1.44.0 but liblowbit uses libuv 1.45.0", 1, true), msg)
    assert.truthy(msg:find("WITH_SHARED_LIBUV=ON", 1, true), msg)
  end)
end)
