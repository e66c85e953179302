"""Views from the protocol's whole value space at a real `livecount serve`.

Each view is refused with an error code, or replied to with its count and then stored
exactly: in the writer and reader tables, in every report table, and listed by
`/api/pages`. No key is ever too long for DynamoDB, so no flush fails; the node then
stops on SIGTERM and starts again on the same data with the same counts. One server
for the whole run: the examples are drawn first (fixed seed), then sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import websockets
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from livecount.aws.store import Store
from livecount.core import protocol
from livecount.core.ledger import SITE
from livecount.core.pages import PageError, PageRules, Target, referrer_host
from livecount.core.report_rows import DAY, HOUR, MONTH, PERIOD_HOST, host_of, is_bucket
from websockets.asyncio.client import ClientConnection, connect

from tests.strategies import SOAK, post_views, protocol_views
from tests.support import Launch, Served, eventually, http_get

EXAMPLES = 5000 if SOAK else 400
SITE_DOMAIN = "example.com"
REFUSALS = {"invalid_field", "invalid_json", "unrecognised_page"}
TOO_BIG = "close 1009"
# What DynamoDB takes as a referrer host once livecount has made it one: an ASCII
# DNS name, checked here without livecount's own code.
DNS_NAME = re.compile(
    r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?\Z"
)
ISSUE_10 = [  # the findings this test is for, as the first example
    {"message": "views", "articleId": "victim", "referrer": f"https://{'a' * 1100}.example/"},
    {"message": "views", "articleId": "\U0001f600" * 256},
    {"message": "views", "articleId": "\U0001f600" * 254 + "\u20ac", "articleTitle": "1019"},
    {"message": "views", "articleId": "x\n"},
    {"message": "views", "articleId": "x", "articleTitle": "t\n"},
    {"message": "views", "articleId": "x", "referrer": "https://news.example/\n"},
    {"message": "views", "currentPage": "/\n"},
    {"message": "views", "articleId": "x\x85"},
    {"message": "views", "articleId": "x\u2028"},
    {"message": "views", "articleId": "y", "referrer": "https://b\u00fccher.example/"},
    {"message": "views", "articleId": "y", "referrer": "https://xn--bcher-kva.example/"},
    {"message": "views", "articleId": "y", "referrer": "http://127.0.0.1:8080/"},
]


def drawn_views() -> list[dict[str, Any]]:
    """Every view of every example, in order: the same list on every run."""
    views: list[dict[str, Any]] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(st.one_of(protocol_views, post_views), min_size=1, max_size=4))
    @example(ISSUE_10)
    def draw(batch: list[dict[str, Any]]) -> None:
        views.extend(batch)

    draw()
    return views


@dataclass
class Expected:
    """What the tables must hold, from the views the server replied to."""

    counts: dict[Target, tuple[int, int]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    referrers: Counter[tuple[str, str]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, target: Target, msg: protocol.Views) -> tuple[int, int]:
        total, unique = self.counts.get(target, (0, 0))
        self.counts[target] = (total + 1, unique + (not msg.refreshed))
        if msg.articleTitle and target.kind == "post":
            self.titles.setdefault(target.id, msg.articleTitle)  # the first one stays
        if host := referrer_host(msg.referrer, [SITE_DOMAIN]):
            self.referrers.update([(target.ref, host), (SITE, host)])
        return self.counts[target]

    def of(self, kind: str) -> dict[str, tuple[int, int]]:
        return {t.id: c for t, c in self.counts.items() if t.kind == kind}


async def next_reply(ws: ClientConnection) -> dict[str, Any]:
    """The next reply that is not a live push."""
    while True:
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if reply.get("message") != "count":
            return reply


def clean(text: str) -> bool:
    """No C0, DEL or C1 control (category Cc) and no line separator: checked here
    without livecount's own code."""
    return not any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in text)


def storable(fields: dict[str, Any]) -> bool:
    """What any accepted view must be, whatever the oracle says: clean text, and an
    id that fits the PageIndex sort key `post#<id>` (1,024 bytes)."""
    texts = [v for k, v in fields.items() if k != "refreshed"]
    return all(isinstance(t, str) and clean(t) for t in texts) and len(
        fields.get("articleId", "").encode()
    ) <= 1024 - len("post#")


def oracle(frame: str) -> tuple[Target | None, protocol.Views | None, str | None]:
    """What the server should make of a frame: the pure modules' answer."""
    try:
        msg = protocol.decode(frame)
    except protocol.ProtocolError as exc:
        return None, None, exc.code
    assert isinstance(msg, protocol.Views)
    try:
        return PageRules().classify(msg.articleId, msg.currentPage), msg, None
    except PageError as exc:
        return None, None, exc.code


async def send_all(served: Served, views: list[dict[str, Any]]) -> Expected:
    """Send each view and check its answer: an error code, a close for an oversize
    frame, or a reply with the id as sent and the count so far."""
    expected = Expected()
    ws = await connect(served.ws)
    try:
        for i, fields in enumerate(views):
            # Every other frame escaped: \ud83d\ude00 as often as a raw 😀.
            frame = json.dumps(fields, ensure_ascii=i % 2 == 0)
            await ws.send(frame)
            if len(frame.encode()) > protocol.MAX_FRAME_BYTES:
                try:
                    raise AssertionError(f"answered, not closed: {await next_reply(ws)}")
                except websockets.ConnectionClosed as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == 1009
                expected.outcomes[TOO_BIG] += 1
                ws = await connect(served.ws)
                continue
            target, msg, refusal = oracle(frame)
            reply = await next_reply(ws)
            if refusal is not None:
                assert reply["message"] == "error" and reply["error"] == refusal, (fields, reply)
                assert reply["error"] in REFUSALS and reply["detail"]
                expected.outcomes[refusal] += 1
                continue
            assert target is not None and msg is not None
            assert storable(fields), fields
            total, unique = expected.add(target, msg)
            assert reply.pop("readingNow") >= 1, (fields, reply)  # this page, at least
            assert reply == {
                "message": "views",
                "totalViews": total,
                "uniqueViews": unique,
                ("articleId" if target.kind == "post" else "pageName"): target.id,
            }, (fields, reply)
            expected.outcomes["counted"] += 1
    finally:
        await ws.close()
    return expected


async def scan(store: Store, table: str) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    items: list[dict[str, Any]] = []
    while True:
        page = await store.ddb.scan(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def counts_of(items: Iterable[dict[str, Any]], key: str) -> dict[str, tuple[int, int]]:
    return {i[key]["S"]: (int(i["totalViews"]["N"]), int(i["uniqueViews"]["N"])) for i in items}


def titles_of(items: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {i["articleId"]["S"]: i["articleTitle"]["S"] for i in items if "articleTitle" in i}


async def check_tables(store: Store, expected: Expected) -> None:
    """Every table holds exactly what was replied to: no more, no less, nothing lost."""
    tables = store.tables
    posts, pages = expected.of("post"), expected.of("page")
    # A post first stored untitled gets its title in a write of its own, after its counts.
    writer = await eventually(
        lambda: scan(store, tables.writer),
        lambda items: (
            counts_of(items, "articleId") == posts and titles_of(items) == expected.titles
        ),
    )
    reader = await eventually(
        lambda: scan(store, tables.reader),
        lambda items: (
            counts_of(items, "articleId") == posts and titles_of(items) == expected.titles
        ),
    )
    assert titles_of(writer) == titles_of(reader) == expected.titles
    assert counts_of(await scan(store, tables.pages), "pageName") == pages

    items = await scan(store, tables.referrers)
    stored_referrers = Counter(
        {
            (i["target"]["S"], i["host"]["S"]): int(i["views"]["N"])
            for i in items
            if not i["host"]["S"].startswith(PERIOD_HOST)
        }
    )
    assert stored_referrers == expected.referrers

    def by_period(items: list[dict[str, Any]]) -> dict[str, Counter[tuple[str, str]]]:
        rows: dict[str, Counter[tuple[str, str]]] = {p: Counter() for p in (HOUR, DAY, MONTH)}
        for i in items:
            if (sort := i["host"]["S"]).startswith(PERIOD_HOST):
                rows[sort[1:3]][(i["target"]["S"], host_of(sort))] += int(i["views"]["N"])
        return rows

    # Each period's rows sum to all time's (written beside them, not with them).
    await eventually(
        lambda: scan(store, tables.referrers),
        lambda items: all(c == expected.referrers for c in by_period(items).values()),
    )
    assert all(DNS_NAME.match(host) for _, host in stored_referrers), stored_referrers

    hours: Counter[str] = Counter()
    for item in await scan(store, tables.timeline):
        if not is_bucket(item["target"]["S"]):  # an hour; rollups are keyed by bucket
            hours[item["target"]["S"]] += int(item["totalViews"]["N"])
    want = Counter({t.ref: c[0] for t, c in expected.counts.items()})
    want[SITE] = sum(c[0] for c in expected.counts.values())
    assert hours == want

    indexed = {
        i["target"]["S"] for i in await scan(store, tables.index) if i["index"]["S"] == "all"
    }  # beside them: their number
    assert indexed == {t.ref for t in expected.counts}
    assert all(clean(ref) for ref in indexed) and all(clean(t) for t in titles_of(writer).values())


def target_of(row: dict[str, Any]) -> Target:
    """The post or page an API row or a `count` message is about."""
    if "articleId" in row:
        return Target("post", row["articleId"])
    return Target("page", row["pageName"])


async def get_json(served: Served, path: str) -> tuple[int, Any]:
    status, _, body = await asyncio.to_thread(http_get, served.http + path)
    return status, json.loads(body)


async def check_listed(served: Served, expected: Expected) -> None:
    """`/api/pages` lists every post and page counted, with its counts and title."""
    status, rows = await get_json(served, "/api/pages?limit=1000")
    assert status == 200
    listed = {
        target_of(r): (r["totalViews"], r["uniqueViews"], r.get("articleTitle") or "") for r in rows
    }
    want = {
        t: (*c, expected.titles.get(t.id, "") if t.kind == "post" else "")
        for t, c in expected.counts.items()
    }
    if len(want) <= 1000:
        assert listed == want
        return
    assert all(want[t] == row for t, row in listed.items())  # the rest one by one
    for target in want.keys() - listed.keys():
        status, page = await get_json(
            served, f"/api/pages/{quote(target.id, safe='')}?kind={target.kind}"
        )
        assert status == 200 and (page["totalViews"], page["uniqueViews"]) == want[target][:2]


def subscriptions(targets: list[Target]) -> list[tuple[str, list[Target]]]:
    """Subscribe frames for `targets`, each within the id and frame limits."""

    def frame(chunk: list[Target]) -> str:
        return json.dumps(
            {
                "message": "subscribe",
                "articleIds": [t.id for t in chunk if t.kind == "post"],
                "pageNames": [t.id for t in chunk if t.kind == "page"],
            },
            ensure_ascii=False,
        )

    frames: list[tuple[str, list[Target]]] = []
    chunk: list[Target] = []
    for target in targets:
        if chunk and (
            len(chunk) == protocol.MAX_IDS_PER_MESSAGE
            or len(frame([*chunk, target]).encode()) > protocol.MAX_FRAME_BYTES
        ):
            frames.append((frame(chunk), chunk))
            chunk = []
        chunk.append(target)
    return [*frames, (frame(chunk), chunk)] if chunk else frames


async def check_live_counts(served: Served, expected: Expected) -> None:
    """After a restart, a subscriber is shown every count as stored."""
    async with connect(served.ws) as ws:
        for frame, chunk in subscriptions(list(expected.counts)):
            await ws.send(frame)
            waiting = set(chunk)
            while waiting:  # one count each; a push may come too, and must agree
                count = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert count["message"] == "count", count
                target = target_of(count)
                assert (count["totalViews"], count["uniqueViews"]) == expected.counts[target]
                waiting.discard(target)


def trouble(served: Served) -> list[dict[str, Any]]:
    """Warnings and errors: a refused write, a failed flush, a slow recovery. Not the
    start-up warning that any Origin is accepted (this test sends none), nor a store
    slower than the flushes (DynamoDB Local on a busy machine): that loses nothing."""
    return [
        e
        for e in served.logs
        if e.get("level") in ("warning", "error", "critical")
        and e.get("event") not in ("any_origin_accepted", "flushes_piling_up")
    ]


async def test_every_view_is_refused_or_stored_exactly(launch: Launch, local_store: Store):
    views = drawn_views()
    args = ("--site-domain", SITE_DOMAIN)
    served = await launch(*args)

    expected = await send_all(served, views)
    assert expected.outcomes["counted"] >= len(views) // 10, expected.outcomes
    assert expected.outcomes["invalid_field"] > 0 and expected.outcomes["unrecognised_page"] > 0
    await check_tables(local_store, expected)
    await check_listed(served, expected)
    assert not trouble(served)

    assert await served.stop() == 0
    assert not trouble(served) and not served.events("shutdown_unflushed")

    again = await launch(*args)
    await check_live_counts(again, expected)
    await check_listed(again, expected)
    await check_tables(local_store, expected)
    assert not trouble(again)
