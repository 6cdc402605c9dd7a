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
  "lua == 5.1", -- LuaJIT
}
build = {
  -- "command" rather than "make": lowbit needs no Lua headers (the cores
  -- are plain C loaded through the FFI), so none are looked for.
  type = "command",
  build_command = "make all",
  install_command = [[make rock-install LUADIR="$(LUADIR)" LIBDIR="$(LIBDIR)"]],
}
