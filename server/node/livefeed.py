"""The live feed's reading edge: learn the counts the other nodes' stream readers
saw. (The stream consumer, or the Lambda, writes them; what goes in a feed item and
where a reader resumes is `core.feed`'s.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from livecount.aws.consumer import StreamConsumer
from livecount.aws.store import Store
from livecount.core import feed
from livecount.core.engine import Engine
from livecount.core.errors import Unavailable
from livecount.core.ledger import Counts
from livecount.logs import warn_limited
from livecount.waits import pause

INTERVAL = 0.5  # seconds between live-feed reads


class LiveFeed:
    def __init__(self, store: Store, engine: Engine[Any], consumer: StreamConsumer | None,
                 ) -> None:
        self.store = store
        self.engine = engine
        self.consumer = consumer
        self._cursor = time.time_ns() // 1000 * 1000

    def on_image(self, article_id: str, total: int, unique: int) -> None:
        """A count this node's stream consumer copied."""
        self.engine.observed(article_id, Counts(total, unique), time.time())

    async def loop(self, stop: asyncio.Event) -> None:
        """Read the other nodes' changes every INTERVAL; alone (this node holds every
        shard) there is nothing to read."""
        while not await pause(stop, INTERVAL):
            if self.consumer is not None and self.consumer.nodes <= 1:
                continue
            try:
                items = await self.store.read_feed(feed.window_start(self._cursor))
            except Unavailable as exc:
                warn_limited("feed_failed", error=str(exc))
                continue
            now = time.time()
            for _, payload in items:
                for article, total, unique in feed.decode(payload):
                    self.engine.observed(article, Counts(total, unique), now)
            self._cursor = feed.next_cursor(self._cursor, (at for at, _ in items))
