# Compiled layout of vhost.py (Cython's pure-Python mode): route() is on every publish.

from leveret.exchange cimport Exchange
from leveret.message cimport Message


cdef class VirtualHost:
    cdef public str name
    cdef public object store, memory
    cdef public dict exchanges, queues
    cdef public object queue_factory
    cdef public dict reply_consumers
    cdef public long long stat_queue_declared, stat_queue_created, stat_queue_deleted
    cdef public dict stat_dead_lettered
    cdef public Exchange default_exchange
    cdef dict __dict__

    cpdef list route(self, Exchange exchange, Message message)
