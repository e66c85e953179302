"""Tables read whole, in parallel Scans: the catalog a node reads as it starts
(`catalog`). No request path scans."""

from __future__ import annotations

import asyncio
from typing import Any

from livecount.aws import store_requests
from livecount.aws.store import UNSEEN, Described, Store
from livecount.aws.store_errors import answer
from livecount.core.errors import StoreRefused
from livecount.core.pages import Target

# Parallel parts of the catalog's Scan (DynamoDB Local, 50,000 posts, a loaded machine:
# 8 s with 8 or 16, 11 s with 4, 19 s with 1).
SEGMENTS = 8


async def catalog(store: Store, segments: int = SEGMENTS) -> dict[Target, Described]:
    """Every tracked post and page with its counts, title and path, as `Store.read`
    would say them: the page index's entries, their items found by a Scan of the reader
    table in `segments` parallel parts and of HomeAndProfile, all at once. A node's
    start: a Scan reads 1 MB a request at a read unit per 4 KB, where BatchGetItem
    reads 100 items a request at a read unit an item (50,000 posts on DynamoDB Local:
    16-24 s, against 24-39 s, on a machine at load 15-25). A policy that allows no
    Scan (written before the node needed one) gets the reads by key, not a node whose
    reports never load."""
    tables = store.tables
    try:
        index, posts, pages = await asyncio.gather(
            store.tracked(),
            scan(store.ddb, tables.reader, "articleId", segments),
            scan(store.ddb, tables.pages, "pageName", 1),
        )
    except StoreRefused:
        return await store.read(await store.tracked())
    found = {}
    for target in index:
        item = (posts if target.kind == "post" else pages).get(target.id)
        found[target] = (
            UNSEEN
            if item is None
            else Described(store_requests.counts(item), *store_requests.described(item))
        )
        if item is not None:  # a reader item is a copy of a writer item: that one exists
            store.known.add((tables.count_key(target)[0], target.id))
    return found


async def scan(ddb: Any, table: str, key: str, segments: int) -> dict[str, dict[str, Any]]:
    """Every item of a table of counts (its key, counts, title and path), by its key:
    `segments` Scans at once, each page by page."""

    async def segment(number: int) -> list[dict[str, Any]]:
        pages = ddb.get_paginator("scan").paginate(
            **store_requests.scan(table, key, number, segments)
        )
        return list((await answer(pages.build_full_result(), table)).get("Items", []))

    parts = await asyncio.gather(*(segment(n) for n in range(segments)))
    return {item[key]["S"]: item for part in parts for item in part}
