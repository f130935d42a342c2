"""Helpers for the stream tests: declare a stream, read it with a consumer until a message
arrives, and catch a broker's refusal as (reply code, text, hard)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions

STREAM = {"x-queue-type": "stream"}


def unique(label: str) -> str:
    """A stream name no other test (or run) uses: they are shared on the reference broker."""
    return f"leveret-test-{label}-{uuid.uuid4().hex[:8]}"


def refusal(conn_holder: list[pika.BlockingConnection], url: str,
            action: Callable[[Any], object]) -> object:
    """Run ``action(channel)`` on a fresh channel; returns its result or how the broker
    refused it: ("channel"|"connection", code, text). A closed connection is reopened."""
    if not conn_holder[0].is_open:
        conn_holder[0] = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn_holder[0].channel()
    try:
        result = action(ch)
    except pika.exceptions.ChannelClosedByBroker as exc:
        return ("channel", exc.reply_code, exc.reply_text)
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return ("connection", exc.reply_code, exc.reply_text)
    if ch.is_open:
        ch.close()
    return result


def publish(ch, queue: str, bodies: list[bytes], props: pika.BasicProperties | None = None,
            one_by_one: bool = True) -> None:
    """Publish with confirms; one by one (each its own chunk) unless told otherwise."""
    ch.confirm_delivery()
    for body in bodies:
        ch.basic_publish("", queue, body, props)


def read_until(conn: pika.BlockingConnection, ch, queue: str, stop: Callable[[list], bool],
               arguments: dict[str, Any] | None = None, prefetch: int = 100,
               ack: bool = True, timeout: float = 10.0) -> list[tuple[bytes, int, bool]]:
    """Consume ``queue`` until ``stop(got)``; returns (body, x-stream-offset, redelivered)
    of each delivery. The consumer is cancelled before returning."""
    ch.basic_qos(prefetch_count=prefetch)
    got: list[tuple[bytes, int, bool]] = []

    def on_message(channel, method, props, body):
        got.append((body, (props.headers or {}).get("x-stream-offset"), method.redelivered))
        if ack:
            channel.basic_ack(method.delivery_tag)

    tag = ch.basic_consume(queue, on_message, arguments=arguments or {})
    deadline = time.monotonic() + timeout
    while not stop(got):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; got {got}")
        conn.process_data_events(time_limit=0.05)
    ch.basic_cancel(tag)
    return got


def until_body(body: bytes) -> Callable[[list], bool]:
    return lambda got: any(g[0] == body for g in got)
