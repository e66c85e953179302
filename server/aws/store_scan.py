"""Tables read whole, in parallel Scans: the catalog a node reads as it starts
(`Store.catalog`). No request path scans."""

from __future__ import annotations

import asyncio
from typing import Any

from livecount.aws import store_requests
from livecount.aws.store_errors import answer


async def scan(ddb: Any, table: str, key: str, segments: int) -> dict[str, dict[str, Any]]:
    """Every item of a table of counts (its key, counts, title and path), by its key:
    `segments` Scans at once, each page by page."""

    async def segment(number: int) -> list[dict[str, Any]]:
        pages = ddb.get_paginator("scan").paginate(
            **store_requests.scan(table, key, number, segments))
        return list((await answer(pages.build_full_result(), table)).get("Items", []))

    parts = await asyncio.gather(*(segment(n) for n in range(segments)))
    return {item[key]["S"]: item for part in parts for item in part}
