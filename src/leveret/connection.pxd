# Compiled layout of connection.py (Cython's pure-Python mode): the read loop, frame dispatch
# and output of AMQPConnection are C-level; Connection, its asyncio protocol subclass, adds
# nothing but the base class asyncio's own loop checks for.

cimport cython

from leveret.channel cimport Channel

# states and event kinds as C ints (the module does not export them)
cdef int _AWAIT_HEADER, _AWAIT_START_OK, _AWAIT_TUNE_OK, _AWAIT_OPEN, _OPEN, _CLOSING, _CLOSED
cdef int EV_ACK, EV_BODY, EV_ERROR, EV_HEADER, EV_HEARTBEAT, EV_METHOD, EV_NACK, EV_PUBLISH
cdef int EV_REJECT
cdef Py_ssize_t READ_BUDGET, _BUF_MIN, _BUF_BUSY, DIRECT_BODY, _DIRECT_PEEK, PACE_BELOW
cdef double PACE_RATE, PACE_WINDOW


cdef class AMQPConnection:
    cdef public object server, settings, loop, transport
    cdef public int state
    cdef public bytearray buf
    cdef public object view
    cdef public Py_ssize_t start, end
    cdef public bint _grow, _yielded, _direct_next
    cdef public bytearray out
    cdef public list _pieces
    cdef public object _body, _body_view
    cdef public Py_ssize_t _body_fill, _body_size
    cdef public int _body_channel
    cdef public bint writable, _flush_scheduled
    cdef public set _confirm_channels
    cdef public Py_ssize_t frame_max
    cdef public object channel_max, heartbeat
    cdef public dict channels
    cdef public set closing_channels
    cdef public object vhost
    cdef public str user
    cdef public object authz
    cdef public dict client_properties
    cdef public set exclusive_queues
    cdef public str peer, local
    cdef public object number, pid
    cdef public bint _accepted_logged, _close_logged
    cdef public double last_read, read_rate
    cdef public bint _wrote_since_tick
    cdef public object _heartbeat_handle, _handshake_timer, _close_timer
    cdef public bint blocked
    cdef public object closed
    cdef public double connected_at
    cdef public long long recv_oct, recv_cnt, send_oct, send_cnt
    cdef dict __dict__

    @cython.locals(start=Py_ssize_t, end=Py_ssize_t, more=bint)
    cdef void _read_slice(self) except *
    @cython.locals(ch=Channel, kind=int, ch_id=int, ev=tuple)
    cdef void _handle_events(self, list events) except *
    @cython.locals(weight=double)
    cdef bint _paced(self, Py_ssize_t nbytes, double elapsed) except -1
    cpdef want_flush(self)
    @cython.locals(chunk=Py_ssize_t, size=Py_ssize_t, off=Py_ssize_t, n=Py_ssize_t,
                   out=bytearray)
    cpdef write_body(self, int channel_id, bytes body)
    cpdef want_confirm_flush(self, Channel channel)
    cpdef check_user_id(self, object msg)


cdef bint _frame_at(bytearray buf, Py_ssize_t pos, Py_ssize_t end) except -1
