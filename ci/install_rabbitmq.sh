#!/usr/bin/env bash
# Install (if needed) and start a local RabbitMQ on 5672 for the differential tests and the
# end-to-end benchmarks. Idempotent; waits at most 60 s for the port.
set -euo pipefail
if ! command -v rabbitmq-server >/dev/null; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server >/dev/null
fi
port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! port_open; then
    rabbitmq-server -detached
fi
for _ in $(seq 60); do
    if port_open; then echo "RabbitMQ listening on 5672"; exit 0; fi
    sleep 1
done
echo "RabbitMQ did not start" >&2
exit 1
