"""Delivery semantics through aio-pika (the asyncio client), on a broker in the test's loop."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest


async def channel_of(broker, **kwargs):
    conn = await aio_pika.connect(broker.url)
    return conn, await conn.channel(**kwargs)


async def test_prefetch_and_manual_ack(abroker):
    conn, ch = await channel_of(abroker)
    async with conn:
        await ch.set_qos(prefetch_count=2)
        q = await ch.declare_queue("pf")
        for i in range(5):
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), "pf")
        received: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await q.consume(received.put)
        first = await received.get()
        second = await received.get()
        assert received.empty()
        info = abroker.queue("pf")
        assert (info.messages, info.unacked) == (3, 2)  # the third waits for an ack
        await first.ack()
        third = await asyncio.wait_for(received.get(), 5)
        assert [first.body, second.body, third.body] == [b"0", b"1", b"2"]


async def test_nack_requeue_and_redelivered(abroker):
    conn, ch = await channel_of(abroker)
    async with conn:
        q = await ch.declare_queue("nq")
        await ch.default_exchange.publish(aio_pika.Message(b"x"), "nq")
        msg = await q.get()
        await msg.nack(requeue=True)
        again = await q.get()
        assert again.body == b"x" and again.redelivered


async def test_dead_letter_on_reject(abroker):
    conn, ch = await channel_of(abroker)
    async with conn:
        dlx = await ch.declare_exchange("dlx", aio_pika.ExchangeType.FANOUT)
        dead = await ch.declare_queue("dead")
        await dead.bind(dlx)
        q = await ch.declare_queue("src", arguments={"x-dead-letter-exchange": "dlx"})
        await ch.default_exchange.publish(aio_pika.Message(b"bad"), "src")
        msg = await q.get()
        await msg.reject(requeue=False)
        info = await abroker.wait_for_messages("dead", 1)
        assert info.messages == 1
        got = await dead.get()
        assert got.body == b"bad"
        assert got.headers["x-death"][0]["reason"] == "rejected"


async def test_ttl_dead_letters_without_consumers(abroker):
    conn, ch = await channel_of(abroker)
    async with conn:
        dlx = await ch.declare_exchange("dlx", aio_pika.ExchangeType.FANOUT)
        dead = await ch.declare_queue("expired")
        await dead.bind(dlx)
        await ch.declare_queue("ttl", arguments={"x-dead-letter-exchange": "dlx",
                                                 "x-message-ttl": 20})
        await ch.default_exchange.publish(aio_pika.Message(b"old"), "ttl")
        await abroker.wait_for_messages("expired", 1)
        assert (await dead.get()).headers["x-death"][0]["reason"] == "expired"


async def test_reject_publish_nack_with_confirms(abroker):
    conn, ch = await channel_of(abroker, publisher_confirms=True)
    async with conn:
        await ch.declare_queue("one", arguments={"x-max-length": 1,
                                                 "x-overflow": "reject-publish"})
        await ch.default_exchange.publish(aio_pika.Message(b"1"), "one")
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await ch.default_exchange.publish(aio_pika.Message(b"2"), "one")


async def test_transaction(abroker):
    conn, ch = await channel_of(abroker, publisher_confirms=False)
    async with conn:
        q = await ch.declare_queue("txq")
        tx = ch.transaction()
        await tx.select()
        await ch.default_exchange.publish(aio_pika.Message(b"a"), "txq")
        assert abroker.queue("txq").messages == 0
        await tx.commit()
        assert (await q.get(no_ack=True)).body == b"a"
