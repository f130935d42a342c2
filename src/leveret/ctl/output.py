"""rabbitmqctl's output formats for the management API's JSON values.

``table`` (the default) is tab-separated with a header row; values print as rabbitmqctl
prints the Erlang terms behind them: ``true``, ``[{"x-message-ttl",60000}]`` for an argument
table, ``[administrator, management]`` for tags, ``{0,9,1}`` for the protocol, nothing for an
undefined value. ``json`` is one object a row, rows on lines of their own between ``[`` and
``]`` with a leading comma, argument tables as ``[name, type, value]`` triples. ``csv``
quotes every field.
"""

from __future__ import annotations

import json
import math
from typing import Any, TextIO

FORMATTERS = ("table", "json", "csv")

# columns holding an AMQP field table (arguments, client properties)
_TABLE_COLUMNS = frozenset({"arguments", "client_properties", "capabilities"})


def erlang_float(value: float) -> str:
    """A float as Erlang's ``~p`` prints it: ``0.5``, ``1.0e-5``, ``1.5e20``."""
    if math.isinf(value) or math.isnan(value):
        return str(value)
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{int(exponent)}"


def term(value: Any) -> str:
    """A value inside a field table, as rabbitmqctl prints it: strings quoted, tables as
    lists of ``{key,value}`` tuples, arrays as lists."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return erlang_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "[" + ",".join(f"{{{term(k)},{term(v)}}}" for k, v in value.items()) + "]"
    if isinstance(value, list):
        return "[" + ",".join(term(v) for v in value) + "]"
    return json.dumps(value)


def cell(column: str, value: Any) -> str:
    """One table cell."""
    if value is None:
        return ""
    if column in _TABLE_COLUMNS and isinstance(value, dict):
        return term(value)
    if column == "tags" and isinstance(value, list):  # atoms: [administrator, management]
        return "[" + ", ".join(str(t) for t in value) + "]"
    if column == "cluster_state" and isinstance(value, dict):
        return "[" + ", ".join(f"{{{node}, {state}}}" for node, state in value.items()) + "]"
    if column == "protocol":
        return _protocol_tuple(value, "{%s}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return erlang_float(value)
    if isinstance(value, (dict, list)):
        return term(value)
    return str(value)


def _protocol_tuple(value: Any, shape: str) -> str:
    # the management API says "AMQP 0-9-1", rabbitmqctl {0,9,1}
    text = str(value)
    if text.startswith("AMQP "):
        return shape % ",".join(text[5:].split("-"))
    return text


def amqp_type(value: Any) -> str:
    """The AMQP field type rabbitmqctl's JSON names for a value (the API's JSON lost it:
    integers are taken as signed 32-bit when they fit, as clients usually send them)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -2**31 <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return "void"


def typed_table(table: dict[str, Any]) -> list[Any]:
    """A field table as rabbitmqctl's JSON writes it: ``[[name, type, value], ...]``."""
    return [[k, amqp_type(v), _typed_value(v)] for k, v in table.items()]


def _typed_value(value: Any) -> Any:
    if isinstance(value, dict):
        return typed_table(value)
    if isinstance(value, list):
        # rabbitmqctl's JSON writes an array as an object of type -> value (lossy, as there)
        return _RepeatedKeys([(amqp_type(v), _typed_value(v)) for v in value])
    return value


class _RepeatedKeys(list):  # type: ignore[type-arg]
    """A JSON object that may repeat a key, as rabbitmqctl writes arrays."""


def _dump(value: Any) -> str:
    if isinstance(value, _RepeatedKeys):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_dump(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def json_value(column: str, value: Any) -> Any:
    """One value of a JSON row."""
    if value is None:
        return ""
    if column in _TABLE_COLUMNS and isinstance(value, dict):
        return typed_table(value)
    if column == "protocol" and isinstance(value, str) and value.startswith("AMQP "):
        return [int(p) for p in value[5:].split("-")]
    return value


def write_rows(out: TextIO, columns: list[str], rows: list[dict[str, Any]], formatter: str,
               headers: bool) -> None:
    """Rows of ``column -> API value`` in ``formatter``."""
    if formatter == "json":
        parts = [_dump({c: json_value(c, row.get(c)) for c in columns}) for row in rows]
        out.write("[\n" + "".join(("," if i else "") + p + "\n" for i, p in enumerate(parts))
                  + "]\n")
        return
    if formatter == "csv":
        def quoted(text: str) -> str:
            return '"' + text.replace('"', '""') + '"'

        if headers:
            out.write(",".join(quoted(c) for c in columns) + "\n")
        for row in rows:
            out.write(",".join(quoted(cell(c, row.get(c))) for c in columns) + "\n")
        return
    if headers:
        out.write("\t".join(columns) + "\n")
    for row in rows:
        out.write("\t".join(cell(c, row.get(c)) for c in columns) + "\n")


def write_json(out: TextIO, value: Any) -> None:
    out.write(_dump(value) + "\n")
