"""Rename, delete, import and export on DynamoDB Local: each count moves or arrives once,
whatever was stopped midway, resent, or run twice at once."""

import asyncio
import io
import itertools
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from livecount.aws import store_requests
from livecount.aws.store import Store
from livecount.aws.store_admin import BulkDeletes, Deleted, Exports, Operations
from livecount.aws.store_imports import Imports, ImportUndo
from livecount.aws.store_rollups import Rollups
from livecount.core import exports, feed, moves
from livecount.core.errors import ClientError
from livecount.core.import_chunks import ImportRecord
from livecount.core.imports import PathMap, Reader, Sums
from livecount.core.ledger import SITE, Counts, Delta, Ledger, Row
from livecount.core.moves import Operation, Plan
from livecount.core.pages import PageRules, Target
from livecount.core.report_rows import hour_rows, view_rows
from livecount.tools import import_plan
from livecount.tools.import_plan import ImportPlan

from tests.conftest import open_store
from tests.support import flush_of

OLD, NEW = Target("post", "old"), Target("post", "new")
H1, H2 = "2026-01-02T03", "2026-01-02T04"


async def get(store: Store, table: str, key: dict[str, Any]) -> dict[str, Any]:
    answer = await store.ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    return dict(answer.get("Item", {}))


async def writer(store: Store, article: str, table: str | None = None) -> Counts:
    item = await get(store, table or store.tables.writer, {"articleId": {"S": article}})
    return store_requests.counts(item)


async def rows(store: Store, kind: str, ref: str) -> dict[str, Counts]:
    """A partition's rows: hour → counts, or all-time host → (views, 0)."""
    table = store.tables.timeline if kind == "timeline" else store.tables.referrers
    sort = "hour" if kind == "timeline" else "host"
    items = (await store.ddb.query(**store_requests.query(table, "target", ref, consistent=True)))[
        "Items"
    ]
    if kind == "referrer":
        return {
            i[sort]["S"]: Counts(int(i["views"]["N"]), 0)
            for i in items
            if not i[sort]["S"].startswith("#")
        }
    return {i[sort]["S"]: store_requests.counts(i) for i in items}


async def seed(
    store: Store,
    target: Target,
    total: int,
    unique: int,
    title: str = "",
    hosts: int = 1,
    hour: str = H1,
) -> None:
    """Views of `target` as a node stores them: counts, a timeline bucket, referrer rows
    (spread over `hosts` hosts), the site's rows and the page index."""
    row_deltas = {
        row: Delta(total, unique) for row in (*hour_rows(target.ref, hour), *hour_rows(SITE, hour))
    }
    for i in range(hosts):
        for row in view_rows(target, hour, f"h{i}.example"):
            if row.table == "referrer":
                row_deltas[row] = Delta(row_deltas.get(row, Delta()).total + 1, 0)
    flush = flush_of(targets={target: Delta(total, unique, title or None)}, rows=row_deltas)
    await store.pages.register([target], None)  # as a node does at its first view
    result = await store.flush(flush)
    assert not (result.failed_targets or result.failed_rows or result.rejected_rows)


async def test_a_rename_merges_every_count_onto_the_new_id(local_store: Store):
    store = local_store
    await seed(store, OLD, 5, 3, "Old title", hosts=2)
    await seed(store, NEW, 2, 2, "New title", hosts=1, hour=H2)
    site_before = await rows(store, "timeline", SITE), await rows(store, "referrer", SITE)

    moved = await Operations(store).run(Plan("old", "new"))

    assert (moved.views, moved.now, moved.resumed) == (Counts(5, 3), Counts(7, 5), False)
    # An hour (its four rollups move in its transaction), two hosts' all-time and hour,
    # day, month rows, the writer item.
    assert moved.items == 1 + 2 * 4 + 1
    assert await writer(store, "new") == Counts(7, 5)
    assert await writer(store, "new", store.tables.reader) == Counts(7, 5)  # copied at once
    assert await writer(store, "old") == Counts(0, 0)
    assert (await get(store, store.tables.writer, {"articleId": {"S": "new"}}))["articleTitle"] == {
        "S": "New title"
    }  # the new id's own title stays
    assert "articleTitle" not in await get(store, store.tables.writer, {"articleId": {"S": "old"}})
    assert await rows(store, "timeline", NEW.ref) == {H1: Counts(5, 3), H2: Counts(2, 2)}
    assert await rows(store, "referrer", NEW.ref) == {
        "h0.example": Counts(2, 0),
        "h1.example": Counts(1, 0),
    }
    assert set((await rows(store, "timeline", OLD.ref)).values()) == {Counts(0, 0)}
    assert (
        await rows(store, "timeline", SITE),
        await rows(store, "referrer", SITE),
    ) == site_before  # the site's totals are the same views
    assert await Rollups(store).check() == []  # every rollup moved with its hour
    assert (await rows(store, "timeline", "all"))[NEW.ref] == Counts(7, 5)
    assert set(await store.tracked()) == {NEW}
    record = await Operations(store).current(OLD)
    assert record is not None and (record.plan.to, record.state) == ("new", "done")
    # Over the live feed: the new id's count, and a reset of the old one, whose
    # larger count the nodes must forget (counts merge by maximum), and of the new one
    # (it may have taken the old one's title).
    said = [feed.read(payload) for _, payload in await store.feed.read(0)]
    assert ["new", 7, 5] in [list(c) for s in said if isinstance(s, list) for c in s]
    assert feed.Reset([("post", "old"), ("post", "new")]) in said


async def test_a_run_stopped_midway_is_finished_by_the_next_exactly_once(local_store: Store):
    store = local_store
    await seed(store, OLD, 40, 30, hosts=30)
    plan = Plan("old", "new")
    ops = Operations(store)
    await store.ddb.put_item(
        **moves.start_request(
            store.tables.index, Operation(plan, "running", "2026-01-01T00:00:00Z")
        )
    )
    sources = plan.moves(await ops.sources(OLD))
    for source in sources[:12]:  # a run that was killed after 12 moves
        assert await ops.move(plan, source) == source
    # The same moves resent as they were read (a resumed run racing the old one):
    # each finds the source moved since, reads it again, and moves nothing more.
    for source in sources[:12]:
        assert await ops.move(plan, source) is None
    await seed(store, OLD, 3, 1, hosts=2)  # a node counts more views meanwhile

    moved = await ops.run(plan)

    assert moved.resumed and moved.now == Counts(43, 31)
    assert await writer(store, "new") == Counts(43, 31) and await writer(store, "old") == ZERO
    referred = await rows(store, "referrer", NEW.ref)
    assert sum(c.total for c in referred.values()) == 32
    assert referred["h0.example"] == referred["h1.example"] == Counts(2, 0)
    assert await rows(store, "timeline", NEW.ref) == {H1: Counts(43, 31)}


ZERO = Counts(0, 0)


async def test_two_runs_at_once_move_each_count_once(local_store: Store):
    store = local_store
    await seed(store, OLD, 25, 20, hosts=20)
    first, second = await asyncio.gather(
        Operations(store).run(Plan("old", "new")), Operations(store).run(Plan("old", "new"))
    )
    # Each move applied by one of them: an hour (with its 4 rollups), 20 hosts'
    # all-time, hour, day and month rows, the writer item.
    assert first.items + second.items == 1 + 20 * 4 + 1
    assert await writer(store, "new") == Counts(25, 20)
    assert sum(c.total for c in (await rows(store, "referrer", NEW.ref)).values()) == 20
    assert await rows(store, "timeline", NEW.ref) == {H1: Counts(25, 20)}


async def test_a_renamed_ids_resent_write_is_refused_by_the_item_left_behind(local_store: Store):
    """The emptied item keeps each node's flush number, so a write whose answer was lost
    before the rename, resent after it, cannot count its views a second time."""
    store = local_store
    flush = flush_of(targets={OLD: Delta(4, 4)})
    await store.pages.register([OLD], None)
    await store.flush(flush)
    await Operations(store).run(Plan("old", "new"))
    result = await store.flush(flush)  # the same writes again: a resend
    assert not result.failed_targets
    assert await writer(store, "old") == ZERO and await writer(store, "new") == Counts(4, 4)


async def test_a_delete_takes_the_article_out_of_everything(local_store: Store):
    store = local_store
    await seed(store, OLD, 5, 3, "Old", hosts=2)
    await seed(store, NEW, 2, 2, hosts=1)
    moved = await Operations(store).run(Plan("old"))
    assert moved.views == Counts(5, 3) and moved.now is None
    assert await writer(store, "old") == ZERO
    assert await rows(store, "timeline", SITE) == {H1: Counts(2, 2)}
    assert await rows(store, "referrer", SITE) == {"h0.example": Counts(1, 0), "h1.example": ZERO}
    assert set(await store.tracked()) == {NEW}
    purged = await Operations(store).run(Plan("old"), purge=True)
    # The writer item, the hour and its 4 rollups, two hosts' four rows each.
    assert purged.purged == 1 + 1 + 4 + 2 * 4
    assert await Rollups(store).check() == []
    assert await get(store, store.tables.writer, {"articleId": {"S": "old"}}) == {}
    assert await rows(store, "referrer", OLD.ref) == {} == await rows(store, "timeline", OLD.ref)
    assert await writer(store, "new") == Counts(2, 2)


async def test_an_unfinished_operation_must_be_finished_first(local_store: Store):
    store = local_store
    await seed(store, OLD, 1, 1)
    await store.ddb.put_item(
        **moves.start_request(
            store.tables.index, Operation(Plan("old", "new"), "running", "2026-01-01T00:00:00Z")
        )
    )
    for other in (Plan("old"), Plan("old", "other")):
        with pytest.raises(ClientError, match="rename of 'old' to 'new' is not finished") as no:
            await Operations(store).run(other)
        assert no.value.code == "operation_running"
    assert await writer(store, "old") == Counts(1, 1)
    assert (await Operations(store).run(Plan("old", "new"))).resumed
    assert (await Operations(store).run(Plan("old"))).views == ZERO  # free again


def planned(tmp: Path, tally: Sums, content: str = "c" * 64) -> tuple[ImportPlan, ImportRecord]:
    """A plan of `tally`'s adds, and the record of its import (id from `content`)."""
    tmp.mkdir(parents=True, exist_ok=True)
    plan = ImportPlan(tmp)
    plan.take(tally)
    s = plan.summary()
    return plan, ImportRecord(
        content[:12],
        content,
        s.plan,
        0,
        "running",
        "x.csv",
        "goatcounter-v2",
        s.chunks,
        s.adds,
        s.posts,
        s.pages,
        s.views,
        s.unique,
        "",
    )


def goat_tally(pages: int = 1) -> Sums:
    tally = Sums()
    for i in range(12):
        tally.add_views(Target("post", f"p{i % 4}"), 1, i % 2, H1, f"r{i % 3}.example")
    for page in range(pages):
        tally.add_views(Target("page", f"P{page}"), 3, 2, H2)
    return tally


async def nonzero(store: Store, kind: str, ref: str) -> dict[str, Counts]:
    return {key: counts for key, counts in (await rows(store, kind, ref)).items() if counts.total}


async def listed(store: Store) -> int:
    """The page index's count, which must always equal its entries."""
    count = await store.pages.count()
    assert count == len(await store.tracked())
    return count


async def imported(store: Store, plan: ImportPlan, record: ImportRecord) -> ImportRecord:
    done = Imports(store)
    begun = await done.begin(record)
    assert not begun.already
    await done.write(begun.record, plan.chunks())
    return await done.settle(begun.record, plan.targets())


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of 5 adds, so that a small plan has many."""
    monkeypatch.setattr(import_plan, "CHUNK_ADDS", 5)
    return 5


async def test_an_import_adds_once_however_often_it_is_run(
    local_store: Store, tmp_path: Path, small_chunks: int
):
    store = local_store
    await seed(store, Target("post", "p0"), 10, 10)  # counted here before the import
    plan, fresh = planned(tmp_path, goat_tally())
    # 97 adds: 4 posts and a page; for them and the site each hour, its 4 rollups, and
    # each host's all-time row and its rows in the hour, the day and the month.
    assert fresh.chunks == 20
    done = await imported(store, plan, fresh)
    assert (done.state, done.attempt) == ("done", 1)
    assert await writer(store, "p0") == Counts(13, 10)
    assert await writer(store, "p1", store.tables.reader) == Counts(3, 3)  # copied at once
    assert store_requests.counts(
        await get(store, store.tables.pages, {"pageName": {"S": "P0"}})
    ) == Counts(3, 2)
    assert (await rows(store, "timeline", SITE))[H1] == Counts(22, 16)
    assert (await rows(store, "referrer", SITE))["r0.example"] == Counts(4, 0)
    assert Target("page", "P0") in await store.tracked()
    again = await Imports(store).begin(fresh)
    assert again.already and again.record == done
    # A run stopped midway: two chunks in, then the whole run again adds the rest once.
    plan2, fresh2 = planned(tmp_path / "2", goat_tally(), "d" * 64)
    begun = await Imports(store).begin(fresh2)
    chunks = list(plan2.chunks())
    assert await Imports(store).write(begun.record, chunks[:2]) == 2
    resumed = await Imports(store).begin(fresh2)
    assert resumed.resumed and resumed.record == begun.record
    assert await Imports(store).write(resumed.record, plan2.chunks()) == len(chunks) - 2
    assert await Imports(store).write(resumed.record, plan2.chunks()) == 0  # and no more
    assert await writer(store, "p0") == Counts(16, 10)
    assert (await rows(store, "timeline", SITE))[H1] == Counts(34, 22)


async def test_the_same_records_mapped_otherwise_wait_for_an_undo(
    local_store: Store, tmp_path: Path, small_chunks: int
):
    """Issue 21: a GoatCounter import with the wrong --path-pattern could not be redone.
    It is refused while the first stands; once undone, it goes in, as attempt 2."""
    store = local_store
    await seed(store, Target("post", "p0"), 10, 10, hosts=0)
    before = {
        ref: (await nonzero(store, "timeline", ref), await nonzero(store, "referrer", ref))
        for ref in (SITE, "post#p0")
    }
    plan, fresh = planned(tmp_path, goat_tally())
    first = await imported(store, plan, fresh)
    assert await listed(store) == 5  # p0 (a node's), p1-p3 and P0 (the import's)
    other_plan, other = planned(tmp_path / "other", goat_tally(pages=2))
    assert other.id == first.id and other.plan != first.plan
    with pytest.raises(
        ClientError, match=f"Undo it first: livecount import --undo {first.id}"
    ) as refused:
        await Imports(store).begin(other)
    assert refused.value.code == "imported_before"

    undone = await ImportUndo(store).undo(first.id)
    assert (undone.record.state, undone.chunks, undone.kept) == ("undone", fresh.chunks, 0)
    assert await writer(store, "p0") == Counts(10, 10)
    assert await writer(store, "p0", store.tables.reader) == Counts(10, 10)
    for i in range(1, 4):  # emptied: at zero, never below, and out of the listing
        assert await writer(store, f"p{i}") == Counts(0, 0)
        assert await rows(store, "timeline", f"post#p{i}") == {H1: Counts(0, 0)}
    assert await store.tracked() == [Target("post", "p0")]
    assert await listed(store) == 1  # the index's count went down with its entries
    assert {
        ref: (await nonzero(store, "timeline", ref), await nonzero(store, "referrer", ref))
        for ref in before
    } == before  # rows emptied stay, at zero
    again = await ImportUndo(store).undo(first.id)
    assert again.already and again.chunks == 0

    redone = await imported(store, other_plan, other)
    assert (redone.attempt, redone.state) == (2, "done")
    assert await listed(store) == 6
    assert sorted(await store.tracked()) == sorted(
        [Target("page", "P0"), Target("page", "P1"), *(Target("post", f"p{i}") for i in range(4))]
    )
    assert await writer(store, "p1") == Counts(3, 3)


async def test_an_undo_is_exact_while_a_node_counts_and_after_a_rename(
    local_store: Store, tmp_path: Path, small_chunks: int
):
    """Servers only ADD, which commutes with the undo's subtractions; views a rename
    moved since the import stay where they went, and nothing goes below zero."""
    store = local_store
    plan, fresh = planned(tmp_path, goat_tally())
    await imported(store, plan, fresh)
    await Operations(store).run(Plan("p3", "moved"))  # p3's imported views went to `moved`
    node_views = 0

    async def node() -> None:
        nonlocal node_views
        for _ in range(20):
            await seed(store, Target("post", "p0"), 1, 1, hosts=0)
            node_views += 1

    undone, _ = await asyncio.gather(ImportUndo(store).undo(fresh.id), node())
    # p3's writer item, its hour and its 4 rollups, its 3 hosts' 4 rows each.
    assert undone.kept == 1 + 5 + 3 * 4
    assert await writer(store, "p0") == Counts(node_views, node_views)
    assert await writer(store, "moved") == Counts(3, 3)  # the rename's
    assert await writer(store, "p3") == Counts(0, 0)
    assert (await rows(store, "timeline", SITE))[H1] == Counts(node_views, node_views)
    assert all(c.total >= 0 for c in (await rows(store, "referrer", SITE)).values())
    # p0 counted since, `moved` the rename's: kept; p1, p2, p3 emptied: out.
    assert sorted(await store.tracked()) == [Target("post", "moved"), Target("post", "p0")]
    assert await listed(store) == 2


async def test_an_undo_marks_chunks_never_written_so_a_late_run_adds_none(
    local_store: Store, tmp_path: Path, small_chunks: int
):
    store = local_store
    plan, fresh = planned(tmp_path, goat_tally())
    begun = await Imports(store).begin(fresh)
    chunks = list(plan.chunks())
    await Imports(store).write(begun.record, chunks[:2])  # then killed
    undone = await ImportUndo(store).undo(fresh.id)
    assert undone.chunks == 2
    # The killed run, had it gone on, finds every chunk taken: it adds nothing.
    assert await Imports(store).write(begun.record, plan.chunks()) == 0
    with pytest.raises(ClientError) as moved_on:
        await Imports(store).settle(begun.record, plan.targets())
    assert moved_on.value.code == "import_running"
    for i in range(4):
        assert await writer(store, f"p{i}") == Counts(0, 0)
    assert set((await rows(store, "timeline", SITE)).values()) <= {Counts(0, 0)}
    assert [r.state for r in await Imports(store).records()] == ["undone"]


async def test_a_restore_cut_short_is_finished_by_the_same_backup_only(
    local_store: Store, tmp_path: Path, small_chunks: int
):
    """A restore writes into a store that holds nothing (`Imports.holds`): killed half
    way, the store holds its own chunks only, so the same backup may finish it."""
    store = local_store
    assert await Imports(store).holds() is None
    plan, fresh = planned(tmp_path, goat_tally())
    begun = await Imports(store).begin(fresh)
    await Imports(store).write(begun.record, plan.chunks())  # then killed, unsettled
    assert await Imports(store).holds(fresh.id) is None
    assert await Imports(store).holds("another") == "1 imports"
    await Imports(store).settle(begun.record, plan.targets())
    assert await Imports(store).holds(fresh.id) == "this backup, restored before"
    await ImportUndo(store).undo(fresh.id)
    assert await Imports(store).holds() is None  # rows at zero hold nothing
    await seed(store, Target("post", "p0"), 1, 1)
    assert await Imports(store).holds() == "1 posts and pages"


async def test_an_export_imported_elsewhere_is_the_same_store(
    local_store: Store, dynamodb_local_url: str, tmp_path: Path
):
    store = local_store
    await seed(store, OLD, 5, 3, "Old", hosts=2)
    await seed(store, Target("page", "Home_Page"), 4, 4, hour=H2)
    await Operations(store).run(Plan("old", "new"))  # emptied rows are not exported
    records = [r async for r in Exports(store).records()]
    assert {r.target for r in records if r.record == "count"} == {"post#new", "page#Home_Page"}
    assert all(r.total for r in records)
    text = exports.ndjson_head("2026-01-01T00:00:00Z") + "".join(map(exports.ndjson_line, records))
    plan = ImportPlan(tmp_path)
    reader = Reader(PathMap(PageRules(unmatched="refuse")))
    for tally in reader.tallies(io.BytesIO(text.encode())):
        plan.take(tally)
    plan.check(reader)
    async for other in open_store(dynamodb_local_url, "copy_" + store.tables.writer[:11]):
        await imported(other, plan, plan.record(reader, "export.ndjson"))
        assert [r async for r in Exports(other).records()] == records
        # Its hours' rollups come with them: an all-time chart of the copy is the same.
        assert await Rollups(other).check() == []
        assert await rows(other, "timeline", "all") == {
            NEW.ref: Counts(5, 3),
            "page#Home_Page": Counts(4, 4),
            SITE: Counts(9, 7),
        }


async def test_an_emptied_id_is_gone_and_renaming_it_lists_nothing_new(local_store: Store):
    """Issue 22: renaming an id an earlier rename emptied moved "0 items" and listed the
    new id at zero. Its items stay at zero (they hold the nodes' flush numbers), but
    there is nothing to move: refused, and nothing new listed."""
    await seed(local_store, OLD, 3, 2)
    await Operations(local_store).run(Plan("old", "new"))
    with pytest.raises(ClientError, match="no views left") as refused:
        await Operations(local_store).run(Plan("old", "fresh-id"))
    assert refused.value.code == "never_counted"
    assert Target("post", "fresh-id") not in await local_store.tracked()
    assert (await Operations(local_store).run(Plan("old"), purge=True)).views == Counts(0, 0)


async def test_an_id_never_counted_is_refused(local_store: Store):
    for plan in (Plan("ghost", "new"), Plan("ghost")):
        with pytest.raises(ClientError, match="'ghost' was never counted") as refused:
            await Operations(local_store).run(plan)
        assert refused.value.code == "never_counted"
    assert await Operations(local_store).current(Target("post", "ghost")) is None
    assert await local_store.tracked() == []


async def test_a_prefix_deletes_a_load_tests_posts_and_pages_and_nothing_else(local_store: Store):
    kept = [Target("post", "hello"), Target("page", "Home_Page")]
    tested = [Target("post", f"loadtest-{i}") for i in range(3)] + [Target("page", "loadtest-p")]
    for target in (*kept, *tested):
        await seed(local_store, target, 2, 1)
    await seed(local_store, Target("post", "loadtest-emptied"), 1, 1)
    await Operations(local_store).run(Plan("loadtest-emptied", "hello"))
    emptied = Target("post", "loadtest-emptied")
    ops = BulkDeletes(local_store)
    found = await ops.matching("loadtest-")
    # An emptied id is looked at again (views may have reached it since), at zero here.
    assert found == dict.fromkeys(tested, Counts(2, 1)) | {emptied: Counts(0, 0)}
    steps: list[tuple[int, int]] = []
    deleted = await ops.delete_all(
        Deleted(list(found)), progress=lambda *s: steps.append(s), chunk=2
    )
    assert sorted(m.plan.target for m in deleted.done) == sorted(tested)
    assert deleted.empty == {emptied}  # skipped, without a write
    assert deleted.views == Counts(8, 4) and not deleted.refused and not deleted.left
    assert sorted(steps) == [(i, 5) for i in range(1, 6)]
    assert (await ops.current(emptied)).plan == Plan("loadtest-emptied", "hello")  # type: ignore[union-attr]
    assert sorted(await local_store.tracked()) == sorted(kept)
    assert await local_store.pages.count() == len(kept)  # the count of the entries, in step
    assert await writer(local_store, "hello") == Counts(3, 2)
    assert await rows(local_store, "timeline", SITE) == {H1: Counts(5, 3)}
    reset = await resets(local_store)
    assert ("page", "loadtest-p") in reset and ("post", "loadtest-2") in reset
    assert set((await ops.matching("loadtest-")).values()) == {Counts(0, 0)}


async def resets(store: Store) -> set[tuple[str, str]]:
    """Every (kind, id) the live feed has told the nodes to read again."""
    said = [feed.read(payload) for _, payload in await store.feed.read(0)]
    return {t for r in said if isinstance(r, feed.Reset) for t in r.targets}


async def test_a_prefix_delete_stopped_leaves_each_id_whole_or_untouched(local_store: Store):
    """Ctrl-C (`stop`): no id begins after it; those recorded as running and not begun
    are backed out, so each id is deleted whole or untouched, and another run deletes
    the rest. An id another operation holds is refused, the others go on."""
    tested = [Target("post", f"t{i}") for i in range(6)]
    for target in tested:
        await seed(local_store, target, 1, 1)
    ops = BulkDeletes(local_store)
    held = Operation(Plan("t5", "elsewhere"), "running", "2026-01-01T00:00:00Z")
    await local_store.ddb.put_item(**moves.start_request(local_store.tables.index, held))
    stop = asyncio.Event()
    deleted = await ops.delete_all(
        Deleted(list(tested)), stop, progress=lambda done, of: stop.set(), chunk=4, at_once=1
    )
    assert [m.plan.id for m in deleted.done] == ["t0"]  # the first to finish stops it
    assert not deleted.under_way and deleted.left == tested[1:]
    for target in tested[1:5]:  # untouched: counts, listing, no operation record
        assert await writer(local_store, target.id) == Counts(1, 1)
        assert await ops.current(target) is None
    assert (await ops.current(tested[0])).state == "done"  # type: ignore[union-attr]
    again = await ops.delete_all(Deleted(list(await ops.matching("t"))))
    assert sorted(m.plan.id for m in again.done) == ["t1", "t2", "t3", "t4"]
    assert list(again.refused) == [Target("post", "t5")]
    assert "rename of 't5' to 'elsewhere' is not finished" in again.refused[tested[5]]
    assert await writer(local_store, "t5") == Counts(1, 1)


async def test_a_page_is_deleted_or_renamed_like_a_post(local_store: Store):
    """Issue 21: `livecount admin delete Home_Page` answered "never counted"."""
    store = local_store
    home, about = Target("page", "Home_Page"), Target("page", "/about")
    await seed(store, home, 5, 3, hosts=2)
    await seed(store, about, 2, 2, hour=H2)
    ops = Operations(store)
    with pytest.raises(ClientError, match="never counted"):
        await ops.run(Plan("Home_Page"))  # no post of that name
    moved = await ops.run(Plan("Home_Page", None, "page"))
    # its item, its hour (with its rollups), its two hosts' all-time and period rows
    assert (moved.views, moved.items) == (Counts(5, 3), 10)
    assert await Rollups(store).check() == []
    page = await get(store, store.tables.pages, {"pageName": {"S": "Home_Page"}})
    assert store_requests.counts(page) == ZERO
    assert set((await rows(store, "timeline", home.ref)).values()) == {ZERO}
    assert await rows(store, "timeline", SITE) == {H1: ZERO, H2: Counts(2, 2)}
    assert await rows(store, "referrer", SITE) == {"h0.example": Counts(1, 0), "h1.example": ZERO}
    assert await store.tracked() == [about] and await store.pages.count() == 1
    renamed = await ops.run(Plan("/about", "/about-us", "page"))
    assert renamed.now == Counts(2, 2)
    assert await rows(store, "timeline", "page#/about-us") == {H2: Counts(2, 2)}
    assert await store.tracked() == [Target("page", "/about-us")]
    assert await store.pages.count() == 1
    # Pages have no feed of counts: both ids of a rename are read again.
    assert {("page", n) for n in ("Home_Page", "/about", "/about-us")} <= await resets(store)
    record = await ops.current(home)
    assert record is not None and record.plan == Plan("Home_Page", None, "page")
    purged = await ops.run(Plan("Home_Page", None, "page"), purge=True)
    assert purged.purged == 14
    assert await get(store, store.tables.pages, {"pageName": {"S": "Home_Page"}}) == {}


async def test_renames_that_cross_do_not_run_together(local_store: Store):
    """Found by a hostile trial: A→B and B→A at once swapped the two articles. An
    operation whose target another moves away (or whose source another moves into)
    backs out until that one is finished."""
    await seed(local_store, OLD, 5, 5, "Old")
    await seed(local_store, NEW, 3, 3, "New")
    ops = Operations(local_store)
    crossing = Operation(Plan("new", "old"), "running", "2026-01-01T00:00:00Z")  # cut short
    await local_store.ddb.put_item(TableName=local_store.tables.index, Item=crossing.item())
    with pytest.raises(ClientError) as refused:
        await ops.run(Plan("old", "new"))
    assert refused.value.code == "operation_running"
    assert await ops.current(OLD) is None  # backed out: nothing of it was started
    assert await writer(local_store, "old") == Counts(5, 5)
    await ops.run(Plan("new", "old"))  # the one cut short finishes, then the other may go
    assert await writer(local_store, "old") == Counts(8, 8)
    await ops.run(Plan("old", "new"))
    assert await writer(local_store, "new") == Counts(8, 8)


async def test_a_row_counted_on_since_it_was_read_is_not_purged(local_store: Store):
    store = local_store
    await seed(store, OLD, 1, 1)
    await Operations(store).run(Plan("old"))
    (source,) = [
        s
        for s in await Operations(store).sources(OLD)
        if s.kind == "referrer" and s.sort == "h0.example"
    ]
    late = Row("referrer", OLD.ref, "h0.example")
    await store.flush(flush_of(rows={late: Delta(1)}))  # a node's write lands meanwhile
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        await store.ddb.delete_item(**Plan("old").purge(source, store.tables))
    assert await rows(store, "referrer", OLD.ref) == {"h0.example": Counts(1, 0)}


async def test_a_delete_purge_of_an_id_renamed_into_twice_can_run_again(local_store: Store):
    store = local_store
    for article in ("p0", "p1"):
        await seed(store, Target("post", article), 3, 3, hosts=3)
        await Operations(store).run(Plan(article, "t"))
    assert sum(c.total for c in (await rows(store, "referrer", "post#t")).values()) == 6
    for _ in range(2):  # the second run finds it done, and nothing left
        await Operations(store).run(Plan("t"), purge=True)
        assert (
            await rows(store, "referrer", "post#t") == {} == await rows(store, "timeline", "post#t")
        )
        assert await get(store, store.tables.writer, {"articleId": {"S": "t"}}) == {}
        assert (
            store_requests.referrer_totals(
                (
                    await store.ddb.query(
                        **store_requests.query(
                            store.tables.referrers, "target", SITE, consistent=True
                        )
                    )
                )["Items"]
            )
            == {}
        )


async def test_renames_and_deletes_racing_two_counting_nodes_move_each_view_once(
    dynamodb_local_url: str, prefix: str
):
    rng = random.Random(3)
    hosts = [f"h{i}.example" for i in range(70)]
    gone = Target("post", "gone")
    sent: Counter[tuple[str, str]] = Counter()
    started = asyncio.Event()  # both nodes have counted a while

    async def count(store: Store) -> None:
        ledger, seq = Ledger(), itertools.count(1)
        for round_ in range(40):
            if round_ == 10:
                started.set()
            for _ in range(8):
                target, host = rng.choice((OLD, gone)), rng.choice(hosts)
                ledger.record(target, refreshed=False, hour=H1, referrer=host, force=True)
                sent[(target.ref, host)] += 1
                sent[(SITE, host)] += 1
            flush = ledger.take(next(seq))
            ledger.complete(flush, await store.flush(flush))
        for _ in range(10):
            if flush := ledger.take(next(seq)):
                ledger.complete(flush, await store.flush(flush))
        assert ledger.idle

    async def operate(store: Store) -> None:
        await started.wait()
        for _ in range(6):  # each pass yields to the counting between its moves
            await Operations(store).run(Plan("old", "new"))
            await Operations(store).run(Plan("gone"))

    async with (
        Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="a") as a,
        Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="b") as b,
    ):
        await a.create_tables()
        await asyncio.gather(count(a), count(b), operate(a))
        got = {
            ref: {h: c.total for h, c in (await rows(a, "referrer", ref)).items() if c.total}
            for ref in (OLD.ref, NEW.ref, gone.ref, SITE)
        }
        # Each rollup moved with its hour, however the moves and the flushes raced.
        assert await Rollups(a).check() == []

    def sent_to(ref: str) -> Counter[str]:
        return Counter({h: n for (r, h), n in sent.items() if r == ref})

    # Every view of old is on old or new; the site lost exactly what the deletes took.
    assert Counter(got[OLD.ref]) + Counter(got[NEW.ref]) == sent_to(OLD.ref)
    site = sent_to(SITE) - sent_to(gone.ref) + Counter(got[gone.ref])
    assert got[SITE] == dict(site)
