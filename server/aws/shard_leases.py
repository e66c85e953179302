"""This node's share of the stream: the shards it holds, their checkpoints, who is alive."""

from __future__ import annotations

import asyncio

from livecount.aws.store import Store
from livecount.aws.store_errors import aws_code
from livecount.core.errors import LivecountError
from livecount.core.leases import NODE_PREFIX, Lease, Observer, counted_out, plan
from livecount.core.replication import Shard, readable
from livecount.logs import log, warn_limited


class ShardLeases:
    """The ownership side of the stream consumer, around `leases` (which shards are
    this node's) and `replication` (which shards may be read yet). Each round keeps
    presence and leases alive and takes and steals what the planner says. What it
    writes is what it must: a checkpoint rides on its lease's renewal (the write that
    keeps the lease anyway), and a node announces its presence only while it holds no
    lease (a lease it renews says it is alive). Reading the shards is the consumer's:
    it tells how far it read (`advance`), and starts reading each shard in `fresh`."""

    def __init__(self, store: Store, node_id: str, lease_time: float) -> None:
        self.stream = store.stream
        self.leases = store.stream.leases
        self.node_id = node_id
        self.arn = ""
        self.shards: list[Shard] = []
        self.held: dict[str, int] = {}  # shard → my lease counter
        # Shards taken and not yet read from their checkpoint: the consumer takes
        # each out once it has started reading it.
        self.fresh: set[str] = set()
        self.checkpoints: dict[str, str] = {}  # shard → the last record read
        self.nodes = 1  # live nodes seen, this one included
        self._finished: set[str] = set()
        self._checkpointed: dict[str, str] = {}  # shard → the checkpoint last written
        self._observer = Observer(lease_time)
        self.lease_time = lease_time
        self._renewed: float | None = None  # when this node last said it is alive
        self._out = False  # the others may have judged it dead since: `take_out`

    async def discover(self) -> None:
        if not self.arn:
            self.arn = await self.stream.stream_arn()
        shards = await self.stream.shards(self.arn)
        known = {s.id for s in self.shards}
        for shard in shards:
            if shard.id not in known:  # a lease item for every shard, made once
                await self.leases.add_lease(shard.id, self.arn)
        self.shards = shards

    async def round(self) -> None:
        """Keep presence (while no lease says it) and leases alive, checkpointing in
        the same writes, then take and steal what the plan says."""
        if not self.held:
            await self.leases.announce(self.node_id)
        for shard_id, counter in list(self.held.items()):
            checkpoint = self.checkpoints.get(shard_id)
            if checkpoint == self._checkpointed.get(shard_id):
                checkpoint = None  # nothing new: a renewal alone
            renewed = await self.leases.renew(shard_id, self.node_id, counter, checkpoint)
            if renewed is None:
                self.drop(shard_id, "lease_lost")
            else:
                self.held[shard_id] = renewed
                if checkpoint is not None:
                    self._checkpointed[shard_id] = checkpoint
        said = asyncio.get_running_loop().time()  # that it is alive
        if self._renewed is not None and counted_out(said - self._renewed, self.lease_time):
            self._out = True
            log("counted_out", seconds=round(said - self._renewed, 3))
        self._renewed = said
        items = await self.leases.items(self.arn)
        for item in items:
            if item.finished:
                self._finished.add(item.lease.key)
            if item.checkpoint is not None and item.lease.key not in self.held:
                self.checkpoints[item.lease.key] = item.checkpoint
        leases = [item.lease for item in items]
        now = asyncio.get_running_loop().time()
        wanted = {s.id for s in readable(self.shards, self._finished)}
        decision = plan(self.node_id, leases, wanted, set(self.held), self._observer, now)
        # Alive: a presence kept alive, or a lease renewed (a node holding one does not
        # announce itself too).
        self.nodes = 1 + len(
            {
                lease.owner
                for lease in leases
                if lease.owner is not None
                and lease.owner != self.node_id
                and (lease.key.startswith(NODE_PREFIX) or lease.key in wanted)
                and self._observer.alive(lease, now)
            }
        )
        for shard_id in decision.lost:
            self.drop(shard_id, "lease_lost")
        for lease in decision.take + decision.steal:
            await self._take(lease, stolen=lease in decision.steal)

    def take_out(self) -> bool:
        """True once after the other nodes may have judged this node dead (it was
        stopped, or could not reach the store, for too long): they told it nothing
        meanwhile, so what it shows must be read from the store again."""
        out, self._out = self._out, False
        return out

    def mark_out(self) -> None:
        """Say again that this node may have been judged dead (its refresh failed)."""
        self._out = True

    async def _take(self, lease: Lease, stolen: bool) -> None:
        taken = await self.leases.take(lease, self.node_id)
        if taken is None:
            return  # someone else moved first
        self.held[lease.key] = taken.lease.counter
        if taken.checkpoint is not None:
            self.checkpoints[lease.key] = taken.checkpoint
        self.fresh.add(lease.key)
        log("lease_taken", shard=lease.key, stolen=stolen, previous=lease.owner)

    def drop(self, shard_id: str, why: str) -> None:
        self.held.pop(shard_id, None)
        self.fresh.discard(shard_id)
        log(why, shard=shard_id)

    def advance(self, shard_id: str, sequence: str) -> None:
        """Records up to `sequence` are copied: written with the lease's next
        renewal, or when the lease is handed back."""
        self.checkpoints[shard_id] = sequence

    async def finish(self, shard_id: str) -> None:
        """A closed shard was read to its end: record it (only while this node owns
        the lease), so its children may start, and let the shard go."""
        self._finished.add(shard_id)
        if not await self.leases.checkpoint(
            shard_id, self.node_id, self.checkpoints.get(shard_id), finished=True
        ):
            self.drop(shard_id, "lease_lost")
        self.drop(shard_id, "shard_finished")

    async def hand_back(self) -> None:
        """Hand leases back at once on a clean stop, rather than after `lease_time`."""
        for shard_id in [*self.held, None]:
            try:
                if shard_id is None:
                    await self.leases.leave(self.node_id)
                else:
                    await self.leases.release(
                        shard_id, self.node_id, self.checkpoints.get(shard_id)
                    )
            except LivecountError as exc:  # it expires after lease_time instead
                warn_limited(
                    "lease_release_failed", key=aws_code(exc), shard=shard_id, error=str(exc)
                )
        self.held.clear()
