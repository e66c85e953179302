"""The live feed's table: items the nodes stamp themselves, read by every node after a
cursor. What goes in an item, and where a reader resumes, is `core/feed.py`'s."""

from __future__ import annotations

from typing import Any

from livecount.aws import store_requests
from livecount.aws.store_errors import answer
from livecount.core import feed
from livecount.core.tables import Tables


class FeedTable:
    def __init__(self, ddb: Any, tables: Tables) -> None:
        self.ddb = ddb
        self.table = tables.feed

    async def write(self, items: list[tuple[int, bytes]], expires: int) -> None:
        """Feed items the caller stamped itself. The stream consumer shares what it
        copied on its own (`stream_copy.copy_and_feed`, as the Lambda does)."""
        for at, payload in items:
            await answer(
                self.ddb.put_item(TableName=self.table, Item=feed.item(at, payload, expires)),
                self.table,
            )

    async def read(self, after: int) -> list[tuple[int, str]]:
        """Feed items with a sort key above `after`, oldest first: one Query."""
        request = store_requests.query(
            self.table, "feed", feed.PARTITION, ("at", f"{after:024d}", None), consistent=True
        )
        pages = self.ddb.get_paginator("query").paginate(**request)
        items = (await answer(pages.build_full_result(), self.table)).get("Items", [])
        return [(int(i["at"]["S"]), i["changes"]["S"]) for i in items]
