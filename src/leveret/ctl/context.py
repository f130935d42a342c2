"""What every ``leveret-ctl`` command is given: the API, the chosen vhost, output options."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from .client import ManagementAPI
from .output import write_rows


@dataclass
class Context:
    """The parsed global options of one ``leveret-ctl`` run."""

    api: ManagementAPI
    tool: str = "leveret-ctl"  # the name it was run as: rabbitmqctl, rabbitmq-diagnostics, ...
    vhost: str = "/"
    quiet: bool = False  # -q: no informational lines
    silent: bool = False  # -s: no informational lines and no table header
    formatter: str = "table"
    table_headers: bool = True
    timeout: float | None = None  # -t seconds, for the commands that wait
    options: dict[str, Any] = field(default_factory=dict)  # --if-empty, --format, ...
    out: TextIO = field(default_factory=lambda: sys.stdout)

    def info(self, line: str) -> None:
        """An informational line ("Listing queues ..."): not with -q, -s or a machine format."""
        if not (self.quiet or self.silent) and self.formatter == "table":
            self.out.write(line + "\n")

    def rows(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        # rabbitmqctl prints the header row only above rows
        headers = bool(rows) and self.table_headers and not self.silent
        write_rows(self.out, columns, rows, self.formatter, headers)

    def node(self) -> str:
        """The broker's node name, from its overview."""
        overview = self.api.get("/overview") or {}
        return str(overview.get("node", "unknown"))
