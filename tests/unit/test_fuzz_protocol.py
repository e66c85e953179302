"""Whatever a client sends, decoding yields a message or a ProtocolError: nothing else."""

import asyncio
import json
import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livecount.aws.store import Store, Tables
from livecount.core import protocol, sizes
from livecount.core.ledger import Ledger
from livecount.core.pages import PageError, PageRules, referrer_host

from tests.strategies import examples, frames, post_views, protocol_views, text_frames


@settings(max_examples=examples(1500), deadline=None)
@given(frames())
def test_decode_never_fails_any_other_way(frame: tuple[str, str | bytes]):
    _, payload = frame
    try:
        message = protocol.decode(payload)
    except protocol.ProtocolError as exc:
        assert exc.code in {
            "invalid_json",
            "invalid_message",
            "unknown_message",
            "invalid_field",
            "binary_frame",
        }
        assert exc.detail
    else:
        assert isinstance(message, protocol.Views | protocol.Subscribe | protocol.Unsubscribe)


@settings(max_examples=examples(500), deadline=None)
@given(text_frames, st.text(max_size=5))
def test_accepted_ids_and_paths_are_within_the_limits(frame: str, _: str):
    try:
        message = protocol.decode(frame)
    except protocol.ProtocolError:
        return
    if isinstance(message, protocol.Views):
        for value in (message.articleId, message.articleTitle):
            assert value is None or len(value) <= protocol.MAX_ID_CHARS
        for value in (message.currentPage, message.previousPage, message.referrer):
            assert value is None or len(value) <= protocol.MAX_URL_CHARS


# -- the class, not only the instances: whatever is accepted can be stored ----------
def storable(text: str, max_bytes: int) -> bool:
    """Checked without `sizes`: UTF-8 bytes, and no Cc (C0, DEL, C1) or line separator."""
    return len(text.encode()) <= max_bytes and not any(
        unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in text
    )


def views_frame(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False)


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(protocol_views)
def test_accepted_views_hold_only_storable_text(fields: dict[str, Any]):
    try:
        message = protocol.decode(views_frame(fields))
    except protocol.ProtocolError as exc:
        assert exc.code == "invalid_field", exc.detail
        return
    assert isinstance(message, protocol.Views)
    assert message.articleId is None or (message.articleId and storable(message.articleId, 1019))
    assert message.articleTitle is None or storable(message.articleTitle, 1024)
    for url in (message.currentPage, message.previousPage, message.referrer):
        assert url is None or (len(url) <= 2048 and storable(url, 4 * 2048))


class RecordingDynamo:
    """Takes every write, as DynamoDB would if no key were too long."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"Attributes": {}}

    async def put_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {}


KEY_BYTES = {"HASH": 2048, "RANGE": 1024}  # DynamoDB's limits, in UTF-8 bytes


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(post_views, protocol_views), min_size=1, max_size=8))
def test_every_key_the_store_builds_from_accepted_views_fits(views: list[dict[str, Any]]):
    """Accepted views through the ledger into the store's real requests: each key is
    1 to 2,048 bytes (partition) or 1,024 (sort), and each item far below 400 KB."""
    rules, ledger = PageRules(), Ledger()
    for fields in views:
        try:
            message = protocol.decode(views_frame(fields))
        except protocol.ProtocolError:
            continue
        assert isinstance(message, protocol.Views)
        try:
            target = rules.classify(message.articleId, message.currentPage)
        except PageError:
            continue
        ledger.record(
            target,
            refreshed=message.refreshed,
            hour="2026-01-01T00",
            title=message.articleTitle,
            referrer=referrer_host(message.referrer, ["example.com"]),
        )
    dynamo = RecordingDynamo()
    store = Store(dynamo, None, Tables.named("PREFIX_"))
    asyncio.run(store.flush(ledger.take(1)))
    schema = {d["TableName"]: d["KeySchema"] for d in store.tables.definitions()}
    for request in dynamo.requests:
        item = request.get("Key") or request["Item"]
        for key in schema[request["TableName"]]:
            size = len(item[key["AttributeName"]]["S"].encode())
            assert 1 <= size <= KEY_BYTES[key["KeyType"]], (request["TableName"], key, size)
        assert len(json.dumps(request, ensure_ascii=False).encode()) < sizes.ITEM_BYTES // 100
