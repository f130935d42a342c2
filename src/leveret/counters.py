"""Message counters the data plane keeps for the management API and metrics.

The data plane only ever does ``attribute += 1`` on an object it already holds (a channel, a
queue, an exchange, a connection); nothing here runs per message. Sampling, rates and
formatting are the management side's work (``leveret.management.stats``), a few times a
second.

Per channel (attributes of ``Channel``, named after RabbitMQ's channel ``message_stats``):

    stat_publish          basic.publish handled (after a transaction commits)
    stat_drop_unroutable  routed nowhere, not mandatory
    stat_return_unroutable routed nowhere, mandatory: basic.return sent
    stat_deliver          basic.deliver to a manual-ack consumer
    stat_deliver_no_ack   basic.deliver to a no-ack consumer
    stat_get              basic.get-ok, manual ack
    stat_get_no_ack       basic.get-ok, no-ack
    stat_get_empty        basic.get-empty
    stat_redeliver        deliveries and get-oks flagged redelivered
    stat_ack              deliveries acknowledged (each tag of a multiple ack counts)
    confirms.next_seq     publishes on the channel since confirm.select
    confirms.confirmed    of those, acked to the publisher

When a channel goes its counts are added to ``GlobalCounters`` (one per ``Server``), so the
broker-wide totals are ``GlobalCounters`` plus the live channels' counts; ``global_totals``
computes them under RabbitMQ's Prometheus names (``rabbitmq_global_messages_<name>_total``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# the per-channel counters, as attribute names of Channel
CHANNEL_COUNTERS = (
    "stat_publish",
    "stat_drop_unroutable",
    "stat_return_unroutable",
    "stat_deliver",
    "stat_deliver_no_ack",
    "stat_get",
    "stat_get_no_ack",
    "stat_get_empty",
    "stat_redeliver",
    "stat_ack",
)

# the per-queue counters, as attribute names of Queue (RabbitMQ's queue message_stats)
QUEUE_COUNTERS = (
    "stat_publish",
    "stat_deliver",
    "stat_deliver_no_ack",
    "stat_get",
    "stat_get_no_ack",
    "stat_get_empty",
    "stat_redeliver",
    "stat_ack",
)


class GlobalCounters:
    """Counts of channels that are gone, and churn since start.

    ``received_confirm`` and ``confirmed`` come from the channels' ``Confirms``.
    """

    def __init__(self) -> None:
        for name in CHANNEL_COUNTERS:
            setattr(self, name, 0)
        self.received_confirm = 0
        self.confirmed = 0
        # churn (RabbitMQ's overview churn_rates)
        self.connection_created = 0
        self.connection_closed = 0
        self.channel_created = 0
        self.channel_closed = 0

    def add_channel(self, channel: Any) -> None:
        """A channel is gone: keep its counts."""
        self.channel_closed += 1
        for name in CHANNEL_COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(channel, name))
        confirms = channel.confirms
        if confirms is not None:
            self.received_confirm += confirms.next_seq
            self.confirmed += confirms.confirmed


def channel_sums(base: GlobalCounters, channels: Iterable[Any]) -> dict[str, int]:
    """``base`` plus the live ``channels``: every CHANNEL_COUNTERS name (without ``stat_``)
    and ``received_confirm``, ``confirmed``."""
    sums = {name[5:]: getattr(base, name) for name in CHANNEL_COUNTERS}
    received_confirm, confirmed = base.received_confirm, base.confirmed
    for ch in channels:
        for name in CHANNEL_COUNTERS:
            sums[name[5:]] += getattr(ch, name)
        confirms = ch.confirms
        if confirms is not None:
            received_confirm += confirms.next_seq
            confirmed += confirms.confirmed
    sums["received_confirm"] = received_confirm
    sums["confirmed"] = confirmed
    return sums


def global_totals(sums: dict[str, int]) -> dict[str, int]:
    """RabbitMQ's ``rabbitmq_global_messages_<name>_total`` counters from ``channel_sums``."""
    dropped, returned = sums["drop_unroutable"], sums["return_unroutable"]
    delivered = sums["deliver"] + sums["deliver_no_ack"] + sums["get"] + sums["get_no_ack"]
    return {
        "received": sums["publish"],
        "received_confirm": sums["received_confirm"],
        "routed": sums["publish"] - dropped - returned,
        "unroutable_dropped": dropped,
        "unroutable_returned": returned,
        "confirmed": sums["confirmed"],
        "delivered": delivered,
        "delivered_consume_auto_ack": sums["deliver_no_ack"],
        "delivered_consume_manual_ack": sums["deliver"],
        "delivered_get_auto_ack": sums["get_no_ack"],
        "delivered_get_manual_ack": sums["get"],
        "get_empty": sums["get_empty"],
        "redelivered": sums["redeliver"],
        "acknowledged": sums["ack"],
    }
