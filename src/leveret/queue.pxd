# Compiled layout of queue.py (Cython's pure-Python mode). Methods another module or a queue
# type's subclass (quorum.py, stream.py) calls or overrides are cpdef; the rest of the plain
# path is cdef.

cimport cython

from leveret.channel cimport Channel
from leveret.message cimport (Message, QueueEntry, claim, message_of, redelivered_of,
                              ttl_of)
from leveret.vhost cimport VirtualHost


cdef class Consumer:
    cdef public Channel channel
    cdef public Queue queue
    cdef public str tag
    cdef public bint no_ack, exclusive
    cdef public object priority
    cdef public long long prefetch, unacked
    cdef public object arguments

    cpdef bint can_take(self)


cdef class Queue:
    cdef public VirtualHost vhost
    cdef public object name, exclusive_owner, arguments, options, ready
    cdef public bint durable, auto_delete, deleted
    cdef public long long ready_bytes, unacked, unacked_bytes
    cdef public long long persistent_count, persistent_bytes
    cdef public long long persistent_unacked, persistent_unacked_bytes
    cdef public list consumers
    cdef public long long _seq, _rr
    cdef public bint _had_consumer, _mixed_priorities, _plain, _timed, _sac, _counts_persistent
    cdef public object _expiry_timer, _idle_timer
    cdef public double _expiry_at
    cdef public list on_delete, on_ready
    cdef public object memory
    cdef public long long stat_publish, stat_deliver, stat_deliver_no_ack, stat_get
    cdef public long long stat_get_no_ack, stat_get_empty, stat_redeliver, stat_ack
    cdef dict __dict__

    @cython.locals(size=Py_ssize_t, consumer=Consumer)
    cpdef bint push(self, Message message, object publisher=*, long long seq=*) except -1
    cdef bint _push_with_features(self, Message message, object publisher=*, long long seq=*) except -1
    cpdef bint _full(self) except -1
    @cython.locals(size=Py_ssize_t)
    cpdef object _pop_ready(self)
    @cython.locals(size=Py_ssize_t)
    cdef void _left_ready(self, object entry) except *
    cdef void _expire_head(self) except *
    @cython.locals(consumers=list, n=Py_ssize_t, start=Py_ssize_t, i=Py_ssize_t, c=Consumer,
                   first=Consumer, best=Consumer, best_i=Py_ssize_t)
    cdef Consumer _pick_consumer(self)
    cdef void _hand_over(self, Consumer consumer, object entry) except *
    @cython.locals(consumer=Consumer)
    cpdef dispatch(self)
    @cython.locals(message=Message, size=Py_ssize_t)
    cpdef took_unacked(self, object entry)
    @cython.locals(message=Message, size=Py_ssize_t)
    cpdef left_unacked(self, object entry)
    @cython.locals(message=Message)
    cpdef settled(self, object entry)
    cpdef acked(self, object entry, Consumer consumer)
    cpdef _dead_letter(self, object entry, str reason)
    cpdef _ready_grew(self)
