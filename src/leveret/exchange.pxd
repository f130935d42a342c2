# Compiled layout of exchange.py (Cython's pure-Python mode): routing a message is a C-level
# call from the channel through the virtual host to the exchange's route cache. Every method a
# kind overrides (delayed.py's exchange too, in Python) is cpdef.

from leveret.message cimport Message


cdef class Exchange:
    cdef public str name
    cdef public bint durable, auto_delete, internal, deleted
    cdef public dict arguments, bindings, _cache
    cdef public long long stat_publish_in, stat_publish_out
    cdef dict __dict__

    cpdef list route(self, Message message)
    cpdef list route_key(self, str key)
    cpdef list route_all(self, Message message)
    cpdef list _route(self, str routing_key)


cdef class DirectExchange(Exchange):
    cdef public dict _table


cdef class FanoutExchange(Exchange):
    pass


cdef class TopicExchange(Exchange):
    cdef public object _trie


cdef class HeadersExchange(Exchange):
    cdef public object _matcher
