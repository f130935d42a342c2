# Compiled layout of ack_timeout.py (Cython's pure-Python mode): the channel reads ``idle``
# on every delivery that awaits an ack.

cdef class AckTimeouts:
    cdef public object channel
    cdef public object default
    cdef public bint idle
    cdef public object _marks, _timer, _loop

    cpdef start(self, object queue)
    cpdef stop(self)
