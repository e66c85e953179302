"""The event archive of a real `livecount serve`, read back as a warehouse would."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import duckdb
from websockets.asyncio.client import connect

from tests.support import Launch, eventually

# The query docs/API.md documents, verbatim but for the folder.
QUERY = """
SELECT coalesce(articleId, pageName) AS page,
       count(*) AS views,
       count(*) FILTER (WHERE NOT refreshed) AS unique_views
FROM read_json_auto('{dir}/dt=*/*.ndjson.gz', hive_partitioning = true)
GROUP BY page
ORDER BY views DESC, page
"""


async def test_views_are_archived_whole_rotated_and_queryable(launch: Launch, tmp_path: Path):
    served = await launch(
        "--archive-dir",
        str(tmp_path),
        "--archive-max-events",
        "3",
        "--site-domain",
        "blog.example",
        "--unmatched-paths",
        "refuse",
    )
    async with connect(served.ws) as ws:
        for n in range(7):
            await ws.send(
                json.dumps(
                    {
                        "message": "views",
                        "articleId": "a" if n < 5 else "b",
                        "refreshed": n == 1,
                        "referrer": "https://news.example/x",
                        "currentPage": "/posts/a",
                    }
                )
            )
            await ws.recv()
        await ws.send(json.dumps({"message": "views", "currentPage": "/nowhere"}))
        assert json.loads(await ws.recv())["error"] == "unrecognised_page"

    async def files() -> list[Path]:
        return sorted(tmp_path.glob("dt=*/*.ndjson.gz"))

    await eventually(files, lambda f: len(f) == 2)  # 6 views: 2 full files
    assert await served.stop() == 0  # the 7th is written on the way out
    written = await files()
    assert len(written) == 3 and not list(tmp_path.rglob(".*.tmp"))
    lines = [
        json.loads(line) for f in written for line in gzip.decompress(f.read_bytes()).splitlines()
    ]
    assert len(lines) == 7  # the refused view is not archived
    assert {k for line in lines for k in line} <= {
        "ts",
        "kind",
        "refreshed",
        "articleId",
        "pageName",
        "articleTitle",
        "currentPage",
        "previousPage",
        "referrer",
        "referrerHost",
    }
    assert lines[0]["referrerHost"] == "news.example" and lines[0]["kind"] == "post"

    rows = await asyncio.to_thread(
        lambda: duckdb.connect().execute(QUERY.format(dir=tmp_path)).fetchall()
    )
    assert rows == [("a", 5, 4), ("b", 2, 2)]
