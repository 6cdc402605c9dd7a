#!/bin/sh
# Installs the Debian 12 packages lowbit needs to build and test (make deps).
# As root it runs apt-get; otherwise it prints the exact command to run.
set -eu
# chromium runs the browser specs (spec/cdp_spec.lua, spec/*browser_spec.lua),
# which fail, never skip, without it; fonts-dejavu-core gives its screenshots
# legible text.
PKGS="build-essential pkg-config clang libclang-rt-14-dev luajit2 libluajit2-5.1-dev \
lua-luv lua-luv-dev libuv1-dev libssl-dev zlib1g-dev node-llhttp lua-cjson lua-busted \
luarocks curl openssl iproute2 golang-go golang-github-gorilla-websocket-dev chromium fonts-dejavu-core libbrotli-dev \
redis-server redis-tools tzdata nginx libnginx-mod-http-lua lua-resty-core gnuplot-nox"
missing=""
for p in $PKGS; do
  # dpkg -s is the ground truth: a package removed but not purged is "deinstall".
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "lowbit: missing Debian packages; install them with:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
echo "lowbit: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Another apt-get (unattended upgrades on a fresh machine) may hold apt's
# locks for a while: wait for them rather than fail the first run.
apt_get() {
  for try in 1 2 3 4 5 6; do
    apt-get -o DPkg::Lock::Timeout=60 "$@" && return 0
    [ "$try" -lt 6 ] && { echo "lowbit: apt-get failed, trying again in 10 s" >&2; sleep 10; }
  done
  return 1
}
apt_get update -qq >/dev/null
apt_get install -y -qq --no-install-recommends $missing >/dev/null
