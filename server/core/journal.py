"""The journal's records, and replaying them: the ledger's history, pure.

A SIGKILL or a power cut must not lose a view the server has replied to, nor let a
replay add one twice. The journal is the ledger's history: each view, each flush
taken (with its sequence number) and each flush completed (with what failed or was
refused), in the order the ledger saw them. The node applies a record to its ledger
only once the record is on disk, in the journal's own order, so replaying the files
through a fresh `Ledger` rebuilds exactly what was pending or unsettled; the store's
sequence-number condition then makes resending those writes harmless, whether or
not they got through before. `livecount.node.journal` writes the files.

Several flushes may be in flight: a `t` record may follow another without its `c`.
A flush's keys stay held from its `t` to its `c` (the node releases them only once
the `c` is on disk), so replaying the records in file order takes exactly what the
node took. A flush with no `c` by the next `s` (every run of the node starts its own
file with one, before any `t`) was abandoned by a crash: it ends unsettled there, as
it did when that run's successor replayed it, and is resent with its own sequence
number.

Lines are JSON arrays: `["v", kind, id, refreshed, hour, title, host]`,
`["t", seq, kind]` (1: counts and report rows, 0: counts only, 2: rows only, 3:
neither; `["t", seq]`, from before flushes overlapped, takes everything once every
earlier flush is over),
`["c", seq, failed targets, failed rows, failed index, rejected targets, rejected
rows, rejected index]`, and `["s", seq]` (the last sequence number, first in a new
file).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from livecount.core.ledger import Flush, FlushResult, Ledger, Row
from livecount.core.pages import Target

_encoder = msgspec.json.Encoder()


def view_record(
    target: Target,
    refreshed: bool,
    hour: str,
    title: str | None,
    host: str | None,
    path: str | None = None,
) -> bytes:
    record = ["v", target.kind, target.id, refreshed, hour, title, host]
    return _encoder.encode([*record, path] if path else record)


def taken_record(seq: int, rows: bool = True, counts: bool = True) -> bytes:
    return _encoder.encode(["t", seq, _KINDS[(counts, rows)]])


_KINDS = {(True, True): 1, (True, False): 0, (False, True): 2, (False, False): 3}
_TAKES = {kind: what for what, kind in _KINDS.items()}  # kind → (counts, rows)


def completed_record(flush: Flush, result: FlushResult) -> bytes:
    """Fields 4 and 7 once held page-index writes (now made at a page's first view, not
    by flushes): kept empty, so journals of either version replay alike."""
    return _encoder.encode(
        [
            "c",
            flush.seq,
            sorted(t.ref for t in result.failed_targets),
            sorted(list(r) for r in result.failed_rows),
            [],
            sorted(t.ref for t in result.rejected_targets),
            sorted(list(r) for r in result.rejected_rows),
            [],
        ]
    )


def start_record(last_seq: int) -> bytes:
    return _encoder.encode(["s", last_seq])


@dataclass
class Replayed:
    records: int = 0
    views: int = 0
    last_seq: int = 0


def _targets(refs: Iterable[str]) -> set[Target]:
    return {t for ref in refs if (t := Target.from_ref(ref)) is not None}


def replay(records: Iterable[list[Any]], ledger: Ledger) -> Replayed:
    """Feed a journal's history through `ledger`. A flush taken but never completed
    ends unsettled: its writes go again with the same sequence numbers. The bases it
    leaves are only the replayed views, so they are forgotten at the end."""
    summary = Replayed()
    flights: dict[int, Flush] = {}
    for record in records:
        summary.records += 1
        kind = record[0]
        if kind == "v":
            _, target_kind, id_, refreshed, hour, title, host, *path = record
            ledger.record(
                Target(target_kind, id_),
                refreshed=refreshed,
                hour=hour,
                title=title,
                referrer=host,
                force=True,
                path=path[0] if path else None,
            )
            summary.views += 1
        elif kind == "t":
            seq = record[1]
            summary.last_seq = max(summary.last_seq, seq)
            if len(record) < 3:  # one flush at a time: an earlier one never completed
                _abandon(ledger, flights)
            counts, rows = _TAKES[record[2]] if len(record) >= 3 else (True, True)
            taken = ledger.take(seq, rows=rows, counts=counts, hold=True)
            if taken:
                flights[seq] = taken
        elif kind == "c" and (flush := flights.pop(record[1], None)) is not None:
            rejected = record[5:8] if len(record) >= 8 else [[], [], []]
            ledger.complete(
                flush,
                FlushResult(
                    failed_targets=_targets(record[2]),
                    failed_rows={Row(*r) for r in record[3]},
                    rejected_targets=dict.fromkeys(_targets(rejected[0]), "replayed"),
                    rejected_rows=dict.fromkeys((Row(*r) for r in rejected[1]), "replayed"),
                ),
            )
            ledger.release(flush)
        elif kind == "s":  # a new file: a restart, or a rotation with nothing in flight
            summary.last_seq = max(summary.last_seq, record[1])
            _abandon(ledger, flights)
    _abandon(ledger, flights)
    ledger.forget_bases()
    return summary


def _abandon(ledger: Ledger, flights: dict[int, Flush]) -> None:
    """Flushes whose outcome never reached the journal: unknown, so resent unchanged."""
    for flush in flights.values():
        ledger.complete(flush, FlushResult.nothing_known(flush))
        ledger.release(flush)
    flights.clear()
