"""The stream's leases, checkpoints and presence items, in one table.

As in the Kinesis Client Library, `StreamCheckpoint` holds one item per shard (its
lease and checkpoint) and a presence item `node#<id>` per node. Every write to a lease
is conditional on its owner or counter, so a node that lost a lease can never move its
checkpoint. Failures raise livecount's store errors (`aws.store_errors`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from livecount.aws.store_errors import ConditionFailed, answer
from livecount.aws.store_requests import plain, typed
from livecount.core.leases import NODE_PREFIX, Lease, LeaseItem
from livecount.core.tables import Tables

_OWNER = {"#o": "owner", "#c": "counter"}


class LeaseTable:
    def __init__(self, ddb: Any, tables: Tables) -> None:
        self.ddb = ddb
        self.table = tables.checkpoints

    async def add_lease(self, shard_id: str, arn: str) -> None:
        """The lease item of a shard, made once by whichever node sees the shard first."""
        with contextlib.suppress(ConditionFailed):
            await answer(
                self.ddb.put_item(
                    TableName=self.table,
                    ConditionExpression="attribute_not_exists(#k)",
                    ExpressionAttributeNames={"#k": "shardId"},
                    Item=typed(
                        {"shardId": shard_id, "streamArn": arn, "finished": False, "counter": 0}
                    ),
                ),
                self.table,
            )

    async def announce(self, me: str) -> int:
        """Keep this node's presence alive; returns its counter."""
        item = await answer(
            self.ddb.update_item(
                TableName=self.table,
                Key=_key(NODE_PREFIX + me),
                UpdateExpression="SET #o = :me ADD #c :one",
                ExpressionAttributeNames=_OWNER,
                ExpressionAttributeValues=typed({":me": me, ":one": 1}),
                ReturnValues="UPDATED_NEW",
            ),
            self.table,
        )
        return int(plain(item["Attributes"])["counter"])

    async def leave(self, me: str) -> None:
        await answer(
            self.ddb.delete_item(TableName=self.table, Key=_key(NODE_PREFIX + me)), self.table
        )

    async def items(self, arn: str) -> list[LeaseItem]:
        """Every lease of the stream `arn` and every presence item. The table is one
        small item per shard and per node: a Scan, off any request path, as the Kinesis
        Client Library does it."""
        pages = self.ddb.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True)
        items = (await answer(pages.build_full_result(), self.table)).get("Items", [])
        return [_lease_item(i) for i in map(plain, items) if i.get("streamArn", arn) == arn]

    async def take(self, lease: Lease, me: str) -> LeaseItem | None:
        """Take `lease` if its counter is still the one seen; None if another node moved
        first."""
        try:
            item = await answer(
                self.ddb.update_item(
                    TableName=self.table,
                    Key=_key(lease.key),
                    UpdateExpression="SET #o = :me ADD #c :one",
                    ConditionExpression="#c = :seen",
                    ExpressionAttributeNames=_OWNER,
                    ExpressionAttributeValues=typed({":me": me, ":seen": lease.counter, ":one": 1}),
                    ReturnValues="ALL_NEW",
                ),
                self.table,
            )
        except ConditionFailed:
            return None
        return _lease_item(plain(item["Attributes"]))

    async def renew(
        self, shard_id: str, me: str, counter: int, checkpoint: str | None = None
    ) -> int | None:
        """Bump a held lease's counter, recording `checkpoint` in the same write (a
        checkpoint costs nothing more than the renewal); None if it is no longer this
        node's."""
        update, names = "ADD #c :one", dict(_OWNER)
        values: dict[str, Any] = {":me": me, ":mine": counter, ":one": 1}
        if checkpoint:
            update += " SET #s = :s"
            names["#s"], values[":s"] = "sequenceNumber", checkpoint
        try:
            item = await answer(
                self.ddb.update_item(
                    TableName=self.table,
                    Key=_key(shard_id),
                    UpdateExpression=update,
                    ConditionExpression="#o = :me AND #c = :mine",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=typed(values),
                    ReturnValues="UPDATED_NEW",
                ),
                self.table,
            )
        except ConditionFailed:
            return None
        return int(plain(item["Attributes"])["counter"])

    async def release(self, shard_id: str, me: str, checkpoint: str | None = None) -> None:
        """Hand a lease back at once (if it is still this node's), with its last
        checkpoint in the same write."""
        update, names, values = "REMOVE #o", {"#o": "owner"}, {":me": me}
        if checkpoint:
            update += " SET #s = :s"
            names["#s"], values[":s"] = "sequenceNumber", checkpoint
        with contextlib.suppress(ConditionFailed):
            await answer(
                self.ddb.update_item(
                    TableName=self.table,
                    Key=_key(shard_id),
                    UpdateExpression=update,
                    ConditionExpression="#o = :me",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=typed(values),
                ),
                self.table,
            )

    async def checkpoint(
        self, shard_id: str, me: str, sequence: str | None, finished: bool = False
    ) -> bool:
        """Record how far `shard_id` was copied; False if the lease is not `me`'s."""
        updates = ["#f = :f"]
        names = {"#f": "finished", "#o": "owner"}
        values: dict[str, Any] = {":f": finished, ":me": me}
        if sequence:
            updates.append("#s = :s")
            names["#s"], values[":s"] = "sequenceNumber", sequence
        try:
            await answer(
                self.ddb.update_item(
                    TableName=self.table,
                    Key=_key(shard_id),
                    UpdateExpression="SET " + ", ".join(updates),
                    ConditionExpression="#o = :me",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=typed(values),
                ),
                self.table,
            )
        except ConditionFailed:
            return False
        return True


def _key(shard_id: str) -> dict[str, Any]:
    return typed({"shardId": shard_id})


def _lease_item(item: dict[str, Any]) -> LeaseItem:
    """A lease table item, out of typed JSON (`plain`)."""
    return LeaseItem(
        Lease(item["shardId"], item.get("owner"), item.get("counter", 0)),
        finished=item.get("finished", False),
        checkpoint=item.get("sequenceNumber"),
    )
