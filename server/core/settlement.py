"""The write path's side of the ledger: flushes taken, sent, settled and released,
kept beside the engine's decisions about messages (the node's flusher talks to it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from livecount.core import journal
from livecount.core.journal import Replayed
from livecount.core.ledger import Flush, FlushResult, Ledger, Write
from livecount.core.pages import Target
from livecount.core.syncs import Barrier

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Settled:
    """What a flush's completion asks of the edge."""

    record: bytes  # the journal's completed record
    dead_letters: list[tuple[str, bytes]]  # (key, JSON line) of writes the store refused
    views: int  # views the store confirmed


class Settlement:
    """The ledger's flushes from the node's side: sequence numbers that grow across
    restarts, recovery (replayed views wait for the store, so the node says it is
    not ready) until every replayed write is settled, and dead letters for writes
    the store refused, so they hold nothing up."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.recovering = False  # replayed views wait for the store
        self._seq = 0

    @property
    def idle(self) -> bool:
        """Nothing accepted waits for the store: every view so far is stored."""
        return self._ledger.idle

    @property
    def pending_views(self) -> int:
        return self._ledger.pending_views

    @property
    def in_flight(self) -> int:
        return self._ledger.in_flight

    def waiting(self, rows: bool = True, counts: bool = True) -> bool:
        """Whether a flush of these kinds could find anything to write."""
        return self._ledger.waiting(rows, counts)

    def replay(self, records: Iterable[list[Any]]) -> Replayed:
        """Rebuild the ledger from the journal's records (`core.journal.replay`)."""
        replayed = journal.replay(records, self._ledger)
        self._seq = max(self._seq, replayed.last_seq)
        self.recovering = not self._ledger.idle
        return replayed

    def take(self, seq: int, rows: bool = True, counts: bool = True) -> Flush:
        """A flush of what waits, held until `release` (see `Ledger.take`)."""
        return self._ledger.take(seq, rows=rows, counts=counts, hold=True)

    def release(self, flush: Flush) -> None:
        self._ledger.release(flush)

    def barrier(self) -> Barrier:
        """What settles once every view accepted so far is stored (a backup's sync)."""
        return self._ledger.barrier()

    def drop(self, barrier: Barrier) -> None:
        self._ledger.drop(barrier)

    def next_seq(self, now_us: int) -> int:
        """Flush sequence numbers grow across restarts: the journal's last, or the
        clock in microseconds, whichever is larger."""
        self._seq = max(self._seq + 1, now_us)
        return self._seq

    def settle(self, flush: Flush, result: FlushResult) -> tuple[set[Target], Settled]:
        """Complete `flush` in the ledger; the targets whose shown count may have
        moved, and what the edge is to write."""
        moved = self._ledger.complete(flush, result)
        if not (result.failed_targets or result.failed_rows):
            self.recovering = False  # every unsettled write, replayed ones first, is settled
        letters = [
            *(
                (t.ref, _letter("count", t.ref, "", flush.targets[t], error))
                for t, error in result.rejected_targets.items()
            ),
            *(
                (
                    f"{row.table} {row.target} {row.sort}",
                    _letter(row.table, row.target, row.sort, flush.rows[row], error),
                )
                for row, error in result.rejected_rows.items()
            ),
        ]
        applied = sum(
            w.delta.total
            for t, w in flush.targets.items()
            if t not in result.failed_targets and t not in result.rejected_targets
        )
        return moved, Settled(journal.completed_record(flush, result), letters, applied)


def _letter(table: str, key: str, sort: str, write: Write, error: str) -> bytes:
    """One dead-letter line: enough to see what was lost and to store it by hand.
    After a crash the same (key, seq) may be set aside twice: count it once."""
    delta = write.delta
    return _encoder.encode(
        {
            "table": table,
            "key": key,
            "sort": sort or None,
            "seq": write.seq,
            "totalViews": delta.total,
            "uniqueViews": delta.unique,
            "title": delta.title,
            "error": error,
        }
    )
