-- lowbit.core: the C cores, through LuaJIT's FFI.
--
--   local core = require "lowbit.core"
--   core.C.lb_strerror(-1)    -- any function of include/lowbit/*.h
--
-- The declarations come from build/lua/lowbit/cdef.lua, generated from the
-- headers at build time. The library is found, in order: in the running
-- executable (the `lowbit` host links the cores in), at $LOWBIT_LIB, or as
-- liblowbit.so on package.cpath (where `luarocks make` installs it).
local ffi = require "ffi"

local M = { ffi = ffi }

ffi.cdef(require "lowbit.cdef")

local function has_symbols(lib)
  return pcall(function() return lib.lb_version end)
end

local function load()
  if has_symbols(ffi.C) then return ffi.C, "executable" end
  local env = os.getenv("LOWBIT_LIB")
  if env and env ~= "" then return ffi.load(env), env end
  local path = package.searchpath("liblowbit", package.cpath)
  if path then return ffi.load(path), path end
  error("lowbit.core: liblowbit.so not found (set LOWBIT_LIB, or install with luarocks make)", 0)
end

M.C, M.path = load()
-- The library stays loaded for the life of the Lua state. A clib namespace
-- that is collected unloads its library, and objects freed later by an
-- ffi.gc finalizer (C.lb_*_free) would then call into unmapped code; this
-- happens when every module holding it is dropped (busted's insulation
-- does that between spec files).
debug.getregistry()["lowbit.core.lib"] = M.C

local C = M.C
local ffi_string = ffi.string

--- The message for an LB_E* code.
function M.strerror(code) return ffi_string(C.lb_strerror(code)) end

--- The name of an LB_E* code without the prefix ("EAGAIN").
function M.errname(code) return ffi_string(C.lb_err_name(code)) end

M.version = ffi_string(C.lb_version())

return M
