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
is skipped and reported.
A file is read whole before anything is written: a line that cannot be read stops the
import with its line number, and nothing is counted.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

from livecount.core import exports, sizes
from livecount.core.errors import ClientError
from livecount.core.ledger import SITE, Counts, Row
from livecount.core.pages import PageError, PageRules, Target, dns_host, referrer_host
from livecount.core.report_rows import counts_unique, hour_rows, view_rows
from livecount.core.reports import EARLIEST, LATEST, hour_of
from livecount.core.tables import Tables

IMPORTS: Final = "import"  # the PageIndex partition of import records
MAX_COUNT: Final = 10**12  # a count on one line; past it, the line is a mistake
_HOUR: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}")
_GOAT: Final = re.compile(r"([0-9]+)path")
GOAT_COLUMNS: Final = ("path", "title", "event", "bot", "referrer", "referrer scheme",
                       "firstvisit", "date")


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


@dataclass
class ImportPlan:
    """What a file adds, summed per stored item; and what it skipped, and why."""

    format: str
    counts: dict[Target, Counts] = field(default_factory=dict)
    titles: dict[Target, str] = field(default_factory=dict)
    rows: dict[Row, Counts] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)  # why → lines
    unmatched: Counter[str] = field(default_factory=Counter)  # path → lines
    seen: dict[tuple[Any, ...], int] = field(default_factory=dict)  # export record → line

    def add_views(self, target: Target, total: int, unique: int, hour: str | None,
                  host: str | None = None, title: str = "") -> None:
        """Views of `target` as livecount would have counted them: the totals, and with
        an hour every report row they add to (`view_rows`); without one, a referrer's
        all-time rows."""
        unique = min(unique, total)
        self.add_count(target, Counts(total, unique), title)
        if hour is not None:
            for row in view_rows(target, hour, host):
                self._add(row, Counts(total, unique if counts_unique(row) else 0))
        elif host:
            for ref in (target.ref, SITE):
                self._add(Row("referrer", ref, host), Counts(total, 0))

    def add_count(self, target: Target, counts: Counts, title: str = "") -> None:
        before = self.counts.get(target, Counts(0, 0))
        self.counts[target] = Counts(before.total + counts.total, before.unique + counts.unique)
        if title and target.kind == "post":
            self.titles[target] = title

    def add_row(self, row: Row, counts: Counts) -> None:
        self._add(row, counts)

    def fingerprint(self) -> str:
        """What this plan adds, as a hash: the same file read with other rules (another
        --path-pattern) is another plan, and adding it too would count views twice."""
        counts = sorted([*t, *c] for t, c in self.counts.items())
        rows = sorted([*r, *c] for r, c in self.rows.items())
        return hashlib.sha256(json.dumps([counts, rows]).encode()).hexdigest()[:32]

    def skip(self, reason: str, path: str | None = None) -> None:
        self.skipped[reason] += 1
        if path is not None:
            self.unmatched[path] += 1

    def _add(self, row: Row, counts: Counts) -> None:
        before = self.rows.get(row, Counts(0, 0))
        self.rows[row] = Counts(before.total + counts.total, before.unique + counts.unique)


def import_id(data: bytes) -> str:
    """The file's identity: the same bytes are the same import."""
    return hashlib.sha256(data).hexdigest()[:32]


def read(data: bytes, paths: PathMap, site_domains: Sequence[str] = ()) -> ImportPlan:
    """Every count in the export `data`; raises `invalid_file` for what cannot be read."""
    if data[:2] == b"\x1f\x8b":  # GoatCounter's download is gzipped
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise bad(f"a damaged gzip file: {exc}") from None
    if data[:4] == b"PK\x03\x04":  # Plausible's exports are zips
        return _zip(data, paths, site_domains)
    text = _text(data, "the file")
    if text.lstrip().startswith("{"):
        return _ndjson(text)
    return _csv(text, paths, site_domains, None)


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad(f"{name} is not UTF-8 text (byte {exc.start + 1})") from None


def _zip(data: bytes, paths: PathMap, site_domains: Sequence[str]) -> ImportPlan:
    """A Plausible export: its pages file(s) (`pages.csv` of the dashboard's export,
    `imported_pages_*.csv` of the site export); the other files hold no pages."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = [n for n in archive.namelist()
                 if n.rsplit("/", 1)[-1] == "pages.csv"
                 or re.fullmatch(r"imported_pages(_[0-9]{8}_[0-9]{8})?\.csv", n.rsplit("/", 1)[-1])]
        if not names:
            raise bad("this zip has no pages.csv or imported_pages_*.csv (Plausible's "
                      f"page files); it has {', '.join(archive.namelist()[:10]) or 'nothing'}")
        plan: ImportPlan | None = None
        for name in sorted(names):
            plan = _csv(_text(archive.read(name), name), paths, site_domains, plan, name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise bad(f"a damaged zip file: {exc}") from None
    assert plan is not None
    return plan


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each line that is not blank."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            if cells and any(c.strip() for c in cells):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise bad(f"line {reader.line_num}: not CSV: {exc}") from None


def _csv(text: str, paths: PathMap, site_domains: Sequence[str], plan: ImportPlan | None,
         name: str = "the file") -> ImportPlan:
    lines = _rows(text)
    first = next(lines, None)
    if first is None:
        raise bad(f"{name} is empty")
    header = [c.strip().lower() for c in first[1]]
    columns = {n: i for i, n in enumerate(header)}
    if tuple(c.strip() for c in first[1]) == exports.CSV_HEADER:
        return _livecount_csv(lines, plan or ImportPlan("livecount"))
    if header and (version := _GOAT.fullmatch(header[0])):
        if version.group(1) not in ("1", "2"):
            raise bad(f"GoatCounter export version {version.group(1)}: versions 1 and 2 "
                      "are known")
        columns["path"] = 0
        _need(columns, GOAT_COLUMNS, "GoatCounter")
        return _goatcounter(lines, columns, paths, site_domains,
                            plan or ImportPlan(f"goatcounter-v{version.group(1)}"))
    if {"date", "page", "visitors", "pageviews"} <= columns.keys():
        return _plausible(lines, columns, "page", paths, plan or ImportPlan("plausible"),
                          dated=True)
    if header[:1] == ["name"] and {"visitors", "pageviews"} <= columns.keys():
        return _plausible(lines, columns, "name", paths, plan or ImportPlan("plausible"),
                          dated=False)
    if {"date", "visitors", "pageviews"} <= columns.keys():
        raise bad(f"{name} holds site-wide daily totals (Plausible's visitors.csv), not "
                  "pages: import pages.csv, or the export's zip")
    raise bad(f"{name}: unknown header {','.join(first[1])[:200]!r}; known: livecount's "
              "export, GoatCounter's CSV export, Plausible's pages.csv and "
              "imported_pages_*.csv")


def _need(columns: dict[str, int], names: Iterable[str], what: str) -> None:
    if missing := [n for n in names if n not in columns]:
        raise bad(f"a {what} header without {', '.join(missing)}")


def _cell(cells: list[str], columns: dict[str, int], name: str) -> str:
    i = columns[name]
    return cells[i].strip() if i < len(cells) else ""


def _count(text: str, line: int, name: str) -> int:
    text = text.strip()
    if text == "":
        return 0
    if not re.fullmatch(r"[0-9]{1,13}", text) or int(text) > MAX_COUNT:
        raise bad(f"line {line}: {name} {text[:40]!r} is not a count")
    return int(text)


def _goatcounter(lines: Iterator[tuple[int, list[str]]], columns: dict[str, int],
                 paths: PathMap, site_domains: Sequence[str], plan: ImportPlan) -> ImportPlan:
    for line, cells in lines:
        def cell(name: str, cells: list[str] = cells) -> str:
            return _cell(cells, columns, name)

        if cell("event").lower() in ("true", "1"):
            plan.skip("events")
            continue
        if cell("bot") not in ("", "0"):
            plan.skip("bots")
            continue
        hour = _moment(cell("date"), line)
        path = cell("path")
        target = paths.target(path)
        if isinstance(target, str):
            plan.skip(target, path)
            continue
        host = None
        if cell("referrer scheme") == "h" and (ref := cell("referrer")):
            host = referrer_host(ref if "://" in ref else f"https://{ref}", site_domains)
        unique = 1 if cell("firstvisit").lower() in ("true", "1") else 0
        title = cell("title")[:sizes.MAX_TITLE_CHARS] if target.kind == "post" else ""
        if title and sizes.problem(title, sizes.TITLE) is not None:
            title = ""
        plan.add_views(target, 1, unique, hour, host, title)
    return plan


def _moment(text: str, line: int) -> str:
    try:
        moment = datetime.fromisoformat(text)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    except ValueError:
        raise bad(f"line {line}: Date {text[:40]!r} is not an RFC 3339 time") from None
    if not EARLIEST <= moment <= LATEST:
        raise bad(f"line {line}: Date {text[:40]!r} is out of range")
    return hour_of(moment)


def _plausible(lines: Iterator[tuple[int, list[str]]], columns: dict[str, int], page: str,
               paths: PathMap, plan: ImportPlan, dated: bool) -> ImportPlan:
    for line, cells in lines:
        hour = None
        if dated:
            day = _cell(cells, columns, "date")
            try:
                hour = f"{date.fromisoformat(day):%Y-%m-%d}T00"
            except ValueError:
                raise bad(f"line {line}: date {day[:40]!r} is not YYYY-MM-DD") from None
        total = _count(_cell(cells, columns, "pageviews"), line, "pageviews")
        unique = _count(_cell(cells, columns, "visitors"), line, "visitors")
        path = _cell(cells, columns, page)
        target = paths.target(path)
        if isinstance(target, str):
            plan.skip(target, path)
            continue
        if total:
            plan.add_views(target, total, unique, hour)
    return plan


# -- livecount's own export -----------------------------------------------------------------
def _livecount_csv(lines: Iterator[tuple[int, list[str]]], plan: ImportPlan) -> ImportPlan:
    for line, cells in lines:
        if len(cells) != len(exports.CSV_HEADER):
            raise bad(f"line {line}: {len(cells)} cells; the header has "
                      f"{len(exports.CSV_HEADER)}")
        record, target, title, hour, host, total, unique = cells
        _record(plan, line, {"record": record, "target": target, "articleTitle": title,
                             "hour": hour, "host": host,
                             "totalViews": _count(total, line, "totalViews"),
                             "uniqueViews": _count(unique, line, "uniqueViews"),
                             "views": _count(total, line, "totalViews")})
    return plan


def _ndjson(text: str) -> ImportPlan:
    plan = ImportPlan("livecount")
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            raise bad(f"line {line}: not JSON") from None
        if not isinstance(value, dict):
            raise bad(f"line {line}: not a JSON object")
        if line == 1:
            if value.get("record") != "export" or value.get("format") != "livecount":
                raise bad("NDJSON that is not a livecount export (its first line is "
                          '{"record":"export","format":"livecount",…})')
            if value.get("version") != exports.VERSION:
                raise bad(f"livecount export version {value.get('version')!r}; this "
                          f"livecount reads version {exports.VERSION}")
            continue
        for name in ("totalViews", "uniqueViews", "views"):
            if name in value and (type(value[name]) is not int
                                  or not 0 <= value[name] <= MAX_COUNT):
                raise bad(f"line {line}: {name} is not a count")
        _record(plan, line, value)
    return plan


def _record(plan: ImportPlan, line: int, value: dict[str, Any]) -> None:
    """One record of a livecount export, from either form. An export holds each item
    once, and never more unique views than views: a file that does is not one."""
    kind, ref = value.get("record"), value.get("target")
    if not isinstance(ref, str):
        raise bad(f"line {line}: no target")
    counts = Counts(int(value.get("totalViews", 0)), int(value.get("uniqueViews", 0)))
    if counts.unique > counts.total:
        raise bad(f"line {line}: uniqueViews {counts.unique} is more than totalViews "
                  f"{counts.total}")
    key = (kind, ref, value.get("hour"), value.get("host"))
    if key in plan.seen:
        raise bad(f"line {line}: the same {kind} record as line {plan.seen[key]}")
    plan.seen[key] = line
    if kind == "count":
        target = _target(ref, line)
        title = value.get("articleTitle") or ""
        if not isinstance(title, str) or sizes.problem(title, sizes.TITLE) is not None:
            raise bad(f"line {line}: articleTitle is not a title livecount keeps")
        plan.add_count(target, counts, title)
    elif kind == "timeline":
        hour = value.get("hour")
        if not isinstance(hour, str) or not _HOUR.fullmatch(hour) or not _real_hour(hour):
            raise bad(f"line {line}: hour must be YYYY-MM-DDTHH, a real hour")
        for row in hour_rows(_row_target(ref, line), hour):  # the hour and its rollups
            plan.add_row(row, counts)
    elif kind == "referrer":
        host = value.get("host")
        if not isinstance(host, str) or dns_host(host) != host:
            raise bad(f"line {line}: host {str(host)[:60]!r} is not a host name")
        views = int(value.get("views", value.get("totalViews", 0)))
        plan.add_row(Row("referrer", _row_target(ref, line), host), Counts(views, 0))
    else:
        raise bad(f"line {line}: record {str(kind)[:20]!r} is not count, timeline or referrer")


def _real_hour(hour: str) -> bool:
    try:
        datetime.strptime(hour, "%Y-%m-%dT%H")
    except ValueError:
        return False
    return True


def _target(ref: str, line: int) -> Target:
    target = Target.from_ref(ref)
    if target is None or sizes.problem(target.id, sizes.ID) is not None:
        raise bad(f"line {line}: target {ref[:60]!r} is not post#<id> or page#<name>")
    return target


def _row_target(ref: str, line: int) -> str:
    return ref if ref == SITE else _target(ref, line).ref


# -- the writes of an import -----------------------------------------------------------------
def marker(import_id: str) -> str:
    """The attribute an import leaves on each item it added to: its write is refused
    where it is found, so a file imported twice, or resumed, adds once."""
    return f"import:{import_id}"


def count_write(tables: Tables, target: Target, counts: Counts, title: str,
                mark: str) -> dict[str, Any]:
    """UpdateItem adding a post's or page's totals (a post's bumps `version` too, for
    the reader copy), once per import. The title only fills a missing one."""
    if target.kind == "post":
        table, key = tables.writer, {"articleId": {"S": target.id}}
        adds = {"totalViews": counts.total, "uniqueViews": counts.unique, "version": 1}
    else:
        table, key = tables.pages, {"pageName": {"S": target.id}}
        adds = {"totalViews": counts.total, "uniqueViews": counts.unique}
    return _marked(table, key, adds, mark, title if target.kind == "post" else "")


def row_write(tables: Tables, row: Row, counts: Counts, mark: str) -> dict[str, Any]:
    if row.table == "referrer":
        return _marked(tables.referrers, {"target": {"S": row.target}, "host": {"S": row.sort}},
                       {"views": counts.total}, mark)
    return _marked(tables.timeline, {"target": {"S": row.target}, "hour": {"S": row.sort}},
                   {"totalViews": counts.total, "uniqueViews": counts.unique}, mark)


def _marked(table: str, key: dict[str, Any], adds: dict[str, int], mark: str,
            title: str = "") -> dict[str, Any]:
    names = {"#m": mark} | {f"#a{i}": n for i, n in enumerate(adds)}
    values: dict[str, Any] = {":one": {"N": "1"}} | {
        f":a{i}": {"N": str(v)} for i, v in enumerate(adds.values())}
    update = f"ADD {', '.join(f'#a{i} :a{i}' for i in range(len(adds)))} SET #m = :one"
    if title:
        names["#t"], values[":t"] = "articleTitle", {"S": title}
        update += ", #t = if_not_exists(#t, :t)"
    return {"TableName": table, "Key": key, "UpdateExpression": update,
            "ConditionExpression": "attribute_not_exists(#m)",
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


def record_item(import_id: str, name: str, plan: ImportPlan, state: str,
                at: str) -> dict[str, Any]:
    """An import's record, in the PageIndex partition `import`."""
    return {"index": {"S": IMPORTS}, "target": {"S": import_id}, "file": {"S": name[:512]},
            "format": {"S": plan.format}, "plan": {"S": plan.fingerprint()},
            "state": {"S": state}, "at": {"S": at}}
