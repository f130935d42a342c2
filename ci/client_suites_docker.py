"""pytest plugin for ci/client_suites.py: the broker under test in place of a Docker container.

aio-pika's and aiormq's test suites start RabbitMQ in a container through the small Docker
client in their own ``tests/docker_client.py`` and read the broker's address from the
``ContainerInfo`` it returns. Loaded with ``-p client_suites_docker`` (this directory on
PYTHONPATH, the suite's checkout as the working directory), this plugin replaces that client
before the suite's conftest imports it: no Docker is needed, and every "container" is the
broker already listening on localhost (RabbitMQ, or Leveret inside the runner's private network
namespace), each container port mapped to the same port on 127.0.0.1.
"""

from __future__ import annotations

import importlib
from typing import Any

_docker: Any = importlib.import_module("tests.docker_client")


def _check_docker_available() -> Any:
    return _docker.DockerHostInfo(is_tcp=True, host="127.0.0.1", port=0)


class _BrokerAsContainer:
    """Stands in for the suites' DockerClient: ``run`` returns the local broker."""

    def __init__(self, docker_host_info: Any = None) -> None:
        self.docker_host_info = docker_host_info

    def run(self, image: str, ports: list[str], environment: Any = None) -> Any:
        mapped = {port: int(port.split("/", 1)[0]) for port in ports}
        return _docker.ContainerInfo(id="local-broker", ports=mapped, host="127.0.0.1")

    def kill(self, container_id: str) -> None:
        """The broker is not the suite's to stop."""

    def remove(self, container_id: str) -> None:
        """Nothing to remove."""


_docker.check_docker_available = _check_docker_available
_docker.DockerClient = _BrokerAsContainer
