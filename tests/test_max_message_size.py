"""max_message_size (RabbitMQ's setting: 3.10's default 128 MiB, at most 512 MiB).

A publish whose content header declares a larger body closes the channel with RabbitMQ's 406
text (rabbit_channel:check_msg_size). RabbitMQ sends it once the body is in; Leveret refuses at
the content header, before any of the body is buffered, so one client cannot stream a huge
message into memory. Leveret only: the local RabbitMQ's limit is its 128 MiB default, and it
reads the whole body before refusing.
"""

from __future__ import annotations

import aio_pika
import pika
import pika.exceptions
import pytest
from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader

from leveret import Broker
from leveret.cli import parse_args

from rawamqp import RawClient

pytestmark = pytest.mark.leveret_only

MiB = 1024 * 1024


def raw(broker) -> RawClient:
    client = RawClient(broker.host, broker.port)
    client.handshake()
    client.open_channel(1)
    return client


def announce(client: RawClient, size: int) -> None:
    """basic.publish and a content header declaring ``size`` bytes, and no body (yet)."""
    client.send(pframe.marshal(spec.Basic.Publish(exchange="", routing_key="big"), 1)
                + pframe.marshal(pheader.ContentHeader(0, size, spec.Basic.Properties()), 1))


def test_a_message_over_the_limit_closes_the_channel_with_406():
    with Broker.in_thread(max_message_size=1024) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("big")
        ch.basic_publish("", "big", b"x" * 1024)  # at the limit: accepted
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.basic_publish("", "big", b"x" * 1025)
            ch.queue_declare("big", passive=True)  # a round trip to see the close
        assert (info.value.reply_code, info.value.reply_text) == (
            406, "PRECONDITION_FAILED - message size 1025 is larger than configured max size "
                 "1024")
        other = conn.channel()  # the connection goes on
        assert other.basic_get("big", auto_ack=True)[2] == b"x" * 1024
        assert other.basic_get("big", auto_ack=True)[0] is None  # the big one never arrived
        conn.close()


def test_refused_at_the_content_header_before_any_body():
    """A header declaring 10 GiB is answered at once: nothing waits for (or buffers) the
    body, and body frames that still come on the closing channel are dropped."""
    with Broker.in_thread(max_message_size=MiB) as broker:
        client = raw(broker)
        announce(client, 10 * 1024 * MiB)
        channel, close = client.recv_until(spec.Channel.Close)
        assert (channel, close.reply_code, close.class_id, close.method_id) == (1, 406, 60, 40)
        assert close.reply_text == ("PRECONDITION_FAILED - message size 10737418240 is larger "
                                    "than configured max size 1048576")
        client.send(pframe.marshal(pbody.ContentBody(b"y" * 65536), 1) * 8)  # ignored
        client.send_method(1, spec.Channel.CloseOk())
        client.open_channel(1)
        client.send_method(1, spec.Queue.Declare(queue="after"))
        client.recv_until(spec.Queue.DeclareOk)  # the connection was never disturbed
        client.close()
        assert broker.queues()[0].messages == 0


def test_default_limit_is_rabbitmqs_128_mib():
    with Broker.in_thread() as broker:
        client = raw(broker)
        announce(client, 128 * MiB + 1)
        _, close = client.recv_until(spec.Channel.Close)
        assert close.reply_text == ("PRECONDITION_FAILED - message size 134217729 is larger "
                                    "than configured max size 134217728")
        client.close()


def test_limit_is_capped_at_512_mib_as_rabbitmq_does():
    with Broker.in_thread(max_message_size=4096 * MiB) as broker:
        client = raw(broker)
        announce(client, 512 * MiB + 1)
        _, close = client.recv_until(spec.Channel.Close)
        assert close.reply_text == ("PRECONDITION_FAILED - message size 536870913 is larger "
                                    "than max size 536870912")
        client.close()


async def test_aio_pika_publisher_sees_the_channel_close():
    async with Broker(max_message_size=100) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed) as info:
            await ch.default_exchange.publish(aio_pika.Message(b"z" * 101), "nowhere")
        assert "message size 101 is larger than configured max size 100" in str(info.value)
        await conn.close()


def test_cli_flag_takes_units():
    assert parse_args(["--max-message-size", "16MiB"]).max_message_size == 16 * MiB
    assert parse_args([]).max_message_size == 128 * MiB
