"""The catalog: every post and page counted, with its live counts, title and path, as
the node knows them. Pure.

Site totals, `/api/pages` (without a period) and the labels of every ranking read
it, never the store: it is read once at start (the page index, and the tables of
counts scanned: `store_scan.catalog`), then kept by what moves counts: this node's flushes
(the store's answer), the stream (posts, written by any node), the live feed (other
nodes' posts, and their pages' counts as their flushes' answers said), and a reset
(`livecount admin`, an import) read again. Counts merge by maximum, so the order they
come in does not matter; only a reset replaces them (one during the read at start
outlives that read, which may predate it). A post's title and path come with its
counts where the store said them, and are read from the store otherwise (`unnamed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from livecount.core.bases import ZERO, Counts
from livecount.core.pages import Target
from livecount.core.rankings import Ranking


class Catalog:
    def __init__(self, where: Callable[[Target], str | None] = lambda t: None) -> None:
        self.where = where  # a page's path, from the page rules
        self.titles: dict[str, str] = {}  # post ref → title, where it has one
        self.paths: dict[str, str] = {}  # post ref → path, where it has one
        self.ranking = Ranking(self.label)
        self.unnamed: set[Target] = set()  # posts whose title and path were never read
        self.relabelled: list[Callable[[str], None]] = []  # told of a title that changed
        self._folded: dict[str, str] = {}  # ref → id and title, case-folded, for search
        self.loaded = False
        self._replaced: set[Target] = set()  # read again after a reset, before `load`

    # -- what it shows --------------------------------------------------------------------
    def label(self, ref: str) -> str:
        """What a reader knows the ref by: a post's title, else its id; a page's name."""
        return self.titles.get(ref) or ref.partition("#")[2]

    def title(self, target: Target) -> str:
        return self.titles.get(target.ref, "")

    def path(self, target: Target) -> str | None:
        return self.paths.get(target.ref) if target.kind == "post" else self.where(target)

    def fields(self, target: Target) -> dict[str, str]:
        """A row's title ("" for a post without one, as the API always said) and its
        path where known, for an answer."""
        found: dict[str, str] = {}
        if target.kind == "post":
            found["articleTitle"] = self.titles.get(target.ref, "")
        if (path := self.path(target)) is not None:
            found["path"] = path
        return found

    def counts(self, target: Target) -> Counts:
        return self.ranking.get(target.ref)

    @property
    def site(self) -> Counts:
        return self.ranking.sum

    def matches(self, text: str) -> Callable[[str], bool]:
        """Whether a ref's id or title holds `text`, case-folded."""
        folded = text.casefold()
        searched = self._folded

        def match(ref: str) -> bool:
            if (hay := searched.get(ref)) is None:
                hay = searched[ref] = (
                    f"{ref.partition('#')[2]}\n{self.titles.get(ref, '')}".casefold()
                )
            return folded in hay

        return match

    # -- what moves it --------------------------------------------------------------------
    def load(self, found: Mapping[Target, tuple[Counts, str, str]]) -> None:
        """The store as read at start, merged with what was learned meanwhile; but
        not where a reset came meanwhile (the read may predate it): there, what was
        read after the reset, and learned since."""
        merged = {t.ref: c for t, (c, _, _) in found.items() if t not in self._replaced}
        for ref, counts in self.ranking.counts.items():
            merged[ref] = counts.max(merged.get(ref, ZERO))
        for target, (_, title, path) in found.items():
            self._describe(target, title, path)
        self.unnamed.difference_update(found)
        self.ranking.fill(merged)
        self.loaded = True
        self._replaced.clear()

    def unload(self) -> None:
        """The store is read whole again (`load` once read): a reset that comes
        meanwhile wins over the read, as at start."""
        self.loaded = False

    def observe(self, target: Target, counts: Counts) -> None:
        """Counts as stored, now or a moment ago: never below what was seen."""
        before = self.ranking.get(target.ref)
        if counts.total > before.total or counts.unique > before.unique:
            if (
                target.kind == "post"
                and target.ref not in self.ranking
                and target.ref not in self.titles
            ):
                self.unnamed.add(target)
            self.ranking.set(target.ref, counts.max(before))

    def replace(self, found: Mapping[Target, tuple[Counts, str, str]]) -> None:
        """Counts read again after a reset: they may have gone down."""
        if not self.loaded:
            self._replaced.update(found)
        for target, (counts, title, path) in found.items():
            self._describe(target, title, path)
            self.ranking.set(target.ref, counts)

    def describe(self, target: Target, title: str, path: str) -> None:
        """A post's title and path as stored ("" for none)."""
        self.unnamed.discard(target)
        self._describe(target, title, path)

    def _describe(self, target: Target, title: str, path: str) -> None:
        ref = target.ref
        if path:
            self.paths[ref] = path
        if title and self.titles.get(ref) != title:
            self.titles[ref] = title
            self._folded.pop(ref, None)
            self.ranking.relabel(ref)
            for told in self.relabelled:
                told(ref)

    def forget(self, targets: Iterable[Target]) -> None:
        """Names to read again (a reset: a rename may have brought a title)."""
        self.unnamed.update(t for t in targets if t.kind == "post")
