"""Journal replay rebuilds the ledger exactly; files rotate once everything is stored."""

from functools import partial
from pathlib import Path

import msgspec
import pytest
from livecount.core import journal
from livecount.core.ledger import SITE, Counts, FlushResult, Ledger
from livecount.core.pages import Target
from livecount.core.report_rows import hour_rows
from livecount.node.journal import Journal, JournalBusy
from livecount.node.journal_files import RESERVE, RESERVE_BYTES, Disk, JournalFiles

A, B = Target("post", "a"), Target("page", "Home_Page")
H = "2026-11-24T07"


def decode(records: list[bytes]) -> list[list[object]]:
    return [msgspec.json.decode(r) for r in records]


def test_replay_rebuilds_pending_and_unsettled_writes():
    live, history = Ledger(), []

    def view(target: Target, refreshed: bool = False, host: str | None = None) -> None:
        live.record(target, refreshed=refreshed, hour=H, referrer=host)
        history.append(journal.view_record(target, refreshed, H, None, host))

    view(A, host="x.org")
    view(B)
    first = live.take(100)
    history.append(journal.taken_record(first.seq))
    view(A, refreshed=True)
    result = FlushResult(failed_targets={A})
    live.complete(first, result)
    history.append(journal.completed_record(first, result))
    second = live.take(101)
    history.append(journal.taken_record(second.seq))  # then a crash: never completed
    view(B)

    rebuilt = Ledger()
    summary = journal.replay(decode(history), rebuilt)
    assert (summary.views, summary.last_seq) == (4, 101)
    assert rebuilt.pending_views == live.pending_views == 3  # B's first view was stored
    again = rebuilt.take(102)
    # The unsettled writes go again with their own sequence numbers.
    assert again.targets[A].seq == 100 and again.targets[A].delta.total == 1
    assert again.targets[B].seq == 102 and again.targets[B].delta.total == 1
    rebuilt.complete(again, FlushResult())
    last = rebuilt.take(103)
    assert last.targets[A].delta.total == 1  # the refreshed view, after its elder
    rebuilt.complete(last, FlushResult())
    assert rebuilt.idle


def test_an_empty_journal_replays_to_an_idle_ledger():
    ledger = Ledger()
    assert journal.replay([], ledger).records == 0 and ledger.idle


async def test_appends_are_durable_and_rotation_drops_stored_history(tmp_path: Path):
    log = Journal(tmp_path)
    log.open()
    await log.append(journal.view_record(A, False, H, "T", None))
    await log.append(journal.view_record(B, True, H, None, "x.org"))
    assert [r[0] for r in log.read()] == ["v", "v"]
    await log.rotate(42)
    await log.append(journal.view_record(A, False, H, None, None))
    await log.close()
    files = sorted(tmp_path.glob("journal-*.log"))
    assert len(files) == 1
    records = list(Journal(tmp_path).read())
    assert records[0] == ["s", 42] and records[1][:3] == ["v", "post", "a"]


async def test_a_torn_last_line_is_dropped_and_appends_go_to_a_new_file(tmp_path: Path):
    (tmp_path / "journal-000000000.log").write_bytes(
        journal.view_record(A, False, H, None, None) + b'\n["v","post","a",fal'
    )
    log = Journal(tmp_path)
    assert len(list(log.read())) == 1
    log.open()
    await log.append(journal.view_record(B, False, H, None, None))
    await log.close()
    ledger = Ledger()
    journal.replay(Journal(tmp_path).read(), ledger)
    assert ledger.current(A) == Counts(1, 1) and ledger.current(B) == Counts(1, 1)


def test_one_journal_serves_one_process(tmp_path: Path):
    first = Journal(tmp_path)
    first.lock()
    try:
        with pytest.raises(JournalBusy, match="--data-dir"):
            Journal(tmp_path).lock()
    finally:
        first._lock.close()
    Journal(tmp_path).lock()  # free again once the holder is gone


def test_unstored_views_stay_with_their_tables(tmp_path: Path):
    log = Journal(tmp_path)
    log.bind("embedded us-east-1 blog_", unstored=False)
    log.bind("embedded us-east-1 other_", unstored=False)  # nothing waiting: free to move
    with pytest.raises(JournalBusy, match="other_"):
        log.bind("embedded us-east-1 blog_", unstored=True)
    log.bind("embedded us-east-1 other_", unstored=True)  # its own tables: fine


def test_replay_forgets_bases_so_stored_counts_are_read_again():
    """After a restart the ledger's bases would be only the replayed views: a page
    must never be shown those instead of the stored count."""
    live, history = Ledger(), []
    live.observe(A, Counts(10, 10))
    live.record(A, refreshed=False, hour=H)
    history.append(journal.view_record(A, False, H, None, None))
    rebuilt = Ledger()
    journal.replay(decode(history), rebuilt)
    assert not rebuilt.has_base(A) and rebuilt.pending_views == 1
    rebuilt.observe(A, Counts(10, 10))  # the stored count, read before anything is shown
    assert rebuilt.current(A) == Counts(11, 11)


def test_rejected_writes_are_not_replayed():
    live, history = Ledger(), []
    live.record(A, refreshed=False, hour=H)
    history.append(journal.view_record(A, False, H, None, None))
    flush = live.take(7)
    history.append(journal.taken_record(7))
    result = FlushResult(rejected_targets={A: "ValidationException"})
    live.complete(flush, result)
    history.append(journal.completed_record(flush, result))
    rebuilt = Ledger()
    journal.replay(decode(history), rebuilt)
    again = rebuilt.take(8)
    assert A not in again.targets and rebuilt.pending_views == 0


class FailingDisk(Disk):
    """Writes fail while `full` is set, after writing part of the data, as ENOSPC does;
    cuts fail while `stuck` is set."""

    def __init__(self) -> None:
        self.full = False
        self.stuck = False

    def truncate(self, fd: int, size: int) -> None:
        if self.stuck:
            raise OSError(5, "Input/output error")
        super().truncate(fd, size)

    def append(self, fd: int, data: bytes) -> None:
        if self.full:
            super().append(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        super().append(fd, data)


async def test_a_failed_write_is_not_applied_and_is_cut_off_the_file(tmp_path: Path):
    disk = FailingDisk()
    log = Journal(tmp_path, disk)
    log.open()
    applied: list[str] = []

    def apply(name: str) -> str:
        applied.append(name)
        return name

    assert (
        await log.append(journal.view_record(A, False, H, None, None), lambda: apply("first"))
        == "first"
    )
    disk.full = True
    with pytest.raises(Exception, match="journal could not write") as caught:
        await log.append(journal.view_record(B, False, H, None, None), lambda: apply("second"))
    assert caught.value.code == "unavailable"  # type: ignore[attr-defined]
    assert not log.healthy and applied == ["first"]
    disk.full = False
    await log.append(journal.view_record(A, True, H, None, None), lambda: apply("third"))
    assert log.healthy and applied == ["first", "third"]
    await log.close()
    records = list(Journal(tmp_path).read())
    assert [(r[1], r[3]) for r in records] == [("post", False), ("post", True)]


async def test_records_apply_in_the_order_they_were_appended(tmp_path: Path):
    log = Journal(tmp_path)
    log.open()
    order: list[int] = []
    waits = [log.append(journal.taken_record(n), partial(order.append, n)) for n in range(50)]
    for waiting in waits:
        await waiting
    await log.close()
    assert order == list(range(50))


def test_the_store_a_journal_is_bound_to_survives_an_empty_prefix(tmp_path: Path):
    """`embedded us-east-1 ` (no --table-prefix) must match itself after a restart."""
    Journal(tmp_path).bind("embedded us-east-1 ", unstored=True)
    Journal(tmp_path).bind("embedded us-east-1 ", unstored=True)


async def test_rotation_frees_a_full_disk_before_it_writes(tmp_path: Path):
    disk = FailingDisk()
    log = Journal(tmp_path, disk)
    log.open()
    await log.append(journal.view_record(A, False, H, None, None))
    disk.full = True
    with pytest.raises(Exception, match="journal could not write"):
        await log.append(journal.view_record(A, False, H, None, None))
    disk.full = False  # the truncate frees space: model it as the disk taking writes again
    await log.rotate(9)
    await log.append(journal.view_record(B, False, H, None, None))
    await log.close()
    assert [r[0] for r in Journal(tmp_path).read()] == ["s", "v"]
    assert len(list(tmp_path.glob("journal-*.log"))) == 1


def test_flushes_in_flight_when_a_run_ended_are_unsettled_from_the_next_runs_start():
    """A crash leaves flush 5 without its completion; the next run replayed it as
    unsettled and resent it in flush 7. Replaying both runs must take the same keys."""
    history = [
        ["v", "post", "a", False, H, None, None],
        ["t", 5, 1],  # first run: A out, no answer
        ["s", 5],  # the next run's file
        ["t", 7, 1],
        ["v", "post", "a", False, H, None, None],
        ["c", 7, [], [], [], [], [], []],  # A's unsettled write (seq 5) applied
    ]
    rebuilt = Ledger()
    summary = journal.replay(history, rebuilt)
    assert summary.last_seq == 7
    pending, unknown = rebuilt.outstanding()
    assert not unknown  # flush 7 carried flush 5's write, and it applied
    assert pending[A] == (1, 1)  # the second view, still to send


def test_journals_from_before_overlapping_flushes_replay_as_they_did():
    """`["t", seq]` records: one flush at a time, an earlier one never completed is
    resent with its own sequence number."""
    history = [
        ["v", "post", "a", False, H, None, None],
        ["t", 3],
        ["v", "page", "Home_Page", True, H, None, None],
        ["t", 4],
        ["c", 4, [A.ref], [], [], [], [], []],
    ]  # flush 4: A's resend unknown again
    rebuilt = Ledger()
    journal.replay(history, rebuilt)
    pending, unknown = rebuilt.outstanding()
    assert set(unknown) == {A} and unknown[A].seq == 3
    # The site's rows of B's view (its hour and the rollups) wait behind their elders,
    # resent with A in flush 4.
    assert pending == dict.fromkeys(hour_rows(SITE, H), (1, 0))


async def test_a_rotation_behind_unstored_records_does_not_happen(tmp_path: Path):
    """A rotation decided when all was stored, but queued behind views that came
    since, would drop them from disk: in the file's order it is not right any more."""
    log = Journal(tmp_path)
    stored = [True]
    log.idle = lambda: stored[0]
    log.open()
    view = log.append(journal.view_record(A, False, H, None, None))
    rotation = log.rotate(5)  # same batch, behind the view
    await view
    await rotation
    stored[0] = False  # that view waits for the store
    await log.rotate(6)  # a later batch: the ledger says not idle
    await log.close()
    assert [r[0] for r in Journal(tmp_path).read()] == ["v"]


async def test_a_full_disk_gives_up_the_ballast_and_a_rotation_brings_it_back(tmp_path: Path):
    disk = FailingDisk()
    log = Journal(tmp_path, disk)
    log.open()
    ballast = tmp_path / RESERVE
    assert ballast.stat().st_size == RESERVE_BYTES
    disk.full = True
    with pytest.raises(Exception, match="journal could not write"):
        await log.append(journal.view_record(A, False, H, None, None))
    assert not ballast.exists()  # its room is for the flushes' records
    disk.full = False
    await log.rotate(3)
    await log.close()
    assert ballast.stat().st_size == RESERVE_BYTES


def test_a_cut_that_failed_is_made_before_the_next_batch(tmp_path: Path):
    """A torn batch the disk would not cut off must not stay in front of later ones:
    replayed, it would count a view that was answered `unavailable`."""
    disk = FailingDisk()
    files = JournalFiles(tmp_path, disk)
    files.open()
    with files.batch():
        files.append(journal.view_record(A, False, H, None, None) + b"\n")
    disk.full = disk.stuck = True
    with pytest.raises(OSError, match="No space"), files.batch():
        files.append(journal.view_record(B, False, H, None, None) + b"\n")
    disk.full = disk.stuck = False
    with files.batch():
        files.append(journal.view_record(A, True, H, None, None) + b"\n")
    files.close()
    assert [(r[1], r[3]) for r in JournalFiles(tmp_path).read()] == [
        ("post", False),
        ("post", True),
    ]
