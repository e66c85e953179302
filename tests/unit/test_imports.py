"""Reading exports: livecount's own (both forms), GoatCounter's, Plausible's.

The other tools' files are written here as their makers document them:
- GoatCounter: https://www.goatcounter.com/help/export, CSV format version 2 (the
  first header cell is the version glued to `Path`, as `export.go` writes it).
- Plausible's dashboard export: `pages.csv` as in plausible/analytics
  test/plausible_web/controllers/CSVs/30d/pages.csv (`name,visitors,pageviews,…`).
- Plausible's site export: `imported_pages_<from>_<to>.csv` with the columns of
  `export_pages_q` in plausible/analytics lib/plausible/exports.ex.
"""

import gzip
import io
import json
import re
import sqlite3
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from livecount.aws import local as dynamodb_local
from livecount.aws.store_imports import Begun
from livecount.core import exports, import_chunks
from livecount.core.errors import ClientError
from livecount.core.exports import Record
from livecount.core.import_chunks import ImportRecord
from livecount.core.imports import MAX_EXPANDED, TALLY_KEYS, Add, PathMap, Reader
from livecount.core.ledger import SITE, Counts, Row
from livecount.core.pages import PageRules, Target
from livecount.core.report_rows import buckets_of
from livecount.core.tables import Tables
from livecount.tools import importer
from livecount.tools.import_plan import ImportPlan
from rich.console import Console


def hour_rows_of(ref: str, counts: Counts, hour: str = "2024-03-01T10") -> dict[Row, Counts]:
    """`ref`'s hour row and its rollups, each holding `counts`."""
    return {
        Row("timeline", ref, hour): counts,
        **{Row("timeline", b, ref): counts for b in buckets_of(hour)},
    }


PATHS = PathMap(PageRules(patterns=["/blog/{id}/"], unmatched="refuse"))
HELLO, CAFE, HOME = Target("post", "hello"), Target("post", "café"), Target("page", "Home_Page")


@dataclass
class Read:
    """What reading a file gave: the reader's findings and its plan, as dicts."""

    format: str
    import_id: str
    records: int
    skipped: Counter[str]
    counts: dict[Target, Counts]
    titles: dict[Target, str]
    rows: dict[Row, Counts]
    unmatched: dict[str, int]
    plan: str  # the plan's fingerprint
    adds: list[Add]


def read(
    data: bytes,
    paths: PathMap = PATHS,
    site_domains: tuple[str, ...] = (),
    max_expanded: int = MAX_EXPANDED,
    tally_keys: int = TALLY_KEYS,
) -> Read:
    with tempfile.TemporaryDirectory() as tmp:
        plan = ImportPlan(Path(tmp))
        try:
            reader = Reader(paths, site_domains, max_expanded, tally_keys)
            for tally in reader.tallies(io.BytesIO(data)):
                plan.take(tally)
            plan.check(reader)
            adds = list(plan.adds())
            return Read(
                reader.format,
                reader.import_id,
                reader.records,
                reader.skipped,
                {
                    Target("post" if a.kind == "post" else "page", a.key): Counts(a.total, a.unique)
                    for a in adds
                    if a.kind in ("post", "page")
                },
                {Target("post", a.key): a.title for a in adds if a.title},
                {
                    Row(a.kind, a.key, a.sort): Counts(a.total, a.unique)
                    for a in adds
                    if a.kind in ("timeline", "referrer")
                },
                {p: n for p, _, n in plan.paths(100, mapped=False)},
                plan.summary().plan,
                adds,
            )
        finally:
            plan.db.close()


GOATCOUNTER = (
    "2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,Referrer scheme,"
    "Screen size,Location,FirstVisit,Date\r\n"
    "/blog/hello/,Hello,false,,Firefox 120,Linux,s1,0,news.ycombinator.com/item?id=1,h,"
    '"1920,1080,1",NL,true,2024-03-01T10:15:00Z\r\n'
    '/blog/hello/?utm=x,Hello again,false,,Firefox 120,Linux,s1,0,,,"1920,1080,1",NL,false,'
    "2024-03-01T10:40:00Z\r\n"
    '/,Home,false,,Chrome 119,Windows 10,s2,0,Hacker News,g,"1280,720,1",US,true,'
    "2024-03-01T11:00:00+01:00\r\n"
    "/blog/caf%C3%A9/,Café,false,,Safari 17,macOS,s3,0,https://www.blog.example/x,h,"
    '"390,844,3",FR,true,2024-03-02T09:00:00Z\r\n'
    '/blog/hello/,Hello,false,,curl,,s4,4,,,"",,true,2024-03-02T09:00:00Z\r\n'
    'click-subscribe,Subscribe,true,,Firefox 120,Linux,s1,0,,,"",NL,false,'
    "2024-03-01T10:16:00Z\r\n"
    '/tags/python/,Tag,false,,Firefox 120,Linux,s5,0,,,"",NL,true,2024-03-02T12:00:00Z\r\n'
    "\r\n"
)

PLAUSIBLE_PAGES = (
    "name,visitors,pageviews,bounce_rate,time_on_page\n"
    "/,4,3,67,\n"
    "/blog/hello/,10,25,40,60.0\n"
    "/about-us,2,2,,\n"
)

PLAUSIBLE_IMPORTED_PAGES = (
    "date,hostname,page,visits,visitors,pageviews,total_scroll_depth,total_scroll_depth_visits\n"
    "2024-03-01,blog.example,/blog/hello/,5,4,6,0,0\n"
    "2024-03-02,blog.example,/blog/hello/,3,3,3,0,0\n"
    "2024-03-02,blog.example,/pages/about,1,1,1,0,0\n"
)


def test_goatcounter_pageviews_become_posts_pages_hours_and_referrers():
    plan = read(GOATCOUNTER.encode(), PATHS, site_domains=("blog.example",))
    assert plan.format == "goatcounter-v2" and plan.records == 7
    assert plan.counts == {HELLO: Counts(2, 1), HOME: Counts(1, 1), CAFE: Counts(1, 1)}
    assert plan.titles == {HELLO: "Hello again", CAFE: "Café"}
    assert plan.rows[Row("timeline", "post#hello", "2024-03-01T10")] == Counts(2, 1)
    assert plan.rows[Row("timeline", "page#Home_Page", "2024-03-01T10")] == Counts(1, 1)  # +01:00
    assert plan.rows[Row("timeline", SITE, "2024-03-01T10")] == Counts(3, 2)
    # An HTTP referrer is a host; a generated one ("Hacker News") and the site's own are not.
    # Its rows are the node's own: the hour's rollups, and the host's rows in each bucket.
    referrers = {r: c.total for r, c in plan.rows.items() if r.table == "referrer"}
    assert referrers == {
        Row("referrer", ref, sort): 1
        for ref in ("post#hello", SITE)
        for sort in (
            "news.ycombinator.com",
            *(
                f"#{b}#news.ycombinator.com"
                for b in ("h#2024-03-01T10", "d#2024-03-01", "m#2024-03")
            ),
        )
    }
    assert {r: c for r, c in plan.rows.items() if r.target == "all"} == {
        Row("timeline", "all", "post#hello"): Counts(2, 1),
        Row("timeline", "all", "page#Home_Page"): Counts(1, 1),
        Row("timeline", "all", "post#café"): Counts(1, 1),
        Row("timeline", "all", SITE): Counts(4, 3),
    }
    assert plan.skipped == {"bots": 1, "events": 1, "no page rule or --path-pattern matches": 1}
    assert plan.unmatched == {"/tags/python/": 1}


def test_an_import_is_its_records_whether_gzipped_or_not():
    """Issue 22 E: GoatCounter hands out .gz files; the same rows unpacked are the same
    import, so that importing both cannot count them twice."""
    plain = read(GOATCOUNTER.encode())
    for same in (
        gzip.compress(GOATCOUNTER.encode()),
        GOATCOUNTER.replace("\r\n", "\n").encode(),
        b"\xef\xbb\xbf" + GOATCOUNTER.encode(),
    ):  # gzipped, LF, with a BOM
        again = read(same)
        assert (again.import_id, again.plan, again.adds) == (
            plain.import_id,
            plain.plan,
            plain.adds,
        )
    other = read(GOATCOUNTER.replace("2024-03-02T09:00:00Z", "2024-03-02T10:00:00Z").encode())
    assert other.import_id != plain.import_id
    # The same records mapped otherwise are the same import, with another plan.
    mapped = read(GOATCOUNTER.encode(), PathMap(PageRules(unmatched="refuse")))
    assert mapped.counts == {HOME: Counts(1, 1)}
    assert mapped.import_id == plain.import_id and mapped.plan != plain.plan


def test_ids_that_show_nothing_are_skipped_with_their_reason_and_the_rest_imported():
    """Issue 22 B: paths `/blog/%20%20/` and `/blog/%E3%80%80/` created the posts "  "
    and "\u3000". They go through the WebSocket's one validation (`sizes.problem`)."""
    lines = GOATCOUNTER.splitlines(keepends=True)
    hostile = [
        lines[1].replace("/blog/hello/", path)
        for path in ("/blog/%20%20/", "/blog/%E3%80%80/", "/blog/%E2%80%8B/")
    ]
    plan = read("".join([*lines[:2], *hostile]).encode())
    assert plan.counts == {HELLO: Counts(1, 1)}
    assert all(a.key.strip() and a.key not in ("\u3000", "\u200b") for a in plan.adds)
    assert plan.skipped == {"an id livecount cannot store": 3}
    ndjson = exports.ndjson_head("2026-01-01T00:00:00Z") + "".join(
        exports.ndjson_line(r)
        for r in [
            Record("count", "post#hello", 2, 1),
            Record("count", "post#   ", 5, 5),
            Record("timeline", "post#   ", 5, 5, hour="2024-03-01T10"),
            Record("count", "post#\u200b\u2060", 1, 1),  # zero-width: invisible
            Record("timeline", SITE, 7, 6, hour="2024-03-01T10"),
        ]
    )
    plan = read(ndjson.encode())
    assert plan.counts == {HELLO: Counts(2, 1)}
    assert plan.rows == hour_rows_of(SITE, Counts(7, 6))
    assert plan.skipped == {"post ids livecount cannot store": 3}


def test_a_title_that_shows_nothing_is_no_title_as_on_the_websocket():
    """`sizes.shows`: a blank title would be kept as the post's first, so the WebSocket
    takes it as none; an import does the same (its views count, it is not skipped)."""
    lines = GOATCOUNTER.splitlines(keepends=True)
    blank = lines[1].replace(",Hello,", ",\u3000\u200b ,")
    plan = read("".join([lines[0], blank]).encode())
    assert plan.counts == {HELLO: Counts(1, 1)} and plan.titles == {} and plan.skipped == {}
    ndjson = exports.ndjson_head("2026-01-01T00:00:00Z") + exports.ndjson_line(
        Record("count", "post#hello", 2, 1, title="  \u200b")
    )
    plan = read(ndjson.encode())
    assert plan.counts == {HELLO: Counts(2, 1)} and plan.titles == {} and plan.skipped == {}


def test_plausible_pages_add_totals_without_a_timeline():
    plan = read(PLAUSIBLE_PAGES.encode(), PATHS)
    # Plausible's visitors are unique visitors; never more unique views than views.
    assert plan.counts == {HOME: Counts(3, 3), HELLO: Counts(25, 10)}
    assert plan.rows == {}
    assert plan.unmatched == {"/about-us": 1}


def test_plausible_site_export_pages_add_each_day_in_its_first_hour():
    plan = read(PLAUSIBLE_IMPORTED_PAGES.encode(), PATHS)
    assert plan.counts == {HELLO: Counts(9, 7), Target("page", "About_Page"): Counts(1, 1)}
    assert plan.rows[Row("timeline", "post#hello", "2024-03-01T00")] == Counts(6, 4)
    assert plan.rows[Row("timeline", SITE, "2024-03-02T00")] == Counts(4, 4)


def zipped(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


def test_a_plausible_zip_is_read_for_its_page_files_only():
    visitors = (
        "date,visitors,pageviews,visits,views_per_visit,bounce_rate,visit_duration\n"
        "2024-03-01,100,200,120,1.7,50,30\n"
    )
    plan = read(
        zipped(
            {
                "visitors.csv": visitors,
                "pages.csv": PLAUSIBLE_PAGES,
                "sources.csv": "name,visitors,bounce_rate,visit_duration\n",
            }
        ),
        PATHS,
    )
    assert plan.counts[HELLO] == Counts(25, 10)
    assert plan.import_id == read(PLAUSIBLE_PAGES.encode()).import_id  # its records
    site = read(
        zipped(
            {
                "imported_visitors_20240301_20240302.csv": visitors,
                "imported_pages_20240301_20240302.csv": PLAUSIBLE_IMPORTED_PAGES,
            }
        ),
        PATHS,
    )
    assert site.counts[HELLO] == Counts(9, 7)
    with pytest.raises(ClientError, match=r"no pages\.csv"):
        read(zipped({"visitors.csv": visitors}), PATHS)
    with pytest.raises(ClientError, match="site-wide daily totals"):
        read(visitors.encode(), PATHS)


RECORDS = [
    Record("count", "post#hello", 12, 7, title='A "quoted", title'),
    Record("count", "page#Home_Page", 3, 2),
    Record("timeline", "post#hello", 12, 7, hour="2024-03-01T10"),
    Record("timeline", SITE, 15, 9, hour="2024-03-01T10"),
    Record("referrer", "post#hello", 4, host="news.example"),
    Record("referrer", SITE, 5, host="news.example"),
]


def as_csv(records: list[Record]) -> str:
    return exports.csv_head() + "".join(exports.csv_line(r) for r in records)


def as_ndjson(records: list[Record]) -> str:
    return exports.ndjson_head("2026-01-01T00:00:00Z") + "".join(
        exports.ndjson_line(r) for r in records
    )


def test_livecount_exports_read_back_as_they_were_written():
    read_back = [read(text.encode()) for text in (as_csv(RECORDS), as_ndjson(RECORDS))]
    for plan in read_back:
        assert plan.format == "livecount" and plan.records == 6
        assert plan.counts == {HELLO: Counts(12, 7), HOME: Counts(3, 2)}
        assert plan.titles == {HELLO: 'A "quoted", title'}
        # A timeline record adds to its hour's rollups too; referrers have no time.
        assert plan.rows == {
            **hour_rows_of("post#hello", Counts(12, 7)),
            **hour_rows_of(SITE, Counts(15, 9)),
            Row("referrer", "post#hello", "news.example"): Counts(4, 0),
            Row("referrer", SITE, "news.example"): Counts(5, 0),
        }
    # Either form of one export is one import: its records are the same.
    assert read_back[0].import_id == read_back[1].import_id
    assert json.loads(as_ndjson(RECORDS).splitlines()[-1]) == {
        "record": "referrer",
        "target": "site",
        "host": "news.example",
        "views": 5,
    }


def test_rollups_are_summed_over_the_whole_file_one_add_a_bucket():
    """A history's records share days, months and all time: each rollup is one add of
    the plan, summed over every record of its bucket, even across many spills, so an
    import writes it once, not once a record (issue 24's history: 1,223,804 items, not
    2,048,042)."""
    hours = [f"2024-03-{d:02d}T{h:02d}" for d in (1, 2) for h in range(24)]
    hours += [f"2024-04-{d:02d}T00" for d in range(1, 11)]  # older history: a day a row
    records = [Record("count", "post#hello", 10 * len(hours), 5 * len(hours))]
    records += [Record("timeline", "post#hello", 10, 5, hour=h) for h in hours]
    spilled = read(as_ndjson(records).encode(), tally_keys=7)
    assert spilled.adds == read(as_ndjson(records).encode()).adds
    rollups = {r: c for r, c in spilled.rows.items() if r.target[:2] in ("d#", "m#", "al")}
    days = [*(f"d#2024-03-{d:02d}" for d in (1, 2)), *(f"d#2024-04-{d:02d}" for d in range(1, 11))]
    assert rollups == {
        **{Row("timeline", d, "post#hello"): Counts(240, 120) for d in days[:2]},
        **{Row("timeline", d, "post#hello"): Counts(10, 5) for d in days[2:]},
        Row("timeline", "m#2024-03", "post#hello"): Counts(480, 240),
        Row("timeline", "m#2024-04", "post#hello"): Counts(100, 50),
        Row("timeline", "all", "post#hello"): Counts(580, 290),
    }
    # Items: the post, each hour's row and its hour rollup, then one a day, month, all.
    assert len(spilled.adds) == 1 + 2 * len(hours) + len(days) + 2 + 1


HEAD = '{"record":"export","format":"livecount","version":1}\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("when,what\n1,2\n", "unknown header"),
        ("name,visitors,pageviews\n/,x,3\n", "line 2: visitors 'x' is not a count"),
        ("name,visitors,pageviews\n/,1,-3\n", "line 2: pageviews '-3' is not a count"),
        ("date,page,visitors,pageviews\n03/01/2024,/,1,1\n", "line 2: date"),
        ("date,page,visitors,pageviews\n1999-12-31,/,1,1\n", "line 2: date .* out of range"),
        ("3Path,Title\n", "version 3"),
        ("2Path,Title,Event\n", "without bot"),
        (GOATCOUNTER.replace("2024-03-02T09:00:00Z", "yesterday", 1), "line 5: Date 'yesterday'"),
        (exports.csv_head() + "count,post#a,,,,1\n", "line 2: 6 cells"),
        (exports.csv_head() + "count,blog#a,,,,1,1\n", "target 'blog#a'"),
        (exports.csv_head() + "timeline,post#a,,2024-03-01,,1,1\n", "hour '2024-03-01' must be"),
        (exports.csv_head() + "timeline,post#a,a title,2024-03-01T10,,1,1\n", "a cell it does not"),
        (exports.csv_head() + "referrer,post#a,,,a.example,1,1\n", "a cell it does not"),
        # found by a hostile trial: these were stored as they were
        (exports.csv_head() + "timeline,post#a,,2026-13-45T99,,1,1\n", "a real hour"),
        (exports.csv_head() + "count,post#x,,,,1,5\n", "line 2: uniqueViews 5 is more than"),
        (
            exports.csv_head() + "count,post#x,,,,2,2\ncount,post#x,,,,2,2\n",
            "line 3: the same count record as line 2",
        ),
        (HEAD.replace("1}", "9}"), "version 9"),
        ('{"record":"count"}\n', "not a livecount export"),
        (
            HEAD + '{"record":"count","target":"post#a","totalViews":1.5,"uniqueViews":1}\n',
            "line 2: totalViews is not a count",
        ),
        (
            HEAD + '{"record":"count","target":"post#a","totalViews":true,"uniqueViews":0}\n',
            "line 2: totalViews is not a count",
        ),
        (
            HEAD + '{"record":"count","target":"post#a","totalViews":1,"uniqueViews":0,"x":1}\n',
            "line 2: a count record has no field 'x'",
        ),
        (
            HEAD + '{"record":"timeline","target":"post#a","totalViews":1,"uniqueViews":0}\n',
            "line 2: a timeline record without hour",
        ),
        # Issue 22 F: NDJSON is checked as strictly as the rest
        (
            HEAD + '{"record":"count","target":"post#a","totalViews":1,"uniqueViews":1}\n'
            '{"record":"timeline","target":"post#a","hour":"0001-01-01T00","totalViews":1,'
            '"uniqueViews":1}\n',
            "line 3: hour '0001-01-01T00' must be .* from 2000 to 2200",
        ),
        (
            HEAD + '{"record":"count","target":"post#a","totalViews":2,"uniqueViews":1}\n'
            '{"record":"referrer","target":"post#a","host":"a.example","views":3}\n',
            "post#a: its referrer rows add up to 3 views .* more than its count record's 2",
        ),
        (
            as_csv(
                [
                    Record("count", "post#a", 5, 1),
                    Record("timeline", "post#a", 2, 1, hour="2024-03-01T10"),
                    Record("timeline", "post#a", 2, 1, hour="2024-03-01T11"),
                ]
            ),
            r"post#a: its timeline rows add up to 4 views \(2 unique\), more than its count",
        ),
        (
            as_ndjson([Record("timeline", "page#p", 1, 0, hour="2024-03-01T10")]),
            "page#p: its timeline rows .* more than its count record's 0",
        ),
        (
            as_ndjson(
                [
                    Record("count", "post#a", 5, 1),
                    Record("count", "post#b", 1, 1),
                    Record("timeline", SITE, 7, 0, hour="2024-03-01T10"),
                ]
            ),
            "the site's timeline rows add up to 7 views .* more than every count record's 6",
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole_with_where(text, message):
    with pytest.raises(ClientError, match=message) as refused:
        read(text.encode(), PATHS)
    assert refused.value.code == "invalid_file"


def test_non_utf8_and_damaged_archives_are_refused():
    with pytest.raises(ClientError, match="not UTF-8"):
        read("name,visitors,pageviews\n/é,1,1\n".encode("latin-1"), PATHS)
    with pytest.raises(ClientError, match="gzip"):
        read(gzip.compress(b"x" * 100)[:20], PATHS)


def test_bombs_are_refused_as_they_stream():
    """Issue 22 D: a small .gz that expands to hundreds of MB was decompressed whole.
    Now no line is read past MAX_LINE_CHARS, and no file past --max-expanded."""
    zeros = gzip.compress(b"\0" * (20 << 20), 9)
    with pytest.raises(ClientError, match="line 1 is longer than 1,048,576 characters"):
        read(zeros)
    blank = gzip.compress(HEAD.encode() + (b" " * 1000 + b"\n") * 20_000, 9)  # 20 MB
    with pytest.raises(
        ClientError,
        match=r"expands to more than 5,000,000 bytes, the limit "
        r"--max-expanded sets",
    ):
        read(blank, max_expanded=5_000_000)
    bomb = zipped({"pages.csv": "name,visitors,pageviews\n" + "\n" * (10 << 20)})
    with pytest.raises(ClientError, match=r"pages\.csv expands to more than 1,000,000 bytes"):
        read(bomb, max_expanded=1_000_000)


def test_a_tally_spills_and_the_plan_sums_the_same():
    """Memory stays bounded: a tally of a few items is emptied into the plan (on disk)
    again and again, and the plan is the one a single tally gives."""
    big = "".join(GOATCOUNTER.splitlines(keepends=True)[1:6])
    text = GOATCOUNTER + big * 50
    assert read(text.encode(), tally_keys=3).adds == read(text.encode()).adds
    # A record met twice in livecount's own format, across spills, says where.
    twice = as_csv([*RECORDS, Record("count", "page#Home_Page", 3, 2)])
    with pytest.raises(ClientError, match="line 8: the same count record as line 3"):
        read(twice.encode(), tally_keys=2)


def test_paths_map_as_serve_maps_them():
    """One set of rules (`core/pages.py`, tested in test_pages.py) for live views and
    imports; a path the rules refuse is skipped with their reason."""
    paths = PathMap(
        PageRules.parse(
            ["/=Home_Page", "/blog/=Blog_Index"], ["/blog/{id}/", "/{id}.html"], "refuse"
        )
    )
    assert paths.target("/blog/") == Target("page", "Blog_Index")
    assert paths.target("/blog/a-post/?ref=x") == Target("post", "a-post")
    assert paths.target("/blog/a%20b") == Target("post", "a b")
    assert paths.target("/blog/a/b/") == "no page rule or --path-pattern matches"
    assert paths.target("blog/a") == "no page rule or --path-pattern matches"
    assert paths.target("/blog/" + "x" * 300) == "an id livecount cannot store"
    assert paths.target("/blog/%20%20/") == "an id livecount cannot store"
    assert PathMap(PageRules()).target("/about/") == Target("page", "/about")


def test_a_chunk_adds_once_and_its_undo_takes_back_what_it_added():
    tables = Tables.named("p_")
    adds = [
        Add("post", "hello", "", 25, 10, "Hello"),
        Add("page", "Home_Page", "", 3, 3),
        Add("referrer", SITE, "a.example", 4, 0),
        Add("timeline", "post#hello", "2024-03-01T10", 25, 10),
    ]
    actions = import_chunks.chunk_transaction(tables, "abc", 2, 7, adds, "now")
    assert len(actions) == len(adds) + 1 <= 100
    post = actions[0]["Update"]
    assert post["TableName"] == "p_PostCountWriter"
    assert "#t = if_not_exists(#t, :t)" in post["UpdateExpression"]  # a title is kept
    assert "ConditionExpression" not in post  # the chunk's own item guards the whole
    mark = actions[-1]["Put"]
    assert mark["Item"]["index"] == {"S": "import:abc.2"} and mark["Item"]["target"] == {
        "S": "0000007"
    }
    assert mark["ConditionExpression"] == "attribute_not_exists(#i)"
    assert import_chunks.unpack(mark["Item"]["adds"]["B"]) == [a._replace(title="") for a in adds]
    undo = import_chunks.undo_transaction(tables, "abc", 2, 7, adds, 0, "later")
    taken = undo[0]["Update"]
    assert taken["ExpressionAttributeValues"][":a0"] == {"N": "-25"}
    assert taken["ExpressionAttributeValues"][":one"] == {"N": "1"}  # version still goes up
    assert taken["ConditionExpression"] == "#a0 >= :h0 AND #a1 >= :h1"  # never below zero
    assert undo[2]["Update"]["ConditionExpression"] == "#a0 >= :h0"  # a referrer's views
    assert (
        undo[-1]["Update"]["ConditionExpression"]
        == "attribute_exists(#a) AND attribute_not_exists(#u)"
    )


def test_an_import_record_moves_on_only_from_the_state_it_was_read_in():
    record = ImportRecord(
        "abc",
        "c" * 64,
        "p" * 32,
        1,
        "running",
        "x.csv",
        "livecount",
        3,
        250,
        2,
        1,
        40,
        30,
        "2026-01-01T00:00:00Z",
    )
    assert ImportRecord.from_item(record.item()) == record
    request = record.put("p_PageIndex", record)
    assert request["ConditionExpression"] == "#s = :s AND #a = :a"
    assert request["ExpressionAttributeValues"][":s"] == {"S": "running"}
    assert record.put("t", None)["ConditionExpression"] == "attribute_not_exists(#i)"
    # A record from before imports could be undone reads as attempt 0, done.
    legacy = ImportRecord.from_item(
        {
            "index": {"S": "import"},
            "target": {"S": "f" * 32},
            "state": {"S": "done"},
            "at": {"S": "2025-01-01"},
        }
    )
    assert (legacy.attempt, legacy.state, legacy.started) == (0, "done", "2025-01-01")


def test_the_embedded_store_writes_ahead(tmp_path: Path):
    """DynamoDB Local's SQLite file is put in WAL mode before it starts (SQLite keeps the
    mode in the file): one sync a commit, 3x the transactions a second (BENCHMARKS.md)."""
    db = tmp_path / "dynamodb" / dynamodb_local.SHARED_DB
    db.parent.mkdir()
    dynamodb_local.write_ahead(db)  # a new data dir: the file is made, in WAL mode
    with sqlite3.connect(db) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    busy = tmp_path / "busy.db"
    with sqlite3.connect(busy, isolation_level=None) as holder:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        dynamodb_local.write_ahead(busy)  # in use: left as it is, and no error
        holder.execute("COMMIT")
        assert holder.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_a_person_at_a_terminal_reads_where_paths_go_and_what_was_added(tmp_path: Path):
    """On a terminal (JSON lines otherwise, which tests/e2e/test_admin.py reads): the
    dry run's paths and targets, the skipped records with their reasons, the import."""
    plan = ImportPlan(tmp_path)
    reader = Reader(PATHS, ("blog.example",))
    for tally in reader.tallies(io.BytesIO(GOATCOUNTER.encode())):
        plan.take(tally)
    console = Console(record=True, width=120)
    importer.dry_run(console, plan, reader, "export.csv")
    shown = console.export_text()
    assert "Dry run of export.csv (goatcounter-v2, 7 records): nothing was written." in shown
    assert re.search(r"/blog/hello/\s+│ post hello\s+│\s+1", shown)
    assert re.search(r"/blog/caf%C3%A9/\s+│ post café", shown)
    assert "Skipped records: 1 bots, 1 events, 1 no page rule or --path-pattern matches." in shown
    assert "Paths that map to nothing (most first): /tags/python/" in shown
    record = plan.record(reader, "export.csv")
    console = Console(record=True, width=120)
    importer.done(
        console, plan, reader, Begun(replace(record, attempt=1)), record.chunks, "export.csv"
    )
    shown = console.export_text()
    assert f"Import {reader.import_id}: export.csv" in shown
    assert re.search(r"post\s+│ hello\s+│\s+2 │\s+1", shown)
    assert "Added 2 posts and 1 pages: 4 views (3 unique), 34 items in 1 transactions." in shown
    plan.db.close()
