"""The report API on a seeded site (issue 24): `python -m bench.reports [POSTS [HOURS]]`.

Not a `make bench` section yet (bench/run.py renders those). Seeds POSTS posts over
YEARS years, each viewed in HOURS random hours, a few views each, some with a
referrer, through the node's own write path (the ledger spreads the rows and rollups,
`Store.flush` writes them), lists them in the page index, then starts a `livecount
serve` on the same DynamoDB Local and times the dashboard's requests: the first
(cold) one, then 50 one at a time and 10 rounds of 10 at once. The all-time totals
it prints must equal the views seeded.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store
from livecount.core.ledger import Ledger
from livecount.core.pages import Target

from bench.run import running, serve_args
from tests.support import Served

POSTS = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
YEARS = 3
HOURS_EACH = int(sys.argv[2]) if len(sys.argv) > 2 else 2
HOSTS = ["news.ycombinator.com", "lobste.rs", "reddit.com", "t.co", None, None, None]
ADMIN = "bench-admin-token-0123456789"


async def seed(store: Store) -> dict[str, int]:
    """The site, written as a node writes it; returns the views written."""
    rng = random.Random(7)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    span = YEARS * 365 * 24
    ledger = Ledger()
    seq = 0
    totals = {"views": 0}
    targets = []
    t0 = time.monotonic()
    for i in range(POSTS):
        target = Target("post", f"post-{i:05d}")
        targets.append(target)
        for _ in range(HOURS_EACH):
            hour = (now - timedelta(hours=rng.randrange(span))).strftime("%Y-%m-%dT%H")
            for v in range(rng.randint(1, 4)):
                ledger.record(
                    target,
                    refreshed=v > 0,
                    hour=hour,
                    title=f"Post {i}",
                    referrer=rng.choice(HOSTS),
                    path=f"/blog/post-{i:05d}/",
                )
                totals["views"] += 1
        if (i + 1) % 250 == 0 or i + 1 == POSTS:
            seq += 1
            flush = ledger.take(seq)
            result = await store.flush(flush)
            assert not (result.failed_targets or result.failed_rows), "a seed write failed"
            ledger.complete(flush, result)
            print(f"seeded {i + 1} posts in {time.monotonic() - t0:.0f} s", flush=True)
    for start in range(0, len(targets), 500):
        await store.pages.register(targets[start : start + 500], None)
    return totals


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    t = time.perf_counter()
    async with session.get(url, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
        await r.read()
        return (time.perf_counter() - t) * 1000, r.status


async def measure(http: str) -> dict[str, object]:
    paths = [
        "/api/pages?limit=50",
        "/api/pages?limit=50&period=30d",
        "/api/summary?period=30d",
        "/api/summary?period=all",
        "/api/summary?period=all&articleId=post-00007",
        "/api/referrers?period=30d",
        "/api/pages?limit=50&q=post%20123",
        "/api/pages?limit=50&period=all",
    ]
    out: dict[str, object] = {}
    async with aiohttp.ClientSession() as session:
        for path in paths:  # first read (cold spans), once
            ms, status = await timed(session, http + path)
            out[f"cold {path}"] = (round(ms, 1), status)
        for path in paths:
            one = [await timed(session, http + path) for _ in range(50)]
            ten: list[tuple[float, int]] = []
            for _ in range(10):
                ten += await asyncio.gather(*(timed(session, http + path) for _ in range(10)))
            out[path] = {
                "one_p50": round(statistics.median(m for m, _ in one), 1),
                "one_p95": round(pct([m for m, _ in one], 95), 1),
                "ten_p50": round(statistics.median(m for m, _ in ten), 1),
                "ten_p95": round(pct([m for m, _ in ten], 95), 1),
                "non_200": sum(1 for _, s in one + ten if s != 200),
            }
            print(path, out[path], flush=True)
        # Check the figures against the seed.
        async with session.get(
            http + "/api/summary?period=all", headers={"Authorization": f"Bearer {ADMIN}"}
        ) as r:
            out["summary_all"] = {k: v for k, v in (await r.json()).items() if k != "timeline"}
    return out


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="livecount-reports-"))
    (work / "token").write_text(ADMIN)
    async with dynamodb_local.running(work / "ddb", in_memory=True) as ddb:
        prefix = f"m{POSTS}_"
        async with Store.open(ddb, "us-east-1", prefix, "seeder") as store:
            await store.create_tables()
            seeded = await seed(store)
        print("seeded", seeded, flush=True)
        args = [*serve_args(ddb, prefix, work), "--admin-token-file", str(work / "token")]
        t0 = time.monotonic()
        async with running(Served(*args)) as server:
            print(f"serve up in {time.monotonic() - t0:.1f} s", flush=True)
            result = await measure(server.http)
        result["seeded"] = seeded
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
