import itertools

import pytest
from livecount.core.ledger import SITE, ZERO, Busy, Counts, FlushResult, Ledger, Row
from livecount.core.pages import Target

A, B = Target("post", "a"), Target("page", "Home_Page")
H = "2026-11-24T07"
seq = itertools.count(1).__next__


def ledger_with_base(*targets: Target, base: Counts = ZERO) -> Ledger:
    ledger = Ledger()
    for t in targets:
        ledger.observe(t, base)
    return ledger


def test_refreshed_views_count_total_only():
    ledger = ledger_with_base(A, base=Counts(10, 7))
    assert ledger.record(A, hour=H, refreshed=False) == Counts(11, 8)
    assert ledger.record(A, hour=H, refreshed=True) == Counts(12, 8)


def test_views_coalesce_into_one_delta_per_target():
    ledger = ledger_with_base(A, B)
    for _ in range(5):
        ledger.record(A, hour=H, refreshed=False, title="Old")
    ledger.record(A, hour=H, refreshed=True, title="New")
    ledger.record(B, hour=H, refreshed=False)
    flush = ledger.take(seq())
    assert set(flush.targets) == {A, B}
    delta = flush.targets[A].delta
    # The first title: the store keeps a post's first title too (issue 22.6).
    assert (delta.total, delta.unique, delta.title) == (6, 5, "Old")
    assert flush.views == 7


def test_report_rows_count_per_page_and_site_wide():
    ledger = ledger_with_base(A, B)
    ledger.record(A, hour=H, refreshed=False, referrer="news.ycombinator.com")
    ledger.record(B, hour=H, refreshed=True, referrer="news.ycombinator.com")
    ledger.record(B, hour="2026-11-24T08", refreshed=False)
    rows = {row: (w.delta.total, w.delta.unique) for row, w in ledger.take(seq()).rows.items()}
    hn = "news.ycombinator.com"
    hour, day, month = "h#2026-11-24T07", "d#2026-11-24", "m#2026-11"
    # The hour rows, and the hour's, day's, month's and all time's rollups, per page and
    # for the site; a referrer row per (target, host), all time's and each bucket's.
    # Referrers keep no unique count.
    assert {r: c for r, c in rows.items() if r.table == "referrer"} == {
        Row("referrer", ref, sort): (n, 0)
        for ref, n in ((A.ref, 1), (B.ref, 1), (SITE, 2))
        for sort in (hn, f"#{hour}#{hn}", f"#{day}#{hn}", f"#{month}#{hn}")
    }
    assert {r: c for r, c in rows.items() if r.table == "timeline"} == {
        Row("timeline", A.ref, H): (1, 1),
        Row("timeline", B.ref, H): (1, 0),
        Row("timeline", B.ref, "2026-11-24T08"): (1, 1),
        Row("timeline", SITE, H): (2, 1),
        Row("timeline", SITE, "2026-11-24T08"): (1, 1),
        Row("timeline", hour, A.ref): (1, 1),
        Row("timeline", hour, B.ref): (1, 0),
        Row("timeline", hour, SITE): (2, 1),
        Row("timeline", "h#2026-11-24T08", B.ref): (1, 1),
        Row("timeline", "h#2026-11-24T08", SITE): (1, 1),
        **{
            Row("timeline", bucket, ref): counts
            for bucket in (day, month, "all")
            for ref, counts in ((A.ref, (1, 1)), (B.ref, (2, 1)), (SITE, (3, 2)))
        },
    }


def test_what_is_listed_is_forgotten_with_its_base():
    """Listed in the page index at a first view (`aws/store_index.py`); a rename or
    delete takes an id out, so the node forgets it with its count."""
    ledger = ledger_with_base(A, B)
    ledger.listed.update([A, B])
    ledger.forget_bases([A])
    assert ledger.listed == {B}
    ledger.forget_bases()  # a journal replay's end
    assert not ledger.listed


def test_a_node_reads_its_own_writes_while_a_flush_is_in_flight():
    ledger = ledger_with_base(A, base=Counts(10, 10))
    ledger.record(A, hour=H, refreshed=False)
    flush = ledger.take(seq())
    assert ledger.current(A) == Counts(11, 11)
    ledger.record(A, hour=H, refreshed=True)
    assert ledger.current(A) == Counts(12, 11)
    ledger.complete(flush, FlushResult(applied={A: Counts(11, 11)}))
    assert ledger.current(A) == Counts(12, 11)
    assert ledger.pending_views == 1


def test_a_write_of_unknown_outcome_is_resent_unchanged_before_anything_newer():
    ledger = ledger_with_base(A, B)
    ledger.record(A, hour=H, refreshed=False, referrer="x.org")
    first = ledger.take(10)
    ledger.record(A, hour=H, refreshed=False)
    ledger.record(B, hour=H, refreshed=False)
    failed_row = Row("referrer", A.ref, "x.org")
    ledger.complete(first, FlushResult(failed_targets={A}, failed_rows={failed_row}))
    assert ledger.current(A) == Counts(2, 2) and ledger.pending_views == 3
    retry = ledger.take(11)
    # Same sequence number, same delta: the store adds it at most once.
    assert retry.targets[A] == first.targets[A] and retry.targets[A].seq == 10
    assert retry.rows[failed_row] == first.rows[failed_row]
    assert retry.targets[B].seq == 11
    assert Row("referrer", SITE, "x.org") not in retry.rows  # that one was written
    ledger.complete(retry, FlushResult())
    assert ledger.current(A) == Counts(2, 2) and ledger.pending_views == 1
    last = ledger.take(12)  # A's newer view waited for the old write to settle
    assert last.targets[A].seq == 12 and last.targets[A].delta.total == 1
    ledger.complete(last, FlushResult())
    assert ledger.idle and ledger.current(A) == Counts(2, 2)


def test_the_store_answer_wins_even_when_the_base_already_held_the_write():
    # After a crash, a write that got through is replayed; the reader already has it.
    ledger = Ledger()
    ledger.record(A, hour=H, refreshed=False)
    flush = ledger.take(seq())
    ledger.complete(flush, FlushResult.nothing_known(flush))
    ledger.observe(A, Counts(5, 5))  # A has an unsettled write: a floor, not a base
    assert ledger.current(A) == Counts(5, 5)  # never shown less than the store holds
    retry = ledger.take(seq())
    ledger.complete(retry, FlushResult(applied={A: Counts(5, 5)}))
    assert ledger.current(A) == Counts(5, 5)


def test_other_writers_show_up_in_the_store_answer():
    ledger = ledger_with_base(A, base=Counts(10, 10))
    ledger.record(A, hour=H, refreshed=False)
    flush = ledger.take(seq())
    changed = ledger.complete(flush, FlushResult(applied={A: Counts(15, 14)}))
    assert ledger.current(A) == Counts(15, 14)
    assert changed == {A}


def test_store_observations_only_ever_raise_counts():
    ledger = ledger_with_base(A, base=Counts(10, 9))
    assert ledger.observe(A, Counts(8, 8)) is False
    assert ledger.current(A) == Counts(10, 9)
    assert ledger.observe(A, Counts(12, 9)) is True
    assert ledger.current(A) == Counts(12, 9)


def test_an_image_seen_mid_flush_is_not_added_on_top_of_the_flush():
    ledger = ledger_with_base(A, base=Counts(10, 10))
    ledger.record(A, hour=H, refreshed=False)
    flush = ledger.take(seq())
    # The stream shows the write before the UpdateItem answer arrives.
    assert ledger.observe(A, Counts(11, 11)) is False
    assert ledger.current(A) == Counts(11, 11)
    ledger.complete(flush, FlushResult(applied={A: Counts(11, 11)}))
    assert ledger.current(A) == Counts(11, 11)


def test_an_image_of_another_target_mid_flush_applies_when_it_settles():
    ledger = ledger_with_base(A, B)
    ledger.record(A, hour=H, refreshed=False)
    flush = ledger.take(seq())
    ledger.observe(B, Counts(5, 5))  # B is not in the flush: applies at once
    assert ledger.current(B) == Counts(5, 5)
    ledger.complete(flush, FlushResult(applied={A: Counts(1, 1)}))
    assert ledger.current(B) == Counts(5, 5)


def test_past_the_bound_views_are_refused_not_counted():
    ledger = Ledger(max_pending_views=2)
    ledger.observe(A, Counts(0, 0))
    ledger.record(A, hour=H, refreshed=False)
    ledger.record(A, hour=H, refreshed=False)
    with pytest.raises(Busy):
        ledger.record(A, hour=H, refreshed=False)
    assert ledger.current(A) == Counts(2, 2)
    flush = ledger.take(seq())
    ledger.complete(flush, FlushResult(applied={A: Counts(2, 2)}))
    assert ledger.record(A, hour=H, refreshed=False) == Counts(3, 3)


def test_take_when_idle_is_empty_and_not_in_flight():
    ledger = Ledger()
    assert not ledger.take(seq())
    assert ledger.idle
    assert not ledger.take(seq())  # nothing was left in flight


def test_flushes_overlap_and_each_key_is_in_one_at_a_time():
    ledger = ledger_with_base(A, B)
    ledger.record(A, hour=H, refreshed=False)
    first = ledger.take(10, rows=False)
    ledger.record(A, hour=H, refreshed=False)
    ledger.record(B, hour=H, refreshed=False)
    second = ledger.take(11, rows=False)  # the first is still out: B goes, A waits
    assert set(first.targets) == {A} and set(second.targets) == {B}
    assert ledger.current(A) == Counts(2, 2) and ledger.in_flight == 2
    ledger.complete(second, FlushResult())
    ledger.complete(first, FlushResult(failed_targets={A}))
    third = ledger.take(12, rows=False)  # A's unknown write first, unchanged
    assert third.targets[A] == first.targets[A]
    ledger.complete(third, FlushResult())
    last = ledger.take(13, rows=False)
    assert last.targets[A].seq == 13 and last.targets[A].delta.total == 1
    with pytest.raises(RuntimeError):
        ledger.take(13)  # a sequence number is one flush


def test_a_held_flush_keeps_its_keys_until_released():
    ledger = ledger_with_base(A)
    ledger.record(A, hour=H, refreshed=False)
    flush = ledger.take(20, hold=True)
    ledger.record(A, hour=H, refreshed=True)
    ledger.complete(flush, FlushResult(applied={A: Counts(1, 1)}))
    assert ledger.current(A) == Counts(2, 1) and not ledger.idle
    assert not ledger.take(21)  # completed, but its record is not on disk yet
    ledger.release(flush)
    again = ledger.take(22)
    assert again.targets[A].delta.total == 1
    with pytest.raises(RuntimeError):
        ledger.release(flush)


def test_report_rows_wait_for_a_take_that_asks_for_them():
    ledger = ledger_with_base(A)
    ledger.record(A, hour=H, refreshed=False, referrer="x.org")
    counts = ledger.take(30, rows=False)
    assert set(counts.targets) == {A} and not counts.rows
    ledger.complete(counts, FlushResult())
    assert not ledger.idle and ledger.pending_views == 0  # the rows still wait
    assert ledger.waiting(rows=True) and not ledger.waiting(rows=False)
    report = ledger.take(31)
    assert not report.targets and len(report.rows) == 2 * (5 + 4)  # page and site
    ledger.complete(report, FlushResult())
    assert ledger.idle


def test_trim_forgets_the_oldest_idle_counts_but_never_watched_or_waiting_ones():
    ledger = Ledger()
    targets = [Target("post", str(i)) for i in range(6)]
    for t in targets:
        ledger.observe(t, Counts(1, 1))
    ledger.record(targets[1], hour=H, refreshed=False)  # waits for the store
    assert ledger.trim(3, keep={targets[0]}) == 3
    assert [ledger.has_base(t) for t in targets] == [True, True, False, False, False, True]
    assert ledger.current(targets[1]) == Counts(2, 2)
    assert ledger.trim(3, keep=set()) == 0


def test_each_referrer_host_has_a_row_of_its_own_however_many_or_long():
    ledger = ledger_with_base(A)
    hosts = [f"h{i}.example" for i in range(40)] + ["x" * 240 + ".example"]
    for host in [*hosts, hosts[0]]:
        ledger.record(A, hour=H, refreshed=False, referrer=host)
    rows = ledger.take(seq()).rows
    for ref in (A.ref, SITE):
        views = {
            r.sort: w.delta.total
            for r, w in rows.items()
            if r.table == "referrer" and r.target == ref and not r.sort.startswith("#")
        }
        assert views == {host: 2 if host == hosts[0] else 1 for host in hosts}


def test_after_a_journal_cut_a_replay_takes_the_rows_the_node_took():
    live = ledger_with_base(A)
    live.record(A, hour=H, refreshed=False, referrer="x.org")
    first = live.take(seq(), hold=True)
    live.complete(first, FlushResult())
    live.release(first)
    assert live.idle  # everything stored: the node may cut its journal here
    replayed = Ledger()  # what a replay of the journal from the cut rebuilds
    for ledger in (live, replayed):
        ledger.record(A, hour=H, refreshed=False, referrer="y.org", force=True)
    at = seq()
    assert live.take(at).rows == replayed.take(at).rows
