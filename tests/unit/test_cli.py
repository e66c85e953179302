"""The `livecount` command line as a person meets it: help, version and mistakes."""

import argparse
import os
import re
from importlib import metadata

import pytest
from livecount import cli, config, logs
from livecount.tools import loadtest

from tests.unit.test_config import BAD


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith(config.ENV_PREFIX)]:
        monkeypatch.delenv(name)


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every parser that runs something, with its words: ("serve",), ("tables", "create")…"""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from commands(sub, (*path, name))


ALL = dict(commands(cli.parser()))


def parse(argv: list[str]) -> argparse.Namespace:
    return cli.parser().parse_args(argv)


def refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("livecount: "), err
    return err


def help_of(words: tuple[str, ...], capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        parse([*words, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_every_command_is_known():
    assert set(ALL) == {
        ("serve",),
        ("tables", "create"),
        ("loadtest",),
        ("report", "pages"),
        ("report", "summary"),
        ("report", "referrers"),
        ("report", "timeline"),
        ("admin", "rename"),
        ("admin", "delete"),
        ("admin", "title"),
        ("admin", "rollups"),
        ("export",),
        ("import",),
        ("backup",),
        ("restore",),
    }


def test_version_comes_from_the_package(capsys):
    with pytest.raises(SystemExit) as exited:
        parse(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"livecount {metadata.version('livecount')}\n"


@pytest.mark.parametrize("words", sorted(ALL))
def test_each_command_has_its_own_description_and_no_doubled_or_empty_default(words, capsys):
    text = " ".join(help_of(words, capsys).split())
    assert ALL[words].description, words
    assert "(default: )" not in text and "(default: None)" not in text
    assert "%(default)" not in text
    for action in ALL[words]._actions:
        assert (action.help or "").count("(default:") <= 1, action.option_strings


def test_serve_help_shows_choices_and_the_default_pages(capsys):
    text = " ".join(help_of(("serve",), capsys).split())
    assert "--log-level {debug,info,warning,error}" in text
    assert "--stream-consumer {on,off}" in text
    assert "/=Home_Page, /pages/about=About_Page, /pages/contacts=Contact_Page" in text
    assert "seed" not in text


def test_report_subcommands_each_have_their_help(capsys):
    texts = {w: help_of(w, capsys) for w in ALL if w[0] == "report"}
    assert len(set(texts.values())) == 4
    assert "--sort {total,unique,title}" in texts[("report", "pages")]
    assert "--bucket {hour,day,month}" in texts[("report", "timeline")]
    assert "--article ID" not in texts[("report", "pages")]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["serve", "--log-level", "verbose"],
            "livecount: --log-level: must be one of debug, info, warning, error, got 'verbose'\n",
        ),
        (["serve", "--prot", "1"], "livecount: unrecognized arguments: --prot 1\n"),
        (["report", "pages", "--article", "x"], "livecount: unrecognized arguments: --article x\n"),
        (["report", "timeline", "--limit", "5"], "livecount: unrecognized arguments: --limit 5\n"),
        (
            ["report", "referrers", "--limit", "0"],
            "livecount: --limit: must be at least 1, got '0'\n",
        ),
        (
            ["report", "referrers", "--article", "a", "--page", "Home_Page"],
            "livecount: --page: not allowed with argument --article\n",
        ),
        (
            ["report", "timeline", "--bucket", "week"],
            "livecount: --bucket: must be one of hour, day, month, got 'week'\n",
        ),
        (
            ["report"],
            "livecount: the following arguments are required: {pages,summary,referrers,timeline}\n",
        ),
        (
            ["loadtest", "--connections", "0"],
            "livecount: --connections: must be above 0, got '0'\n",
        ),
        (
            ["loadtest", "--url", "http://x"],
            "livecount: --url: must be a ws:// or wss:// URL, got 'http://x'\n",
        ),
        (
            ["loadtest", "--referrer-ratio", "2"],
            "livecount: --referrer-ratio: must be at most 1, got '2'\n",
        ),
        (
            ["tables", "create", "--port", "70000"],
            "livecount: --port: must be at most 65535, got '70000'\n",
        ),
    ],
)
def test_mistakes_are_one_line(argv, message, capsys):
    assert refused(argv, capsys) == message


@pytest.mark.parametrize("words", [("serve",), ("tables", "create")])
def test_serve_variables_are_checked_by_the_commands_that_use_them(words, monkeypatch, capsys):
    monkeypatch.setenv("LIVECOUNT_PORT", "abc")
    assert (
        refused(list(words), capsys)
        == "livecount: LIVECOUNT_PORT: must be a whole number, got 'abc'\n"
    )


def test_report_reads_its_own_variable(monkeypatch, capsys):
    monkeypatch.setenv("LIVECOUNT_URL", "http://127.0.0.1:9")
    assert parse(["report", "pages"]).url == "http://127.0.0.1:9"
    assert parse(["report", "pages", "--url", "https://a.example"]).url == "https://a.example"
    monkeypatch.setenv("LIVECOUNT_URL", "127.0.0.1:9")
    assert refused(["report", "timeline"], capsys).startswith("livecount: LIVECOUNT_URL: ")


def test_other_commands_ignore_the_variables_of_serve(monkeypatch, capsys):
    """Every serve variable set wrong breaks neither `report`, `loadtest` nor their help."""
    for opt in config.OPTIONS:
        assert opt.env_name is not None
        monkeypatch.setenv(opt.env_name, BAD[opt.dest][0])
    assert parse(["report", "pages"]).what == "pages"
    assert loadtest.options_from(parse(["loadtest"])).connections == 10
    for words in [("loadtest",), ("report", "timeline"), ()]:
        assert "usage: livecount" in help_of(words, capsys)


def test_loadtest_defaults_are_its_options_defaults():
    opts = loadtest.options_from(parse(["loadtest"]))
    assert opts == loadtest.Options(url="ws://127.0.0.1:8080/ws")


def test_report_namespaces_hold_what_the_query_reads():
    from livecount.tools import report

    assert report.query(parse(["report", "pages", "--limit", "3"])) == (
        "/api/pages",
        {"limit": "3", "sort": "total"},
    )
    assert report.query(parse(["report", "referrers", "--page", "Home_Page"])) == (
        "/api/referrers",
        {"pageName": "Home_Page"},
    )
    path, params = report.query(
        parse(["report", "timeline", "--article", "a", "--since", "2024-01-01"])
    )
    assert path == "/api/timeline"
    assert params == {"articleId": "a", "since": "2024-01-01"}  # the bucket fits the period


def test_help_never_shows_markdown(capsys):
    for words in ALL:
        assert not re.search(r"`", help_of(words, capsys)), words


def test_the_log_format_reaches_the_logs(monkeypatch):
    given = []
    monkeypatch.setattr(logs, "setup", lambda *args: given.append(args))
    for words in (["serve"], ["tables", "create"]):
        cli._config(parse([*words, "--log-format", "json", "--node-id", "n"]))
    cli._config(parse(["serve", "--node-id", "n", "--log-level", "debug"]))
    assert given == [("info", "n", "json"), ("info", "n", "json"), ("debug", "n", "auto")]


@pytest.mark.parametrize("argv", [["--version"], ["report", "pages", "--help"]])
def test_a_command_imports_only_what_it_runs(argv: list[str]) -> None:
    """`livecount --version` and the report commands never load the AWS SDK: each
    command's module is imported only when it is the one asked for."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom livecount import cli\n"
        "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('aioboto3', 'botocore', 'uvloop', 'livecount.aws.store')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]", out
