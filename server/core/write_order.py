"""The order rules that make each idempotent write apply once, for one kind of key."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

__all__ = ["Delta", "Write", "WriteOrder"]

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class Delta:
    """Views of one key since the last flush; one DynamoDB ADD carries all of them."""

    total: int = 0
    unique: int = 0
    title: str | None = None
    path: str | None = None  # a post's path, the first one seen: stored if it has none

    def add(self, other: Delta) -> None:
        self.total += other.total
        self.unique += other.unique
        if other.title and not self.title:  # a post keeps its first title
            self.title = other.title
        if other.path and not self.path:
            self.path = other.path


class Write(NamedTuple):
    """One idempotent ADD: applied at most once per (key, node, seq)."""

    seq: int
    delta: Delta


class WriteOrder(Generic[K]):
    """Keys of one kind (counts, or report rows) on their way to the store: pending
    deltas, writes in flight, writes of unknown outcome (unsettled), and the flush
    that holds each key. The store applies a key's writes only in sequence order, so
    a key's newer delta waits while an older write of it is unsettled or held."""

    __slots__ = ("held", "pending", "sending", "unsettled")

    def __init__(self) -> None:
        self.pending: dict[K, Delta] = {}
        self.sending: dict[K, Write] = {}  # taken by a flush not yet completed
        self.unsettled: dict[K, Write] = {}  # outcome unknown: sent again unchanged
        self.held: dict[K, int] = {}  # key → the flush it is in, until released

    @property
    def waiting(self) -> bool:
        """Whether a take could find anything (it may all be held by other flushes)."""
        return bool(self.pending or self.unsettled)

    def in_doubt(self, key: K) -> Write | None:
        """The write of `key` the store may or may not hold yet (when resent, the
        unsettled write is also the one in flight)."""
        write = self.unsettled.get(key)
        return self.sending.get(key) if write is None else write

    def add(
        self, key: K, unique: int, title: str | None = None, total: int = 1, path: str | None = None
    ) -> None:
        """`total` views of `key` (one by default), `unique` of them unique."""
        delta = self.pending.get(key)
        if delta is None:
            delta = self.pending[key] = Delta()
        delta.total += total
        delta.unique += unique
        if title and not delta.title:  # a post keeps its first title
            delta.title = title
        if path and not delta.path:
            delta.path = path

    def take(self, seq: int) -> dict[K, Write]:
        """Unsettled writes go again unchanged; a pending delta of the same key must
        wait, since the store only accepts a key's writes in sequence order. A key
        another flush holds waits, whatever it has. What is taken is held by `seq`."""
        writes = {key: write for key, write in self.unsettled.items() if key not in self.held}
        waiting: dict[K, Delta] = {}
        for key, delta in self.pending.items():
            if key in self.unsettled or key in self.held:
                waiting[key] = delta
            else:
                writes[key] = Write(seq, delta)
        self.pending = waiting
        self.sending.update(writes)
        self.held.update(dict.fromkeys(writes, seq))
        return writes

    def settle(self, key: K, write: Write, failed: bool) -> None:
        """A write's answer came: one of unknown outcome stays unsettled, to be sent
        again unchanged; any other is done with (applied, refused or set aside)."""
        del self.sending[key]
        if failed:
            self.unsettled[key] = write
        else:
            self.unsettled.pop(key, None)

    def release(self, keys: Iterable[K], seq: int) -> None:
        """Flush `seq` is on disk as completed: its keys may be taken again."""
        for key in keys:
            if self.held.get(key) == seq:
                del self.held[key]

    def outstanding(self) -> tuple[dict[K, tuple[int, int]], dict[K, Write]]:
        """What the store may still lack: pending (total, unique) per key, and the
        writes of unknown outcome (in flight or unsettled) per key."""
        pending = {key: (delta.total, delta.unique) for key, delta in self.pending.items()}
        return pending, {**self.sending, **self.unsettled}
