"""A backup's sync, the pure parts: a node's barrier over its ledger, and the roll of
nodes a backup waits for. (tests/unit/test_flushes.py drives barriers through random
flushes; these are the cases it reaches only rarely.)"""

from __future__ import annotations

from livecount.core import feed
from livecount.core.leases import Lease
from livecount.core.ledger import FlushResult, Ledger
from livecount.core.pages import Target
from livecount.core.syncs import Roll

POST = Target("post", "a")
HOUR = "2026-11-24T07"


def view(ledger: Ledger, host: str | None = None) -> None:
    ledger.record(POST, refreshed=False, hour=HOUR, referrer=host)


def test_nothing_held_is_done_at_once() -> None:
    assert Ledger().barrier().done


def test_done_once_every_view_before_it_is_stored_not_before() -> None:
    ledger = Ledger()
    view(ledger)
    barrier = ledger.barrier()
    flush = ledger.take(1)
    view(ledger)  # after the sync: not waited for
    assert not barrier.done
    ledger.complete(flush, FlushResult.nothing_known(flush))  # no answer: resent later
    assert not barrier.done
    again = ledger.take(2)
    ledger.complete(again, FlushResult())
    assert barrier.done


def test_a_resent_write_does_not_carry_the_views_that_wait_behind_it() -> None:
    """A key whose last write is of unknown outcome keeps its newer views pending; the
    resend applying is not enough: the views behind it must be taken and stored too."""
    ledger = Ledger()
    view(ledger)
    first = ledger.take(1)
    ledger.complete(first, FlushResult.nothing_known(first))  # unsettled, seq 1
    view(ledger)  # pending behind it
    barrier = ledger.barrier()
    resend = ledger.take(2)
    assert resend.targets[POST].seq == 1
    ledger.complete(resend, FlushResult())
    assert not barrier.done
    behind = ledger.take(3)
    assert behind.targets[POST].seq == 3
    ledger.complete(behind, FlushResult())
    assert barrier.done


def test_a_write_the_store_refused_is_done_with() -> None:
    ledger = Ledger()
    view(ledger)
    barrier = ledger.barrier()
    flush = ledger.take(1)
    ledger.complete(
        flush,
        FlushResult(
            rejected_targets=dict.fromkeys(flush.targets, "ValidationException"),
            rejected_rows=dict.fromkeys(flush.rows, "ValidationException"),
        ),
    )
    assert barrier.done


def test_the_roll_waits_for_every_live_node_until_it_answers_or_goes_quiet() -> None:
    roll = Roll(lease_time=10)
    roll.seen(
        [Lease("shard-1", "a", 5), Lease("node#b", "b", 1), Lease("shard-2", None, 3)],
        [("c", 100)],
        now=0,
    )
    assert roll.nodes == ["a", "b", "c"]
    roll.answered("a", True)
    assert roll.waiting(1) == ["b", "c"]
    # b keeps renewing; c says nothing more: gone after lease_time.
    roll.seen([Lease("shard-1", "a", 6), Lease("node#b", "b", 2)], [("d", 200)], now=9)
    assert roll.waiting(11) == ["b"]
    assert roll.nodes == ["a", "b", "c"]  # d came after the sync: holds nothing before it
    roll.answered("b", False)
    assert roll.waiting(11) == [] and roll.failed() == ["b"]


def test_sync_and_answers_travel_on_the_feed() -> None:
    assert feed.read(feed.sync("r1")) == feed.Sync("r1")
    assert feed.read(feed.synced("r1", "n", True)) == feed.Synced("r1", "n", True)
    assert feed.read('{"synced":"r1","node":3,"stored":true}') == []
