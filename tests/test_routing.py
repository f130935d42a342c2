"""The standalone router: compiled and pure twins against oracles and against each other."""

from __future__ import annotations

import os
import re
import subprocess
import sys

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
    import importlib

    mods = [importlib.import_module(pure)]
    try:
        mods.insert(0, importlib.import_module(compiled))
    except ImportError:
        pass
    return mods


# ---------------------------------------------------------------- topic oracle


def topic_regex(binding_key: str) -> re.Pattern[str]:
    """RabbitMQ's topic semantics as a regex over the routing key.

    Words are separated by '.', '*' is exactly one word, '#' zero or more words. The
    empty routing key has zero words (so '#' matches it and '*' does not).
    """
    words = binding_key.split(".") if binding_key else []
    # build over a word list where each word of the routing key is followed by '.'
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


words = st.sampled_from(["a", "b", "c", "", "*", "#"])
binding_keys = st.lists(words, max_size=6).map(".".join)
routing_keys = st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=7).map(".".join)


@pytest.mark.parametrize(
    "binding,key,expected",
    [
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "", True),
        ("#", "x.y", True),
        ("*", "", False),
        ("", "", True),
        ("", "a", False),
        ("*", "a", True),
        ("a..b", "a..b", True),
        ("a.*.b", "a..b", True),
        ("#.#", "a", True),
        ("*.#.*", "a", False),
        ("*.#.*", "a.b", True),
        ("#.a.#", "b.a.c", True),
        ("#.a", "a", True),
    ],
)
def test_topic_cases(topic, binding, key, expected):
    trie = topic.TopicTrie()
    trie.bind(binding, "q")
    assert (trie.match(key) == ["q"]) is expected
    assert oracle_matches(binding, key) is expected


@RANDOM
@given(st.lists(binding_keys, max_size=8), routing_keys)
def test_topic_agrees_with_oracle(topic, keys, routing_key):
    trie = topic.TopicTrie()
    for i, k in enumerate(keys):
        trie.bind(k, i)
    expected = {i for i, k in enumerate(keys) if oracle_matches(k, routing_key)}
    got = trie.match(routing_key)
    assert len(got) == len(set(got))
    assert set(got) == expected


@RANDOM
@given(st.lists(st.tuples(st.booleans(), binding_keys, st.integers(0, 3)), max_size=30),
       st.lists(routing_keys, max_size=5))
def test_bind_unbind_sequences_match_a_model(keys_ops, probes):
    """Compiled and pure tries stay equal to a set-of-bindings model under bind/unbind."""
    tries = [m.TopicTrie() for m in _modules("leveret.routing._topic_c",
                                             "leveret.routing._topic_py")]
    model: set[tuple[str, int]] = set()
    for is_bind, key, target in keys_ops:
        expected = (key, target) not in model if is_bind else (key, target) in model
        (model.add if is_bind else model.discard)((key, target))
        for t in tries:
            assert (t.bind(key, target) if is_bind else t.unbind(key, target)) is expected
            assert len(t) == len(model)
    for t in tries:
        assert sorted(t.bindings()) == sorted(model)
        for rk in probes:
            assert set(t.match(rk)) == {tg for k, tg in model if oracle_matches(k, rk)}


def test_several_bindings_one_target_once(topic):
    trie = topic.TopicTrie()
    for key in ("a.*", "#", "a.b", "*.b", "a.#"):
        trie.bind(key, "q")
    assert trie.match("a.b") == ["q"]
    assert len(trie) == 5


def test_many_hashes_stay_fast_enough_to_finish(topic):
    trie = topic.TopicTrie()
    trie.bind(".".join(["#"] * 40) + ".z", "q")
    assert trie.match(".".join(["a"] * 60)) == []
    assert trie.match(".".join(["a"] * 60) + ".z") == ["q"]


def test_very_long_keys(topic):
    trie = topic.TopicTrie()
    trie.bind("#.end", "q")
    key = ".".join(["w"] * 1000) + ".end"
    assert trie.match(key) == ["q"]


def test_unbind_prunes_and_clear(topic):
    trie = topic.TopicTrie()
    assert trie.bind("a.b.c", 1) and not trie.bind("a.b.c", 1)
    assert trie.unbind("a.b.c", 1) and not trie.unbind("a.b.c", 1)
    assert not trie.unbind("x.y", 1)
    assert len(trie) == 0 and trie.match("a.b.c") == []
    trie.bind("#", 2)
    trie.clear()
    assert len(trie) == 0 and trie.match("a") == []


# ---------------------------------------------------------------- headers oracle


def reference_headers_match(args: dict, headers: dict | None) -> bool:
    """Straight from RabbitMQ's docs and rabbit_exchange_type_headers."""
    headers = headers or {}
    mode = args.get("x-match", "all")
    if mode not in ("all", "any", "all-with-x", "any-with-x"):
        mode = "all"
    with_x = mode.endswith("-with-x")
    tests = [(k, v) for k, v in args.items()
             if k != "x-match" and (with_x or not k.startswith("x-"))]

    def equal(a, b):
        if isinstance(a, bool) or isinstance(b, bool):
            return type(a) is type(b) and a == b
        return a == b

    def ok(k, v):
        return k in headers and (v is None or equal(v, headers[k]))

    if mode.startswith("all"):
        return all(ok(k, v) for k, v in tests)
    return any(ok(k, v) for k, v in tests)


header_keys = st.sampled_from(["a", "b", "c", "x-a", "x-b"])
header_values = st.one_of(st.none(), st.integers(0, 2), st.booleans(),
                          st.sampled_from(["s", "t"]), st.sampled_from([1.0, 2.0]))
header_tables = st.dictionaries(header_keys, header_values, max_size=4)
binding_args = st.tuples(
    st.sampled_from([None, "all", "any", "all-with-x", "any-with-x", "bogus"]),
    header_tables,
).map(lambda t: {**t[1], **({"x-match": t[0]} if t[0] else {})})


@RANDOM
@given(st.lists(binding_args, max_size=6), st.one_of(st.none(), header_tables))
def test_headers_agree_with_reference(headers, bindings, message_headers):
    m = headers.HeadersMatcher()
    for i, args in enumerate(bindings):
        m.bind(args, i)
    expected = {i for i, args in enumerate(bindings)
                if reference_headers_match(args, message_headers)}
    got = m.match(message_headers)
    assert len(got) == len(set(got)) and set(got) == expected


@RANDOM
@given(st.lists(binding_args, max_size=6), st.one_of(st.none(), header_tables))
def test_headers_twins_agree(bindings, message_headers):
    results = []
    for mod in _modules("leveret.routing._headers_c", "leveret.routing._headers_py"):
        m = mod.HeadersMatcher()
        for i, args in enumerate(bindings):
            m.bind(args, i % 3)
        results.append(sorted(m.match(message_headers)))
    assert all(r == results[0] for r in results)


def test_headers_cases(headers):
    m = headers.HeadersMatcher()
    m.bind({"x-match": "all", "a": 1, "b": "two"}, "all")
    m.bind({"x-match": "any", "a": 1, "b": "two"}, "any")
    m.bind({"flag": None}, "presence")
    m.bind({}, "everything")
    m.bind({"x-match": "any"}, "nothing")
    m.bind({"n": 1}, "number")
    assert sorted(m.match({"a": 1, "b": "two"})) == ["all", "any", "everything"]
    assert sorted(m.match({"a": 1})) == ["any", "everything"]
    assert sorted(m.match({"flag": "x"})) == ["everything", "presence"]
    assert sorted(m.match(None)) == ["everything"]
    assert sorted(m.match({"n": True})) == ["everything"]  # a boolean is not a number
    assert sorted(m.match({"n": 1.0})) == ["everything", "number"]  # 1 == 1.0, as Erlang's ==


def test_headers_unbind_by_arguments(headers):
    m = headers.HeadersMatcher()
    assert m.bind({"a": 1}, "q") and not m.bind({"a": 1}, "q")
    assert m.bind({"a": 2}, "q")
    assert len(m) == 2
    assert m.unbind({"a": 1}, "q") and not m.unbind({"a": 1}, "q")
    assert m.match({"a": 1}) == [] and m.match({"a": 2}) == ["q"]


# ---------------------------------------------------------------- standalone use


def test_import_is_standalone():
    code = ("import sys, leveret.routing as r;"
            "bad = [m for m in ('uvloop', 'pamqp', 'leveret.server', 'leveret.connection')"
            " if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_readme_example():
    from leveret.routing import HeadersMatcher, TopicTrie

    trie = TopicTrie()
    trie.bind("stock.*.nyse", "q1")
    trie.bind("stock.#", "q2")
    assert sorted(trie.match("stock.ibm.nyse")) == ["q1", "q2"]
    m = HeadersMatcher()
    m.bind({"x-match": "any", "format": "pdf", "type": "report"}, "q3")
    assert m.match({"format": "pdf"}) == ["q3"]


def test_compiled_router_is_the_default():
    if os.environ.get("LEVERET_NO_EXTENSIONS") or not os.environ.get(
            "LEVERET_REQUIRE_EXTENSIONS"):
        pytest.skip("only meaningful when the extensions are required (CI sets it)")
    import leveret.routing

    assert leveret.routing.IMPLEMENTATION == "c"
    assert leveret.routing.HEADERS_IMPLEMENTATION == "c"
