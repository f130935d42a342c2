#!/usr/bin/env bash
# Build the rabbitmq-c load generator ambench and print the path of the binary (the only line
# on stdout). Rebuilds only when the source is newer than the binary.
#   SHARED_DIR   the shared directory holding tools/ambench.c (default: ../shared next to the repo)
#   AMBENCH_SRC  the source itself (default: $SHARED_DIR/tools/ambench.c)
#   AMBENCH_BIN  where to put the binary (default: /tmp/ambench)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="${SHARED_DIR:-$repo/../shared}"
src="${AMBENCH_SRC:-$shared/tools/ambench.c}"
out="${AMBENCH_BIN:-/tmp/ambench}"
[ -f "$src" ] || { echo "no ambench source at $src (set SHARED_DIR or AMBENCH_SRC)" >&2; exit 1; }
if [ ! -f /usr/include/amqp.h ]; then
    echo "installing librabbitmq-dev" >&2
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 \
        install -y librabbitmq-dev >&2
fi
if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
    gcc -O2 -o "$out.tmp.$$" "$src" -lrabbitmq >&2
    mv "$out.tmp.$$" "$out"
fi
echo "$out"
