-- Runs busted on the interpreter that runs this file (LuaJIT), since
-- Debian's /usr/bin/busted is bound to the system's PUC Lua.
-- The JIT limits the `lowbit` host runs scripts with (lowbit.host's
-- JIT_OPTS): the specs that check traces see what users' code gets.
if jit and jit.opt then jit.opt.start("maxtrace=8000", "maxrecord=16000", "maxirconst=2000", "maxmcode=40960") end
require "busted.runner"({ standalone = false })
