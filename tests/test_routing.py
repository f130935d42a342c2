"""The standalone router: compiled and pure twins against oracles, each other and RabbitMQ.

Topic matching is checked against a regex translation of the binding key; headers matching
against a reference written from RabbitMQ's docs over a model of the Erlang terms RabbitMQ
compares (typed AMQP values, Erlang's ``==``). Both twins must return the very same lists.
Tests marked ``rabbitmq`` replay the tricky cases on a real RabbitMQ when one listens on
localhost:5672 (skipped otherwise).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import importlib
import itertools
import os
import random
import re
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _impls import implementations

TOPIC = implementations("leveret.routing._topic_c", "leveret.routing._topic_py")
HEADERS = implementations("leveret.routing._headers_c", "leveret.routing._headers_py")
RANDOM = settings(max_examples=300, deadline=None)


@pytest.fixture(params=TOPIC, scope="module")
def topic(request):
    return request.param


@pytest.fixture(params=HEADERS, scope="module")
def headers(request):
    return request.param


def _modules(compiled: str, pure: str) -> list:
    """The pure twin, and the compiled one first when it is built."""
    mods = [importlib.import_module(pure)]
    try:
        mods.insert(0, importlib.import_module(compiled))
    except ImportError:
        if os.environ.get("LEVERET_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise
    return mods


TOPIC_MODULES = _modules("leveret.routing._topic_c", "leveret.routing._topic_py")
HEADERS_MODULES = _modules("leveret.routing._headers_c", "leveret.routing._headers_py")


# ================================================================ topic: the regex oracle


@functools.cache
def topic_regex(binding_key: str) -> re.Pattern[str]:
    """RabbitMQ's topic semantics as a regex over the routing key's words, each followed by '.'.

    Words are separated by '.', '*' is exactly one word, '#' zero or more words. The empty
    key has zero words (so '#' and '' match it and '*' does not); 'a..b' has three words.
    """
    words = binding_key.split(".") if binding_key else []
    parts = []
    for w in words:
        if w == "#":
            parts.append(r"(?:[^.]*\.)*")
        elif w == "*":
            parts.append(r"[^.]*\.")
        else:
            parts.append(re.escape(w) + r"\.")
    return re.compile("".join(parts) + r"\Z")


def oracle_matches(binding_key: str, routing_key: str) -> bool:
    subject = "".join(w + "." for w in (routing_key.split(".") if routing_key else []))
    return topic_regex(binding_key).match(subject) is not None


binding_words = st.sampled_from(["a", "b", "", "*", "#"])
binding_keys = st.one_of(
    st.lists(binding_words, max_size=6).map(".".join),
    st.sampled_from(["#.#", "*.#.*", "#.*.#", "a.#.#.b", "#.a.#", ".#.", "*.*.#"]),
)
# routing keys may hold '*' and '#' too: there they are plain words
routing_keys = st.lists(st.sampled_from(["a", "b", "", "*", "#"]), max_size=7).map(".".join)


@pytest.mark.parametrize(
    "binding,key,expected",
    [
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "", True),
        ("#", "x.y", True),
        ("#", ".", True),
        ("*", "", False),  # the empty key has no words (RabbitMQ split_topic_key)
        ("", "", True),
        ("", "a", False),
        ("", ".", False),  # '.' is two empty words
        ("*.*", ".", True),
        ("*", "a", True),
        ("a..b", "a..b", True),
        ("a.*.b", "a..b", True),
        ("a.", "a.", True),
        ("a.", "a", False),
        (".a", ".a", True),
        ("#.#", "a", True),
        ("#.#", "", True),
        ("*.#.*", "a", False),
        ("*.#.*", "a.b", True),
        ("*.#.*", "a.b.c.d", True),
        ("#.a.#", "b.a.c", True),
        ("#.a", "a", True),
        ("a.*", "a.*", True),
        ("a.b", "a.*", False),  # a '*' in a routing key is just a word
        ("a.#", "a.#", True),
    ],
)
def test_topic_cases(topic, binding, key, expected):
    trie = topic.TopicTrie()
    trie.bind(binding, "q")
    assert (trie.match(key) == ["q"]) is expected
    assert oracle_matches(binding, key) is expected


@RANDOM
@given(st.lists(binding_keys, max_size=10), routing_keys)
def test_topic_twins_and_oracle_agree(keys, routing_key):
    """Compiled, pure and the regex oracle: same targets; the twins in the same order too."""
    expected = {i for i, k in enumerate(keys) if oracle_matches(k, routing_key)}
    results = []
    for mod in TOPIC_MODULES:
        trie = mod.TopicTrie()
        for i, k in enumerate(keys):
            trie.bind(k, i)
        got = trie.match(routing_key)
        assert len(got) == len(set(got))
        assert set(got) == expected
        results.append(got)
    assert all(r == results[0] for r in results)


@RANDOM
@given(st.lists(st.tuples(binding_keys, st.integers(0, 3)), max_size=10), routing_keys)
def test_topic_shared_targets_come_once(pairs, routing_key):
    """Targets with several bindings (so the dedupe path runs) come out once, same order."""
    expected = {t for k, t in pairs if oracle_matches(k, routing_key)}
    results = []
    for mod in TOPIC_MODULES:
        trie = mod.TopicTrie()
        for k, t in pairs:
            trie.bind(k, t)
        got = trie.match(routing_key)
        assert len(got) == len(set(got)) and set(got) == expected
        results.append(got)
    assert all(r == results[0] for r in results)


@RANDOM
@given(st.lists(st.tuples(st.booleans(), binding_keys, st.integers(0, 3)), max_size=40),
       st.lists(routing_keys, max_size=5))
def test_topic_bind_unbind_sequences_match_a_model(ops, probes):
    """Compiled and pure tries stay equal to a set-of-bindings model under bind/unbind."""
    tries = [m.TopicTrie() for m in TOPIC_MODULES]
    model: set[tuple[str, int]] = set()
    for is_bind, key, target in ops:
        expected = ((key, target) not in model) if is_bind else ((key, target) in model)
        (model.add if is_bind else model.discard)((key, target))
        for t in tries:
            assert (t.bind(key, target) if is_bind else t.unbind(key, target)) is expected
            assert len(t) == len(model)
    for t in tries:
        assert sorted(t.bindings()) == sorted(model)
        for rk in probes:
            assert set(t.match(rk)) == {tg for k, tg in model if oracle_matches(k, rk)}
    for rk in probes:
        assert all(t.match(rk) == tries[0].match(rk) for t in tries)


def test_topic_churn_with_many_words():
    """Thousands of distinct words: the compiled edge table grows, collides and deletes."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(400)] + ["", "x"]

    def key(wild: bool) -> str:
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 4))]
        if wild and words:
            words[rng.randrange(len(words))] = rng.choice(["*", "#"])
        return ".".join(words)

    tries = [m.TopicTrie() for m in TOPIC_MODULES]
    model: set[tuple[str, int]] = set()
    for _ in range(4):
        for _ in range(1500):
            k, t = key(rng.random() < 0.3), rng.randrange(50)
            model.add((k, t))
            for trie in tries:
                trie.bind(k, t)
        for k, t in rng.sample(sorted(model), len(model) * 2 // 3):
            model.discard((k, t))
            for trie in tries:
                assert trie.unbind(k, t)
        for trie in tries:
            assert len(trie) == len(model)
            assert sorted(trie.bindings()) == sorted(model)
        for _ in range(200):
            rk = key(False)
            want = {t for k, t in model if oracle_matches(k, rk)}
            got = [trie.match(rk) for trie in tries]
            assert set(got[0]) == want and all(g == got[0] for g in got)
    for trie in tries:
        for k, t in sorted(model):
            assert trie.unbind(k, t)
        assert len(trie) == 0 and list(trie.bindings()) == []
        assert trie.match("w1.w2") == [] and trie.match("") == []


def test_several_bindings_one_target_once(topic):
    trie = topic.TopicTrie()
    for key in ("a.*", "#", "a.b", "*.b", "a.#", "#.#"):
        trie.bind(key, "q")
    trie.bind("a.b", "r")
    assert sorted(trie.match("a.b")) == ["q", "r"]
    assert len(trie) == 7


def test_targets_of_one_binding_key_come_in_bind_order(topic):
    trie = topic.TopicTrie()
    for target in ("q3", "q1", "q2"):
        trie.bind("a.b", target)
    assert trie.match("a.b") == ["q3", "q1", "q2"]
    trie.unbind("a.b", "q1")
    trie.bind("a.b", "q1")
    assert trie.match("a.b") == ["q3", "q2", "q1"]


def test_many_hashes_stay_fast_enough_to_finish(topic):
    trie = topic.TopicTrie()
    trie.bind(".".join(["#"] * 40) + ".z", "q")
    trie.bind(".".join(["#", "*"] * 20), "r")
    assert trie.match(".".join(["a"] * 60)) == ["r"]
    assert trie.match(".".join(["a"] * 60) + ".z") == ["q", "r"]


def test_very_long_keys(topic):
    trie = topic.TopicTrie()
    trie.bind("#.end", "q")
    trie.bind(".".join(["w"] * 3000), "deep")  # deeper than any C stack would like
    trie.bind("#." + ".".join(["w"] * 2999), "deep-hash")
    key = ".".join(["w"] * 1000) + ".end"
    assert trie.match(key) == ["q"]
    assert trie.match(".".join(["w"] * 3000)) == ["deep-hash", "deep"]
    assert trie.unbind(".".join(["w"] * 3000), "deep")


def test_unbind_prunes_and_clear(topic):
    trie = topic.TopicTrie()
    assert trie.bind("a.b.c", 1) and not trie.bind("a.b.c", 1)
    assert trie.bind("a.b", 1)
    assert trie.unbind("a.b.c", 1) and not trie.unbind("a.b.c", 1)
    assert not trie.unbind("x.y", 1) and not trie.unbind("a", 1) and not trie.unbind("a.b", 2)
    assert trie.match("a.b") == [1] and trie.match("a.b.c") == []
    assert trie.unbind("a.b", 1)
    assert len(trie) == 0 and trie.match("a.b") == [] and list(trie.bindings()) == []
    trie.bind("#", 2)
    trie.clear()
    assert len(trie) == 0 and trie.match("a") == []
    assert trie.bind("#", 2) and trie.match("a") == [2]


def test_any_hashable_targets(topic):
    trie = topic.TopicTrie()
    a, b = object(), ("queue", 1)
    trie.bind("x.*", a)
    trie.bind("x.#", b)
    assert set(map(id, trie.match("x.y"))) == {id(a), id(b)}
    with pytest.raises(TypeError):
        trie.bind("x", [])  # unhashable


# ================================================================ headers: the reference


class Atom(str):
    """An Erlang atom (true, false, undefined, and the AMQP type tags)."""


def erlang_term(value: Any) -> tuple[Atom, Any]:
    """(type tag, value) as RabbitMQ holds a decoded AMQP field value.

    Python does not say which integer width a client chose, so every integer is tagged
    'int' here (RabbitMQ would have byte/short/signedint/long).
    """
    if value is None:
        return Atom("void"), Atom("undefined")
    if isinstance(value, bool):
        return Atom("bool"), Atom("true" if value else "false")
    if isinstance(value, int):
        return Atom("int"), value
    if isinstance(value, float):
        return Atom("double"), value
    if isinstance(value, str):
        return Atom("longstr"), value.encode()
    if isinstance(value, (bytes, bytearray)):
        return Atom("binary"), bytes(value)
    if isinstance(value, decimal.Decimal):
        sign, digits, exponent = value.as_tuple()
        unscaled = int("".join(map(str, digits)))
        return Atom("decimal"), (-exponent, -unscaled if sign else unscaled)
    if isinstance(value, datetime.datetime):
        return Atom("timestamp"), int(value.timestamp())
    if isinstance(value, list):
        return Atom("array"), [erlang_term(v) for v in value]
    if isinstance(value, dict):
        return Atom("table"), [(k.encode(), *erlang_term(v)) for k, v in value.items()]
    raise TypeError(value)


def erlang_equal(a: Any, b: Any) -> bool:
    """Erlang's ``==``: numbers by value, atoms and binaries exactly, containers item by item."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    if isinstance(a, Atom) or isinstance(b, Atom):
        return isinstance(a, Atom) and isinstance(b, Atom) and str(a) == str(b)
    if isinstance(a, bytes) and isinstance(b, bytes):
        return a == b
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(
            erlang_equal(x, y) for x, y in zip(a, b))
    return False


def reference_headers_match(args: dict, headers: dict | None) -> bool:
    """From rabbitmq.com/docs/exchanges#headers, over RabbitMQ's terms.

    x-match is all (default), any, all-with-x or any-with-x (a non-string or unknown value is
    all); x-match never takes part and other x- arguments only with -with-x; a void argument
    needs the header present, any other needs it present with a value equal under Erlang's
    == (the field types are not compared at the top level). No headers = an empty table.
    """
    headers = headers or {}
    kind = args.get("x-match")
    if not isinstance(kind, str) or kind not in ("all", "any", "all-with-x", "any-with-x"):
        kind = "all"
    with_x = kind.endswith("-with-x")
    outcomes = []
    for name, want in args.items():
        if name == "x-match" or (name.startswith("x-") and not with_x):
            continue
        if name not in headers:
            outcomes.append(False)
        elif want is None:
            outcomes.append(True)
        else:
            outcomes.append(erlang_equal(erlang_term(want)[1], erlang_term(headers[name])[1]))
    return all(outcomes) if kind.startswith("all") else any(outcomes)


def _frozen(term: Any) -> Hashable:
    if isinstance(term, (list, tuple)):
        return tuple(_frozen(t) for t in term)
    return term


def reference_identity(args: dict) -> Hashable:
    """Two argument tables are one binding when equal term for term, types included."""
    return frozenset((k, _frozen(erlang_term(v))) for k, v in args.items())


UTC = datetime.timezone.utc
scalars = st.one_of(
    st.none(), st.integers(0, 2), st.just(2**40), st.booleans(),
    st.sampled_from([1.0, 2.0, 0.5]),
    st.sampled_from(["s", "t", ""]),
    st.sampled_from([b"s", bytearray(b"t"), b"\xff"]),
    st.sampled_from([decimal.Decimal("1.0"), decimal.Decimal("1.00"), decimal.Decimal("1"),
                     decimal.Decimal("-2.5")]),
    st.sampled_from([datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
                     datetime.datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC)]),
)
header_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=2),
                            st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)),
    max_leaves=3,
)
header_names = st.sampled_from(["a", "b", "c", "x-a", "x-b"])
header_tables = st.dictionaries(header_names, header_values, max_size=4)
x_match_values = st.sampled_from([None, "all", "any", "all-with-x", "any-with-x", "bogus",
                                  b"any", 1])
binding_args = st.tuples(x_match_values, header_tables).map(
    lambda t: {**t[1], **({} if t[0] is None else {"x-match": t[0]})})
message_headers = st.one_of(
    st.none(),
    header_tables,
    st.tuples(header_tables, st.sampled_from(["all", "any"])).map(
        lambda t: {**t[0], "x-match": t[1]}),
)


@RANDOM
@given(st.lists(binding_args, max_size=8), message_headers)
def test_headers_twins_and_reference_agree(bindings, message):
    expected = {i for i, args in enumerate(bindings) if reference_headers_match(args, message)}
    results = []
    for mod in HEADERS_MODULES:
        m = mod.HeadersMatcher()
        for i, args in enumerate(bindings):
            m.bind(args, i)
        got = m.match(message)
        assert got == sorted(got)  # first-bound first
        assert set(got) == expected
        results.append(got)
    assert all(r == results[0] for r in results)


@RANDOM
@given(st.lists(st.tuples(st.booleans(), binding_args, st.integers(0, 3)), max_size=30),
       st.lists(message_headers, max_size=4))
def test_headers_bind_unbind_sequences_match_a_model(ops, probes):
    """Binding identity is (arguments with their types, target); match follows the model."""
    matchers = [mod.HeadersMatcher() for mod in HEADERS_MODULES]
    model: dict[tuple[Hashable, int], dict] = {}
    for is_bind, args, target in ops:
        ident = (reference_identity(args), target)
        expected = (ident not in model) if is_bind else (ident in model)
        if is_bind:
            model.setdefault(ident, args)
        else:
            model.pop(ident, None)
        for m in matchers:
            assert (m.bind(args, target) if is_bind else m.unbind(args, target)) is expected
            assert len(m) == len(model)
    for m in matchers:
        assert {(reference_identity(a), t) for a, t in m.bindings()} == set(model)
        for message in probes:
            want = {t for (_, t), args in model.items() if reference_headers_match(args, message)}
            assert set(m.match(message)) == want
    for message in probes:
        assert all(m.match(message) == matchers[0].match(message) for m in matchers)


def test_headers_churn_rebuilds_the_index():
    """Many unbinds: the compiled twin renumbers its slots; results stay the same."""
    rng = random.Random(11)
    names = [f"h{i}" for i in range(8)]

    def args() -> dict:
        a: dict[str, Any] = {n: rng.choice([None, 1, 2, "v"]) for n in rng.sample(names, 2)}
        a["x-match"] = rng.choice(["all", "any"])
        return a

    matchers = [mod.HeadersMatcher() for mod in HEADERS_MODULES]
    live: list[tuple[dict, int]] = []
    for _ in range(6):
        for _ in range(300):
            a, t = args(), rng.randrange(40)
            if all(m.bind(a, t) for m in matchers):
                live.append((a, t))
        rng.shuffle(live)
        for a, t in live[: len(live) * 3 // 4]:
            assert all(m.unbind(a, t) for m in matchers)
        live = live[len(live) * 3 // 4:]
        for _ in range(100):
            message = {n: rng.choice([1, 2, "v", 1.0]) for n in rng.sample(names, 3)}
            want = {t for a, t in live if reference_headers_match(a, message)}
            got = [m.match(message) for m in matchers]
            assert set(got[0]) == want and all(g == got[0] for g in got)
    for m in matchers:
        m.clear()
        assert len(m) == 0 and m.match({"h1": 1}) == [] and list(m.bindings()) == []
        assert m.bind({}, "all") and m.match(None) == ["all"]


def test_headers_many_matches_come_first_bound_first(headers):
    m = headers.HeadersMatcher()
    for i in range(700):
        m.bind({"x-match": "any", "a": 1, "b": i}, 699 - i)
        m.bind({"c": None, "b": i}, f"c{i}")
    for i in range(0, 700, 3):
        assert m.unbind({"x-match": "any", "a": 1, "b": i}, 699 - i)
    want = [699 - i for i in range(700) if i % 3]
    assert m.match({"a": 1}) == want
    assert m.match({"a": 1, "b": 3}) == want  # the binding with b=3 is gone; c3 needs c
    assert m.match({"c": "", "b": 5, "a": 1.0}) == want[:4] + ["c5"] + want[4:]


def test_headers_cases(headers):
    m = headers.HeadersMatcher()
    m.bind({"x-match": "all", "a": 1, "b": "two"}, "all")
    m.bind({"x-match": "any", "a": 1, "b": "two"}, "any")
    m.bind({"flag": None}, "presence")
    m.bind({}, "everything")
    m.bind({"x-match": "any"}, "nothing")
    m.bind({"n": 1}, "number")
    m.bind({"x-match": "all", "x-k": 1}, "x-ignored")
    m.bind({"x-match": "all-with-x", "x-k": 1}, "all-with-x")
    m.bind({"x-match": "any-with-x", "x-k": 1, "z": 2}, "any-with-x")
    every = ["everything", "x-ignored"]
    assert m.match({"a": 1, "b": "two"}) == ["all", "any", *every]
    assert m.match({"a": 1}) == ["any", *every]
    assert m.match({"flag": "x"}) == ["presence", *every]
    assert m.match({"flag": None}) == ["presence", *every]
    assert m.match(None) == every and m.match({}) == every
    assert m.match({"n": True}) == every  # a boolean is not a number
    assert m.match({"n": 1.0}) == [*every[:1], "number", *every[1:]]  # Erlang: 1 == 1.0
    assert m.match({"x-k": 1}) == [*every, "all-with-x", "any-with-x"]
    assert m.match({"z": 2}) == [*every, "any-with-x"]


# What RabbitMQ 3.10.8 routed for these (binding, message) pairs: each row is a binding and
# the messages, by index, that reached its queue (see test_headers_against_rabbitmq).
RABBIT_HEADERS_BINDINGS: list[dict] = [
    {"x-match": "all-with-x", "x-a": 1},
    {"x-match": "any-with-x", "x-a": 1, "b": 2},
    {"n": 1}, {"n": 1.0}, {"n": True}, {"s": "v"}, {"s": bytearray(b"v")},
    {"arr": [1, 2]}, {"arr": [1.0, 2.0]}, {"t": {"a": 1, "b": 2}},
    {"d": decimal.Decimal("1.0")}, {"ts": 5}, {"p": None},
    {"x-match": "all", "x-y": 1}, {"x-match": "any"}, {"x-match": "all"},
]
RABBIT_HEADERS_MESSAGES: list[dict] = [
    {"x-a": 1}, {"x-a": 1, "x-match": "all-with-x"}, {"b": 2},
    {"n": 1}, {"n": 1.0}, {"n": True}, {"n": decimal.Decimal("1")},
    {"s": "v"}, {"s": bytearray(b"v")},
    {"arr": [1, 2]}, {"arr": [1.0, 2.0]}, {"arr": [1, 2.0]},
    {"t": {"a": 1, "b": 2}},
    {"d": decimal.Decimal("1.0")}, {"d": decimal.Decimal("1.00")}, {"d": 1},
    {"ts": datetime.datetime.fromtimestamp(5, UTC)},
    {"p": None}, {"p": 0}, {"x-y": 2}, {}, {"n": 1000},
]
_ALL = set(range(len(RABBIT_HEADERS_MESSAGES)))
RABBIT_HEADERS_ROUTED: list[set[int]] = [
    {0, 1}, {0, 1, 2}, {3, 4}, {3, 4}, {5}, {7, 8}, {7, 8}, {9}, {10}, {12}, {13}, {16},
    {17, 18}, _ALL, set(), _ALL,
]


def test_headers_as_rabbitmq_routed_them(headers):
    for args, routed in zip(RABBIT_HEADERS_BINDINGS, RABBIT_HEADERS_ROUTED):
        m = headers.HeadersMatcher()
        m.bind(args, "q")
        got = {i for i, h in enumerate(RABBIT_HEADERS_MESSAGES) if m.match(h)}
        assert got == routed, args
        assert got == {i for i, h in enumerate(RABBIT_HEADERS_MESSAGES)
                       if reference_headers_match(args, h)}


def test_empty_table_equals_empty_array_at_the_top_only(headers):
    # both are Erlang's [] to RabbitMQ, which compares values without their types there
    m = headers.HeadersMatcher()
    m.bind({"e": {}}, "table")
    m.bind({"e": [[]]}, "nested")
    assert m.match({"e": []}) == ["table"]
    assert m.match({"e": [{}]}) == []
    assert m.match({"e": [[]]}) == ["nested"]


def test_nested_tables_compare_in_order(headers):
    # RabbitMQ sorts only the top level of a table; nested entries compare in wire order
    m = headers.HeadersMatcher()
    m.bind({"t": {"a": 1, "b": 2}}, "q")
    assert m.match({"t": {"a": 1, "b": 2}}) == ["q"]
    assert m.match({"t": {"b": 2, "a": 1}}) == []


def test_headers_binding_identity(headers):
    m = headers.HeadersMatcher()
    assert m.bind({"a": 1}, "q") and not m.bind({"a": 1}, "q")
    assert m.bind({"a": 2}, "q") and m.bind({"a": 1.0}, "q") and m.bind({"a": True}, "q")
    assert m.bind({"x-match": "all", "a": 1}, "q")  # a different table, a different binding
    assert not m.bind({"a": 1, "x-match": "all"}, "q")  # the order of entries does not matter
    assert m.bind({"a": 1}, "r")
    assert len(m) == 6
    assert m.unbind({"a": 1}, "q") and not m.unbind({"a": 1}, "q")
    assert m.match({"a": 1}) == ["q", "r"]  # {"a": 1.0} and x-match all still match
    assert m.match({"a": 2}) == ["q"]
    args = {"x-match": "any", "a": [1, {"k": "v"}], "b": None}
    assert m.bind(args, "s")
    assert ({"x-match": "any", "a": [1, {"k": "v"}], "b": None}, "s") in list(m.bindings())
    assert m.unbind({"b": None, "a": [1, {"k": "v"}], "x-match": "any"}, "s")


def test_headers_mapping_and_unhashable_values(headers):
    from types import MappingProxyType

    m = headers.HeadersMatcher()
    m.bind(MappingProxyType({"a": [1, 2], "b": bytearray(b"x")}), "q")
    assert m.match(MappingProxyType({"a": [1, 2], "b": "x"})) == ["q"]
    assert m.match({"a": [1, 2], "b": b"x", "c": {"d": []}}) == ["q"]
    assert m.match({"a": (1, 2), "b": bytearray(b"y")}) == []


# ================================================================ Python code run mid-call


class _Meddler:
    """A target (or header name) whose hashing and comparing change the structure it is in."""

    def __init__(self, name: str, meddle) -> None:
        self.name = name
        self.meddle = meddle

    def __hash__(self) -> int:
        self.meddle()
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        self.meddle()
        return isinstance(other, _Meddler) and other.name == self.name


def test_topic_changed_by_its_targets_stays_sound(topic):
    """Clearing or rebinding from a target's __hash__/__eq__ may leave odd bindings, but the
    trie keeps working (the compiled one must not read outside its arrays)."""
    rng = random.Random(3)
    trie = topic.TopicTrie()
    keys = ["a.b", "a.*", "#", "a.#.c", "x", ""]

    def meddle() -> None:
        r = rng.random()
        if r < 0.05:
            trie.clear()
        elif r < 0.3:
            trie.bind(rng.choice(keys), rng.randrange(5))
        elif r < 0.5:
            trie.unbind(rng.choice(keys), rng.randrange(5))

    targets = [_Meddler(f"t{i}", meddle) for i in range(4)]
    for _ in range(3000):
        op = rng.random()
        key, target = rng.choice(keys), rng.choice(targets)
        try:
            if op < 0.45:
                trie.bind(key, target)
            elif op < 0.85:
                trie.unbind(key, target)
            else:
                trie.match(rng.choice(["a.b", "a.b.c", "x", ""]))
                list(trie.bindings())
        except (KeyError, IndexError, ValueError):
            pass  # a binding that vanished under us
    trie.clear()
    assert trie.bind("a.*", "q") and trie.bind("#", "r") and trie.match("a.b") == ["r", "q"]


def test_headers_changed_during_a_match_stays_sound(headers):
    rng = random.Random(5)
    m = headers.HeadersMatcher()

    def meddle() -> None:
        r = rng.random()
        if r < 0.05:
            m.clear()
        elif r < 0.5:
            m.bind({"x-match": rng.choice(["all", "any"]), "h": rng.randrange(3)}, rng.randrange(9))
        else:
            m.unbind({"x-match": rng.choice(["all", "any"]), "h": rng.randrange(3)},
                     rng.randrange(9))

    for _ in range(2000):
        meddle()
        got = m.match({_Meddler("h", meddle): 1, "h": rng.randrange(3)})
        assert len(got) == len(set(got))
    m.clear()
    assert m.bind({"h": 1}, "q") and m.match({"h": 1.0}) == ["q"]


def test_threads_matching_while_others_bind_stay_sound():
    """Unlocked concurrent use of the compiled twins: bind/unbind may trip over each other
    (the API is not thread-safe; lock around changes), but a match never returns a target
    twice and nothing reads or writes outside the C arrays."""
    import threading

    compiled = [m for m in TOPIC_MODULES + HEADERS_MODULES if not m.__name__.endswith("_py")]
    if not compiled:
        pytest.skip("compiled router not built")

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    stop = threading.Event()
    errors: list[BaseException] = []
    tries = [m.TopicTrie() for m in compiled if hasattr(m, "TopicTrie")]
    matchers = [m.HeadersMatcher() for m in compiled if hasattr(m, "HeadersMatcher")]
    slow = decimal.Decimal("1.5")  # canonicalised by Python code: the GIL may switch there

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            try:
                for t in tries:
                    k = rng.choice(["a.b", "a.*", "#", "a.#", f"w{rng.randrange(200)}.x"])
                    (t.bind if rng.random() < 0.6 else t.unbind)(k, rng.randrange(30))
                    if rng.random() < 0.01:
                        t.clear()
                for m in matchers:
                    args = {"x-match": rng.choice(["all", "any"]), "d": slow,
                            f"h{rng.randrange(50)}": rng.randrange(3)}
                    (m.bind if rng.random() < 0.6 else m.unbind)(args, rng.randrange(30))
                    if rng.random() < 0.01:
                        m.clear()
            except (KeyError, IndexError, ValueError):
                pass  # two unlocked changes tripped over each other
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    def read() -> None:
        try:
            while not stop.is_set():
                for t in tries:
                    got = t.match("a.b")
                    assert len(got) == len(set(got))
                for m in matchers:
                    got = m.match({"d": slow, "h1": 1, "h2": 2.0})
                    assert len(got) == len(set(got))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    try:
        for th in threads:
            th.start()
        stop.wait(1.5)
    finally:
        stop.set()
        for th in threads:
            th.join()
        sys.setswitchinterval(old)
    assert not errors, errors
    for t in tries:
        t.clear()
        assert t.bind("a.#", 1) and t.match("a.b") == [1]
    for m in matchers:
        m.clear()
        assert m.bind({"d": slow}, 1) and m.match({"d": slow}) == [1]


# ================================================================ against a real RabbitMQ


def _rabbit_route(url: str, kind: str, bindings: list, messages: list) -> list[set[int]]:
    """Bind one queue per binding on a fresh exchange, publish, and read what each queue got."""
    from pamqp import body as pbody
    from pamqp import commands as spec
    from pamqp import frame as pframe
    from pamqp import header as pheader

    from rawamqp import RawClient

    parsed = urllib.parse.urlparse(url)
    client = RawClient(parsed.hostname or "127.0.0.1", parsed.port or 5672)
    try:
        client.handshake(user=parsed.username or "guest", password=parsed.password or "guest",
                         vhost=urllib.parse.unquote(parsed.path[1:]) or "/")
        client.open_channel(1)
        exchange = f"leveret-routing-{uuid.uuid4().hex[:10]}"
        client.send_method(1, spec.Exchange.Declare(exchange=exchange, exchange_type=kind,
                                                    auto_delete=True))
        client.recv_until(spec.Exchange.DeclareOk)
        queues = []
        for binding in bindings:
            client.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
            _, ok = client.recv_until(spec.Queue.DeclareOk)
            if kind == "topic":
                bind = spec.Queue.Bind(queue=ok.queue, exchange=exchange, routing_key=binding)
            else:
                bind = spec.Queue.Bind(queue=ok.queue, exchange=exchange, arguments=binding)
            client.send_method(1, bind)
            client.recv_until(spec.Queue.BindOk)
            queues.append(ok.queue)
        for i, message in enumerate(messages):
            body = str(i).encode()
            if kind == "topic":
                props = spec.Basic.Properties()
                client.send_method(1, spec.Basic.Publish(exchange=exchange, routing_key=message))
            else:
                props = spec.Basic.Properties(headers=message)
                client.send_method(1, spec.Basic.Publish(exchange=exchange, routing_key=""))
            client.send(pframe.marshal(pheader.ContentHeader(0, len(body), props), 1))
            client.send(pframe.marshal(pbody.ContentBody(body), 1))
        routed = []
        for queue in queues:  # a channel's gets follow its publishes to the queue in order
            got: set[int] = set()
            while True:
                client.send_method(1, spec.Basic.Get(queue=queue, no_ack=True))
                _, frame = client.recv_frame()
                while not isinstance(frame, (spec.Basic.GetOk, spec.Basic.GetEmpty)):
                    _, frame = client.recv_frame()
                if isinstance(frame, spec.Basic.GetEmpty):
                    break
                client.recv_until(pheader.ContentHeader)
                _, content = client.recv_until(pbody.ContentBody)
                got.add(int(content.value))
            routed.append(got)
        return routed
    finally:
        client.close()


def _keys(alphabet: list[str], max_words: int) -> list[str]:
    keys = [".".join(p) for n in range(max_words + 1)
            for p in itertools.product(alphabet, repeat=n)]
    return list(dict.fromkeys(keys))


@pytest.mark.rabbitmq
def test_topic_against_rabbitmq(rabbitmq_url):
    """Every binding key of up to 3 words over a, '', *, # against every routing key of up to
    3 words over a, b, '', *, #: RabbitMQ and both twins route alike."""
    bindings = _keys(["a", "", "*", "#"], 3)
    messages = _keys(["a", "b", "", "*", "#"], 3)
    routed = _rabbit_route(rabbitmq_url, "topic", bindings, messages)
    for mod in TOPIC_MODULES:
        for binding, want in zip(bindings, routed):
            trie = mod.TopicTrie()
            trie.bind(binding, "q")
            got = {i for i, key in enumerate(messages) if trie.match(key)}
            assert got == want, (mod.__name__, binding)


@pytest.mark.rabbitmq
def test_headers_against_rabbitmq(rabbitmq_url):
    routed = _rabbit_route(rabbitmq_url, "headers", RABBIT_HEADERS_BINDINGS,
                           RABBIT_HEADERS_MESSAGES)
    assert routed == RABBIT_HEADERS_ROUTED


# ================================================================ standalone use


def test_import_is_standalone():
    code = ("import sys, leveret.routing as r;"
            "bad = [m for m in ('uvloop', 'pamqp', 'leveret.server', 'leveret.connection',"
            " 'leveret.broker', 'leveret.frames', 'asyncio') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_pure_mode_selects_the_twins():
    code = "import leveret.routing as r; print(r.IMPLEMENTATION, r.HEADERS_IMPLEMENTATION)"
    env = {**os.environ, "LEVERET_NO_EXTENSIONS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.split() == ["py", "py"]


def test_readme_example():
    from leveret.routing import HeadersMatcher, TopicTrie

    trie = TopicTrie()
    assert trie.bind("stock.*.nyse", "q1")
    assert trie.bind("stock.#", "q2")
    assert not trie.bind("stock.#", "q2")
    assert sorted(trie.match("stock.ibm.nyse")) == ["q1", "q2"]
    assert trie.match("stock") == ["q2"]
    assert trie.unbind("stock.#", "q2")
    assert len(trie) == 1
    m = HeadersMatcher()
    assert m.bind({"x-match": "any", "format": "pdf", "type": "report"}, "q3")
    assert m.bind({"format": "pdf", "type": "report"}, "q4")
    assert m.match({"format": "pdf"}) == ["q3"]
    assert m.match({"format": "pdf", "type": "report", "pages": 3}) == ["q3", "q4"]


def test_docs_example(topic, headers, monkeypatch):
    """The example in docs/routing.md runs and prints what its comments say (both twins)."""
    import ast
    import pathlib

    import leveret.routing

    monkeypatch.setattr(leveret.routing, "TopicTrie", topic.TopicTrie)
    monkeypatch.setattr(leveret.routing, "HeadersMatcher", headers.HeadersMatcher)
    text = (pathlib.Path(__file__).parent.parent / "docs" / "routing.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    checked = 0
    for line in code.splitlines():
        statement, _, comment = line.partition("# ")
        if not comment.startswith("-> "):
            exec(statement, scope)
            continue
        expected = re.match(r"-> (.*?)(?::\s.*)?$", comment).group(1)
        assert eval(statement, scope) == ast.literal_eval(expected), line
        checked += 1
    assert checked >= 10


def test_compiled_router_is_the_default():
    if os.environ.get("LEVERET_NO_EXTENSIONS") or not os.environ.get(
            "LEVERET_REQUIRE_EXTENSIONS"):
        pytest.skip("only meaningful when the extensions are required (CI sets it)")
    import leveret.routing

    assert leveret.routing.IMPLEMENTATION == "c"
    assert leveret.routing.HEADERS_IMPLEMENTATION == "c"
