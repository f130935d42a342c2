"""Topic trie and headers matcher: compiled vs pure vs a naive baseline.

    python perf/bench_routing.py --fast

Topic: 10,000 bindings to 10,000 queues and 100,000 routing keys shaped like real ones
(``service.entity.action[.detail]``, 100 services x 50 entities x 20 actions x 10 details);
each binding word is specific (80%), ``*`` (15%) or ``#`` (5%); keys are matched one by one
(about 60 queues match a key on average). The baseline is a loop of compiled regexes (each
binding key translated to one, every regex tried per key), timed on the first 1,000 keys and
reported per key.

Headers: 1,000 bindings (x-match all/any over 1-3 of 5 headers, 5 values each, to 100 queues)
against 10,000 messages carrying 0-4 of those headers. The baseline tests every binding per
message with a straightforward function, as a matcher without an index does (timed on the
first 1,000 messages, reported per message).
"""

from __future__ import annotations

import random
import re
from typing import Any

import pyperf

import leveret.routing._headers_c as HC
import leveret.routing._headers_py as HP
import leveret.routing._topic_c as TC
import leveret.routing._topic_py as TP
from leveret.routing._common import values_equal

from _ratios import report

rng = random.Random(42)
LEVELS = [[f"svc{i}" for i in range(100)], [f"ent{i}" for i in range(50)],
          [f"act{i}" for i in range(20)], [f"d{i}" for i in range(10)]]


def binding_key() -> str:
    words = []
    for level in LEVELS[: rng.choice((3, 3, 3, 4))]:
        r = rng.random()
        words.append("*" if r < 0.15 else "#" if r < 0.20 else rng.choice(level))
    return ".".join(words)


def routing_key() -> str:
    return ".".join(rng.choice(level) for level in LEVELS[: rng.choice((3, 3, 4))])


BINDINGS = [binding_key() for _ in range(10_000)]
KEYS = [routing_key() for _ in range(100_000)]
REGEX_KEYS = KEYS[:1_000]


def regex_for(key: str) -> re.Pattern[str]:
    parts = []
    for w in key.split(".") if key else []:
        parts.append(r"(?:[^.]*\.)*" if w == "#" else r"[^.]*\." if w == "*" else
                     re.escape(w) + r"\.")
    return re.compile("".join(parts) + r"\Z")


def trie_of(mod: Any) -> Any:
    t = mod.TopicTrie()
    for i, k in enumerate(BINDINGS):
        t.bind(k, i)
    return t


def topic_with(mod: Any) -> Any:
    trie = trie_of(mod)

    def run(loops: int) -> float:
        match = trie.match
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            for k in KEYS:
                match(k)
        return pyperf.perf_counter() - t0
    return run


def topic_regex(loops: int) -> float:
    compiled = [(regex_for(k).match, i) for i, k in enumerate(BINDINGS)]
    subjects = ["".join(w + "." for w in k.split(".")) for k in REGEX_KEYS]
    t0 = pyperf.perf_counter()
    for _ in range(loops):
        for s in subjects:
            found: dict[int, None] = {}
            for match, target in compiled:
                if match(s):
                    found[target] = None
    return pyperf.perf_counter() - t0


HKEYS = ["format", "type", "region", "tier", "lang"]
HVALS: list[Any] = ["a", "b", "c", 1, 2]


def headers_args() -> dict[str, Any]:
    args: dict[str, Any] = {k: rng.choice(HVALS) for k in rng.sample(HKEYS, rng.randint(1, 3))}
    args["x-match"] = rng.choice(["all", "any"])
    return args


HBINDINGS = [headers_args() for _ in range(1_000)]
MESSAGES = [{k: rng.choice(HVALS) for k in rng.sample(HKEYS, rng.randint(0, 4))}
            for _ in range(10_000)]
SCAN_MESSAGES = MESSAGES[:1_000]


def headers_with(mod: Any) -> Any:
    m = mod.HeadersMatcher()
    for i, args in enumerate(HBINDINGS):
        m.bind(args, i % 100)

    def run(loops: int) -> float:
        match = m.match
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            for h in MESSAGES:
                match(h)
        return pyperf.perf_counter() - t0
    return run


def headers_scan(loops: int) -> float:
    rules = [(args["x-match"] == "all",
              [(k, v) for k, v in args.items() if not k.startswith("x-")], i % 100)
             for i, args in enumerate(HBINDINGS)]

    def ok(have: dict[str, Any], k: str, v: Any) -> bool:
        return k in have and (v is None or values_equal(v, have[k]))

    t0 = pyperf.perf_counter()
    for _ in range(loops):
        for h in SCAN_MESSAGES:
            found: dict[int, None] = {}
            for match_all, tests, target in rules:
                if target in found:
                    continue
                hit = (all if match_all else any)(ok(h, k, v) for k, v in tests)
                if hit:
                    found[target] = None
    return pyperf.perf_counter() - t0


def main() -> None:
    runner = pyperf.Runner()
    topic = {
        "topic regex loop": runner.bench_time_func("topic regex loop", topic_regex,
                                                   inner_loops=len(REGEX_KEYS)),
        "topic pure": runner.bench_time_func("topic pure", topic_with(TP), inner_loops=len(KEYS)),
        "topic compiled": runner.bench_time_func("topic compiled", topic_with(TC),
                                                 inner_loops=len(KEYS)),
    }
    headers = {
        "headers scan loop": runner.bench_time_func("headers scan loop", headers_scan,
                                                    inner_loops=len(SCAN_MESSAGES)),
        "headers pure": runner.bench_time_func("headers pure", headers_with(HP),
                                               inner_loops=len(MESSAGES)),
        "headers compiled": runner.bench_time_func("headers compiled", headers_with(HC),
                                                   inner_loops=len(MESSAGES)),
    }
    if not runner.args.worker:
        report(topic, "topic regex loop", unit="routing key")
        report(topic, "topic pure", unit="routing key")
        report(headers, "headers scan loop", unit="message")
        report(headers, "headers pure", unit="message")


if __name__ == "__main__":
    main()
