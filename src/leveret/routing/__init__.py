"""Leveret's router, usable on its own: ``from leveret.routing import TopicTrie, HeadersMatcher``.

RabbitMQ's topic and headers matching (see ``docs/routing.md`` and the notes in
``_common``, ``_topic_py`` and ``_headers_py``). Importing this package loads neither the
server, uvloop nor pamqp. The compiled twins (``_topic_c``, ``_headers_c``) are used when
built; ``LEVERET_NO_EXTENSIONS=1`` forces the pure-Python ones, and
``LEVERET_REQUIRE_EXTENSIONS=1`` makes a missing compiled module an ImportError.
``IMPLEMENTATION`` and ``HEADERS_IMPLEMENTATION`` say which is in use (``"c"`` or ``"py"``).

    >>> trie = TopicTrie()
    >>> trie.bind("stock.*.nyse", "q1")
    True
    >>> trie.bind("stock.#", "q2")
    True
    >>> sorted(trie.match("stock.ibm.nyse"))
    ['q1', 'q2']
    >>> m = HeadersMatcher()
    >>> m.bind({"x-match": "any", "format": "pdf", "type": "report"}, "q3")
    True
    >>> m.match({"format": "pdf"})
    ['q3']
"""

from .. import _speedups

_topic = _speedups.load("leveret.routing._topic_c", "leveret.routing._topic_py")
_headers = _speedups.load("leveret.routing._headers_c", "leveret.routing._headers_py")

TopicTrie = _topic.TopicTrie
HeadersMatcher = _headers.HeadersMatcher
IMPLEMENTATION = _speedups.implementation(_topic)
HEADERS_IMPLEMENTATION = _speedups.implementation(_headers)

__all__ = ["TopicTrie", "HeadersMatcher", "IMPLEMENTATION", "HEADERS_IMPLEMENTATION"]
