#!/bin/sh
# scripts/deps.sh -- install the Debian packages vlab needs, and only those
# that are missing.  Run by `make deps` (and so by `make demo` and `make test`).
set -eu

# package: what it is for
PKGS="
gcc:C compiler
make:the build
pkg-config:finding the libraries
libc6-dev:C library headers
liblua5.4-dev:Lua 5.4, embedded for scenarios
lua5.4:the lua5.4 interpreter, for make bench
libncurses-dev:ncursesw, the TUI
libgraphviz-dev:libgvc and libcgraph, the diagrams
graphviz:dot, to check exported diagrams in tests
check:the Check unit-test framework
tmux:driving the TUI in tests
time:/usr/bin/time, for memory figures in make bench
"

missing=""
echo "$PKGS" | { while IFS=: read -r pkg why; do
    [ -n "$pkg" ] || continue
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        echo "$pkg:$why"
    fi
done; } > /tmp/vlab-deps.$$ || true
missing=$(cut -d: -f1 /tmp/vlab-deps.$$ | tr '\n' ' ')

if [ -z "$(echo "$missing" | tr -d ' ')" ]; then
    rm -f /tmp/vlab-deps.$$
    echo "deps: all Debian packages vlab needs are installed"
    exit 0
fi

echo "deps: installing the missing Debian packages:"
sed 's/^\([^:]*\):\(.*\)$/  \1  (\2)/' /tmp/vlab-deps.$$
rm -f /tmp/vlab-deps.$$

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "deps: not root and no sudo: install these packages by hand: $missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $missing
echo "deps: done"
