#!/usr/bin/env bash
# Install RabbitMQ and librabbitmq-dev (the C client ambench is built on) when missing, start
# RabbitMQ detached unless its port already accepts connections, and wait until it does.
# Idempotent: run it as often as you like. Root, or a user with sudo, for the install and start.
#   RABBITMQ_WAIT       seconds to wait for the port (default 90)
#   RABBITMQ_NODE_PORT  the port, as RabbitMQ reads it (default 5672); RabbitMQ's other
#                       RABBITMQ_* variables pass through to it when run as root
# The management (15672, with rabbitmqadmin) and Prometheus (15692) plugins are enabled, for
# the differential tests of Leveret's HTTP API and metrics.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
port="${RABBITMQ_NODE_PORT:-5672}"
wait_s="${RABBITMQ_WAIT:-90}"

sudo=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo" >&2; exit 1; }
    sudo=(sudo)
fi
apt() {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -q -o DPkg::Lock::Timeout=600 "$@" >&2
}

missing=()
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
[ -f /usr/include/amqp.h ] || missing+=(librabbitmq-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt update
    apt install -y "${missing[@]}"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
if port_open; then
    # Something listens; say so if it is not the local RabbitMQ node (Leveret, say).
    if ! "${sudo[@]}" rabbitmqctl -q status >/dev/null 2>&1; then
        echo "warning: $port accepts connections but the local RabbitMQ node is not running" >&2
    fi
else
    # Under systemd the package starts the service itself; in containers it does not.
    "${sudo[@]}" rabbitmq-server -detached
fi

deadline=$((SECONDS + wait_s))
until port_open; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "RabbitMQ did not listen on $port within ${wait_s}s; see /var/log/rabbitmq/" >&2
        exit 1
    fi
    sleep 1
done
echo "RabbitMQ listening on $port"

# enable is idempotent; on a running node it starts the plugins at once
"${sudo[@]}" rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus >&2 || {
    echo "warning: could not enable the management and prometheus plugins" >&2; exit 0; }
mgmt_open() { (exec 3<>"/dev/tcp/127.0.0.1/15672") 2>/dev/null; }
until mgmt_open; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "warning: the management API did not listen on 15672 within ${wait_s}s" >&2
        exit 0
    fi
    sleep 1
done
echo "RabbitMQ management API listening on 15672"
