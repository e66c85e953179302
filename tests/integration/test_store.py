"""The store against moto and against DynamoDB Local: same requests, same answers."""

from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from livecount.aws import store_requests, store_scan
from livecount.aws.store import Store
from livecount.core.errors import StoreRefused
from livecount.core.ledger import SITE, Counts, Delta, Flush, FlushResult, Row, Write
from livecount.core.pages import Target
from livecount.core.replication import Copy
from livecount.core.row_cache import Span
from livecount.core.stream_copy import ReaderWrite

from tests.support import flush_of

A, B, HOME = Target("post", "a"), Target("post", "b"), Target("page", "Home_Page")


async def item(store: Store, table: str, key: dict[str, Any]) -> dict[str, Any]:
    return (await store.ddb.get_item(TableName=table, Key=key, ConsistentRead=True)).get("Item", {})


def settled(result: FlushResult) -> bool:
    """Everything applied: nothing failed or refused."""
    return not (
        result.failed_targets
        or result.failed_rows
        or result.rejected_targets
        or result.rejected_rows
    )


async def test_create_tables_is_idempotent(any_store: Store):
    assert await any_store.create_tables() == []
    for spec in any_store.tables.definitions():
        table = (await any_store.ddb.describe_table(TableName=spec["TableName"]))["Table"]
        assert table["KeySchema"] == spec["KeySchema"]
    writer = (await any_store.ddb.describe_table(TableName=any_store.tables.writer))["Table"]
    assert writer["StreamSpecification"]["StreamEnabled"] is True
    assert writer["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


async def test_a_flush_adds_deltas_and_returns_the_new_totals(any_store: Store):
    first = flush_of(targets={A: Delta(3, 2, "Title A"), HOME: Delta(1, 1)})
    result = await any_store.flush(first)
    assert result.applied == {A: Counts(3, 2), HOME: Counts(1, 1)}
    result = await any_store.flush(flush_of(targets={A: Delta(2, 0)}))
    assert result.applied == {A: Counts(5, 2)}
    writer = await item(any_store, any_store.tables.writer, {"articleId": {"S": "a"}})
    assert writer["totalViews"] == {"N": "5"} and writer["uniqueViews"] == {"N": "2"}
    assert writer["articleTitle"] == {"S": "Title A"}  # a delta without a title keeps it
    assert writer["version"] == {"N": "2"}
    page = await item(any_store, any_store.tables.pages, {"pageName": {"S": "Home_Page"}})
    assert page["totalViews"] == {"N": "1"}


async def test_a_post_keeps_its_first_title_whichever_path_writes_it(any_store: Store):
    """Issue 22: any client could rename a post by sending views with another title. The
    first title stays, batched (an INSERT takes it; an UPDATE cannot, so a post left
    without one gets it in a write of its own) or one write a request (`if_not_exists`)."""
    await any_store.flush(flush_of(targets={A: Delta(1, 1)}))  # a view without a title
    await any_store.flush(flush_of(targets={A: Delta(1, 1, "Hello, world")}))
    await any_store.flush(flush_of(targets={A: Delta(1, 1, "hello-world")}))  # a script
    await any_store.flush(flush_of(targets={B: Delta(1, 1, "First")}))
    await any_store.flush(flush_of(targets={B: Delta(1, 1, "Second")}))
    for article, title, total in (("a", "Hello, world", 3), ("b", "First", 2)):
        writer = await item(any_store, any_store.tables.writer, {"articleId": {"S": article}})
        assert writer["articleTitle"] == {"S": title} and writer["totalViews"]["N"] == str(total)


async def test_counts_are_read_from_the_reader_table(any_store: Store):
    await any_store.flush(flush_of(targets={A: Delta(3, 3), HOME: Delta(2, 1)}))
    # Nothing copied yet: posts read from the reader, which is empty; pages are direct.
    assert await any_store.read_counts([A, B, HOME]) == {
        A: Counts(0, 0),
        B: Counts(0, 0),
        HOME: Counts(2, 1),
    }
    await any_store.ddb.put_item(
        TableName=any_store.tables.reader,
        Item={"articleId": {"S": "a"}, "totalViews": {"N": "3"}, "uniqueViews": {"N": "3"}},
    )
    assert (await any_store.read_counts([A]))[A] == Counts(3, 3)


async def test_a_reset_reads_posts_from_the_writer_which_the_reader_lags(any_store: Store):
    """A reset re-reads what the store holds: the reader table lags the writer by the
    stream, and a delete's copy may land after new views were stored."""
    await any_store.flush(flush_of(targets={A: Delta(3, 2, "Title A"), HOME: Delta(2, 1)}))
    found = await any_store.read([A, B, HOME], writer=True)
    assert {t: d.counts for t, d in found.items()} == {
        A: Counts(3, 2),
        B: Counts(0, 0),
        HOME: Counts(2, 1),
    }
    assert found[A].title == "Title A"
    assert await any_store.read_counts([A], writer=True) == {A: Counts(3, 2)}
    assert await any_store.read_counts([A]) == {A: Counts(0, 0)}  # nothing copied yet


async def test_reads_past_the_batch_limit(any_store: Store):
    # Pages are read from HomeAndProfile directly, so each has a count of its own to find.
    targets = [Target("page", f"p{i}") for i in range(130)]
    await any_store.flush(flush_of(targets={t: Delta(i + 1, 1) for i, t in enumerate(targets)}))
    counts = await any_store.read_counts([*targets, B])
    assert counts == {B: Counts(0, 0)} | {t: Counts(i + 1, 1) for i, t in enumerate(targets)}


async def test_top_referrers_is_a_query_sorted_by_views(any_store: Store):
    def ref(target: str, host: str) -> Row:
        return Row("referrer", target, host)

    await any_store.flush(
        flush_of(
            rows={
                ref(A.ref, "x.org"): Delta(1),
                ref(A.ref, "y.org"): Delta(5),
                ref(A.ref, "z.org"): Delta(3),
                ref(B.ref, "x.org"): Delta(9),
                ref(SITE, "x.org"): Delta(10),
            }
        )
    )
    assert await any_store.reports.top_referrers(A.ref) == [
        ("y.org", 5),
        ("z.org", 3),
        ("x.org", 1),
    ]
    assert await any_store.reports.top_referrers(A.ref, limit=1) == [("y.org", 5)]
    assert await any_store.reports.top_referrers(SITE) == [("x.org", 10)]


async def test_hour_buckets_are_a_range_query(any_store: Store):
    rows = {Row("timeline", A.ref, f"2026-11-24T{h:02d}"): Delta(h, 1) for h in range(5)}
    await any_store.flush(flush_of(rows=rows))
    await any_store.flush(flush_of(rows={Row("timeline", A.ref, "2026-11-24T02"): Delta(10, 0)}))
    assert await any_store.reports.hours(A.ref, "2026-11-24T01", "2026-11-24T03") == {
        "2026-11-24T01": Counts(1, 1),
        "2026-11-24T02": Counts(12, 1),
        "2026-11-24T03": Counts(3, 1),
    }
    assert await any_store.reports.hours(B.ref, "2026-11-24T00", "2026-11-24T23") == {}


async def test_a_flush_says_each_report_row_as_stored(any_store: Store):
    """Reports keep their rows by what the store answers (`applied_rows`), batched or
    not, new item or not, a resend too: each answer is the row after the write."""
    hour, day = Row("timeline", A.ref, "2026-11-24T07"), Row("timeline", "d#2026-11-24", A.ref)
    host = Row("referrer", SITE, "#d#2026-11-24#x.org")
    first = await any_store.flush(
        flush_of(rows={hour: Delta(2, 1), day: Delta(2, 1), host: Delta(2)})
    )
    assert first.applied_rows == {hour: Counts(2, 1), day: Counts(2, 1), host: Counts(2, 0)}
    again = flush_of(rows={day: Delta(3, 0), host: Delta(1)})
    assert (await any_store.flush(again)).applied_rows == {day: Counts(5, 1), host: Counts(3, 0)}
    assert (await any_store.flush(again)).applied_rows == {day: Counts(5, 1), host: Counts(3, 0)}
    reads = any_store.reports
    assert await reads.rows(Span.bucket("d#2026-11-24")) == {A.ref: Counts(5, 1)}
    assert await reads.rows(Span("referrer", SITE, "#d#2026-11-24#", "#d#2026-11-24#~")) == {
        "#d#2026-11-24#x.org": Counts(3, 0)
    }
    assert await reads.rollups(["d#2026-11-24", "d#2026-11-25"], A.ref) == {
        "d#2026-11-24": Counts(5, 1)
    }
    assert await reads.first_hour(A.ref) == "2026-11-24T07"
    assert await any_store.reports.top_referrers(SITE) == []  # a period's row is no all-time host


async def test_a_posts_path_is_the_first_one_stored(any_store: Store):
    first = await any_store.flush(flush_of(targets={A: Delta(1, 1, "A", "/blog/a/")}))
    assert first.described == {A: ("A", "/blog/a/")}
    later = await any_store.flush(flush_of(targets={A: Delta(1, 0, None, "/other/")}))
    assert later.described == {A: ("A", "/blog/a/")}
    writer = await item(any_store, any_store.tables.writer, {"articleId": {"S": "a"}})
    assert writer["path"] == {"S": "/blog/a/"}


async def test_the_page_index_lists_what_was_registered_within_the_cap(any_store: Store):
    """Issue 20: every path counts as a page, so what a client can create is bounded: the
    listing and its count move together, on condition of the cap, whatever the race."""
    index = any_store.pages
    assert await any_store.tracked() == [] and await index.count() == 0
    assert await index.register([A, HOME], 3) == ({A, HOME}, set())
    assert await index.register([A], 3) == ({A}, set())  # listed already: nothing more
    many = [Target("post", f"p{n}") for n in range(5)]
    got = await index.register(many, 3)  # one fits; the transaction of all, then each
    assert len(got.listed) == 1 and len(got.refused) == 4 and await index.count() == 3
    await index.remove(A)
    await index.remove(A)  # not listed any more: nothing taken twice
    assert await index.count() == 2
    assert await index.register([B], 3) == ({B}, set())
    assert await index.register([Target("post", "z")], None) == ({Target("post", "z")}, set())
    assert await index.count() == 4 == len(await any_store.tracked())  # the operator's: no cap


async def test_the_catalog_is_what_reads_of_every_listed_target_say(any_store: Store):
    """A node's start reads the catalog by Scans in parallel parts: the same counts,
    titles and paths as a read of each target the index lists, and nothing it does not."""
    posts = [Target("post", f"p{n:03d}") for n in range(120)]
    await any_store.flush(flush_of(targets={HOME: Delta(2, 1)}))
    for n, target in enumerate(posts):  # as the stream copies them
        await any_store.ddb.put_item(
            TableName=any_store.tables.reader,
            Item={
                "articleId": {"S": target.id},
                "totalViews": {"N": str(n + 1)},
                "uniqueViews": {"N": "1"},
                "articleTitle": {"S": f"Post {n}"},
                "path": {"S": f"/blog/{target.id}/"},
                "flush:node": {"N": "7"},
            },
        )
    await any_store.ddb.put_item(
        TableName=any_store.tables.reader,
        Item={"articleId": {"S": "unlisted"}, "totalViews": {"N": "9"}},
    )
    listed = [*posts, HOME, A]  # A: listed, never counted
    await any_store.pages.register(listed, None)
    found = await store_scan.catalog(any_store, segments=3)
    assert found == await any_store.read(listed)
    assert found[posts[5]] == (Counts(6, 1), "Post 5", "/blog/p005/")
    assert found[HOME].counts == Counts(2, 1) and found[A].counts == Counts(0, 0)


async def test_a_policy_without_scan_gets_the_catalog_by_key(
    any_store: Store, monkeypatch: pytest.MonkeyPatch
):
    await any_store.ddb.put_item(
        TableName=any_store.tables.reader,
        Item={"articleId": {"S": "kept"}, "totalViews": {"N": "3"}, "uniqueViews": {"N": "2"}},
    )
    await any_store.pages.register([Target("post", "kept"), HOME], None)

    async def refused(*args: object) -> None:
        raise StoreRefused("AccessDeniedException: not authorized to perform dynamodb:Scan")

    monkeypatch.setattr(store_scan, "scan", refused)
    found = await store_scan.catalog(any_store)
    assert found[Target("post", "kept")].counts == Counts(3, 2)
    assert set(found) == {Target("post", "kept"), HOME}


async def test_a_store_listed_before_counts_is_counted_once(any_store: Store):
    """A store an older livecount listed has entries and no count: a node counts them."""
    for target in (A, B):
        await any_store.ddb.put_item(
            TableName=any_store.tables.index,
            Item={"index": {"S": "all"}, "target": {"S": target.ref}},
        )
    await any_store.pages.reconcile()
    await any_store.pages.reconcile()  # there already: unchanged
    assert await any_store.pages.count() == 2


async def test_writes_refused_as_invalid_are_rejected_and_the_rest_of_the_flush_applies(
    local_store: Store, caplog: pytest.LogCaptureFixture
):
    poison = Row("referrer", A.ref, "h" * 1_100)  # a sort key over DynamoDB's 1,024 bytes
    wide = Target("post", "\U0001f600" * 256)  # its index key `post#…` is 1,029 bytes
    fine = Row("referrer", A.ref, "x.org")
    flush = flush_of(
        targets={A: Delta(2, 1), HOME: Delta(1, 1), wide: Delta(1, 1)},
        rows={poison: Delta(2), fine: Delta(2)},
    )
    result = await local_store.flush(flush)
    assert set(result.rejected_rows) == {poison}
    assert "ValidationException" in result.rejected_rows[poison]
    assert not result.rejected_targets
    assert not (result.failed_targets or result.failed_rows)
    assert result.applied == {A: Counts(2, 1), HOME: Counts(1, 1), wide: Counts(1, 1)}
    assert await local_store.reports.top_referrers(A.ref) == [("x.org", 2)]

    # Sent again and again (as a node without dead letters would), it logs once per
    # table and error code, not once per write.
    for _ in range(20):
        again = await local_store.flush(flush_of(rows={poison: Delta(1)}))
        assert set(again.rejected_rows) == {poison}
    lines = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "flush_rejected"]
    assert sorted((f["table"], f["code"]) for f in lines) == [
        (local_store.tables.referrers, "ValidationException")
    ]


async def test_failed_writes_are_reported_not_raised(any_store: Store):
    await any_store.ddb.delete_table(TableName=any_store.tables.pages)
    result = await any_store.flush(
        flush_of(
            targets={A: Delta(1, 1), HOME: Delta(1, 1)},
            rows={Row("referrer", A.ref, "x.org"): Delta(1)},
        )
    )
    assert result.applied == {A: Counts(1, 1)}
    # A missing table may be on its way (or back soon): unknown outcome, resent later.
    assert result.failed_targets == {HOME} and not result.failed_rows
    assert not result.rejected_targets


async def test_sending_a_flush_twice_adds_it_once(any_store: Store):
    flush = flush_of(
        targets={A: Delta(2, 1), HOME: Delta(1, 1)},
        rows={
            Row("timeline", A.ref, "2026-11-24T07"): Delta(2, 1),
            Row("referrer", SITE, "x.org"): Delta(2),
        },
    )
    first = await any_store.flush(flush)
    again = await any_store.flush(flush)  # a lost response, retried
    assert first.applied == again.applied == {A: Counts(2, 1), HOME: Counts(1, 1)}
    assert not again.failed_targets and not again.failed_rows
    assert await any_store.reports.hours(A.ref, "2026-11-24T07", "2026-11-24T07") == {
        "2026-11-24T07": Counts(2, 1)
    }
    assert await any_store.reports.top_referrers(SITE) == [("x.org", 2)]
    newer = await any_store.flush(flush_of(targets={A: Delta(1, 1)}))
    assert newer.applied[A] == Counts(3, 2)


async def test_each_node_keeps_its_own_sequence(any_store: Store):
    other = Store(any_store.ddb, any_store.streams, any_store.tables, node_id="other")
    await any_store.flush(flush_of(targets={A: Delta(1, 1)}))
    # Another node's flush with a lower sequence number still applies.
    low = Flush(1, {A: Write(1, Delta(1, 1))})
    assert (await other.flush(low)).applied[A] == Counts(2, 2)


async def test_two_nodes_count_hundreds_of_hosts_each_once(dynamodb_local_url: str, prefix: str):
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # a DNS name's 253 bytes
    hosts = [f"h{i}.example" for i in range(150)] + [longest, "xn--bcher-kva.example"]
    views = {h: i % 3 + 1 for i, h in enumerate(hosts)}
    async with (
        Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="a") as a,
        Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="b") as b,
    ):
        await a.create_tables()
        for round_ in range(3):
            for store in (a, b):
                flush = flush_of(
                    rows={Row("referrer", A.ref, h): Delta(n) for h, n in views.items()}
                )
                assert settled(await store.flush(flush))
                if round_ == 0:
                    assert settled(await store.flush(flush))  # resent: adds nothing
        stored = dict(await a.reports.top_referrers(A.ref, limit=1000))
    assert stored == {h: 6 * n for h, n in views.items()}


async def writer_counts(store: Store) -> dict[str, Counts]:
    items = (await store.ddb.scan(TableName=store.tables.writer, ConsistentRead=True))["Items"]
    return {i["articleId"]["S"]: store_requests.counts(i) for i in items}


class Spy:
    """A client that counts its calls by operation; `lose` makes each batch apply and
    its answer never come back, as a cut connection does."""

    def __init__(self, client: Any, lose: bool = False) -> None:
        self.client, self.lose = client, lose
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if name == "get_paginator":  # its requests go on the client itself
            return method

        async def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            answered = await method(**kwargs)
            if self.lose and name == "batch_execute_statement":
                raise EndpointConnectionError(endpoint_url="http://lost")
            return answered

        return call


def spied(store: Store, lose: bool = False) -> tuple[Store, Spy, Spy]:
    once, retried = Spy(store.ddb_once, lose), Spy(store.ddb)
    return Store(retried, store.streams, store.tables, ddb_once=once), once, retried


async def test_writes_go_25_a_request_and_a_resent_batch_adds_nothing(local_store: Store):
    store, batches, singles = spied(local_store)
    assert store.batching
    pages = {Target("page", f"p{i}"): Delta(i + 1, 1) for i in range(30)}
    rows = {Row("timeline", SITE, "2026-11-24T07"): Delta(31, 30)}
    first = flush_of(targets=pages, rows=rows)
    assert settled(await store.flush(first))
    # New items: INSERTs, 31 statements in 2 requests; nothing one a request. (The
    # page index is written when a page is first seen, not here.)
    assert batches.calls == {"batch_execute_statement": 2} and not singles.calls
    assert settled(again := await store.flush(first))  # the same flush: a resend
    assert again.applied == {t: Counts(d.total, d.unique) for t, d in pages.items()}
    more = flush_of(
        targets=dict.fromkeys(pages, Delta(1, 0)),
        rows={Row("timeline", SITE, "2026-11-24T07"): Delta(30, 0)},
    )
    assert settled(await store.flush(more))  # known items: UPDATEs
    assert not singles.calls
    stored = await store.read_counts(pages)
    assert stored == {t: Counts(d.total + 1, d.unique) for t, d in pages.items()}
    assert await store.reports.hours(SITE, "2026-11-24T07", "2026-11-24T07") == {
        "2026-11-24T07": Counts(61, 30)
    }


async def test_a_batch_guessing_wrong_about_an_item_tries_the_other_statement(local_store: Store):
    store, _, singles = spied(local_store)
    other = Store(local_store.ddb, local_store.streams, local_store.tables, node_id="other")
    await other.flush(flush_of(targets={A: Delta(5, 5)}))  # exists, unknown to `store`
    assert settled(await store.flush(flush_of(targets={A: Delta(1, 1)})))  # INSERT, UPDATE
    assert settled(await store.flush(flush_of(targets={B: Delta(1, 1)})))
    await local_store.ddb.delete_item(
        TableName=local_store.tables.writer, Key={"articleId": {"S": "b"}}
    )
    assert settled(await store.flush(flush_of(targets={B: Delta(2, 2)})))  # UPDATE, INSERT
    assert await writer_counts(local_store) == {"a": Counts(6, 6), "b": Counts(2, 2)}
    assert not singles.calls


async def test_a_first_batch_whose_answer_is_lost_is_resent_one_write_a_request(local_store: Store):
    store, batches, singles = spied(local_store, lose=True)
    flush = flush_of(
        targets={A: Delta(2, 1), HOME: Delta(1, 1)},
        rows={Row("referrer", A.ref, "x.org"): Delta(2)},
    )
    result = await store.flush(flush)
    # Applied by the batch, then refused as resends one a request: applied once.
    assert settled(result) and result.applied == {A: Counts(2, 1), HOME: Counts(1, 1)}
    assert batches.calls["batch_execute_statement"] == 1
    assert singles.calls == {"update_item": 3}
    assert await writer_counts(local_store) == {"a": Counts(2, 1)}
    assert await local_store.reports.top_referrers(A.ref) == [("x.org", 2)]


async def test_once_batches_work_one_lost_leaves_its_writes_unknown_for_a_later_flush(
    local_store: Store,
):
    store, batches, singles = spied(local_store)
    assert settled(await store.flush(flush_of(targets={B: Delta(1, 1)})))
    batches.lose = True  # applied, and the answer never comes back
    flush = flush_of(targets={A: Delta(2, 1)}, rows={Row("referrer", A.ref, "x.org"): Delta(2)})
    lost = await store.flush(flush)
    assert lost.failed_targets == {A} and len(lost.failed_rows) == 1
    assert not singles.calls  # not resent at once: the store may be struggling
    batches.lose = False
    again = await store.flush(flush)  # the next flush resends them unchanged
    assert settled(again) and again.applied == {A: Counts(2, 1)}
    assert await writer_counts(local_store) == {"a": Counts(2, 1), "b": Counts(1, 1)}
    assert await local_store.reports.top_referrers(A.ref) == [("x.org", 2)]


async def test_an_endpoint_without_batches_gets_one_write_a_request(moto_url: str, prefix: str):
    async with Store.open(moto_url, "us-east-1", prefix) as store:
        await store.create_tables()
        assert store.batching  # until the endpoint shows it takes none
        for n in range(1, 5):
            assert settled(await store.flush(flush_of(targets={A: Delta(1, 1)})))
            assert await writer_counts(store) == {"a": Counts(n, n)}
        assert not store.batching


class NoReturning(Spy):
    """An endpoint that takes batches but refuses RETURNING in them."""

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        async def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            statements = kwargs.get("Statements", [])
            if any("RETURNING" in s["Statement"] for s in statements):
                return {
                    "Responses": [
                        {
                            "Error": {
                                "Code": "ValidationError",
                                "Message": "RETURNING is not supported in batches",
                            }
                        }
                    ]
                    * len(statements)
                }
            return await method(**kwargs)

        return call


async def test_batches_without_returning_still_store_every_write_once(local_store: Store):
    once = NoReturning(local_store.ddb_once)
    store = Store(local_store.ddb, local_store.streams, local_store.tables, ddb_once=once)
    assert settled(await store.flush(flush_of(targets={A: Delta(1, 1)})))  # new: INSERT
    result = await store.flush(flush_of(targets={A: Delta(2, 1), B: Delta(1, 1)}))
    assert settled(result)
    assert await writer_counts(local_store) == {"a": Counts(3, 2), "b": Counts(1, 1)}
    assert A not in result.applied  # no totals to answer with; the stream brings them
    calls = once.calls["batch_execute_statement"]
    assert settled(await store.flush(flush_of(targets={A: Delta(1, 1)})))
    assert once.calls["batch_execute_statement"] == calls + 1  # asked once, without it
    assert await writer_counts(local_store) == {"a": Counts(4, 3), "b": Counts(1, 1)}


class RefusesSecond(Spy):
    """An endpoint that refuses its second batch as invalid, as a whole."""

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        async def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "batch_execute_statement" and self.calls[name] == 2:
                raise ClientError(
                    {
                        "Error": {"Code": "ValidationException", "Message": "no"},
                        "ResponseMetadata": {"HTTPStatusCode": 400},
                    },
                    "BatchExecuteStatement",
                )
            return await method(**kwargs)

        return call


async def test_copies_still_batched_when_batches_go_off_are_sent_one_a_request(local_store: Store):
    tables = local_store.tables
    articles = [f"r{i}" for i in range(30)]
    for a in articles:  # there already: a store that does not know it INSERTs first
        await local_store.ddb.put_item(
            TableName=tables.reader,
            Item={
                "articleId": {"S": a},
                "totalViews": {"N": "1"},
                "uniqueViews": {"N": "1"},
                "version": {"N": "1"},
            },
        )
    once = RefusesSecond(local_store.ddb_once)
    stream = Store(local_store.ddb, local_store.streams, tables, ddb_once=once).stream
    writes = [
        ReaderWrite(
            str(n),
            "put",
            Copy(
                "put",
                {"articleId": {"S": a}},
                2,
                {
                    "articleId": {"S": a},
                    "totalViews": {"N": "2"},
                    "uniqueViews": {"N": "2"},
                    "version": {"N": "2"},
                },
            ).request(tables.reader),
            None,
        )
        for n, a in enumerate(articles)
    ]
    # The first batch's 25 are DuplicateItems, to go round again as UPDATEs; the second
    # batch is refused, which turns batching off: the 25 go one a request instead.
    assert await stream.copy_many(writes) == [True] * 30
    assert once.calls["batch_execute_statement"] == 2
    items = (await local_store.ddb.scan(TableName=tables.reader, ConsistentRead=True))["Items"]
    assert {i["articleId"]["S"]: i["version"]["N"] for i in items} == dict.fromkeys(articles, "2")
