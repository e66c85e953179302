"""Overlapping flushes against a model store, with random outcomes and crashes.

A Hypothesis state machine drives the ledger the way the node does (views, takes
with or without report rows, store answers of every kind, completed records reaching
the journal later, SIGKILLs, journal rotation) and checks, after every step:
- no key is in two flushes at once, and the store never sees a key's newer write
  while an older one of that key was never applied;
- replaying the journal as it is on disk rebuilds exactly what the node would have
  to resend after a crash at that moment;
and at the end, once everything is stored, that every view is in the store once.
A backup's sync (`core/syncs.py`) takes a barrier at any step: once the barrier says
done, every view counted before it is in the store, whatever came after.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from livecount.core import journal
from livecount.core.ledger import Counts, Flush, FlushResult, Ledger, Row, Write
from livecount.core.pages import Target
from livecount.core.report_rows import host_of, view_rows
from livecount.core.syncs import Barrier

from tests.strategies import examples

POISON = Target("post", "poison")  # the store refuses every write of it, every time
BAD_HOST = "bad.example"
TARGETS = [Target("post", "a"), Target("post", "b"), Target("page", "Home_Page"), POISON]
HOURS = ["2026-11-24T07", "2026-11-24T08"]
HOSTS = [None, "x.org", BAD_HOST]
Key = Target | Row


def poisoned(key: Key) -> bool:
    return key == POISON or (
        isinstance(key, Row) and key.table == "referrer" and host_of(key.sort) == BAD_HOST
    )


class ModelStore:
    """Per key: the views stored and the last sequence number applied, with the
    store's rule: a write applies only above the last one. Referrer rows keep their
    total only, as the Referrer table does."""

    def __init__(self) -> None:
        self.stored: Counter[tuple[Key, str]] = Counter()
        self.last: dict[Key, int] = {}
        self.applied: dict[tuple[Key, int], tuple[int, int]] = {}

    def send(self, key: Key, write: Write) -> None:
        delta = (write.delta.total, write.delta.unique)
        if write.seq <= self.last.get(key, 0):
            # Refused. Fine for a resend of what applied; a write never applied that
            # the store now refuses would be lost for ever.
            assert self.applied.get((key, write.seq)) == delta, (
                f"{key}: write {write.seq} refused, a newer one got there first"
            )
            return
        self.last[key] = write.seq
        self.applied[(key, write.seq)] = delta
        self.stored[(key, "total")] += delta[0]
        if not (isinstance(key, Row) and key.table == "referrer"):
            self.stored[(key, "unique")] += delta[1]

    def counts(self, key: Key) -> Counts:
        return Counts(self.stored[(key, "total")], self.stored[(key, "unique")])


def writes_of(flush: Flush) -> list[tuple[Key, Write]]:
    writes: list[tuple[Key, Write]] = list(flush.targets.items())
    writes += flush.rows.items()
    return writes


def decoded(record: bytes) -> list[Any]:
    return list(msgspec.json.decode(record))


class Flushes(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.live = Ledger()
        self.records: list[list[Any]] = []
        self.flights: list[Flush] = []  # taken, no answer yet
        self.completed: list[tuple[Flush, FlushResult]] = []  # answered, record not on disk
        self.store = ModelStore()
        self.truth: Counter[tuple[Key, str]] = Counter()
        self.seq = 0
        self.barriers: list[tuple[Barrier, Counter[tuple[Key, str]]]] = []

    # -- what the node does ------------------------------------------------------------
    @rule(
        page=st.sampled_from(TARGETS),
        refreshed=st.booleans(),
        hour=st.sampled_from(HOURS),
        host=st.sampled_from(HOSTS),
    )
    def view(self, page: Target, refreshed: bool, hour: str, host: str | None) -> None:
        target = page
        self.live.record(target, refreshed=refreshed, hour=hour, referrer=host, force=True)
        self.records.append(decoded(journal.view_record(target, refreshed, hour, None, host)))
        unique = 0 if refreshed else 1
        keys: list[Key] = [target, *view_rows(target, hour, host)]
        for key in keys:
            self.truth[(key, "total")] += 1
            if not (isinstance(key, Row) and key.table == "referrer"):
                self.truth[(key, "unique")] += unique

    @rule(rows=st.booleans(), counts=st.booleans())
    def take(self, rows: bool, counts: bool) -> None:
        self.seq += 1
        self.records.append(decoded(journal.taken_record(self.seq, rows, counts)))
        flush = self.live.take(self.seq, rows=rows, counts=counts, hold=True)
        if flush:
            self.flights.append(flush)
        assert rows or not flush.rows
        assert counts or not flush.targets

    @precondition(lambda self: bool(self.flights))
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        """The store's answer to one flush: each write applied, applied with its answer
        lost, not applied, or (for a poisoned key) refused."""
        flush = self.flights.pop(data.draw(st.integers(0, len(self.flights) - 1)))
        result = FlushResult()
        writes = writes_of(flush)
        for key, write in writes:
            if poisoned(key):
                fate = data.draw(st.sampled_from(["rejected", "failed"]))
            else:
                fate = data.draw(st.sampled_from(["applied", "applied", "lost", "failed"]))
            if fate in ("applied", "lost"):
                self.store.send(key, write)
            if fate in ("lost", "failed"):
                (result.failed_targets if isinstance(key, Target) else result.failed_rows).add(key)  # type: ignore[arg-type]
            elif fate == "rejected":
                if isinstance(key, Target):
                    result.rejected_targets[key] = "ValidationException"
                else:
                    result.rejected_rows[key] = "ValidationException"
            elif isinstance(key, Target):
                result.applied[key] = self.store.counts(key)
        self.live.complete(flush, result)
        self.completed.append((flush, result))

    @precondition(lambda self: bool(self.completed))
    @rule(data=st.data())
    def completed_on_disk(self, data: st.DataObject) -> None:
        flush, result = self.completed.pop(data.draw(st.integers(0, len(self.completed) - 1)))
        self.records.append(decoded(journal.completed_record(flush, result)))
        self.live.release(flush)

    @rule()
    def sync(self) -> None:
        """A backup's sync comes: what was counted so far must be stored before the
        node answers."""
        self.barriers.append((self.live.barrier(), Counter(self.truth)))

    @precondition(lambda self: self.live.idle)
    @rule()
    def rotate(self) -> None:
        self.records = [decoded(journal.start_record(self.seq))]

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        """SIGKILL: writes in flight may or may not have reached the store; answers
        and completed records not on disk are lost. The restart replays the journal."""
        for flush in self.flights:
            for key, write in writes_of(flush):
                if not poisoned(key) and data.draw(st.booleans()):
                    self.store.send(key, write)
        self.live = Ledger()
        self.flights, self.completed, self.barriers = [], [], []  # no answer from it
        assert journal.replay(self.records, self.live).last_seq <= self.seq
        self.records.append(decoded(journal.start_record(self.seq)))  # the new run's file

    # -- what must hold ----------------------------------------------------------------
    @invariant()
    def each_key_in_one_flush_at_a_time(self) -> None:
        seen: set[Key] = set()
        for flush in [*self.flights, *(f for f, _ in self.completed)]:
            keys = {key for key, _ in writes_of(flush)}
            assert not keys & seen
            seen |= keys

    @invariant()
    def a_sync_is_done_only_once_what_came_before_is_stored(self) -> None:
        for barrier, before in self.barriers:
            if barrier.done:
                missing = {
                    k: n
                    for k, n in before.items()
                    if not poisoned(k[0]) and self.store.stored[k] < n
                }
                assert not missing, missing

    @invariant()
    def replay_rebuilds_what_a_crash_now_would_leave(self) -> None:
        rebuilt = Ledger()
        journal.replay(self.records, rebuilt)
        pending, writes = self.live.outstanding()
        # Answers whose completed record is not on disk are lost in a crash: those
        # writes are of unknown outcome again, and their views unconfirmed.
        unconfirmed = self.live.pending_views
        for flush, result in self.completed:
            for key, write in writes_of(flush):
                writes.setdefault(key, write)
            unconfirmed += sum(
                w.delta.total for t, w in flush.targets.items() if t not in result.failed_targets
            )
        assert rebuilt.outstanding() == (pending, writes)
        assert rebuilt.pending_views == unconfirmed

    def teardown(self) -> None:
        """Let every flush through until nothing waits: the store then holds every view
        once, and nothing of a refused key."""
        for _ in range(5):
            self._let_through()
            if self.live.idle:
                break
            self.seq += 1
            if flush := self.live.take(self.seq, hold=True):
                self.flights.append(flush)
        assert self.live.idle and self.live.pending_views == 0
        assert all(barrier.done for barrier, _ in self.barriers)
        expected = Counter({k: n for k, n in self.truth.items() if not poisoned(k[0])})
        assert +self.store.stored == +expected

    def _let_through(self) -> None:
        for flush in self.flights:
            keys = writes_of(flush)
            for key, write in keys:
                if not poisoned(key):
                    self.store.send(key, write)
            self.live.complete(
                flush,
                FlushResult(
                    rejected_targets={
                        k: "x" for k, _ in keys if isinstance(k, Target) and poisoned(k)
                    },
                    rejected_rows={k: "x" for k, _ in keys if isinstance(k, Row) and poisoned(k)},
                ),
            )
            self.live.release(flush)
        for flush, _ in self.completed:
            self.live.release(flush)
        self.flights, self.completed = [], []


TestFlushes = Flushes.TestCase
TestFlushes.settings = settings(max_examples=examples(300), stateful_step_count=40, deadline=None)
