/*
 * The `lowbit` host: LuaJIT + luv + the lowbit cores and Lua modules in one
 * executable. Lua modules are embedded as source (build/gen/embedded.c)
 * and registered in package.preload, so the binary needs no LUA_PATH. The
 * cores are linked in whole and exported (-Wl,-E), so the FFI finds them in
 * the executable itself. Everything else (argument handling, the main task,
 * signals, exit codes) is Lua: lowbit.host.
 */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Signals. libuv turns SIGINT/SIGTERM into loop callbacks, which run only
 * when a task yields: a task that never yields would make the process
 * unkillable by them. So the host also counts them here, in the handler
 * itself: the first is passed on to libuv's handler (graceful shutdown),
 * the second exits at once with the conventional status (128 + signal),
 * whatever Lua is doing. */
static volatile sig_atomic_t signal_count;
static struct sigaction prev_int, prev_term;

static void say_exit(int signo) {
  static const char int_msg[] = "lowbit: second SIGINT, exiting now\n";
  static const char term_msg[] = "lowbit: second SIGTERM, exiting now\n";
  const char *msg = signo == SIGINT ? int_msg : term_msg;
  size_t len = signo == SIGINT ? sizeof int_msg - 1 : sizeof term_msg - 1;
  /* stderr may be a pipe nobody reads: write without blocking, on the
   * shared file description only for this one write. */
  int fl = fcntl(2, F_GETFL);
  if (fl == -1) return;
  if (!(fl & O_NONBLOCK)) (void)fcntl(2, F_SETFL, fl | O_NONBLOCK);
  ssize_t n = write(2, msg, len);
  (void)n;
  if (!(fl & O_NONBLOCK)) (void)fcntl(2, F_SETFL, fl);
}

static void on_signal(int signo, siginfo_t *info, void *uctx) {
  int saved = errno;
  signal_count = signal_count + 1; /* both signals are blocked meanwhile */
  if (signal_count >= 2) {
    say_exit(signo);
    _exit(128 + signo);
  }
  const struct sigaction *prev = signo == SIGINT ? &prev_int : &prev_term;
  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction != NULL) prev->sa_sigaction(signo, info, uctx);
  } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN && prev->sa_handler != NULL) {
    prev->sa_handler(signo);
  } else if (prev->sa_handler == SIG_DFL) {
    /* Nobody else handles it: the default action (termination). */
    say_exit(signo);
    _exit(128 + signo);
  }
  errno = saved;
}

static int chain_signal(int signo, struct sigaction *prev) {
  struct sigaction cur, sa;
  if (sigaction(signo, NULL, &cur) != 0) return -1;
  /* Already counting, or ignored on purpose (nohup): leave it. */
  if ((cur.sa_flags & SA_SIGINFO) ? cur.sa_sigaction == on_signal : cur.sa_handler == SIG_IGN) return 0;
  *prev = cur;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  return sigaction(signo, &sa, NULL);
}

/* Called by lowbit.host (through the FFI; the executable exports its
 * symbols) once libuv's handlers for SIGINT and SIGTERM are installed:
 * puts the counting handler in front of them. 0, or -1 on failure. */
int lb_host_count_signals(void);
int lb_host_count_signals(void) {
  if (chain_signal(SIGINT, &prev_int) != 0) return -1;
  if (chain_signal(SIGTERM, &prev_term) != 0) return -1;
  return 0;
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
