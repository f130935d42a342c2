# Compiled layout of confirms.py (Cython's pure-Python mode): publish() is on every publish
# of a confirming channel.

cdef class Confirms:
    cdef public long long next_seq, sent_upto, confirmed
    cdef public dict waiting
    cdef public set nacked
    cdef public bint dirty

    cpdef long long publish(self)
    cpdef wait(self, long long seq)
    cpdef written(self, long long seq)
    cpdef nack(self, long long seq)
    cpdef list take(self)
