# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled headers matcher: the twin of ``leveret.routing._headers_py`` (same semantics).

Rules are parsed once at bind time into typed objects; matching is a C loop over them. Values
of the same plain type (str, int, float) compare directly; anything else goes through the
shared ``values_equal`` so both twins agree on RabbitMQ's equality.
"""

from leveret.routing._headers_py import _freeze, values_equal

cdef object _MISSING = object()
cdef dict _MODES = {"all": (True, False), "any": (False, False),
                    "all-with-x": (True, True), "any-with-x": (False, True)}


cdef inline bint _equal(object want, object have) except -1:
    cdef type tw = type(want)
    if tw is type(have) and (tw is str or tw is int or tw is float):
        return want == have
    return values_equal(want, have)


cdef class _Rule:
    cdef bint match_all
    cdef tuple keys
    cdef tuple values  # None = presence only
    cdef object key

    def __init__(self, arguments):
        mode = arguments.get("x-match", "all")
        if isinstance(mode, (bytes, bytearray)):
            mode = bytes(mode).decode("utf-8", "replace")
        match_all, with_x = _MODES.get(mode, (True, False)) if isinstance(mode, str) \
            else (True, False)
        self.match_all = match_all
        tests = [(k, v) for k, v in arguments.items()
                 if k != "x-match" and (with_x or not k.startswith("x-"))]
        self.keys = tuple(k for k, _ in tests)
        self.values = tuple(v for _, v in tests)
        self.key = _freeze(dict(arguments))

    cdef bint matches(self, dict headers) except -1:
        cdef Py_ssize_t i, n = len(self.keys)
        if self.match_all:
            for i in range(n):
                have = headers.get(self.keys[i], _MISSING)
                if have is _MISSING:
                    return False
                want = self.values[i]
                if want is not None and not _equal(want, have):
                    return False
            return True
        for i in range(n):
            have = headers.get(self.keys[i], _MISSING)
            if have is not _MISSING:
                want = self.values[i]
                if want is None or _equal(want, have):
                    return True
        return False


cdef class HeadersMatcher:
    """Headers-exchange bindings: ``bind(arguments, target)``, ``unbind``, ``match(headers)``."""

    cdef dict _bindings  # (frozen arguments, target) -> (rule, target)

    def __cinit__(self):
        self._bindings = {}

    def __len__(self):
        return len(self._bindings)

    def bind(self, arguments, target):
        cdef _Rule rule = _Rule(arguments or {})
        ident = (rule.key, target)
        if ident in self._bindings:
            return False
        self._bindings[ident] = (rule, target)
        return True

    def unbind(self, arguments, target):
        ident = (_freeze(dict(arguments or {})), target)
        return self._bindings.pop(ident, None) is not None

    def clear(self):
        self._bindings.clear()

    def bindings(self):
        for rule, target in self._bindings.values():
            yield dict(zip((<_Rule>rule).keys, (<_Rule>rule).values)), target

    def match(self, headers):
        """Every target whose binding matches ``headers``, each once."""
        cdef dict h = headers if type(headers) is dict else dict(headers or {})
        cdef dict found = {}
        cdef tuple pair
        for pair in self._bindings.values():
            target = pair[1]
            if target not in found and (<_Rule>pair[0]).matches(h):
                found[target] = None
        return list(found)
