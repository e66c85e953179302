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
import zipfile

import pytest
from livecount.core import exports
from livecount.core.errors import ClientError
from livecount.core.exports import Record
from livecount.core.imports import PathMap, count_write, import_id, read
from livecount.core.ledger import SITE, Counts, Row
from livecount.core.pages import PageRules, Target
from livecount.core.report_rows import buckets_of
from livecount.core.tables import Tables

PATHS = PathMap(PageRules(patterns=["/blog/{id}/"], unmatched="refuse"))
HELLO, CAFE, HOME = Target("post", "hello"), Target("post", "café"), Target("page", "Home_Page")

GOATCOUNTER = (
    "2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,Referrer scheme,"
    "Screen size,Location,FirstVisit,Date\r\n"
    '/blog/hello/,Hello,false,,Firefox 120,Linux,s1,0,news.ycombinator.com/item?id=1,h,'
    '"1920,1080,1",NL,true,2024-03-01T10:15:00Z\r\n'
    '/blog/hello/?utm=x,Hello again,false,,Firefox 120,Linux,s1,0,,,"1920,1080,1",NL,false,'
    "2024-03-01T10:40:00Z\r\n"
    '/,Home,false,,Chrome 119,Windows 10,s2,0,Hacker News,g,"1280,720,1",US,true,'
    "2024-03-01T11:00:00+01:00\r\n"
    '/blog/caf%C3%A9/,Café,false,,Safari 17,macOS,s3,0,https://www.blog.example/x,h,'
    '"390,844,3",FR,true,2024-03-02T09:00:00Z\r\n'
    '/blog/hello/,Hello,false,,curl,,s4,4,,,"",,true,2024-03-02T09:00:00Z\r\n'
    'click-subscribe,Subscribe,true,,Firefox 120,Linux,s1,0,,,"",NL,false,'
    "2024-03-01T10:16:00Z\r\n"
    '/tags/python/,Tag,false,,Firefox 120,Linux,s5,0,,,"",NL,true,2024-03-02T12:00:00Z\r\n'
    "\r\n"
)

PLAUSIBLE_PAGES = ("name,visitors,pageviews,bounce_rate,time_on_page\n"
                   "/,4,3,67,\n"
                   "/blog/hello/,10,25,40,60.0\n"
                   "/about-us,2,2,,\n")

PLAUSIBLE_IMPORTED_PAGES = (
    "date,hostname,page,visits,visitors,pageviews,total_scroll_depth,total_scroll_depth_visits\n"
    "2024-03-01,blog.example,/blog/hello/,5,4,6,0,0\n"
    "2024-03-02,blog.example,/blog/hello/,3,3,3,0,0\n"
    "2024-03-02,blog.example,/pages/about,1,1,1,0,0\n")


def test_goatcounter_pageviews_become_posts_pages_hours_and_referrers():
    plan = read(GOATCOUNTER.encode(), PATHS, site_domains=["blog.example"])
    assert plan.format == "goatcounter-v2"
    assert plan.counts == {HELLO: Counts(2, 1), HOME: Counts(1, 1), CAFE: Counts(1, 1)}
    assert plan.titles[HELLO] == "Hello again" and plan.titles[CAFE] == "Café"
    assert plan.rows[Row("timeline", "post#hello", "2024-03-01T10")] == Counts(2, 1)
    assert plan.rows[Row("timeline", "page#Home_Page", "2024-03-01T10")] == Counts(1, 1)  # +01:00
    assert plan.rows[Row("timeline", SITE, "2024-03-01T10")] == Counts(3, 2)
    # An HTTP referrer is a host; a generated one ("Hacker News") and the site's own are not.
    # Its rows are the node's own: the hour's rollups, and the host's rows in each bucket.
    referrers = {r: c.total for r, c in plan.rows.items() if r.table == "referrer"}
    assert referrers == {Row("referrer", ref, sort): 1 for ref in ("post#hello", SITE)
                         for sort in ("news.ycombinator.com", *(
                             f"#{b}#news.ycombinator.com"
                             for b in ("h#2024-03-01T10", "d#2024-03-01", "m#2024-03")))}
    assert {r: c for r, c in plan.rows.items() if r.target == "all"} == {
        Row("timeline", "all", "post#hello"): Counts(2, 1),
        Row("timeline", "all", "page#Home_Page"): Counts(1, 1),
        Row("timeline", "all", "post#café"): Counts(1, 1),
        Row("timeline", "all", SITE): Counts(4, 3)}
    assert plan.skipped == {"bots": 1, "events": 1, "no page rule or --path-pattern matches": 1}
    assert plan.unmatched == {"/tags/python/": 1}


def test_goatcounter_downloads_are_gzipped():
    assert read(gzip.compress(GOATCOUNTER.encode()), PATHS).counts[HELLO] == Counts(2, 1)


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
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


def test_a_plausible_zip_is_read_for_its_page_files_only():
    visitors = "date,visitors,pageviews,visits,views_per_visit,bounce_rate,visit_duration\n" \
               "2024-03-01,100,200,120,1.7,50,30\n"
    plan = read(zipped({"visitors.csv": visitors, "pages.csv": PLAUSIBLE_PAGES,
                        "sources.csv": "name,visitors,bounce_rate,visit_duration\n"}), PATHS)
    assert plan.counts[HELLO] == Counts(25, 10)
    site = read(zipped({"imported_visitors_20240301_20240302.csv": visitors,
                        "imported_pages_20240301_20240302.csv": PLAUSIBLE_IMPORTED_PAGES}), PATHS)
    assert site.counts[HELLO] == Counts(9, 7)
    with pytest.raises(ClientError, match=r"no pages\.csv"):
        read(zipped({"visitors.csv": visitors}), PATHS)
    with pytest.raises(ClientError, match="site-wide daily totals"):
        read(visitors.encode(), PATHS)


def test_livecount_exports_read_back_as_they_were_written():
    records = [Record("count", "post#hello", 12, 7, title='A "quoted", title'),
               Record("count", "page#Home_Page", 3, 2),
               Record("timeline", "post#hello", 12, 7, hour="2024-03-01T10"),
               Record("timeline", SITE, 15, 9, hour="2024-03-01T10"),
               Record("referrer", "post#hello", 4, host="news.example"),
               Record("referrer", SITE, 5, host="news.example")]
    as_csv = exports.csv_head() + "".join(exports.csv_line(r) for r in records)
    as_ndjson = exports.ndjson_head("2026-01-01T00:00:00Z") + "".join(
        exports.ndjson_line(r) for r in records)
    for text in (as_csv, as_ndjson):
        plan = read(text.encode(), PATHS)
        assert plan.format == "livecount"
        assert plan.counts == {HELLO: Counts(12, 7), HOME: Counts(3, 2)}
        assert plan.titles == {HELLO: 'A "quoted", title'}
        # A timeline record adds to its hour's rollups too; referrers have no time.
        assert plan.rows == {**hour_rows_of("post#hello", Counts(12, 7)),
                             **hour_rows_of(SITE, Counts(15, 9)),
                             Row("referrer", "post#hello", "news.example"): Counts(4, 0),
                             Row("referrer", SITE, "news.example"): Counts(5, 0)}
    assert json.loads(as_ndjson.splitlines()[-1]) == \
        {"record": "referrer", "target": "site", "host": "news.example", "views": 5}


def hour_rows_of(ref: str, counts: Counts, hour: str = "2024-03-01T10") -> dict[Row, Counts]:
    return {Row("timeline", ref, hour): counts,
            **{Row("timeline", b, ref): counts for b in buckets_of(hour)}}


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("when,what\n1,2\n", "unknown header"),
    ("name,visitors,pageviews\n/,x,3\n", "line 2: visitors 'x' is not a count"),
    ("name,visitors,pageviews\n/,1,-3\n", "line 2: pageviews '-3' is not a count"),
    ("date,page,visitors,pageviews\n03/01/2024,/,1,1\n", "line 2: date"),
    ("3Path,Title\n", "version 3"),
    ("2Path,Title,Event\n", "without bot"),
    (GOATCOUNTER.replace("2024-03-02T09:00:00Z", "yesterday", 1), "line 5: Date 'yesterday'"),
    (exports.csv_head() + "count,post#a,,,,1\n", "line 2: 6 cells"),
    (exports.csv_head() + "count,blog#a,,,,1,1\n", "target 'blog#a'"),
    (exports.csv_head() + "timeline,post#a,,2024-03-01,,1,1\n", "hour must be"),
    (exports.csv_head() + "referrer,site,,,not a host,1,\n", "not a host name"),
    # found by a hostile trial: these were stored as they were
    (exports.csv_head() + "timeline,post#a,,2026-13-45T99,,1,1\n", "a real hour"),
    (exports.csv_head() + "count,post#x,,,,1,5\n", "line 2: uniqueViews 5 is more than"),
    (exports.csv_head() + "count,post#x,,,,2,2\ncount,post#x,,,,2,2\n",
     "line 3: the same count record as line 2"),
    ('{"record":"export","format":"livecount","version":9}\n', "version 9"),
    ('{"record":"count"}\n', "not a livecount export"),
    ('{"record":"export","format":"livecount","version":1}\n{"record":"count",'
     '"target":"post#a","totalViews":1.5}\n', "line 2: totalViews is not a count"),
])
def test_a_file_that_cannot_be_read_is_refused_whole_with_where(text, message):
    with pytest.raises(ClientError, match=message) as refused:
        read(text.encode(), PATHS)
    assert refused.value.code == "invalid_file"


def test_non_utf8_and_damaged_archives_are_refused():
    with pytest.raises(ClientError, match="not UTF-8"):
        read("name,visitors,pageviews\n/é,1,1\n".encode("latin-1"), PATHS)
    with pytest.raises(ClientError, match="gzip"):
        read(gzip.compress(b"x" * 100)[:20], PATHS)


def test_paths_map_as_serve_maps_them():
    """One set of rules (`core/pages.py`, tested in test_pages.py) for live views and
    imports; a path the rules refuse is skipped with their reason."""
    paths = PathMap(PageRules.parse(["/=Home_Page", "/blog/=Blog_Index"],
                                    ["/blog/{id}/", "/{id}.html"], "refuse"))
    assert paths.target("/blog/") == Target("page", "Blog_Index")
    assert paths.target("/blog/a-post/?ref=x") == Target("post", "a-post")
    assert paths.target("/blog/a%20b") == Target("post", "a b")
    assert paths.target("/blog/a/b/") == "no page rule or --path-pattern matches"
    assert paths.target("blog/a") == "no page rule or --path-pattern matches"
    assert paths.target("/blog/" + "x" * 300) == "an id livecount cannot store"
    assert paths.target("/blog/%20%20/") == "an id livecount cannot store"
    assert PathMap(PageRules()).target("/about/") == Target("page", "/about")


def test_an_import_writes_each_item_once_under_its_files_marker():
    mark = "import:" + import_id(b"the file")
    assert import_id(b"the file") == import_id(b"the file") != import_id(b"the file\n")
    request = count_write(Tables.named("p_"), HELLO, Counts(25, 10), "Hello", mark)
    assert request["ConditionExpression"] == "attribute_not_exists(#m)"
    assert request["ExpressionAttributeNames"]["#m"] == mark
    assert "#t = if_not_exists(#t, :t)" in request["UpdateExpression"]  # a title is kept
    page = count_write(Tables.named("p_"), HOME, Counts(3, 3), "", mark)
    assert page["TableName"] == "p_HomeAndProfile" and "version" not in str(page)


def test_a_plan_is_known_by_what_it_adds():
    same = read(GOATCOUNTER.encode(), PATHS), read(GOATCOUNTER.encode(), PATHS)
    assert same[0].fingerprint() == same[1].fingerprint()
    without_posts = read(GOATCOUNTER.encode(), PathMap(PageRules(unmatched="refuse")))
    assert without_posts.counts == {HOME: Counts(1, 1)}
    assert without_posts.fingerprint() != same[0].fingerprint()
