"""Shard leases: which node reads which stream shard, decided the way the Kinesis
Client Library decides it, through conditional writes on one DynamoDB table.

Pure: the planner sees lease items and the local clock and says what to do; the
stream consumer does it with conditional writes, so two nodes that plan the same
take cannot both win.

A lease is alive while its owner keeps bumping its `counter`. Liveness is judged by
each observer on its own clock ("this counter has not moved for `lease_time`"), never
by comparing timestamps written by other machines, so clock skew does not matter.
Nodes announce themselves with presence items (`node#<id>`) kept alive the same way,
which is how a node with no lease yet counts in the balance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

NODE_PREFIX: Final = "node#"


@dataclass(frozen=True, slots=True)
class Lease:
    key: str  # a shard id, or node#<id> for presence
    owner: str | None
    counter: int


@dataclass(frozen=True, slots=True)
class LeaseItem:
    """One item of the lease table as the store reads it: the lease, and for a shard
    whether it was read to its end and the last sequence number copied from it."""

    lease: Lease
    finished: bool = False
    checkpoint: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseMoves:
    take: list[Lease] = field(default_factory=list)  # expired or free: take them
    steal: list[Lease] = field(default_factory=list)  # alive, but their owner has too many
    lost: list[str] = field(default_factory=list)  # held here, but owned elsewhere now


class Observer:
    """Remembers, per item, when its counter last moved, on this node's clock."""

    def __init__(self, lease_time: float) -> None:
        self.lease_time = lease_time
        self._seen: dict[str, tuple[int, float]] = {}

    def see(self, lease: Lease, now: float) -> None:
        last = self._seen.get(lease.key)
        if last is None or last[0] != lease.counter:
            self._seen[lease.key] = (lease.counter, now)

    def only(self, keys: set[str]) -> None:
        """Forget items no longer listed: one that comes back is new (a node that left
        cleanly and restarts counts from 1 again, maybe the very counter last seen)."""
        self._seen = {k: v for k, v in self._seen.items() if k in keys}

    def alive(self, lease: Lease, now: float) -> bool:
        """Owned, and its counter moved within `lease_time` (a lease seen for the first
        time gets the benefit of the doubt for one full lease time)."""
        if lease.owner is None:
            return False
        last = self._seen.get(lease.key)
        return last is not None and now - last[1] < self.lease_time


def counted_out(gap: float, lease_time: float) -> bool:
    """Whether the other nodes may have judged this one dead between two of its
    renewals `gap` seconds apart: each looks every `lease_time`/3 and gives up on a
    counter that has not moved for `lease_time`, so two thirds of it may be too long."""
    return gap + lease_time / 3 >= lease_time


def plan(
    me: str,
    leases: Iterable[Lease],
    readable: set[str],
    held: set[str],
    observer: Observer,
    now: float,
) -> LeaseMoves:
    """What `me` should do about the leases of the `readable` shards.

    Aim for an even spread: ceil(shards / live nodes) each. Take expired or free
    leases first; if still short, steal one from the node holding the most, one per
    round, so leases move calmly rather than all at once.
    """
    leases = list(leases)
    observer.only({lease.key for lease in leases})
    for lease in leases:
        observer.see(lease, now)
    nodes = {
        lease.key[len(NODE_PREFIX) :]
        for lease in leases
        if lease.key.startswith(NODE_PREFIX) and observer.alive(lease, now)
    }
    nodes.add(me)
    shards = [lease for lease in leases if lease.key in readable]
    owners: dict[str, list[Lease]] = {}
    for lease in shards:
        if lease.owner is not None and observer.alive(lease, now):
            owners.setdefault(lease.owner, []).append(lease)
            nodes.add(lease.owner)
    lost = sorted(held - {lease.key for lease in shards if lease.owner == me})
    mine = [lease for lease in shards if lease.owner == me and lease.key in held]
    # Recorded as mine but not held: a previous run of this node. Take them back first.
    orphans = sorted(
        (lease for lease in shards if lease.owner == me and lease.key not in held),
        key=lambda lease: lease.key,
    )
    target = math.ceil(len(shards) / len(nodes)) if shards else 0
    wanted = target - len(mine)
    if wanted <= 0:
        return LeaseMoves(lost=lost)
    free = orphans + sorted(
        (lease for lease in shards if lease.owner != me and not observer.alive(lease, now)),
        key=lambda lease: lease.key,
    )
    take = free[:wanted]
    steal: list[Lease] = []
    if len(take) < wanted:
        richest = max((o for o in owners if o != me), key=lambda o: len(owners[o]), default=None)
        if richest is not None and len(owners[richest]) > target:
            steal = [sorted(owners[richest], key=lambda lease: lease.key)[0]]
    return LeaseMoves(take, steal, lost)
