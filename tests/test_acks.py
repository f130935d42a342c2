"""Delivery-tag bookkeeping, compiled and pure, against a model and against each other."""

from __future__ import annotations

import gc
import os
import random
import sys
import weakref

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import leveret._acks_py as py_acks

from _impls import implementations

IMPLS = implementations("leveret._acks_c", "leveret._acks_py")


@pytest.fixture(params=IMPLS, scope="module")
def acks(request):
    return request.param


class Item:
    """Something a weak reference can follow."""


def test_push_pop_in_order(acks):
    t = acks.DeliveryTags()
    assert [t.push(x) for x in "abc"] == [1, 2, 3]
    assert len(t) == 3 and 2 in t and 4 not in t
    assert t.pop(2) == "b"
    assert t.pop_upto(3) == ["a", "c"]
    assert len(t) == 0 and t.last_tag == 3


def test_one_exception_class(acks):
    assert acks.UnknownDeliveryTag is py_acks.UnknownDeliveryTag
    assert issubclass(acks.UnknownDeliveryTag, KeyError)


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
    with pytest.raises(acks.UnknownDeliveryTag):
        t.pop_upto(1)


@pytest.mark.parametrize("tag", [-1, 0, 2**64 + 1, 2**70, 1.0, "1", None, b"\x01"])
def test_tags_are_positive_ints(acks, tag):
    t = acks.DeliveryTags()
    t.push("a")
    assert tag not in t
    with pytest.raises(acks.UnknownDeliveryTag):
        t.pop(tag)
    if tag != 0:
        with pytest.raises(acks.UnknownDeliveryTag):
            t.pop_upto(tag)
    assert t.items() == [(1, "a")]


def test_no_ack_tags_are_not_outstanding(acks):
    t = acks.DeliveryTags()
    assert t.next_tag() == 1
    assert t.push("x") == 2
    assert 1 not in t
    with pytest.raises(acks.UnknownDeliveryTag):
        t.pop(1)
    with pytest.raises(acks.UnknownDeliveryTag):
        t.pop_upto(1)
    assert t.pop_upto(2) == ["x"]


def test_zero_means_everything(acks):
    t = acks.DeliveryTags()
    for i in range(100):
        t.push(i)
    t.pop(50)
    assert t.pop_upto(0) == [i for i in range(100) if i != 49]  # tag 50 held item 49
    assert t.pop_upto(0) == [] and t.pop_all() == []


def test_none_is_an_item_like_any_other(acks):
    t = acks.DeliveryTags()
    t.push(None)
    t.push(None)
    assert t.items() == [(1, None), (2, None)]
    assert t.pop(2) is None and 1 in t and len(t) == 1


def test_items_are_released(acks):
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
    assert sum(r() is not None for r in refs) == 50 - 11
    del t
    assert all(r() is None for r in refs)  # by reference counting alone: no gc.collect()


def test_reference_counts_balance(acks):
    item = Item()
    before = sys.getrefcount(item)
    t = acks.DeliveryTags()
    rng = random.Random(3)
    for _round in range(3):  # big enough to grow, compact, shrink and trim
        for _ in range(100_000):
            t.push(item)
            if rng.random() < 0.1:
                t.next_tag()
        assert sys.getrefcount(item) == before + len(t)
        tags = [tag for tag, _ in t.items()]
        rng.shuffle(tags)
        for tag in tags[: len(tags) * 3 // 4]:
            assert t.pop(tag) is item
        assert sys.getrefcount(item) == before + len(t)
        n = len(t)
        assert len(t.pop_upto(t.items()[n // 2][0])) == n // 2 + 1
        assert sys.getrefcount(item) == before + len(t)
    t.pop_all()
    assert sys.getrefcount(item) == before and len(t) == 0
    for _ in range(10):
        t.push(item)
    del t
    assert sys.getrefcount(item) == before


def test_cycles_through_the_items_are_collected(acks):
    # The broker holds (queue, entry, consumer) and the consumer points back at the channel
    # that owns the tags: a cycle the garbage collector must be able to see and break.
    class Channel:
        pass

    gc.collect()
    channel = Channel()
    channel.tags = acks.DeliveryTags()
    for _ in range(20):
        channel.tags.push(("queue", Item(), channel))
    channel.tags.pop(7)
    ref = weakref.ref(channel)
    del channel
    gc.collect()
    assert ref() is None


def test_large_out_of_order(acks):
    t = acks.DeliveryTags()
    n = 10000
    for i in range(n):
        t.push(i)
    for tag in range(n, 0, -2):
        assert t.pop(tag) == tag - 1
    assert len(t) == n // 2
    assert t.pop_upto(n - 1) == list(range(0, n, 2))


def test_random_order_with_skipped_tags_matches_a_dict(acks):
    rng = random.Random(11)
    t = acks.DeliveryTags()
    model: dict[int, int] = {}
    for step in range(30):
        for i in range(rng.randrange(1, 5000)):
            if rng.random() < 0.05:
                t.next_tag()
            else:
                model[t.push(i)] = i
        outstanding = list(model)
        rng.shuffle(outstanding)
        for tag in outstanding[: rng.randrange(len(outstanding) + 1)]:
            assert t.pop(tag) == model.pop(tag)
        if model and step % 3 == 0:
            upto = rng.choice(list(model))
            expected = [model.pop(k) for k in sorted(k for k in model if k <= upto)]
            assert t.pop_upto(upto) == expected
        assert t.items() == sorted(model.items())
        assert len(t) == len(model)
    for tag in range(1, t.last_tag + 2):
        assert (tag in t) == (tag in model)


class Model(RuleBasedStateMachine):
    """Both implementations do what a dict of outstanding tags does, with the same results and
    the same exceptions, on the same calls."""

    def __init__(self) -> None:
        super().__init__()
        self.impls = [m.DeliveryTags() for m in _modules()]
        self.model: dict[int, int] = {}
        self.last = 0

    def _all(self, fn):
        results = []
        for t in self.impls:
            try:
                results.append(("ok", fn(t)))
            except py_acks.UnknownDeliveryTag as exc:
                results.append(("unknown", exc.args))
        return results

    def _check(self, fn, expected) -> None:
        assert self._all(fn) == [expected] * len(self.impls)

    def _tag(self, data) -> int:
        """Mostly outstanding tags, then settled, skipped and never issued ones, 0 and -1."""
        if self.model and data.draw(st.booleans()):
            return data.draw(st.sampled_from(sorted(self.model)))
        return data.draw(st.integers(-1, self.last + 3))

    @rule(n=st.integers(1, 150))
    def push(self, n):
        for _ in range(n):
            self.last += 1
            self.model[self.last] = self.last * 10
            self._check(lambda t: t.push(self.last * 10), ("ok", self.last))

    @rule(n=st.integers(1, 3))
    def skip(self, n):
        for _ in range(n):
            self.last += 1
            self._check(lambda t: t.next_tag(), ("ok", self.last))

    @rule(data=st.data())
    def pop(self, data):
        tag = self._tag(data)
        expected = ("ok", self.model.pop(tag)) if tag in self.model else ("unknown", (tag,))
        self._check(lambda t: t.pop(tag), expected)

    @precondition(lambda self: len(self.model) > 4)
    @rule(rnd=st.randoms(use_true_random=False), share=st.floats(0, 1))
    def pop_scattered(self, rnd, share):
        """Acks out of order, enough of them to leave holes and compact."""
        tags = sorted(self.model)
        rnd.shuffle(tags)
        for tag in tags[: int(len(tags) * share)]:
            self._check(lambda t, tag=tag: t.pop(tag), ("ok", self.model.pop(tag)))

    @rule(data=st.data())
    def pop_upto(self, data):
        tag = self._tag(data)
        if tag == 0:
            expected = ("ok", [self.model[k] for k in sorted(self.model)])
            self.model.clear()
        elif tag in self.model:
            keys = sorted(k for k in self.model if k <= tag)
            expected = ("ok", [self.model.pop(k) for k in keys])
        else:
            expected = ("unknown", (tag,))
        self._check(lambda t: t.pop_upto(tag), expected)

    @rule()
    def pop_all(self):
        expected = ("ok", [self.model[k] for k in sorted(self.model)])
        self.model.clear()
        self._check(lambda t: t.pop_all(), expected)

    @rule(data=st.data())
    def contains(self, data):
        tag = self._tag(data)
        self._check(lambda t: tag in t, ("ok", tag in self.model))

    @invariant()
    def same_state(self):
        expected = sorted(self.model.items())
        for t in self.impls:
            assert len(t) == len(self.model)
            assert t.items() == expected
            assert t.last_tag == self.last


def _modules():
    mods = [p.values[0] for p in IMPLS if p.values[0] is not None]
    assert py_acks in mods
    return mods


TestModel = Model.TestCase
TestModel.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)


def test_compiled_acks_are_the_default():
    if os.environ.get("LEVERET_NO_EXTENSIONS") or not os.environ.get(
            "LEVERET_REQUIRE_EXTENSIONS"):
        pytest.skip("only meaningful when the extensions are required (CI sets it)")
    import leveret.acks

    assert leveret.acks.IMPLEMENTATION == "c"
