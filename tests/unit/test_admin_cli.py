"""`livecount admin`, `export` and `import` as a person meets them: options, mistakes,
and what they say when done."""

import argparse
import fcntl

import pytest
from livecount import config
from livecount.aws.store_admin import Moved
from livecount.core.errors import ClientError, StoreRejected, StoreUnavailable
from livecount.core.ledger import Counts
from livecount.core.moves import Plan
from livecount.tools import admin, importer, transfer


def parser() -> argparse.ArgumentParser:
    top: argparse.ArgumentParser = config.Parser(prog="livecount")
    commands = top.add_subparsers(dest="command", required=True)
    admin.register(commands)
    transfer.register(commands)
    importer.register(commands)
    return top


def refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        ns = parser().parse_args(argv)
        ns.run(ns)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["admin", "rename", "a", "a"], "livecount: OLD and NEW are the same id\n"),
        (["admin", "rename", "a"], "livecount: the following arguments are required: NEW\n"),
        (["admin", "delete", ""], "livecount: ID: an article id must not be empty, got ''\n"),
        (
            ["import", "f.csv", "--path-pattern", "blog/{id}"],
            "livecount: --path-pattern: must start with / and hold {id} once, "
            "such as /blog/{id}/ or /{yyyy}/{mm}/{dd}/{id}/, got 'blog/{id}'\n",
        ),
        (
            ["export", "--format", "xml"],
            "livecount: --format: must be one of csv, ndjson, got 'xml'\n",
        ),
        (["admin", "delete", "x", "--port", "1"], "livecount: unrecognized arguments: --port 1\n"),
        (["admin", "delete"], "livecount: give one ID, or --prefix, not both\n"),
        (
            ["admin", "delete", "x", "--prefix", "y"],
            "livecount: give one ID, or --prefix, not both\n",
        ),
        (
            ["admin", "delete", "x", "--dry-run"],
            "livecount: --dry-run and --json go with --prefix\n",
        ),
        (
            ["admin", "delete", "--page", "--prefix", "y"],
            "livecount: --prefix deletes posts and pages alike: leave out --page\n",
        ),
        (
            ["admin", "delete", "--prefix", ""],
            "livecount: --prefix: an article id must not be empty, got ''\n",
        ),
        (
            ["admin", "delete", "-abc"],
            "livecount: unrecognized arguments: -abc (an id that "
            "starts with - goes after --: livecount admin delete [options] -- -the-id)\n",
        ),
        (["import"], "livecount: give FILE, --list or --undo ID (one of them)\n"),
        (
            ["import", "f.csv", "--undo", "abc"],
            "livecount: give FILE, --list or --undo ID (one of them)\n",
        ),
        (["import", "--list", "--dry-run"], "livecount: --dry-run goes with FILE\n"),
        (
            ["import", "f.csv", "--max-expanded", "lots"],
            "livecount: --max-expanded: must be a size such as 2GiB or 500MB, got 'lots'\n",
        ),
    ],
)
def test_mistakes_are_one_line(argv, message, capsys):
    assert refused(argv, capsys) == message


def test_only_the_store_options_are_read_and_the_rest_keep_their_defaults(monkeypatch):
    monkeypatch.setenv("LIVECOUNT_PORT", "not a port")  # serve's, not these commands'
    monkeypatch.setenv("LIVECOUNT_TABLE_PREFIX", "blog_")
    ns = parser().parse_args(
        [
            "import",
            "f.csv",
            "--page",
            "/=Start",
            "--path-pattern",
            "/p/{id}",
            "--path-pattern",
            "/{id}.html",
        ]
    )
    config.resolve(ns)
    cfg = config.from_args(ns)
    assert (cfg.table_prefix, cfg.port, cfg.pages.names) == ("blog_", 8080, ["Start"])
    assert cfg.pages.patterns == ("/p/{id}", "/{id}.html")


def test_sizes_read_as_people_write_them():
    assert importer._size("2GiB") == importer._size("2g") == 2 << 30
    assert (importer._size("500MB"), importer._size("1000")) == (500 << 20, 1000)


def test_with_the_embedded_store_a_running_server_is_refused(tmp_path):
    ns = parser().parse_args(["admin", "delete", "x", "--data-dir", str(tmp_path)])
    config.resolve(ns)
    cfg = config.from_args(ns)
    (tmp_path / "journal").mkdir()
    with (tmp_path / "journal" / "lock").open("a") as server:  # as a serving node holds it
        fcntl.flock(server, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with (
            pytest.raises(ClientError, match="only one process may open") as busy,
            admin._embedded_free(cfg),
        ):
            pass
        assert busy.value.code == "store_in_use"
    # Free again: the command holds it meanwhile, so no server starts on the same files.
    with (
        admin._embedded_free(cfg),
        (tmp_path / "journal" / "lock").open("a") as other,
        pytest.raises(BlockingIOError),
    ):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_reports_say_what_was_done_and_what_is_left():
    renamed = admin.report(
        Moved(Plan("old", "new"), resumed=True, items=12, views=Counts(40, 30), now=Counts(50, 35))
    )
    assert renamed.splitlines() == [
        "Resumed the unfinished rename of 'old' to 'new'.",
        "Renamed 'old' to 'new': 12 items moved, 40 views (30 unique) added to 'new', which "
        "now has 50 views (35 unique).",
        "Views still sent for 'old' count under it: run this again to move them.",
    ]
    deleted = admin.report(Moved(Plan("old"), resumed=False, items=3, views=Counts(5, 4), purged=3))
    assert deleted.splitlines() == [
        "Deleted 'old': 3 items emptied, 5 views (4 unique) taken out of the site's totals.",
        "Purged 3 emptied items.",
    ]
    page = admin.report(
        Moved(Plan("Home_Page", None, "page"), resumed=False, items=2, views=Counts(5, 4))
    )
    assert page == (
        "Deleted the page 'Home_Page': 2 items emptied, 5 views (4 unique) taken "
        "out of the site's totals."
    )


@pytest.mark.parametrize(
    "error",
    [
        StoreRejected("DeleteItem: ValidationException: too large"),
        StoreUnavailable("the store did not answer"),
        ClientError("never_counted", "'x' was never counted"),
    ],
)
def test_a_store_error_is_one_line_and_an_exit_code_not_a_traceback(error, capsys):
    code = admin.failed(error)
    assert code == (admin.NEVER_COUNTED if error.code == "never_counted" else 2)
    assert capsys.readouterr().err == f"livecount: {error.detail}\n"


def test_ids_that_start_with_a_dash_go_after_a_double_dash():
    ns = parser().parse_args(["admin", "rename", "--table-prefix", "p_", "--", "-old", "--help"])
    assert (ns.old, ns.new, ns.table_prefix, ns.page) == ("-old", "--help", "p_", False)


def test_page_says_the_ids_name_pages():
    ns = parser().parse_args(["admin", "delete", "--page", "/about"])
    assert (ns.article, ns.page) == ("/about", True)
    ns = parser().parse_args(["admin", "rename", "--page", "/about", "/about-us"])
    assert (ns.old, ns.new, ns.page) == ("/about", "/about-us", True)
