#!/usr/bin/env bash
# Build the rabbitmq-c load generator from ../shared/tools/ambench.c (or $AMBENCH_SRC).
# Prints the path of the binary.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="${AMBENCH_SRC:-$here/../shared/tools/ambench.c}"
out="${AMBENCH_BIN:-/tmp/ambench}"
if ! [ -f /usr/include/amqp.h ]; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q librabbitmq-dev >/dev/null
fi
if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
    gcc -O2 -o "$out" "$src" -lrabbitmq
fi
echo "$out"
