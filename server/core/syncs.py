"""A backup's sync: every view a node acknowledged before it is stored, on every node.

A view is acknowledged once it is in its node's journal, which is before it is in
DynamoDB: a backup that only read the tables would miss what the nodes hold. So
`livecount backup` first writes a sync request on the live feed (`core/feed.py`),
which every node reads within a second or two. Each node then takes a `Barrier` over
its ledger: the keys that hold anything not stored yet, and which write of each
settles it. It flushes until the barrier is done, however many views arrive
meanwhile, and answers on the feed. The backup waits for the answer of every node it
finds alive (`Roll`), then reads the tables.

Pure: the ledger feeds its barriers its takes and settlements (`Ledger.barrier`,
`Barriers`), the backup feeds the roll what it reads of the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from livecount.core.leases import Lease, Observer
from livecount.core.write_order import Write

Key = Any  # a `Target` (counts) or a `Row` (report rows): the ledger's keys


class Barrier:
    """What a node held when a sync came, and what is left of it.

    A key's views are stored in the order they came (one key's writes apply in sequence
    order, and a take takes a key's whole pending delta). So a key is done once a write
    of it applies that is at least: the write of unknown outcome it had (in flight or
    unsettled), if it had only that; a write taken after the barrier was made (a
    sequence number above the last take then), if it had views not taken yet. A write
    the store refused is done with too (set aside as a dead letter, never stored)."""

    def __init__(self, pending: Iterable[Key], unknown: Mapping[Key, Write], taken: int) -> None:
        self.required: dict[Key, int] = {key: write.seq for key, write in unknown.items()}
        self.required |= dict.fromkeys(pending, taken + 1)

    @property
    def done(self) -> bool:
        return not self.required

    def settled(self, writes: Mapping[Key, Write], failed: set[Any]) -> None:
        """A flush's `writes` were answered: all but the `failed` ones are done with."""
        for key, write in writes.items():
            need = self.required.get(key)
            if need is None or write.seq < need or key in failed:
                continue
            del self.required[key]


class Barriers:
    """The barriers still waited for: each completed flush settles them, and a barrier
    is let go once done, or once nobody waits for it (`drop`)."""

    def __init__(self) -> None:
        self._open: set[Barrier] = set()

    def add(self, barrier: Barrier) -> Barrier:
        if not barrier.done:
            self._open.add(barrier)
        return barrier

    def drop(self, barrier: Barrier) -> None:
        self._open.discard(barrier)

    def settled(self, flush: Iterable[Mapping[Key, Write]], failed: set[Any]) -> None:
        """A flush's writes (counts, rows) were answered; the `failed` ones are not done."""
        for barrier in list(self._open):
            for writes in flush:
                barrier.settled(writes, failed)
            if barrier.done:
                self._open.discard(barrier)


class Roll:
    """The nodes a backup waits for: every node the store shows as alive at its first
    look (an owner of a shard lease or of a presence item, or a node that said its
    readers on the live feed), until it answers or shows no sign of life for
    `lease_time` on this clock, as the shard leases judge a node (`core/leases.py`).
    A node that starts later holds nothing acknowledged before the sync."""

    def __init__(self, lease_time: float) -> None:
        self._observer = Observer(lease_time)
        self._signs: dict[str, set[str]] = {}  # node → the keys whose counters show it alive
        self.answers: dict[str, bool] = {}  # node → whether it stored everything
        self._looked = False

    def seen(self, leases: Iterable[Lease], said: Iterable[tuple[str, int]], now: float) -> None:
        """One look at the store: its leases and presence items, and the feed items
        `(node, stamp)` in which nodes said their readers."""
        signs = [(lease.owner, lease) for lease in leases if lease.owner is not None]
        signs += [(node, Lease(f"said#{node}", node, at)) for node, at in said]
        for node, lease in signs:
            self._observer.see(lease, now)
            if not self._looked:
                self._signs.setdefault(node, set()).add(lease.key)
            elif node in self._signs:
                self._signs[node].add(lease.key)
        self._looked = True

    def answered(self, node: str, stored: bool) -> None:
        self.answers.setdefault(node, stored)

    @property
    def nodes(self) -> list[str]:
        return sorted(self._signs)

    def waiting(self, now: float) -> list[str]:
        """The nodes alive that have not answered yet."""
        return [
            node
            for node, keys in sorted(self._signs.items())
            if node not in self.answers
            and any(self._observer.alive(Lease(k, node, 0), now) for k in keys)
        ]

    def failed(self) -> list[str]:
        """The nodes that answered that they could not store everything in time."""
        return sorted(node for node, stored in self.answers.items() if not stored)
