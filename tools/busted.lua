-- Runs busted on the interpreter that runs this file (LuaJIT), since
-- Debian's /usr/bin/busted is bound to the system's PUC Lua.
require "busted.runner"({ standalone = false })
