"""Delivery-tag bookkeeping: compiled (``_acks_c``) by default, ``_acks_py`` as fallback."""

from . import _speedups
from ._acks_py import UnknownDeliveryTag

_impl = _speedups.load("leveret._acks_c", "leveret._acks_py")
IMPLEMENTATION = _speedups.implementation(_impl)
DeliveryTags = _impl.DeliveryTags

__all__ = ["DeliveryTags", "UnknownDeliveryTag", "IMPLEMENTATION"]
