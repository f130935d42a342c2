"""Delivery-tag bookkeeping, compiled and pure, against a model and against each other."""

from __future__ import annotations

import gc
import os
import weakref

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from _impls import implementations

IMPLS = implementations("leveret._acks_c", "leveret._acks_py")


@pytest.fixture(params=IMPLS, scope="module")
def acks(request):
    return request.param


def test_push_pop_in_order(acks):
    t = acks.DeliveryTags()
    assert [t.push(x) for x in "abc"] == [1, 2, 3]
    assert len(t) == 3 and 2 in t and 4 not in t
    assert t.pop(2) == "b"
    assert t.pop_upto(3) == ["a", "c"]
    assert len(t) == 0 and t.last_tag == 3


def test_unknown_tags(acks):
    t = acks.DeliveryTags()
    t.push("a")
    with pytest.raises(acks.UnknownDeliveryTag):
        t.pop(5)
    with pytest.raises(acks.UnknownDeliveryTag):
        t.pop_upto(5)
    t.pop(1)
    with pytest.raises(acks.UnknownDeliveryTag):
        t.pop(1)  # already settled


def test_no_ack_tags_are_not_outstanding(acks):
    t = acks.DeliveryTags()
    assert t.next_tag() == 1
    assert t.push("x") == 2
    assert 1 not in t
    with pytest.raises(acks.UnknownDeliveryTag):
        t.pop(1)
    assert t.pop_upto(2) == ["x"]


def test_zero_means_everything(acks):
    t = acks.DeliveryTags()
    for i in range(100):
        t.push(i)
    t.pop(50)
    assert t.pop_upto(0) == [i for i in range(100) if i != 49]  # tag 50 held item 49


def test_items_are_released(acks):
    class Item:
        pass

    t = acks.DeliveryTags()
    refs = []
    for _ in range(50):
        item = Item()
        refs.append(weakref.ref(item))
        t.push(item)
        del item
    t.pop(3)
    t.pop_upto(10)
    t.pop(40)
    del t
    gc.collect()
    assert all(r() is None for r in refs)


def test_large_out_of_order(acks):
    t = acks.DeliveryTags()
    n = 10000
    for i in range(n):
        t.push(i)
    for tag in range(n, 0, -2):
        assert t.pop(tag) == tag - 1
    assert len(t) == n // 2
    assert t.pop_upto(n - 1) == list(range(0, n, 2))


class Model(RuleBasedStateMachine):
    """Every implementation does what a dict of outstanding tags does."""

    def __init__(self) -> None:
        super().__init__()
        import leveret._acks_py as py

        self.impls = [m.DeliveryTags() for m in _modules()]
        self.unknown = py.UnknownDeliveryTag
        self.model: dict[int, int] = {}
        self.last = 0

    def _all(self, fn):
        results = []
        for t in self.impls:
            try:
                results.append(("ok", fn(t)))
            except self.unknown:
                results.append(("unknown", None))
        return results

    @rule()
    def push(self):
        self.last += 1
        self.model[self.last] = self.last * 10
        assert self._all(lambda t: t.push(self.last * 10)) == [("ok", self.last)] * len(self.impls)

    @rule()
    def skip(self):
        self.last += 1
        assert self._all(lambda t: t.next_tag()) == [("ok", self.last)] * len(self.impls)

    @rule(tag=st.integers(0, 60))
    def pop(self, tag):
        expected = ("ok", self.model.pop(tag)) if tag in self.model else ("unknown", None)
        assert self._all(lambda t: t.pop(tag)) == [expected] * len(self.impls)

    @rule(tag=st.integers(0, 60))
    def pop_upto(self, tag):
        if tag == 0:
            expected = ("ok", [self.model[k] for k in sorted(self.model)])
            self.model.clear()
        elif tag in self.model:
            keys = sorted(k for k in self.model if k <= tag)
            expected = ("ok", [self.model.pop(k) for k in keys])
        else:
            expected = ("unknown", None)
        assert self._all(lambda t: t.pop_upto(tag)) == [expected] * len(self.impls)

    @rule()
    def pop_all(self):
        expected = ("ok", [self.model[k] for k in sorted(self.model)])
        self.model.clear()
        assert self._all(lambda t: t.pop_all()) == [expected] * len(self.impls)

    @invariant()
    def same_state(self):
        for t in self.impls:
            assert len(t) == len(self.model)
            assert t.items() == sorted(self.model.items())
            assert t.last_tag == self.last


def _modules():
    import leveret._acks_py as py

    try:
        import leveret._acks_c as c
    except ImportError:
        return [py]
    return [c, py]


TestModel = Model.TestCase
TestModel.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


def test_compiled_acks_are_the_default():
    if os.environ.get("LEVERET_NO_EXTENSIONS") or not os.environ.get(
            "LEVERET_REQUIRE_EXTENSIONS"):
        pytest.skip("only meaningful when the extensions are required (CI sets it)")
    import leveret.acks

    assert leveret.acks.IMPLEMENTATION == "c"
