"""An import's plan: what a file adds, summed per stored item, in a SQLite file.

A file's tallies (`core/imports.py`) are summed here, on disk, so that memory stays
bounded whatever the file: a big site's history has hundreds of thousands of items,
and a GoatCounter export millions of lines. SQLite keeps them sorted by key, which is
the order the chunks are cut in (`core/import_chunks.py`): the same file read with the
same options gives the same chunks, and neighbours land in one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from livecount.core.import_chunks import CHUNK_ADDS, ImportRecord
from livecount.core.imports import PARTS_RULE, Add, PathMap, Reader, Sums, bad, fingerprint
from livecount.core.pages import PageRules, Target
from livecount.core.report_rows import SITE

_SCHEMA = """
CREATE TABLE adds (kind TEXT, key TEXT, sort TEXT, total INTEGER, uniq INTEGER,
                   line INTEGER, dup INTEGER, PRIMARY KEY (kind, key, sort)) WITHOUT ROWID;
CREATE TABLE titles (post TEXT PRIMARY KEY, title TEXT) WITHOUT ROWID;
CREATE TABLE paths (path TEXT PRIMARY KEY, mapped TEXT, n INTEGER) WITHOUT ROWID;
"""
_ADD = """INSERT INTO adds VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO UPDATE SET
          total = total + excluded.total, uniq = uniq + excluded.uniq,
          dup = CASE WHEN excluded.line = 0 THEN dup ELSE coalesce(dup, excluded.line) END"""
_TITLE = "INSERT INTO titles VALUES (?, ?) ON CONFLICT DO UPDATE SET title = excluded.title"
_PATH = "INSERT INTO paths VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
_ADDS = """SELECT a.kind, a.key, a.sort, a.total, a.uniq, coalesce(t.title, '')
           FROM adds a LEFT JOIN titles t ON a.kind = 'post' AND t.post = a.key
           WHERE a.total > 0 ORDER BY a.kind, a.key, a.sort"""


@dataclass(frozen=True, slots=True)
class PlanSummary:
    posts: int
    pages: int
    views: int
    unique: int
    adds: int  # items with something to add
    chunks: int
    plan: str  # `fingerprint`: what the adds are


class ImportPlan:
    """The adds of one file, in `directory` (a temporary one, removed with it)."""

    def __init__(self, directory: Path) -> None:
        self.db = sqlite3.connect(directory / "plan.sqlite3", isolation_level=None)
        self.db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
            "PRAGMA cache_size = -32000; PRAGMA temp_store = FILE;" + _SCHEMA
        )
        self._summary: PlanSummary | None = None

    @classmethod
    @contextlib.contextmanager
    def temporary(cls) -> Iterator[ImportPlan]:
        with tempfile.TemporaryDirectory(prefix="livecount-import-") as tmp:
            plan = cls(Path(tmp))
            try:
                yield plan
            finally:
                plan.db.close()

    def read(
        self,
        path: Path,
        pages: PageRules,
        site_domains: Iterable[str],
        max_expanded: int,
        step: Callable[[int, int], None],
        parts: bool = True,
    ) -> Reader:
        """The file at `path` into this plan, `step(bytes read, of)` as it goes; raises
        `invalid_file` (or OSError) for what cannot be read. `parts`: see `check`."""
        with path.open("rb") as stream:
            size = path.stat().st_size
            reader = Reader(
                PathMap(pages), site_domains, max_expanded, tick=lambda: step(stream.tell(), size)
            )
            for tally in reader.tallies(stream, path.name):
                self.take(tally)
            step(size, size)
        self.check(reader, parts)
        return reader

    def record(self, reader: Reader, name: str) -> ImportRecord:
        """The record of an import of this plan, as `Imports.begin` starts it."""
        s = self.summary()
        return ImportRecord(
            id=reader.import_id,
            content=reader.content_hash,
            plan=s.plan,
            attempt=0,
            state="running",
            file=name,
            format=reader.format,
            chunks=s.chunks,
            adds=s.adds,
            posts=s.posts,
            pages=s.pages,
            views=s.views,
            unique=s.unique,
            started="",
        )

    def take(self, tally: Sums) -> None:
        """Sum a full (or the last) tally in; the caller then clears it."""
        db = self.db
        db.execute("BEGIN")
        db.executemany(_ADD, ((*key, *amounts) for key, amounts in tally.adds.items()))
        db.executemany(_TITLE, tally.titles.items())
        db.executemany(_PATH, ((path, *seen) for path, seen in tally.paths.items()))
        db.execute("COMMIT")
        self._summary = None

    def check(self, reader: Reader, parts: bool = True) -> None:
        """What can only be seen once every record is in: an item met twice in a file
        that holds each once, and (livecount's own, with `parts`) a part above its
        total. A backup is read while nodes count, so a row read after its count may
        hold more: a restore (no `parts`) takes the backup as it is."""
        if reader.format != "livecount":
            return
        found = self.db.execute(
            "SELECT kind, line, dup FROM adds WHERE dup IS NOT NULL ORDER BY dup LIMIT 1"
        ).fetchone()
        if found:
            kind, line, dup = found
            record = "count" if kind in ("post", "page") else kind
            raise bad(f"line {dup}: the same {record} record as line {line}")
        if not parts:
            return
        found = self.db.execute(
            """
            WITH parts AS (SELECT kind, key, sum(total) AS total, sum(uniq) AS uniq
                           FROM adds WHERE kind IN ('timeline', 'referrer') AND key != ?
                             AND substr(key, 2, 1) != '#' AND key != 'all'  -- no rollups
                           GROUP BY kind, key)
            SELECT p.kind, p.key, p.total, p.uniq, coalesce(c.total, 0), coalesce(c.uniq, 0)
            FROM parts p LEFT JOIN adds c
              ON c.kind = substr(p.key, 1, 4) AND c.key = substr(p.key, 6) AND c.sort = ''
            WHERE p.total > coalesce(c.total, 0) OR p.uniq > coalesce(c.uniq, 0)
            LIMIT 1""",
            (SITE,),
        ).fetchone()
        if found:
            kind, ref, total, unique, of_total, of_unique = found
            raise bad(
                f"{ref}: its {kind} rows add up to {total:,} views ({unique:,} unique), "
                f"more than its count record's {of_total:,} ({of_unique:,}): "
                f"{PARTS_RULE}"
            )
        total, unique = self.db.execute(
            "SELECT coalesce(sum(total), 0), coalesce(sum(uniq), 0) FROM adds "
            "WHERE kind IN ('post', 'page')"
        ).fetchone()
        total, unique = total + reader.skipped_views[0], unique + reader.skipped_views[1]
        for kind, rows, rows_unique in self.db.execute(
            "SELECT kind, sum(total), sum(uniq) FROM adds WHERE key = ? "
            "AND kind IN ('timeline', 'referrer') GROUP BY kind",
            (SITE,),
        ):
            if rows > total or rows_unique > unique:
                raise bad(
                    f"the site's {kind} rows add up to {rows:,} views "
                    f"({rows_unique:,} unique), more than every count record's "
                    f"{total:,} ({unique:,}): {PARTS_RULE}"
                )

    def adds(self) -> Iterator[Add]:
        """Every item with something to add, in key order."""
        for row in self.db.execute(_ADDS):
            yield Add(*row)

    def chunks(self) -> Iterator[list[Add]]:
        """The adds cut into chunks, always the same way for the same adds."""
        chunk: list[Add] = []
        for add in self.adds():
            chunk.append(add)
            if len(chunk) == CHUNK_ADDS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def targets(self) -> Iterator[Target]:
        """Every post and page the plan adds to, in key order."""
        for kind, key in self.db.execute(
            "SELECT kind, key FROM adds WHERE kind IN "
            "('page', 'post') AND total > 0 ORDER BY kind, key"
        ):
            yield Target(kind, key)

    def summary(self) -> PlanSummary:
        if self._summary is None:
            plan, adds = fingerprint(self.adds())
            counts = {
                kind: (n, total, unique)
                for kind, n, total, unique in self.db.execute(
                    "SELECT kind, count(*), sum(total), sum(uniq) FROM adds "
                    "WHERE kind IN ('page', 'post') AND total > 0 GROUP BY kind"
                )
            }
            posts, pages = counts.get("post", (0, 0, 0)), counts.get("page", (0, 0, 0))
            self._summary = PlanSummary(
                posts=posts[0],
                pages=pages[0],
                views=posts[1] + pages[1],
                unique=posts[2] + pages[2],
                adds=adds,
                chunks=-(-adds // CHUNK_ADDS),
                plan=plan,
            )
        return self._summary

    def top(self, limit: int) -> list[tuple[Target, int, int]]:
        """The most viewed posts and pages: (target, total, unique)."""
        return [
            (Target(kind, key), total, unique)
            for kind, key, total, unique in self.db.execute(
                "SELECT kind, key, total, uniq FROM adds WHERE kind IN "
                "('page', 'post') AND total > 0 ORDER BY total DESC, kind, key "
                "LIMIT ?",
                (limit,),
            )
        ]

    def paths(self, limit: int, mapped: bool) -> list[tuple[str, str, int]]:
        """The paths met most often, (path, where it went or why not, records), among
        those that went to a post or page (`mapped`) or those that did not."""
        where = "mapped LIKE 'post#%' OR mapped LIKE 'page#%'"
        return list(
            self.db.execute(
                f"SELECT path, mapped, n FROM paths WHERE {'' if mapped else 'NOT '}({where}) "
                "ORDER BY n DESC, path LIMIT ?",
                (limit,),
            )
        )
