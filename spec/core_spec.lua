-- The FFI declarations are generated from include/lowbit/*.h; these specs
-- check that what the bindings declare is what the library exports.
local core = require "lowbit.core"
local support = require "support"

describe("lowbit.core", function()
  it("loads liblowbit and maps error codes", function()
    assert.equal("need more input", core.strerror(-1))
    assert.equal("EAGAIN", core.errname(-1))
    assert.equal("unknown error", core.strerror(424242))
    assert.equal(require("lowbit").VERSION, core.version)
  end)

  it("every function declared in the headers resolves in the library", function()
    local cdef = require "lowbit.cdef"
    local n = 0
    for name in cdef:gmatch("([%w_]+)%s*%b()%s*;") do
      if name:match("^lb_") then
        n = n + 1
        local ok = pcall(function() return core.C[name] end)
        assert.is_true(ok, "missing symbol " .. name)
      end
    end
    assert.is_true(n >= 5, "found only " .. n .. " functions")
  end)

  it("the generated declarations match the headers as they are now", function()
    local root = support.root
    local out, rc = support.sh("cd " .. root .. " && luajit tools/gencdef.lua /tmp/lowbit-cdef-check.lua include/lowbit/lb_*.h && cmp -s /tmp/lowbit-cdef-check.lua build/lua/lowbit/cdef.lua && echo same")
    assert.equal(0, rc)
    assert.equal("same\n", out)
  end)

  it("the byte buffer and constant-time compare work through the FFI", function()
    local ffi = core.ffi
    local b = ffi.new("lb_buf")
    assert.equal(0, core.C.lb_buf_append(b, "abc", 3))
    assert.equal("abc", ffi.string(b.data, b.len))
    core.C.lb_buf_free(b)
    assert.equal(1, core.C.lb_ct_equal("same", "same", 4))
    assert.equal(0, core.C.lb_ct_equal("same", "sane", 4))
  end)
end)

describe("luarocks make", function()
  it("installs modules and library into a tree where plain luajit can require lowbit", function()
    local tree = os.tmpname()
    os.remove(tree)
    local root = support.root
    local _, rc = support.sh("cd " .. root .. " && luarocks --lua-version 5.1 --tree " .. tree ..
      " make LLHTTP_DIR=/usr/share rockspec/lowbit-scm-1.rockspec >/dev/null 2>&1")
    assert.equal(0, rc)
    local out, rc2 = support.sh("cd / && env -u LOWBIT_LIB LUA_PATH='" .. tree .. "/share/lua/5.1/?.lua;" .. tree ..
      "/share/lua/5.1/?/init.lua;;' LUA_CPATH='" .. tree .. "/lib/lua/5.1/?.so;;' luajit -e " ..
      "'local l = require \"lowbit\"; local c = require \"lowbit.core\"; print(l.VERSION, c.path:match(\"liblowbit.so$\"))' 2>&1")
    support.sh("rm -rf " .. tree)
    assert.equal(0, rc2)
    assert.equal(require("lowbit").VERSION .. "\tliblowbit.so\n", out)
  end)
  it("keeps the library loaded when every module is dropped (finalizers run later)", function()
    -- An HMAC state freed by its ffi.gc finalizer after all of lowbit's
    -- modules were unloaded and collected: the library must still be there.
    local script = support.tmpfile([[
local signer = assert(require("lowbit.urlsign").new_signer("key", 60))
for name in pairs(package.loaded) do
  if name:find("^lowbit") then package.loaded[name] = nil end
end
collectgarbage(); collectgarbage()
signer = nil
collectgarbage(); collectgarbage()
print("ok")
]], ".lua")
    local out, rc = support.sh("luajit " .. script .. " 2>&1")
    os.remove(script)
    assert.equal(0, rc, out)
    assert.equal("ok\n", out)
  end)
end)
