# Compiled layout of message.py (Cython's pure-Python mode): see that module's docstring.

cdef class _Extra:
    cdef public object expiration, ttl, props, extra_routing_keys
    cdef public double deadline
    cdef public long long store_id


cdef class Message:
    cdef public str exchange, routing_key
    cdef public bytes raw_props, body
    cdef public _Extra _extra
    cdef public long long seq
    cdef public unsigned char delivery_mode, priority
    cdef public bint persisted, redelivered, claimed


cdef class QueueEntry:
    cdef public long long seq
    cdef public Message message
    cdef public bint redelivered
    cdef public double deadline
    cdef public long long store_id


cdef _Extra _more(Message message)
cpdef object claim(Message message, long long seq)
cpdef Message message_of(object entry)
cpdef bint redelivered_of(object entry) except -1
cpdef object ttl_of(Message message)
