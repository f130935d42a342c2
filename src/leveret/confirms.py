"""Publisher-confirm bookkeeping of one channel (rabbitmq.com/docs/confirms).

Sequence numbers count publishes from 1 after confirm.select. Most publishes are settled at
once (routed and enqueued); a persistent message to a durable queue waits for its fsync. Acks
are coalesced: at each flush the longest settled prefix is confirmed with one ``multiple`` ack,
and nacks (reject-publish overflow) are sent singly in between.
"""

from __future__ import annotations


class Confirms:
    __slots__ = ("next_seq", "sent_upto", "waiting", "nacked", "dirty", "confirmed")

    def __init__(self) -> None:
        self.next_seq = 0
        self.sent_upto = 0  # every seq <= sent_upto has been acked or nacked to the client
        self.waiting: dict[int, int] = {}  # seq -> writes still outstanding
        self.nacked: set[int] = set()
        self.dirty = False
        self.confirmed = 0  # publishes acked to the client (a counter for the management API)

    def publish(self) -> int:
        self.next_seq += 1
        self.dirty = True
        return self.next_seq

    def wait(self, seq: int) -> None:
        """One more durable write must finish before ``seq`` can be acked."""
        self.waiting[seq] = self.waiting.get(seq, 0) + 1

    def written(self, seq: int) -> None:
        left = self.waiting.get(seq, 0) - 1
        if left <= 0:
            self.waiting.pop(seq, None)
        else:
            self.waiting[seq] = left
        self.dirty = True

    def nack(self, seq: int) -> None:
        self.nacked.add(seq)
        self.dirty = True

    def take(self) -> list[tuple[bool, int, bool]]:
        """What to send now: (is_ack, tag, multiple) in order."""
        self.dirty = False
        limit = (min(self.waiting) - 1) if self.waiting else self.next_seq
        if limit <= self.sent_upto:
            return []
        out: list[tuple[bool, int, bool]] = []
        start = self.sent_upto
        self.confirmed += limit - start
        if self.nacked:
            for seq in sorted([s for s in self.nacked if s <= limit]):
                self.nacked.discard(seq)
                if seq - 1 > start:
                    out.append((True, seq - 1, seq - 1 > start + 1))
                out.append((False, seq, False))
                self.confirmed -= 1
                start = seq
        if limit > start:
            out.append((True, limit, limit > start + 1))
        self.sent_upto = limit
        return out
