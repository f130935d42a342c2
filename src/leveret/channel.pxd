# Compiled layout of channel.py (Cython's pure-Python mode). The hot events (publish, header,
# body, ack, nack, reject) and delivery are C-level calls between the compiled connection,
# channel and queue; the rare methods stay Python methods looked up in _HANDLERS.

cimport cython

from leveret.ack_timeout cimport AckTimeouts
from leveret.confirms cimport Confirms
from leveret.connection cimport AMQPConnection
from leveret.exchange cimport Exchange
from leveret.message cimport Message, message_of, redelivered_of
from leveret.queue cimport Consumer, Queue
from leveret.vhost cimport VirtualHost


cdef Py_ssize_t LARGE_BODY


cdef class Channel:
    cdef public AMQPConnection conn
    cdef public int id
    cdef public VirtualHost vhost
    cdef public object authz
    cdef public dict publish_allowed
    cdef public bint open, closing
    cdef public dict consumers
    cdef public object tags
    cdef public long long unacked, prefetch_consumer, prefetch_channel
    cdef public Confirms confirms
    cdef public object tx
    cdef public set _tx_settled
    cdef public str last_queue
    cdef public object reply_consumer
    cdef public tuple _pub, _header
    cdef public long long _body_size, _received
    cdef public list _chunks
    cdef public str _last_key
    cdef public bytes _last_props
    cdef public long long max_message_size
    cdef public AckTimeouts ack_timeouts
    cdef public long long stat_publish, stat_drop_unroutable, stat_return_unroutable
    cdef public long long stat_deliver, stat_deliver_no_ack, stat_get, stat_get_no_ack
    cdef public long long stat_get_empty, stat_redeliver, stat_ack
    cdef dict __dict__

    cpdef bint can_deliver(self) except -1
    @cython.locals(msg=Message, redelivered=bint, conn=AMQPConnection, body=bytes)
    cpdef deliver(self, Consumer consumer, Queue queue, object entry)
    cpdef send(self, object method)
    cpdef on_publish(self, tuple ev)
    cpdef on_header(self, tuple ev)
    @cython.locals(chunk=bytes, size=cython.longlong)
    cpdef on_body(self, tuple ev)
    @cython.locals(pub=tuple, header=tuple, raw=bytes, msg=Message, exchange=Exchange,
                   routing_key=str)
    cdef _complete(self, bytes body)
    @cython.locals(queues=list, confirms=Confirms, seq=cython.longlong, rejected=bint,
                   pushed=bint, conn=AMQPConnection, queue=Queue)
    cpdef publish(self, Exchange exchange, Message msg, bint mandatory)
    cpdef flush_confirms(self, bytearray out)
    cdef list _settle(self, object tag, bint multiple)
    cpdef on_ack(self, tuple ev)
    @cython.locals(items=list, touched=Queue, queue=Queue, consumer=Consumer,
                   delivered=Py_ssize_t)
    cpdef ack(self, object tag, bint multiple)
    cpdef on_nack(self, tuple ev)
    cpdef on_reject(self, tuple ev)
    cpdef reject(self, object tag, bint multiple, bint requeue)
    cpdef _return_items(self, list items, bint requeue, str reason, bint explicit=*)
    cpdef _kick(self)
