"""Rankings: every post and page of one figure (the live counts, or a period's views),
kept sorted three ways as its counts move, and read a page at a time. Pure.

A report must cost what it returns, not the size of the site: each order is a sorted
list of keys, an update moves one key (a bisect and a memmove, microseconds at 50,000
rows), and a page of rows starts where a cursor says, found by bisection. A cursor is
the last row's key in the order (keyset paging): rows that move meanwhile are not
seen twice within one walk of an order that stands still, and a cursor never goes
stale.

Search (`q`, in ids and titles, case-folded) and a kind filter walk an order from the
cursor, so they cost at most the rows they pass over.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from typing import Any, Final, NamedTuple

from livecount.core.bases import ZERO, Counts
from livecount.core.reports import SORTS, BadParameter

Label = Callable[[str], str]  # a ref → what a reader knows it by: a title, else its id
KINDS: Final = ("post", "page")


class Ranked(NamedTuple):
    ref: str
    counts: Counts


class Page(NamedTuple):
    """One page of rows, the cursor that continues after it (None at the end), and how
    many rows match in all."""

    rows: list[Ranked]
    after: str | None
    matched: int


def _key(order: str, ref: str, counts: Counts, label: str) -> tuple[Any, ...]:
    folded = label.casefold()
    if order == "total":
        return (-counts.total, -counts.unique, folded, label, ref)
    if order == "unique":
        return (-counts.unique, -counts.total, folded, label, ref)
    return (folded, label, ref)


class Ranking:
    """Refs with their counts (those at zero not listed), sorted by total, unique and
    label; `labels` gives each ref's label, and `relabel` follows a change of it."""

    def __init__(self, labels: Label) -> None:
        self.labels = labels
        self.counts: dict[str, Counts] = {}
        self._labels: dict[str, str] = {}  # as sorted
        self._orders: dict[str, list[tuple[Any, ...]]] = {o: [] for o in SORTS}
        self.sum = ZERO
        self.kinds = dict.fromkeys(KINDS, 0)  # listed refs of each kind

    def __len__(self) -> int:
        return len(self.counts)

    def __contains__(self, ref: object) -> bool:
        return ref in self.counts

    def get(self, ref: str) -> Counts:
        return self.counts.get(ref, ZERO)

    def fill(self, counts: dict[str, Counts]) -> None:
        """Start from `counts` (sorted once: cheaper than one insert each)."""
        self.counts = {ref: c for ref, c in counts.items() if c.total > 0}
        self._labels = {ref: self.labels(ref) for ref in self.counts}
        for order in SORTS:
            self._orders[order] = sorted(
                _key(order, ref, c, self._labels[ref]) for ref, c in self.counts.items()
            )
        self.sum = Counts(
            sum(c.total for c in self.counts.values()), sum(c.unique for c in self.counts.values())
        )
        self.kinds = dict.fromkeys(KINDS, 0)
        for ref in self.counts:
            self._count_kind(ref, 1)

    def set(self, ref: str, counts: Counts) -> None:
        """`ref` now has `counts` (at zero: no longer listed)."""
        before = self.counts.get(ref)
        if before == counts or (before is None and counts.total <= 0):
            return
        label = self._labels.get(ref)
        if before is not None and label is not None:
            for order in ("total", "unique"):
                self._remove(order, _key(order, ref, before, label))
            self.sum = self.sum.minus(before)
        if counts.total <= 0:
            del self.counts[ref]
            if label is not None:
                self._remove("title", _key("title", ref, ZERO, label))
                del self._labels[ref]
            self._count_kind(ref, -1)
            return
        if label is None:
            label = self._labels[ref] = self.labels(ref)
            insort(self._orders["title"], _key("title", ref, ZERO, label))
            self._count_kind(ref, 1)
        self.counts[ref] = counts
        self.sum = self.sum.plus(counts)
        for order in ("total", "unique"):
            insort(self._orders[order], _key(order, ref, counts, label))

    def add(self, ref: str, delta: Counts) -> None:
        self.set(ref, self.get(ref).plus(delta))

    def relabel(self, ref: str) -> None:
        """`ref`'s label changed (a title learned): it moves in every order."""
        if (label := self._labels.get(ref)) is None or (new := self.labels(ref)) == label:
            return
        counts = self.counts[ref]
        for order in SORTS:
            self._remove(order, _key(order, ref, counts, label))
            insort(self._orders[order], _key(order, ref, counts, new))
        self._labels[ref] = new

    def _remove(self, order: str, key: tuple[Any, ...]) -> None:
        keys = self._orders[order]
        at = bisect_right(keys, key) - 1
        if at >= 0 and keys[at] == key:
            del keys[at]

    def _count_kind(self, ref: str, n: int) -> None:
        kind = ref.partition("#")[0]
        if kind in self.kinds:
            self.kinds[kind] += n

    def top(self, limit: int, order: str = "total") -> list[Ranked]:
        return self.page(order, None, limit).rows

    def page(
        self,
        order: str,
        after: str | None,
        limit: int,
        kind: str | None = None,
        match: Callable[[str], bool] | None = None,
        reverse: bool = False,
    ) -> Page:
        """Up to `limit` rows in `order` after the cursor `after`, of `kind` (post or
        page) and that `match` takes (a ref → whether it is wanted). `reverse` walks the
        order backwards: least viewed first, or titles Z to A."""
        keys = self._orders[order]
        start = _decode(after, order) if after else None
        if reverse:
            at = len(keys) if start is None else bisect_left(keys, start)
            walk: Iterator[tuple[Any, ...]] = (keys[i] for i in range(at - 1, -1, -1))
        else:
            at = 0 if start is None else bisect_right(keys, start)
            walk = (keys[i] for i in range(at, len(keys)))
        wanted = self._filter(kind, match)
        rows: list[Ranked] = []
        last: tuple[Any, ...] | None = None
        for key in walk:
            ref = key[-1]
            if wanted is not None and not wanted(ref):
                continue
            if len(rows) == limit:
                return Page(rows, _encode(last), self._matched(kind, match, wanted))
            rows.append(Ranked(ref, self.counts[ref]))
            last = key
        return Page(rows, None, self._matched(kind, match, wanted))

    def _filter(
        self, kind: str | None, match: Callable[[str], bool] | None
    ) -> Callable[[str], bool] | None:
        if kind is None:
            return match
        prefix = kind + "#"
        if match is None:
            return lambda ref: ref.startswith(prefix)
        return lambda ref: ref.startswith(prefix) and match(ref)

    def _matched(
        self,
        kind: str | None,
        match: Callable[[str], bool] | None,
        wanted: Callable[[str], bool] | None,
    ) -> int:
        if wanted is None:
            return len(self.counts)
        if match is None and kind is not None:
            return self.kinds.get(kind, 0)
        return sum(1 for ref in self.counts if wanted(ref))


def _encode(key: tuple[Any, ...] | None) -> str | None:
    if key is None:
        return None
    raw = json.dumps(list(key), ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, order: str) -> tuple[Any, ...]:
    """A cursor back into the key it is; BadParameter for anything no answer gave."""
    wrong = BadParameter(
        "cursor",
        f"is not a cursor of this list sorted by {order}: "
        "pass the one an answer's next link gave, unchanged",
    )
    if len(cursor) > 8192:
        raise wrong
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # RecursionError: "[[[[…"
        raise wrong from None
    shape: tuple[type, ...] = (int, int, str, str, str) if order != "title" else (str, str, str)
    if (
        not isinstance(value, list)
        or len(value) != len(shape)
        or not all(type(v) is t for v, t in zip(value, shape, strict=True))
    ):
        raise wrong
    return tuple(value)
