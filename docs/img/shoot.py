"""Re-make the dashboard screenshots: `python docs/img/shoot.py` from the repository root.

Starts DynamoDB Local and a real `livecount serve`, sends a blog's worth of views over
a real WebSocket (posts with titles, pages, referrers, reloads), and photographs `/` in
the headless Chromium the tests use, at desktop and phone sizes:

    docs/img/dashboard-desktop.png   1280x800, an article selected
    docs/img/dashboard-phone.png     390x844 at 2x pixel density, the whole site

Views can only be sent *now*, so every view lands in the current hour. To show a
realistic chart, the script then moves each view's hour bucket to the hour it was
meant for: a direct write to the Timeline table (totals, unique counts and referrers
stay exactly as counted). `--no-backdate` skips that and shows the honest single bar.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from livecount.aws import local as dynamodb_local  # noqa: E402
from livecount.aws.store import Store  # noqa: E402
from playwright.async_api import Page, ViewportSize, async_playwright  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

OUT = Path(__file__).resolve().parent
PREFIX = "shot_"
SITE_DOMAIN = "myblog.example"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--font-render-hinting=none"]

# (articleId, title, views per hour at the daily peak, {referrer host: weight}, spikes)
# A spike is (hours ago, extra views at its top): a link on a big site, fading out.
POSTS: list[tuple[str, str, float, dict[str, float], list[tuple[int, float]]]] = [
    ("realtime-counters-asyncio", "Realtime page-view counters with asyncio", 4.0,
     {"news.ycombinator.com": 6, "google.com": 2, "lobste.rs": 1}, [(20, 26.0)]),
    ("dynamodb-streams-ordering", "What DynamoDB Streams taught me about ordering", 3.0,
     {"lobste.rs": 4, "google.com": 2, "duckduckgo.com": 1}, [(40, 9.0)]),
    ("hand-written-svg-charts", "Hand-written SVG charts are enough", 2.2,
     {"mastodon.social": 3, "google.com": 2}, [(6, 7.0)]),
    ("self-hosting-on-a-budget", "Self-hosting on a €5 server", 1.4,
     {"reddit.com": 4, "duckduckgo.com": 1}, []),
    ("hello-world", "Hello, world", 0.5, {"google.com": 1}, []),
    ("notes-on-backpressure", "", 0.25, {}, []),
]
PAGES: list[tuple[str, str, float]] = [  # (path, page name, views per hour at the peak)
    ("/", "Home_Page", 2.6), ("/pages/about", "About_Page", 0.6),
    ("/pages/contacts", "Contact_Page", 0.2),
]
EXTERNAL_SHARE = 0.45  # of views that carry an external referrer; the rest: none or internal


@dataclass(frozen=True)
class View:
    message: dict[str, Any]
    ref: str  # the timeline partition of its target, `post#…` or `page#…`
    hour: str  # YYYY-MM-DDTHH, UTC
    unique: bool


def rhythm(moment: datetime) -> float:
    """A blog's day: quiet at night (UTC), busiest in the afternoon and evening."""
    phase = (moment.hour + moment.minute / 60 - 16) / 24 * 2 * math.pi
    return 0.22 + 0.78 * (1 + math.cos(phase)) / 2


def poisson(rnd: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rnd.random()
        if p <= limit:
            return k
        k += 1


def demo_views(now: datetime, seed: int = 4) -> list[View]:
    """48 detailed hours, then 28 quieter days, and a little of this very hour."""
    rnd = random.Random(seed)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    views: list[View] = []

    def referrer(hosts: dict[str, float]) -> str | None:
        roll = rnd.random()
        if hosts and roll < EXTERNAL_SHARE:
            host = rnd.choices(list(hosts), weights=list(hosts.values()))[0]
            return f"https://{'www.' if rnd.random() < 0.3 else ''}{host}/"
        return f"https://{SITE_DOMAIN}/" if roll < EXTERNAL_SHARE + 0.25 else None

    for ago in range(30 * 24):
        moment = this_hour - timedelta(hours=ago)
        # Older days are quieter, and only their daily sums show (30-day chart).
        age = 1.0 if ago < 48 else 0.55 * (1 - ago / (30 * 24)) + 0.15
        partial = (now.minute + 1) / 60 if ago == 0 else 1.0
        hour_key = moment.strftime("%Y-%m-%dT%H")
        for article, title, rate, hosts, spikes in POSTS:
            mean = rate * rhythm(moment) * age
            for spike_ago, height in spikes:
                if ago <= spike_ago:
                    mean += height * math.exp(-(spike_ago - ago) / 5)
            for _ in range(poisson(rnd, mean * partial)):
                unique = rnd.random() > 0.27
                message: dict[str, Any] = {"message": "views", "articleId": article,
                                           "refreshed": not unique}
                if title:
                    message["articleTitle"] = title
                if (source := referrer(hosts)) is not None:
                    message["referrer"] = source
                views.append(View(message, f"post#{article}", hour_key, unique))
        for path, name, rate in PAGES:
            for _ in range(poisson(rnd, rate * rhythm(moment) * age * partial)):
                unique = rnd.random() > 0.3
                message = {"message": "views", "currentPage": path, "refreshed": not unique}
                if (source := referrer({"google.com": 2, "duckduckgo.com": 1})) is not None:
                    message["referrer"] = source
                views.append(View(message, f"page#{name}", hour_key, unique))
    rnd.shuffle(views)
    return views


@asynccontextmanager
async def livecount(endpoint: str, data_dir: Path,
                    ) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`livecount serve` on a free port, its reports open (no login for the camera);
    yields its http:// URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livecount", "serve", "--host", "127.0.0.1", "--port", "0",
        "--dynamodb-endpoint", endpoint, "--table-prefix", PREFIX, "--flush-interval", "0.2",
        "--site-domain", SITE_DOMAIN, "--public", "all", "--data-dir", str(data_dir), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        port = None
        async with asyncio.timeout(120):
            async for raw in proc.stdout:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if entry.get("event") == "listening":
                    port = int(entry["port"])
                    break
        if port is None:
            raise RuntimeError("livecount exited before listening")
        drain = asyncio.create_task(proc.stdout.read())  # keep its pipe from filling
        yield f"http://127.0.0.1:{port}", proc
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def send_all(ws_url: str, views: list[View], per_visit: int = 20,
                   parallel: int = 8) -> None:
    """Many short visits, as a blog gets them: a socket sends a few views, each answered
    before the next (so a socket stays well inside the server's per-socket rate limit)."""
    visits = asyncio.Queue[list[View]]()
    for i in range(0, len(views), per_visit):
        visits.put_nowait(views[i:i + per_visit])

    async def visitor() -> None:
        while not visits.empty():
            visit = visits.get_nowait()
            async with connect(ws_url) as ws:
                for view in visit:
                    await send(ws, view.message)

    await asyncio.gather(*(visitor() for _ in range(parallel)))


# Readers on the site while the photos are taken, each on a socket kept open: the
# dashboard's "Reading now". Their views count, in the current hour, as any would.
READERS: list[dict[str, Any]] = [
    {"message": "views", "articleId": "realtime-counters-asyncio", "refreshed": True},
    {"message": "views", "articleId": "realtime-counters-asyncio", "refreshed": True},
    {"message": "views", "articleId": "hand-written-svg-charts", "refreshed": True},
    {"message": "views", "currentPage": "/", "refreshed": True},
]


@asynccontextmanager
async def reading(ws_url: str) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for message in READERS:
            ws = await stack.enter_async_context(connect(ws_url))
            await send(ws, message)
        yield


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))
    while (answer := json.loads(await ws.recv()))["message"] == "count":
        pass
    if answer["message"] != "views":
        raise RuntimeError(f"livecount refused a view: {answer}")


async def backdate(store: Store, views: list[View], first_hour: str, last_hour: str) -> None:
    """Move every view from the hour it was counted in to the hour it was meant for."""
    wanted: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for view in views:
        for ref in (view.ref, "site"):
            wanted[ref][view.hour][0] += 1
            wanted[ref][view.hour][1] += int(view.unique)

    async def add(ref: str, hour: str, total: int, unique: int) -> None:
        await store.ddb.update_item(
            TableName=store.tables.timeline, Key={"target": {"S": ref}, "hour": {"S": hour}},
            UpdateExpression="ADD totalViews :t, uniqueViews :u",
            ExpressionAttributeValues={":t": {"N": str(total)}, ":u": {"N": str(unique)}})

    for ref, hours in wanted.items():
        counted = await store.reports.hours(ref, first_hour, last_hour)
        sent = (sum(t for t, _ in hours.values()), sum(u for _, u in hours.values()))
        got = (sum(c.total for c in counted.values()), sum(c.unique for c in counted.values()))
        if got != sent:
            raise RuntimeError(f"{ref}: counted {got}, sent {sent}; not moving anything")
        for hour, counts in counted.items():
            await add(ref, hour, -counts.total, -counts.unique)
        for hour, (total, unique) in hours.items():
            await add(ref, hour, total, unique)


async def settle(store: Store, views: list[View], first_hour: str, last_hour: str) -> None:
    """Wait until every view is in the timeline (the flush writes it), site-wide."""
    async with asyncio.timeout(120):
        while True:
            counted = await store.reports.hours("site", first_hour, last_hour)
            if sum(c.total for c in counted.values()) >= len(views):
                return
            await asyncio.sleep(0.2)


async def shoot(page: Page, path: Path) -> None:
    await page.locator("#chart svg .bar").first.wait_for()
    await page.locator("#referrers li").first.wait_for()
    await page.wait_for_function("document.getElementById('conn').textContent === 'live'")
    # Let the first fetches settle and every "changed" highlight fade out.
    await page.wait_for_function("!document.querySelector('.flash') && "
                                 "!document.querySelector('#chart.loading')")
    await page.wait_for_timeout(1500)
    overflow = await page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
    if overflow > 0:
        raise RuntimeError(f"{path.name}: {overflow}px of horizontal overflow")
    await page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description="Re-make the dashboard screenshots.")
    parser.add_argument("--no-backdate", action="store_true",
                        help="leave every view in the hour it was sent")
    parser.add_argument("--dark", action="store_true", help="also shoot the dark scheme")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="livecount-shot-") as tmp:
        async with dynamodb_local.running(Path(tmp)) as ddb_url, \
                livecount(ddb_url, Path(tmp) / "node") as (http, _), \
                Store.open(ddb_url, "us-east-1", PREFIX) as store:
            now = datetime.now(UTC)
            views = demo_views(now) if not args.no_backdate else \
                [v for v in demo_views(now) if v.hour == now.strftime("%Y-%m-%dT%H")]
            first_hour = now.strftime("%Y-%m-%dT%H")
            print(f"sending {len(views)} views to {http}")
            await send_all(http.replace("http://", "ws://") + "/ws", views)
            last_hour = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H")
            await settle(store, views, first_hour, last_hour)
            if not args.no_backdate:
                await backdate(store, views, first_hour, last_hour)

            async with async_playwright() as pw, \
                    reading(http.replace("http://", "ws://") + "/ws"):
                browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=FLAGS)
                schemes: list[tuple[Literal["light", "dark"], str]] = [("light", "")]
                if args.dark:
                    schemes.append(("dark", "-dark"))
                for scheme, suffix in schemes:
                    for name, viewport, scale, fragment in [
                        ("desktop", ViewportSize(width=1280, height=800), 1,
                         "#post=realtime-counters-asyncio"),
                        ("phone", ViewportSize(width=390, height=844), 2, ""),
                    ]:
                        context = await browser.new_context(
                            viewport=viewport, device_scale_factor=scale,
                            color_scheme=scheme,
                            locale="en-US", timezone_id="UTC")
                        page = await context.new_page()
                        page.on("pageerror", lambda exc: print(f"page error: {exc}"))
                        await page.goto(f"{http}/{fragment}")
                        await shoot(page, OUT / f"dashboard-{name}{suffix}.png")
                        await context.close()
                await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
