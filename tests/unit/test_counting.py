import pytest

from server.counting import SITE, ZERO, Busy, Counts, FlushResult, Ledger
from server.pages import Target

A, B = Target("post", "a"), Target("page", "Home_Page")


def ledger_with_base(*targets: Target, base: Counts = ZERO) -> Ledger:
    ledger = Ledger()
    for t in targets:
        ledger.observe(t, base)
    return ledger


def test_refreshed_views_count_total_only():
    ledger = ledger_with_base(A, base=Counts(10, 7))
    assert ledger.record(A, refreshed=False) == Counts(11, 8)
    assert ledger.record(A, refreshed=True) == Counts(12, 8)


def test_views_coalesce_into_one_delta_per_target():
    ledger = ledger_with_base(A, B)
    for _ in range(5):
        ledger.record(A, refreshed=False, title="Old")
    ledger.record(A, refreshed=True, title="New")
    ledger.record(B, refreshed=False)
    flush = ledger.take()
    assert set(flush.targets) == {A, B}
    delta = flush.targets[A]
    assert (delta.total, delta.unique, delta.title) == (6, 5, "New")
    assert flush.views == 7


def test_referrers_count_per_page_and_site_wide():
    ledger = ledger_with_base(A, B)
    ledger.record(A, refreshed=False, referrer="news.ycombinator.com")
    ledger.record(B, refreshed=False, referrer="news.ycombinator.com")
    ledger.record(B, refreshed=False)
    flush = ledger.take()
    assert flush.referrers == {(A.ref, "news.ycombinator.com"): 1,
                               (B.ref, "news.ycombinator.com"): 1,
                               (SITE, "news.ycombinator.com"): 2}


def test_a_node_reads_its_own_writes_while_a_flush_is_in_flight():
    ledger = ledger_with_base(A, base=Counts(10, 10))
    ledger.record(A, refreshed=False)
    flush = ledger.take()
    assert ledger.current(A) == Counts(11, 11)
    ledger.record(A, refreshed=True)
    assert ledger.current(A) == Counts(12, 11)
    ledger.complete(flush, FlushResult(applied={A: Counts(11, 11)}))
    assert ledger.current(A) == Counts(12, 11)
    assert ledger.pending_views == 1


def test_a_failed_flush_keeps_its_views_for_the_next_one():
    ledger = ledger_with_base(A)
    ledger.record(A, refreshed=False, referrer="x.org")
    flush = ledger.take()
    ledger.record(A, refreshed=False)
    ledger.complete(flush, FlushResult(failed_targets={A},
                                       failed_referrers={(A.ref, "x.org")}))
    assert ledger.current(A) == Counts(2, 2) and ledger.pending_views == 2
    retry = ledger.take()
    assert retry.targets[A].total == 2
    assert retry.referrers[(A.ref, "x.org")] == 1
    assert (SITE, "x.org") not in retry.referrers  # that one was written


def test_other_writers_show_up_in_the_store_answer():
    ledger = ledger_with_base(A, base=Counts(10, 10))
    ledger.record(A, refreshed=False)
    flush = ledger.take()
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
    ledger.record(A, refreshed=False)
    flush = ledger.take()
    # The stream shows the write before the UpdateItem answer arrives.
    assert ledger.observe(A, Counts(11, 11)) is False
    assert ledger.current(A) == Counts(11, 11)
    ledger.complete(flush, FlushResult(applied={A: Counts(11, 11)}))
    assert ledger.current(A) == Counts(11, 11)


def test_an_image_of_another_target_mid_flush_applies_when_it_settles():
    ledger = ledger_with_base(A, B)
    ledger.record(A, refreshed=False)
    flush = ledger.take()
    ledger.observe(B, Counts(5, 5))  # B is not in the flush: applies at once
    assert ledger.current(B) == Counts(5, 5)
    ledger.complete(flush, FlushResult(applied={A: Counts(1, 1)}))
    assert ledger.current(B) == Counts(5, 5)


def test_past_the_bound_views_are_refused_not_counted():
    ledger = Ledger(max_pending_views=2)
    ledger.observe(A, Counts(0, 0))
    ledger.record(A, refreshed=False)
    ledger.record(A, refreshed=False)
    with pytest.raises(Busy):
        ledger.record(A, refreshed=False)
    assert ledger.current(A) == Counts(2, 2)
    flush = ledger.take()
    ledger.complete(flush, FlushResult(applied={A: Counts(2, 2)}))
    assert ledger.record(A, refreshed=False) == Counts(3, 3)


def test_take_when_idle_is_empty_and_not_in_flight():
    ledger = Ledger()
    assert not ledger.take()
    assert ledger.idle
    assert not ledger.take()  # nothing was left in flight


def test_only_one_flush_at_a_time():
    ledger = ledger_with_base(A)
    ledger.record(A, refreshed=False)
    ledger.take()
    with pytest.raises(RuntimeError):
        ledger.take()
