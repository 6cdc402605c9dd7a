/*
 * The `lowbit` host: LuaJIT + luv + the lowbit cores and Lua modules in one
 * executable. Lua modules are embedded as source (build/gen/embedded.c)
 * and registered in package.preload, so the binary needs no LUA_PATH. The
 * cores are linked in whole and exported (-Wl,-E), so the FFI finds them in
 * the executable itself. Everything else (argument handling, the main task,
 * signals, exit codes) is Lua: lowbit.host.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "lowbit/lb_base.h"

/* Each module's source text (not bytecode: LuaJIT's bytecode dump drops
 * the keys a table constructor fills at run time from its template, so
 * every such constructor would insert its keys one by one again). */
struct lb_embedded {
  const char *name;  /* "lowbit.net" */
  const char *chunk; /* "@lowbit/net.lua", for tracebacks */
  const unsigned char *src;
  size_t len;
};
extern const struct lb_embedded lb_embedded_modules[];

int luaopen_luv(lua_State *L);

/* package.preload loader: upvalue 1 is the module's index in the table. */
static int load_embedded(lua_State *L) {
  const struct lb_embedded *m = &lb_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
  if (luaL_loadbuffer(L, (const char *)m->src, m->len, m->chunk) != 0) return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = "(error object is not a string)";
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv) {
  lb_ignore_sigpipe();
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fputs("lowbit: cannot create Lua state (out of memory)\n", stderr);
    return 1;
  }
  luaL_openlibs(L);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_luv);
  lua_setfield(L, -2, "luv");
  for (int i = 0; lb_embedded_modules[i].name != NULL; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, lb_embedded_modules[i].name);
  }
  lua_pop(L, 2);

  /* require("lowbit.host").main(argv) -> exit status */
  lua_pushcfunction(L, traceback);
  lua_getglobal(L, "require");
  lua_pushstring(L, "lowbit.host");
  if (lua_pcall(L, 1, 1, 1) != 0) {
    fprintf(stderr, "lowbit: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  int status = 1;
  if (lua_pcall(L, 1, 1, 1) != 0) {
    fprintf(stderr, "lowbit: %s\n", lua_tostring(L, -1));
  } else {
    status = (int)lua_tointeger(L, -1);
  }
  fflush(stdout);
  /* Exit without lua_close: open handles and tasks are abandoned as a
   * process exit would, without running their finalizers on a dead loop. */
  return status;
}
