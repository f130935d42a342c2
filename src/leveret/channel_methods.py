"""The rare methods of a channel: declare, bind, purge, delete, qos, consume, cancel, get,
recover, confirm.select and the tx methods, with RabbitMQ's rules and replies.

Functions of a ``Channel`` (channel.py, compiled), looked up by the method's pamqp class in
``HANDLERS``; none of this runs per message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from . import direct_reply, frames
from .confirms import Confirms
from .errors import (
    ACCESS_REFUSED,
    NOT_ALLOWED,
    NOT_FOUND,
    NOT_IMPLEMENTED,
    PRECONDITION_FAILED,
    ChannelError,
    ConnectionError_,
)
from .permissions import CONFIGURE, READ, WRITE
from .queue import Consumer

if TYPE_CHECKING:
    from .channel import Channel
    from .queue import Queue


def queue_name(ch: Channel, name: str) -> str:
    """An empty queue name means the channel's last declared queue (rabbit_channel's
    expand_queue_name_shortcut)."""
    if not name:
        name = ch.last_queue
        if not name:
            raise ChannelError(NOT_FOUND, "no previously declared queue")
    return name

def queue_of(ch: Channel, name: str) -> Queue:
    return ch.vhost.get_queue(queue_name(ch, name), ch.conn)

def authorize_binding(ch: Channel, dest_kind: str, dest: str, source: str,
                       routing_key: str) -> None:
    """rabbit_channel:binding_action's checks, before anything is looked up: write on the
    destination, neither end the default exchange, read on the source, and the topic read
    permission on the binding key when the source is a topic exchange."""
    authz = ch.authz
    authz.check(WRITE, dest_kind, dest)
    if source == "" or (dest_kind == "exchange" and dest == ""):
        raise ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")
    authz.check(READ, "exchange", source)
    src = ch.vhost.exchanges.get(source)
    if src is not None and src.kind == "topic":
        authz.check_topic(READ, source, routing_key)

def channel_flow(ch: Channel, m: spec.Channel.Flow) -> None:
    if not m.active:
        raise ConnectionError_(NOT_IMPLEMENTED, "active=false")
    ch.send(spec.Channel.FlowOk(active=True))

def exchange_declare(ch: Channel, m: spec.Exchange.Declare) -> None:
    ch.vhost.declare_exchange(m.exchange, m.exchange_type, m.passive, m.durable,
                                m.auto_delete, m.internal, m.arguments or {}, ch.authz)
    if not m.nowait:
        ch.send(spec.Exchange.DeclareOk())

def exchange_delete(ch: Channel, m: spec.Exchange.Delete) -> None:
    ch.vhost.delete_exchange(m.exchange, m.if_unused, ch.authz)
    if not m.nowait:
        ch.send(spec.Exchange.DeleteOk())

def exchange_bind(ch: Channel, m: spec.Exchange.Bind) -> None:
    authorize_binding(ch, "exchange", m.destination, m.source, m.routing_key)
    dest = ch.vhost.get_exchange(m.destination)
    src = ch.vhost.get_exchange(m.source)
    ch.vhost.bind(src, dest, m.routing_key, m.arguments)
    if not m.nowait:
        ch.send(spec.Exchange.BindOk())

def exchange_unbind(ch: Channel, m: spec.Exchange.Unbind) -> None:
    authorize_binding(ch, "exchange", m.destination, m.source, m.routing_key)
    # a source or destination that no longer exists: unbind-ok, as RabbitMQ answers
    dest = ch.vhost.exchanges.get(m.destination)
    src = ch.vhost.exchanges.get(m.source)
    if src is not None and dest is not None:
        ch.vhost.unbind(src, dest, m.routing_key, m.arguments)
    if not m.nowait:
        ch.send(spec.Exchange.UnbindOk())

def queue_declare(ch: Channel, m: spec.Queue.Declare) -> None:
    if m.queue.startswith(direct_reply.REPLY_QUEUE):
        direct_reply.declare(ch, m)
        return
    q, _ = ch.vhost.declare_queue(m.queue, ch.conn, m.passive, m.durable, m.exclusive,
                                    m.auto_delete, m.arguments or {}, ch.authz)
    ch.last_queue = q.name
    if q.exclusive_owner is ch.conn and q.name not in ch.conn.exclusive_queues:
        ch.conn.exclusive_queues.add(q.name)
    if not m.nowait:
        messages, consumers = q.declare_ok_counts()
        # not pamqp's DeclareOk: it refuses names RabbitMQ takes ("f{", "ключ")
        conn = ch.conn
        frames.encode_queue_declare_ok(conn.out, ch.id, q.name, messages, consumers)
        conn.want_flush()

def queue_bind(ch: Channel, m: spec.Queue.Bind) -> None:
    direct_reply.refuse_binding(m.queue)
    name = queue_name(ch, m.queue)
    routing_key = m.routing_key if (m.queue or m.routing_key) else name
    authorize_binding(ch, "queue", name, m.exchange, routing_key)
    q = queue_of(ch, name)
    ex = ch.vhost.get_exchange(m.exchange)
    ch.vhost.bind(ex, q, routing_key, m.arguments)
    if not m.nowait:
        ch.send(spec.Queue.BindOk())

def queue_unbind(ch: Channel, m: spec.Queue.Unbind) -> None:
    direct_reply.refuse_binding(m.queue)
    name = queue_name(ch, m.queue)
    routing_key = m.routing_key if (m.queue or m.routing_key) else name
    authorize_binding(ch, "queue", name, m.exchange, routing_key)
    # a queue or exchange that no longer exists (an auto-delete queue already gone) is
    # unbind-ok, as RabbitMQ answers it; aio-pika's RPC teardown relies on that
    ex = ch.vhost.exchanges.get(m.exchange)
    if name in ch.vhost.queues and ex is not None:
        ch.vhost.unbind(ex, queue_of(ch, name), routing_key, m.arguments)
    ch.send(spec.Queue.UnbindOk())

def queue_purge(ch: Channel, m: spec.Queue.Purge) -> None:
    name = queue_name(ch, m.queue)
    ch.authz.check(READ, "queue", name)
    q = queue_of(ch, name)
    q.check_purge()  # a stream refuses it
    count = q.purge()
    if not m.nowait:
        ch.send(spec.Queue.PurgeOk(message_count=count))

def queue_delete(ch: Channel, m: spec.Queue.Delete) -> None:
    name = queue_name(ch, m.queue)
    ch.authz.check(CONFIGURE, "queue", name)
    count = 0
    if name in ch.vhost.queues:
        q = queue_of(ch, name)
        count = ch.vhost.delete_queue(q, m.if_unused, m.if_empty)
    if not m.nowait:
        ch.send(spec.Queue.DeleteOk(message_count=count))

def basic_qos(ch: Channel, m: spec.Basic.Qos) -> None:
    if m.prefetch_size:
        raise ConnectionError_(NOT_IMPLEMENTED, f"prefetch_size!=0 ({m.prefetch_size})")
    if m.global_:
        ch.prefetch_channel = m.prefetch_count
    else:
        ch.prefetch_consumer = m.prefetch_count
        # RabbitMQ lifts the channel-wide limit too (rabbit_channel: unlimit_prefetch), so a
        # per-consumer qos must come before a global one to have both (/docs/consumer-prefetch)
        ch.prefetch_channel = 0
    ch.send(spec.Basic.QosOk())
    ch._kick()

def basic_consume(ch: Channel, m: spec.Basic.Consume) -> None:
    if m.queue == direct_reply.REPLY_QUEUE:
        direct_reply.consume(ch, m)
        return
    if m.consumer_tag and m.consumer_tag in ch.consumers:
        raise ConnectionError_(NOT_ALLOWED, f"attempt to reuse consumer tag "
                                            f"'{m.consumer_tag}'")
    name = queue_name(ch, m.queue)
    ch.authz.check(READ, "queue", name)
    q = queue_of(ch, name)
    tag = m.consumer_tag or Consumer.new_tag()
    arguments = m.arguments or {}
    q.check_consume(ch, m.no_ack, m.exclusive, arguments)  # exclusivity, stream rules
    consumer = Consumer(ch, q, tag, m.no_ack, m.exclusive, ch.prefetch_consumer,
                        arguments)
    ch.consumers[tag] = consumer
    if not m.nowait:
        ch.send(spec.Basic.ConsumeOk(consumer_tag=tag))
    q.add_consumer(consumer)

def basic_cancel(ch: Channel, m: spec.Basic.Cancel) -> None:
    # pamqp types it Optional for its constructor; decoded from the wire it is a str
    assert m.consumer_tag is not None
    if ch.reply_consumer is not None and m.consumer_tag == ch.reply_consumer.tag:
        direct_reply.cancel(ch, m)
        return
    consumer = ch.consumers.pop(m.consumer_tag, None)
    if not m.nowait:
        ch.send(spec.Basic.CancelOk(consumer_tag=m.consumer_tag))
    if consumer is not None:
        consumer.queue.remove_consumer(consumer)

def basic_get(ch: Channel, m: spec.Basic.Get) -> None:
    name = queue_name(ch, m.queue)
    ch.authz.check(READ, "queue", name)
    q = queue_of(ch, name)
    entry = q.get()
    if entry is None:
        ch.stat_get_empty += 1
        q.stat_get_empty += 1
        ch.send(spec.Basic.GetEmpty())
        return
    if m.no_ack:
        tag = ch.tags.next_tag()
        ch.stat_get_no_ack += 1
        q.stat_get_no_ack += 1
    else:
        # outside any prefetch limit: RabbitMQ does not count basic.get against basic.qos
        tag = ch.tags.push((q, entry, None))
        q.took_unacked(entry)
        if ch.ack_timeouts.idle:
            ch.ack_timeouts.start(q)
        ch.stat_get += 1
        q.stat_get += 1
    if entry.redelivered:
        ch.stat_redeliver += 1
        q.stat_redeliver += 1
    msg = entry.message
    conn = ch.conn
    frames.encode_get_ok(conn.out, ch.id, tag, entry.redelivered, msg.exchange,
                         msg.routing_key, q.message_count, msg.raw_props, msg.body,
                         conn.frame_max)
    conn.want_flush()
    if m.no_ack:
        q.settled(entry)

def basic_recover(ch: Channel, m: Any) -> None:
    if not m.requeue:
        raise ConnectionError_(NOT_IMPLEMENTED, "requeue=false")
    items = ch.tags.pop_all()
    ch.unacked = 0
    ch._return_items(items, True, "", explicit=True)
    if isinstance(m, spec.Basic.Recover):
        ch.send(spec.Basic.RecoverOk())

def confirm_select(ch: Channel, m: spec.Confirm.Select) -> None:
    if ch.tx is not None:
        raise ChannelError(PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
    if ch.confirms is None:
        ch.confirms = Confirms()
    if not m.nowait:
        ch.send(spec.Confirm.SelectOk())

def tx_select(ch: Channel, m: spec.Tx.Select) -> None:
    if ch.confirms is not None:
        raise ChannelError(PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
    if ch.tx is None:
        ch.tx = []
    ch.send(spec.Tx.SelectOk())

def tx_commit(ch: Channel, m: spec.Tx.Commit) -> None:
    if ch.tx is None:
        raise ChannelError(PRECONDITION_FAILED, "channel is not transactional")
    pending, ch.tx = ch.tx, []
    ch._tx_settled.clear()
    for op in pending:
        if op[0] == "publish":
            if op[1].deleted:
                raise ChannelError(NOT_FOUND, f"no exchange '{op[1].name}' in vhost "
                                              f"'{ch.vhost.name}'")
            ch.publish(op[1], op[2], op[3])
        elif op[0] == "ack":
            ch.ack(op[1], op[2])
        else:
            ch.reject(op[1], op[2], op[3])
    ch.send(spec.Tx.CommitOk())

def tx_rollback(ch: Channel, m: spec.Tx.Rollback) -> None:
    if ch.tx is None:
        raise ChannelError(PRECONDITION_FAILED, "channel is not transactional")
    ch.tx = []
    ch._tx_settled.clear()
    ch.send(spec.Tx.RollbackOk())


CONTENT_REPLIES = (spec.Basic.Deliver, spec.Basic.GetOk, spec.Basic.Return)

HANDLERS: dict[type, Any] = {
    spec.Channel.Flow: channel_flow,
    spec.Exchange.Declare: exchange_declare,
    spec.Exchange.Delete: exchange_delete,
    spec.Exchange.Bind: exchange_bind,
    spec.Exchange.Unbind: exchange_unbind,
    spec.Queue.Declare: queue_declare,
    spec.Queue.Bind: queue_bind,
    spec.Queue.Unbind: queue_unbind,
    spec.Queue.Purge: queue_purge,
    spec.Queue.Delete: queue_delete,
    spec.Basic.Qos: basic_qos,
    spec.Basic.Consume: basic_consume,
    spec.Basic.Cancel: basic_cancel,
    spec.Basic.Get: basic_get,
    spec.Basic.Recover: basic_recover,
    spec.Basic.RecoverAsync: basic_recover,
    spec.Confirm.Select: confirm_select,
    spec.Tx.Select: tx_select,
    spec.Tx.Commit: tx_commit,
    spec.Tx.Rollback: tx_rollback,
}
