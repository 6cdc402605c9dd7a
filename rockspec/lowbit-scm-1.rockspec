rockspec_format = "3.0"
package = "lowbit"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- `luarocks make` builds the checkout it runs in
}
description = {
  summary = "Small network primitives for LuaJIT: HTTP/1.1, WebSocket, SSE, routing, supervisors",
  detailed = [[
lowbit keeps its hot paths (HTTP parsing, WebSocket and SSE codecs, HMAC,
framing, keyed locks) in C cores called through the FFI, runs I/O on libuv
through luv, and composes applications in Lua with Go-like tasks, channels
and contexts.]],
  license = "MIT",
}
dependencies = {
  "lua == 5.1",
  "luajit >= 2.1.0-beta3", -- (2.1 as every LuaJIT 2.1 reports itself) a virtual rock luarocks provides only when the VM is LuaJIT: PUC Lua is refused
}
-- Checked before anything compiles: a missing one fails with luarocks'
-- hint (pass LIBUV_DIR, or LIBUV_INCDIR and LIBUV_LIBDIR, ...).
-- llhttp is compiled from its sources: LLHTTP_DIR is the prefix holding
-- include/llhttp/llhttp.h and llhttp/{llhttp,api,http}.c (Debian's
-- node-llhttp: LLHTTP_DIR=/usr/share).
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  ZLIB = { header = "zlib.h", library = "z" },
  LLHTTP = { header = "llhttp/llhttp.h" },
}
build = {
  -- "command" rather than "make": lowbit needs no Lua headers (the cores
  -- are plain C loaded through the FFI), so none are looked for. The
  -- `rock` target builds the library, the FFI declarations and, where
  -- luv's static archive exists, the `lowbit` host (installed as a bin).
  type = "command",
  build_command = [[make rock LB_DEPS_CHECKED=1 CC="$(CC)" LLHTTP_SRC="$(LLHTTP_DIR)/llhttp" LLHTTP_INC="$(LLHTTP_INCDIR)/llhttp" ROCK_CFLAGS="-I$(LIBUV_INCDIR) -I$(OPENSSL_INCDIR) -I$(ZLIB_INCDIR)" ROCK_LDFLAGS="-L$(LIBUV_LIBDIR) -L$(OPENSSL_LIBDIR) -L$(ZLIB_LIBDIR)"]],
  install_command = [[make rock-install LB_DEPS_CHECKED=1 LUADIR="$(LUADIR)" LIBDIR="$(LIBDIR)" BINDIR="$(BINDIR)"]],
}
