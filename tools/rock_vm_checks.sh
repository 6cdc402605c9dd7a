#!/bin/bash
# conformance/openresty.md D4 and D5 against the real things (rock_spec.lua
# checks the rockspec and the version test only): needs the network (Debian's
# mirror) and ~2 minutes, so it is not part of `make test`. Changes nothing
# on the system: packages are downloaded and unpacked into a temporary folder,
# apt lists go to a private folder.
#   D4: a PUC Lua 5.1 (Debian's lua5.1, unpacked) as luarocks' VM: `luarocks
#       make` is refused on "luajit >= 2.1" before anything compiles, and
#       `require "lowbit"` under it fails with one clear message.
#   D5: luv 1.48 (Debian trixie's source) built with its own static libuv
#       (1.50, trixie's libuv1 source) as a luv rock does by default
#       (WITH_SHARED_LIBUV=OFF): `require "lowbit.net"` refuses it clearly.
#   bash tools/rock_vm_checks.sh
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# D4
(cd "$t" && apt-get download lua5.1 >/dev/null 2>&1) || { echo "cannot download lua5.1"; exit 1; }
dpkg -x "$t"/lua5.1_*.deb "$t/puc"
PUC="$t/puc/usr/bin/lua5.1"
cat > "$t/puc.lua" <<CFG
lua_interpreter = "lua5.1"
variables = { LUA = "$PUC", LUA_BINDIR = "$t/puc/usr/bin", LUA_DIR = "/usr", LUA_INCDIR = "/usr/include/lua5.1" }
CFG
mkdir -p "$t/empty"
out=$(cd "$top" && LUAROCKS_CONFIG="$t/puc.lua" luarocks --lua-version 5.1 make --tree "$t/tree" \
  --only-server="$t/empty" rockspec/lowbit-scm-1.rockspec LLHTTP_DIR=/usr/share 2>&1)
if [ $? -ne 0 ] && printf '%s' "$out" | grep -q "luajit >= 2.1" && [ -z "$(find "$t/tree" -type f 2>/dev/null)" ]; then
  ok "D4: luarocks under PUC Lua 5.1 refuses the rock (luajit >= 2.1 not satisfied), nothing installed"
else bad "D4 luarocks: $out"; fi
out=$(cd "$top" && "$PUC" -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path; require "lowbit"' 2>&1)
if printf '%s' "$out" | head -1 | grep -q "lowbit needs LuaJIT 2.1 with string.buffer (this is Lua 5.1)"; then
  ok "D4: require 'lowbit' under PUC Lua 5.1: $(printf '%s' "$out" | head -1)"
else bad "D4 require: $out"; fi

# D5
mkdir -p "$t/apt/lists/partial" "$t/src"
echo "deb-src http://deb.debian.org/debian trixie main" > "$t/apt/src.list"
A="-o Dir::Etc::sourcelist=$t/apt/src.list -o Dir::Etc::sourceparts=/nonexistent -o Dir::State::Lists=$t/apt/lists"
apt-get $A update >/dev/null 2>&1 || { echo "cannot reach deb.debian.org (deb-src)"; exit 1; }
(cd "$t/src" && apt-get $A source --download-only lua-luv/trixie libuv1/trixie lua-compat53/trixie >/dev/null 2>&1)
cd "$t/src" && for f in lua-luv_*.orig.tar.gz libuv1_*.orig.tar.gz lua-compat53_*.orig.tar.gz; do tar xzf "$f" || exit 1; done
luv=$(ls -d luv-*/ | head -1); uvsrc=$(ls -d libuv1-*/ | head -1); compat=$(ls -d lua-compat53-*/ | head -1)
rm -rf "$luv/deps/libuv" "$luv/deps/lua-compat-5.3"
cp -r "$uvsrc" "$luv/deps/libuv"; cp -r "$compat" "$luv/deps/lua-compat-5.3"
mkdir -p "$luv/build" && cd "$luv/build" || exit 1
cmake .. -DWITH_SHARED_LIBUV=OFF -DLUA_BUILD_TYPE=System -DWITH_LUA_ENGINE=LuaJIT -DBUILD_MODULE=ON \
  -DBUILD_SHARED_LIBS=OFF -DLUAJIT_INCLUDE_DIR=/usr/include/luajit-2.1 >/dev/null 2>&1 && make -j2 >/dev/null 2>&1 \
  || { bad "D5: luv did not build"; exit 1; }
luvdir=$PWD
out=$(cd "$top" && LUA_CPATH="$luvdir/?.so;$top/build/lib/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;bindings/?.lua;build/lua/?.lua;;" \
  LOWBIT_LIB="$top/build/lib/liblowbit.so" luajit -e 'local uv = require "luv"
    io.write("luv ", uv.version_string(), " ")
    local ok, err = pcall(require, "lowbit.net"); io.write(tostring(ok), " ", tostring(err))' 2>&1)
if printf '%s' "$out" | grep -q "false lowbit.net: luv runs libuv 1.5"; then
  ok "D5: $out"
else bad "D5: $out"; fi
exit $fail
