"""Reading an export into the counts to add, sans I/O: livecount's own, and the
page-level exports of Plausible and GoatCounter, told apart by their header.

The formats, as their makers document and write them:

- livecount: `core/exports.py`; records map one to one onto stored items.
- GoatCounter's CSV export (https://www.goatcounter.com/help/export; its writer is
  `export.go` in arp242/goatcounter): one line per pageview, gzipped, under the header
  `2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,Referrer scheme,
  Screen size,Location,FirstVisit,Date` (the leading digit is the format's version;
  version 1 has the same columns but UserAgent and System, which are not read).
  Events, bots (`Bot` not 0) and unknown paths are skipped; `FirstVisit` true is a
  unique view; `Referrer` with scheme `h` is a referrer host; `Date` (RFC 3339) is
  the hour bucket.
- Plausible's dashboard CSV export (a zip of `visitors.csv`, `pages.csv`, …;
  plausible/analytics `test/plausible_web/controllers/CSVs/30d/pages.csv`): `pages.csv`
  is `name,visitors,pageviews,bounce_rate,time_on_page`, totals over the period, so
  it adds totals and no timeline.
- Plausible's site export (Settings > Imports & Exports, a zip of `imported_*.csv`;
  plausible/analytics `lib/plausible/exports.ex`, `export_pages_q`):
  `imported_pages_<from>_<to>.csv` is `date,hostname,page,visits,visitors,pageviews,…`,
  one line per page and day; each day goes in its `T00` hour bucket.

Plausible's `visitors` are unique visitors over the row's period; they become unique
views, at most the row's pageviews. Paths become targets by `serve`'s page rules
(`core/pages.py`: `--page`, `--path-pattern`, `--unmatched-paths`); a path they refuse
is skipped and reported. Views are spread over report rows as the node spreads its own
(`report_rows.view_rows`).

Reading streams: the file is decompressed, decoded and parsed a line at a time, and its
adds are summed in a `Sums` of bounded size that the caller empties into a plan of its
own (on disk) whenever it is full, so memory stays bounded whatever the file. A line
that cannot be read stops the import with its line number, before anything is written;
a value livecount cannot store (an id, a title, a host, a path) is skipped, and counted
with its reason, as the WebSocket refuses it (`sizes.problem`).

An import is known by the hash of its records as read (decoded and normalised: the same
rows gzipped or not, in CSV or in NDJSON, are one import), not by how they map: the same
rows read with other `--path-pattern`s are the same import, which must be undone before
it is imported again, or the views both mappings share would count twice. The plan's
own hash (`fingerprint`) tells the mappings apart.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import json
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import IO, Any, Final, Literal, NamedTuple

from livecount.core import exports, sizes
from livecount.core.errors import ClientError
from livecount.core.pages import PageError, PageRules, Target, dns_host, referrer_host
from livecount.core.report_rows import SITE, counts_unique, hour_rows, view_rows
from livecount.core.reports import EARLIEST, LATEST, hour_of

ID_CHARS: Final = 12  # an import's id: this much of its content hash, in hex
MAX_COUNT: Final = 10**12  # a count on one line; past it, the line is a mistake
MAX_LINE_CHARS: Final = 1 << 20  # a line longer than this is no export's
MAX_EXPANDED: Final = 2 << 30  # the default `--max-expanded`, in bytes
TALLY_KEYS: Final = 100_000  # items a tally sums before the caller empties it
TICK: Final = 10_000  # records between two calls of a reader's `tick`
_HOUR: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}")
_GOAT: Final = re.compile(r"([0-9]+)path")
GOAT_COLUMNS: Final = (
    "path",
    "title",
    "event",
    "bot",
    "referrer",
    "referrer scheme",
    "firstvisit",
    "date",
)
_PAGE_FILES: Final = re.compile(r"pages\.csv|imported_pages(_[0-9]{8}_[0-9]{8})?\.csv")


def bad(detail: str) -> ClientError:
    """The file cannot be imported as it is; `detail` says where and why."""
    return ClientError("invalid_file", detail)


_WHY: Final = {"unrecognised_page": "no page rule or --path-pattern matches"}


class PathMap:
    """A path of another tool's export → the post or page livecount counts it as: the
    page rules `serve` counts live views by (`--page`, `--path-pattern`,
    `--unmatched-paths`), so a URL's history lands on the id its live views do."""

    def __init__(self, pages: PageRules) -> None:
        self.pages = pages

    def target(self, path: str) -> Target | str:
        """The target of `path`, or why it has none (one reason per kind, to count)."""
        try:
            return self.pages.classify(None, path)
        except PageError as exc:
            return _WHY.get(exc.code, "an id livecount cannot store")


# -- what an import adds ---------------------------------------------------------------------
Kind = Literal["page", "post", "referrer", "timeline"]  # in the order a plan sorts them


class Add(NamedTuple):
    """One stored item and what an import adds to it: a post's writer item (`key` its
    id), a page's (`key` its name), a Timeline row (`key` a ref or SITE, `sort` the
    hour) or a Referrer row (`sort` the host; no unique count)."""

    kind: Kind
    key: str
    sort: str
    total: int
    unique: int
    title: str = ""  # a post's, filling a missing one


class Sums:
    """Adds summed per item, up to `limit` items: then `full`, and the caller takes
    them into its plan and `clear`s it. With `distinct` (livecount's own format, one
    record per item) an item met twice is a mistake in the file, not a sum."""

    def __init__(self, limit: int = TALLY_KEYS, distinct: bool = False) -> None:
        self.limit = limit
        self.distinct = distinct
        self.adds: dict[tuple[Kind, str, str], list[int]] = {}  # → [total, unique, line]
        self.titles: dict[str, str] = {}  # post id → the last title met
        self.paths: dict[str, list[Any]] = {}  # path → [target ref or why not, lines]

    @property
    def full(self) -> bool:
        return len(self.adds) + len(self.paths) >= self.limit

    def clear(self) -> None:
        self.adds, self.titles, self.paths = {}, {}, {}

    def add(self, kind: Kind, key: str, sort: str, total: int, unique: int, line: int = 0) -> None:
        if (seen := self.adds.get(item := (kind, key, sort))) is None:
            self.adds[item] = [total, unique, line]
        elif self.distinct and line:  # a rollup (line 0) sums the hours of its bucket
            raise bad(f"line {line}: the same {_RECORD[kind]} record as line {seen[2]}")
        else:
            seen[0] += total
            seen[1] += unique

    def add_views(
        self, target: Target, total: int, unique: int, hour: str | None, host: str | None = None
    ) -> None:
        """Views of `target` as the node counts them: its totals, and with an hour every
        report row they add to (`view_rows`)."""
        unique = min(unique, total)
        self.add(target.kind, target.id, "", total, unique)
        if hour is not None:
            for row in view_rows(target, hour, host):
                self.add(
                    row.table, row.target, row.sort, total, unique if counts_unique(row) else 0
                )

    def path(self, path: str, mapped: str) -> None:
        """`path` of the file went to `mapped`: a target's ref, or why it went nowhere."""
        if (seen := self.paths.get(path)) is None:
            self.paths[path] = [mapped, 1]
        else:
            seen[1] += 1


_RECORD: Final[dict[str, str]] = {
    "post": "count",
    "page": "count",
    "timeline": "timeline",
    "referrer": "referrer",
}


def fingerprint(adds: Iterable[Add]) -> tuple[str, int]:
    """The hash of what a plan adds (its items in their sorted order) and how many there
    are: the same rows read with other rules (another --path-pattern) differ here."""
    digest, n = hashlib.sha256(), 0
    for add in adds:
        digest.update(_canonical([*add[:3], str(add.total), str(add.unique), add.title]))
        n += 1
    return digest.hexdigest()[:32], n


# -- reading --------------------------------------------------------------------------------
class _Expanded(io.RawIOBase):
    """A decompressed stream that refuses to give more than `limit` bytes."""

    def __init__(
        self, inner: IO[bytes] | io.BufferedIOBase, limit: int, name: str, what: str
    ) -> None:
        self.inner, self.limit, self.name, self.what, self.given = inner, limit, name, what, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        try:
            data = self.inner.read(len(view))
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
            raise bad(f"{self.name}: damaged {self.what} data ({exc})") from None
        self.given += len(data)
        if self.given > self.limit:
            raise bad(
                f"{self.name} expands to more than {self.limit:,} bytes, the limit "
                "--max-expanded sets (a bomb, or a bigger export: raise it)"
            )
        view[: len(data)] = data
        return len(data)


def _decoded(raw: IO[bytes] | io.RawIOBase) -> io.TextIOWrapper:
    """UTF-8 text (a BOM dropped), its line ends as they are, for the csv module."""
    buffered = io.BufferedReader(raw, 1 << 16) if isinstance(raw, io.RawIOBase) else raw
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")


def _lines(text: IO[str], name: str) -> Iterator[str]:
    """The lines of `text`, each at most MAX_LINE_CHARS: no line is read whole into
    memory before it is known to be short."""
    n = 0
    while True:
        try:
            line = text.readline(MAX_LINE_CHARS + 1)
        except UnicodeDecodeError:
            raise bad(f"{name} is not UTF-8 text (line {n + 1})") from None
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE_CHARS:
            raise bad(
                f"{name}: line {n} is longer than {MAX_LINE_CHARS:,} characters: not an export"
            )
        yield line


class Reader:
    """Reads one file into tallies. What it found is on it as it goes: the format, the
    records read, what it skipped and why, the hash of the records."""

    def __init__(
        self,
        paths: PathMap,
        site_domains: Iterable[str] = (),
        max_expanded: int = MAX_EXPANDED,
        tally_keys: int = TALLY_KEYS,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.paths = paths
        self.site_domains = tuple(site_domains)
        self.max_expanded = max_expanded
        self.tick = tick  # called every TICK records, for progress
        self.format = ""
        self.records = 0
        self.skipped: Counter[str] = Counter()  # why → records
        self.skipped_views = [0, 0]  # the totals of count records skipped
        self._digest = hashlib.sha256()
        self.tally = Sums(tally_keys)

    @property
    def content_hash(self) -> str:
        return self._digest.hexdigest()

    @property
    def import_id(self) -> str:
        return self.content_hash[:ID_CHARS]

    def tallies(self, stream: IO[bytes], name: str = "the file") -> Iterator[Sums]:
        """Tallies of the file's adds, each to be taken before the next is asked for;
        raises `invalid_file` for what cannot be read."""
        head = stream.read(4)
        if head[:2] == b"\x1f\x8b":  # GoatCounter's download is gzipped
            stream.seek(0)
            text = _decoded(
                _Expanded(gzip.GzipFile(fileobj=stream, mode="rb"), self.max_expanded, name, "gzip")
            )
            yield from self._text(text, name)
        elif head == b"PK\x03\x04":  # Plausible's exports are zips
            stream.seek(0)
            yield from self._zip(stream)
        else:
            stream.seek(0)
            text = _decoded(stream)
            try:
                yield from self._text(text, name)
            finally:
                text.detach()  # the caller's stream stays open
        yield self.tally

    def _zip(self, stream: IO[bytes]) -> Iterator[Sums]:
        """A Plausible export: its pages file(s) (`pages.csv` of the dashboard's export,
        `imported_pages_*.csv` of the site export); the other files hold no pages."""
        try:
            archive = zipfile.ZipFile(stream)
            names = sorted(
                n for n in archive.namelist() if _PAGE_FILES.fullmatch(n.rsplit("/", 1)[-1])
            )
            if not names:
                raise bad(
                    "this zip has no pages.csv or imported_pages_*.csv (Plausible's "
                    f"page files); it has {', '.join(archive.namelist()[:10]) or 'nothing'}"
                )
            budget = self.max_expanded
            for member in names:
                raw = _Expanded(archive.open(member), budget, member, "zip")
                yield from self._text(_decoded(raw), member)
                budget -= raw.given
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise bad(f"a damaged zip file: {exc}") from None

    def _text(self, text: IO[str], name: str) -> Iterator[Sums]:
        lines = _lines(text, name)
        first = next(lines, "")
        if first.lstrip().startswith("{"):
            yield from _ndjson(self, itertools.chain([first], lines), name)
            return
        reader = csv.reader(itertools.chain([first], lines))

        def rows() -> Iterator[tuple[int, list[str]]]:
            try:
                for cells in reader:
                    if cells and any(c.strip() for c in cells):
                        yield reader.line_num, cells
            except csv.Error as exc:
                raise bad(f"{name}: line {reader.line_num}: not CSV: {exc}") from None

        yield from self._csv(rows(), name)

    def _csv(self, lines: Iterator[tuple[int, list[str]]], name: str) -> Iterator[Sums]:
        head = next(lines, None)
        if head is None:
            raise bad(f"{name} is empty")
        header = [c.strip().lower() for c in head[1]]
        columns = {n: i for i, n in enumerate(header)}
        if tuple(c.strip() for c in head[1]) == exports.CSV_HEADER:
            yield from _livecount(self, _csv_records(lines))
            return
        if header and (version := _GOAT.fullmatch(header[0])):
            if version.group(1) not in ("1", "2"):
                raise bad(
                    f"GoatCounter export version {version.group(1)}: versions 1 and 2 are known"
                )
            columns["path"] = 0
            _need(columns, GOAT_COLUMNS, "GoatCounter")
            yield from _goatcounter(self, lines, columns, f"goatcounter-v{version.group(1)}")
            return
        if {"date", "page", "visitors", "pageviews"} <= columns.keys():
            yield from _plausible(self, lines, columns, "page")
            return
        if header[:1] == ["name"] and {"visitors", "pageviews"} <= columns.keys():
            yield from _plausible(self, lines, columns, "name")
            return
        if {"date", "visitors", "pageviews"} <= columns.keys():
            raise bad(
                f"{name} holds site-wide daily totals (Plausible's visitors.csv), not "
                "pages: import pages.csv, or the export's zip"
            )
        raise bad(
            f"{name}: unknown header {','.join(head[1])[:200]!r}; known: livecount's "
            "export, GoatCounter's CSV export, Plausible's pages.csv and "
            "imported_pages_*.csv"
        )

    # -- each record -------------------------------------------------------------------
    def begin(self, form: str) -> None:
        if self.format and self.format != form:
            raise bad(f"a {form} file beside a {self.format} one")
        self.format = form
        self.tally.distinct = form == "livecount"

    def read_record(self, fields: list[str]) -> Iterator[Sums]:
        """Hash one record as read; give the tally to empty when it is full."""
        self._digest.update(_canonical([self.format, *fields]))
        self.records += 1
        if self.tick is not None and self.records % TICK == 0:
            self.tick()
        if self.tally.full:
            yield self.tally
            self.tally.clear()

    def target(self, path: str) -> Target | None:
        """The post or page a file's path counts for, by the mapping options; None (the
        row skipped, and why said) for a path livecount cannot store or map."""
        if sizes.problem(path, sizes.URL) is not None:
            self.skip("paths livecount cannot store")
            return None
        target = self.paths.target(path)
        if isinstance(target, str):
            self.skip(target)
            self.tally.path(path, target)
            return None
        self.tally.path(path, target.ref)
        return target

    def skip(self, why: str) -> None:
        self.skipped[why] += 1

    def keep_title(self, post: str, title: str) -> None:
        """A title the WebSocket would keep; one that shows nothing is no title."""
        if sizes.problem(title, sizes.TITLE) is not None:
            self.skip("titles livecount does not keep (the views count)")
        elif sizes.shows(title):
            self.tally.titles[post] = title


# -- the formats -----------------------------------------------------------------------------
def _goatcounter(
    reader: Reader, lines: Iterator[tuple[int, list[str]]], columns: dict[str, int], form: str
) -> Iterator[Sums]:
    reader.begin(form)
    at = [columns[n] for n in GOAT_COLUMNS]
    tally = reader.tally
    for line, cells in lines:
        values = [cells[i].strip() if i < len(cells) else "" for i in at]
        path, title, event, bot, referrer, scheme, first, when = values
        yield from reader.read_record(values)
        if event.lower() in ("true", "1"):
            reader.skip("events")
            continue
        if bot not in ("", "0"):
            reader.skip("bots")
            continue
        hour = _moment(when, line)
        if (target := reader.target(path)) is None:
            continue
        host = None
        if scheme == "h" and referrer:
            host = referrer_host(
                referrer if "://" in referrer else f"https://{referrer}", reader.site_domains
            )
        tally.add_views(target, 1, 1 if first.lower() in ("true", "1") else 0, hour, host)
        if title and target.kind == "post":
            reader.keep_title(target.id, title[: sizes.MAX_TITLE_CHARS])


def _plausible(
    reader: Reader, lines: Iterator[tuple[int, list[str]]], columns: dict[str, int], page: str
) -> Iterator[Sums]:
    reader.begin("plausible")
    dated = page == "page"
    for line, cells in lines:

        def cell(name: str, cells: list[str] = cells) -> str:
            i = columns[name]
            return cells[i].strip() if i < len(cells) else ""

        day, path = (cell("date") if dated else ""), cell(page)
        visitors, views = cell("visitors"), cell("pageviews")
        yield from reader.read_record([page, day, path, visitors, views])
        hour = None
        if dated:
            try:
                moment = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
            except ValueError:
                raise bad(f"line {line}: date {day[:40]!r} is not YYYY-MM-DD") from None
            if not EARLIEST <= moment <= LATEST:
                raise bad(
                    f"line {line}: date {day[:40]!r} is out of range ({EARLIEST:%Y} to {LATEST:%Y})"
                )
            hour = hour_of(moment)
        total = _count(views, line, "pageviews")
        unique = _count(visitors, line, "visitors")
        if (target := reader.target(path)) is None:
            continue
        if total:
            reader.tally.add_views(target, total, unique, hour)


def _livecount(reader: Reader, records: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[Sums]:
    """Records of livecount's export, from either form. An export holds each item
    once, never more unique views than views, and no hour outside the years reports
    cover: a file that does is not one. `PARTS_RULE` needs every record, so the plan
    checks it once all are read."""
    reader.begin("livecount")
    tally = reader.tally
    for line, value in records:
        kind, ref = value["record"], value["target"]
        total = value.get("totalViews", value.get("views", 0))
        unique = value.get("uniqueViews", 0)
        hour, host = value.get("hour", ""), value.get("host", "")
        title = value.get("articleTitle", "")
        yield from reader.read_record([kind, ref, title, hour, host, str(total), str(unique)])
        if unique > total:
            raise bad(f"line {line}: uniqueViews {unique} is more than totalViews {total}")
        if kind == "timeline" and not _in_range(hour):
            raise bad(
                f"line {line}: hour {hour[:40]!r} must be YYYY-MM-DDTHH, a real "
                f"hour from {EARLIEST:%Y} to {LATEST:%Y}"
            )
        target = None if kind != "count" and ref == SITE else _target(ref, line)
        if target is not None and sizes.problem(target.id, sizes.ID) is not None:
            reader.skip(f"{target.kind} ids livecount cannot store")
            if kind == "count":
                reader.skipped_views[0] += total
                reader.skipped_views[1] += unique
            continue
        if kind == "count":
            assert target is not None
            tally.add(target.kind, target.id, "", total, unique, line)
            if title and target.kind == "post":
                reader.keep_title(target.id, title)
            continue
        row = SITE if target is None else target.ref
        if kind == "timeline":
            tally.add("timeline", row, hour, total, unique, line)
            for rollup in hour_rows(row, hour)[1:]:  # as the node writes them
                tally.add("timeline", rollup.target, rollup.sort, total, unique)
        elif dns_host(host) == host:
            tally.add("referrer", row, host, total, 0, line)
        else:
            reader.skip("referrer hosts livecount cannot store")


def _ndjson(reader: Reader, lines: Iterator[str], name: str) -> Iterator[Sums]:
    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        for line, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                raise bad(f"{name}: line {line}: not JSON") from None
            if not isinstance(value, dict):
                raise bad(f"{name}: line {line}: not a JSON object")
            if line == 1:
                if value.get("record") != "export" or value.get("format") != "livecount":
                    raise bad(
                        "NDJSON that is not a livecount export (its first line is "
                        '{"record":"export","format":"livecount",…})'
                    )
                if value.get("version") != exports.VERSION:
                    raise bad(
                        f"livecount export version {value.get('version')!r}; this "
                        f"livecount reads version {exports.VERSION}"
                    )
                continue
            yield line, _ndjson_record(value, line)

    yield from _livecount(reader, records())


# -- livecount's own records, either form --------------------------------------------------
# The fields of each record, as `exports.Record.fields` writes them ('?' optional).
_NDJSON_FIELDS: Final[dict[str, dict[str, type]]] = {
    "count": {
        "record": str,
        "target": str,
        "articleTitle?": str,
        "totalViews": int,
        "uniqueViews": int,
    },
    "timeline": {"record": str, "target": str, "hour": str, "totalViews": int, "uniqueViews": int},
    "referrer": {"record": str, "target": str, "host": str, "views": int},
}


def _ndjson_record(value: dict[str, Any], line: int) -> dict[str, Any]:
    kind = value.get("record")
    fields = _NDJSON_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise bad(f"line {line}: record {str(kind)[:20]!r} is not count, timeline or referrer")
    known = {name.rstrip("?") for name in fields}
    if extra := sorted(set(value) - known):
        raise bad(f"line {line}: a {kind} record has no field {extra[0][:40]!r}")
    for name, kind_of in fields.items():
        optional, name = name.endswith("?"), name.rstrip("?")
        if name not in value:
            if optional:
                continue
            raise bad(f"line {line}: a {kind} record without {name}")
        got = value[name]
        if type(got) is not kind_of:  # a bool is no count, nor 1.0
            raise bad(f"line {line}: {name} is not a {'count' if kind_of is int else 'string'}")
        if isinstance(got, int) and not 0 <= got <= MAX_COUNT:
            raise bad(f"line {line}: {name} is not a count")
    return value


def _csv_records(lines: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The CSV form's records as the NDJSON form's: each kind's cells, the others empty."""
    width = len(exports.CSV_HEADER)
    for line, cells in lines:
        if len(cells) != width:
            raise bad(f"line {line}: {len(cells)} cells; the header has {width}")
        kind, target, title, hour, host, total, unique = cells
        if kind not in _NDJSON_FIELDS:
            raise bad(f"line {line}: record {kind[:20]!r} is not count, timeline or referrer")
        others = {
            "count": (hour, host),
            "timeline": (title, host),
            "referrer": (title, hour, unique),
        }[kind]
        if any(others):
            raise bad(f"line {line}: a {kind} record with a cell it does not have")
        value: dict[str, Any] = {"record": kind, "target": target}
        if kind == "referrer":
            value |= {"host": host, "views": _count(total, line, "totalViews", empty=False)}
            yield line, value
            continue
        value |= {
            "totalViews": _count(total, line, "totalViews", empty=False),
            "uniqueViews": _count(unique, line, "uniqueViews", empty=False),
        }
        if kind == "timeline":
            value["hour"] = hour
        elif title:
            value["articleTitle"] = title
        yield line, value


def _target(ref: str, line: int) -> Target:
    """The post or page `ref` names; a ref of no known form stops the file."""
    if (target := Target.from_ref(ref)) is None:
        raise bad(
            f"line {line}: target {ref[:60]!r} is not post#<id> or page#<name>"
            + ("" if ref.startswith(("post#", "page#")) else " (or site, for a row)")
        )
    return target


@lru_cache(maxsize=1 << 16)  # a history's hours repeat, target after target
def _in_range(hour: str) -> bool:
    """`hour` is `YYYY-MM-DDTHH`, a real hour, within the years reports cover."""
    if not _HOUR.fullmatch(hour):
        return False
    try:
        moment = datetime(
            int(hour[:4]), int(hour[5:7]), int(hour[8:10]), int(hour[11:]), tzinfo=UTC
        )
    except ValueError:
        return False
    return EARLIEST <= moment <= LATEST


def _canonical(fields: list[str]) -> bytes:
    """A record as bytes no other record has: its fields between separators, or, when
    a field holds a separator itself, its repr (which holds none)."""
    text = "\x1f".join(fields)
    if "\x1e" in text or text.count("\x1f") != len(fields) - 1:
        text = repr(fields)
    return (text + "\x1e").encode(errors="surrogatepass")


def _need(columns: dict[str, int], names: Iterable[str], what: str) -> None:
    if missing := [n for n in names if n not in columns]:
        raise bad(f"a {what} header without {', '.join(missing)}")


def _count(text: str, line: int, name: str, empty: bool = True) -> int:
    text = text.strip()
    if text == "" and empty:
        return 0
    if not re.fullmatch(r"[0-9]{1,13}", text) or int(text) > MAX_COUNT:
        raise bad(f"line {line}: {name} {text[:40]!r} is not a count")
    return int(text)


def _moment(text: str, line: int) -> str:
    try:
        moment = datetime.fromisoformat(text)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    except ValueError:
        raise bad(f"line {line}: Date {text[:40]!r} is not an RFC 3339 time") from None
    if not EARLIEST <= moment <= LATEST:
        raise bad(f"line {line}: Date {text[:40]!r} is out of range")
    return hour_of(moment)


PARTS_RULE: Final = (
    "in livecount's export no part is above its total: a post's or page's timeline sums "
    "to at most its totalViews and uniqueViews, its referrers to at most its totalViews, "
    "and the site's rows to at most every count's totals"
)
