#!/usr/bin/env bash
# Install Node.js (when missing) and the Node AMQP clients the tests drive (tests/node:
# amqplib, pinned in its package.json). Tests that need them skip when they are absent.
# Idempotent. Root, or a user with sudo, for the apt install.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 \
        update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 \
        install -y nodejs npm >&2
fi
npm install --prefix tests/node --no-audit --no-fund --no-package-lock >&2
