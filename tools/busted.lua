-- Runs busted on the interpreter that runs this file (LuaJIT), since
-- Debian's /usr/bin/busted is bound to the system's PUC Lua.
-- The JIT limits the `lowbit` host runs scripts with (lowbit.host's
-- JIT_OPTS): the specs that check traces see what users' code gets.
if jit and jit.opt then jit.opt.start(unpack(require("lowbit.host").JIT_OPTS)) end
require "busted.runner"({ standalone = false })
