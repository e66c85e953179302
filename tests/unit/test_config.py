import argparse
import dataclasses
import os
import re
from pathlib import Path

import pytest
from livecount import config, logs
from livecount.core.pages import DEFAULT_PAGES, PageError, Target

ROOT = Path(__file__).resolve().parents[2]

# A wrong value for every option, and the words its one-line error must hold. A new
# option without an entry here fails `test_every_option_has_a_bad_value`.
BAD: dict[str, tuple[str, str]] = {
    "host": ("", "must not be empty"),
    "port": ("http", "must be a whole number"),
    "workers": ("0", "must be a whole number from 1 to 1024, or auto"),
    "data_dir": (" ", "must not be empty"),
    "admin_token_file": (" ", "must not be empty"),
    "public": (
        "dashboard",
        "must be one of pages, summary, referrers, timeline, now, metrics, all",
    ),
    "dynamodb_endpoint": ("localhost:8000", "must be 'embedded', 'aws' or an http(s) URL"),
    "region": ("EU West", "must be an AWS region"),
    "table_prefix": ("prod prefix", "must be at most 200 of"),
    "allowed_origins": ("blog.example.com", "must be an origin"),
    "site_domains": ("https://blog.example.com/", "must be a DNS name"),
    "flush_interval": ("0", "must be above 0"),
    "report_interval": ("0", "must be above 0"),
    "push_interval": ("-0.1", "must be above 0"),
    "pages": ("/about", "must be PATH=NAME"),
    "path_patterns": ("/blog/{id}/{slug}/", "must hold only the placeholders {id}"),
    "unmatched_paths": ("count", "must be one of page, refuse"),
    "max_pages": ("many", "must be a whole number"),
    "max_pending_views": ("1.5", "must be a whole number"),
    "max_subscriptions": ("0", "must be above 0"),
    "archive_dir": ("", "must not be empty"),
    "archive_max_events": ("-1", "must be above 0"),
    "archive_max_seconds": ("inf", "must be a finite number"),
    "log_level": ("verbose", "must be one of debug, info, warning, error"),
    "log_format": ("yaml", "must be one of auto, json, human"),
    "node_id": ("node one", "must be 1 to 128 printable ASCII characters"),
    "max_frame_bytes": ("4k", "must be a whole number"),
    "rate_limit": ("nan", "must be a finite number"),
    "rate_burst": ("0", "must be above 0"),
    "max_connections_per_ip": ("\uff11\uff10\uff10", "must be a whole number"),  # "100"
    "trusted_proxies": ("10.0.0.0/33", "must be an IP address or CIDR block"),
    "idle_timeout": ("soon", "must be a number"),
    "handshake_timeout": ("0", "must be above 0"),
    "access_log": ("yes", "must be one of on, off"),
    "slow_request": ("0", "must be above 0"),
    "stream_consumer": ("lambda", "must be one of on, off"),
    "lease_time": ("-5", "must be above 0"),
    "demo": ("yes", "must be one of on, off"),
}
BY_DEST = {o.dest: o for o in config.OPTIONS}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No LIVECOUNT_* variable of the machine running the tests leaks in."""
    for name in [n for n in os.environ if n.startswith(config.ENV_PREFIX)]:
        monkeypatch.delenv(name)


def parse(argv: list[str]) -> config.Config:
    parser = config.Parser(prog="livecount serve")
    config.add_options(parser)
    return config.from_args(parser.parse_args(argv))


def refusal(argv: list[str], capsys) -> str:
    """The whole of stderr when `argv` is refused; it must exit 2."""
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_defaults_match_the_documented_contract():
    cfg = parse([])
    assert (cfg.host, cfg.port, cfg.data_dir) == ("127.0.0.1", 8080, Path("data"))
    assert cfg.dynamodb_endpoint == "embedded" and cfg.table_prefix == ""
    assert cfg.allowed_origins == () and cfg.flush_interval == 1.0
    assert cfg.log_level == "info" and cfg.stream_consumer == "on"
    assert cfg.node_id == config.default_node_id(Path("data"))
    assert cfg.pages.names == sorted(DEFAULT_PAGES.values())


def test_the_command_line_defaults_are_the_dataclass_defaults():
    """One declaration: `Config()` and an empty command line agree on every field."""
    rules = config.Config().pages  # PageRules compare by identity: set the same on both
    parsed = parse([])
    assert dataclasses.replace(
        parsed, node_id="", admin_token_file=None, pages=rules
    ) == dataclasses.replace(config.Config(), pages=rules)
    assert parse([]).pages.classify(None, "/pages/about") == config.Config().pages.classify(
        None, "/pages/about"
    )


def test_every_field_is_an_option_with_its_own_variable():
    fields = [f.name for f in dataclasses.fields(config.Config)]
    assert [o.dest for o in config.OPTIONS] == fields
    names = [o.env_name for o in config.OPTIONS]
    assert len(set(names)) == len(names)
    for opt in config.OPTIONS:
        assert opt.env_name == "LIVECOUNT_" + opt.flag.upper().replace("-", "_")


def test_environment_then_flags(monkeypatch):
    monkeypatch.setenv("LIVECOUNT_PORT", "9000")
    monkeypatch.setenv("LIVECOUNT_SITE_DOMAIN", "example.com, blog.example.org,")
    monkeypatch.setenv("LIVECOUNT_FLUSH_INTERVAL", "0.5")
    monkeypatch.setenv("LIVECOUNT_LOG_LEVEL", "WARNING")
    cfg = parse([])
    assert cfg.port == 9000 and cfg.flush_interval == 0.5 and cfg.log_level == "warning"
    assert cfg.site_domains == ("example.com", "blog.example.org")
    cfg = parse(["--port", "9001", "--site-domain", "a.org", "--site-domain", "b.org"])
    assert cfg.port == 9001 and cfg.site_domains == ("a.org", "b.org")


def test_a_flag_is_not_checked_against_the_variable_it_replaces(monkeypatch):
    monkeypatch.setenv("LIVECOUNT_PORT", "not a port")
    monkeypatch.setenv("LIVECOUNT_PAGE", "broken")
    cfg = parse(["--port", "1", "--page", "/now=Now_Page"])
    assert cfg.port == 1 and cfg.pages.names == ["Now_Page"]


def test_a_plain_argparse_parser_still_reads_the_environment(monkeypatch):
    monkeypatch.setenv("LIVECOUNT_NODE_ID", "n1")
    parser = argparse.ArgumentParser()
    config.add_options(parser)
    assert config.from_args(parser.parse_args([])).node_id == "n1"
    monkeypatch.setenv("LIVECOUNT_PORT", "x")
    with pytest.raises(config.ConfigError, match=r"^LIVECOUNT_PORT: must be a whole number"):
        config.from_args(parser.parse_args([]))


def test_the_log_format_is_one_logs_knows(monkeypatch):
    """config may not import logs (sibling floors): the two lists must agree."""
    assert config.LOG_FORMATS == logs.FORMATS
    assert parse([]).log_format == "auto"
    monkeypatch.setenv("LIVECOUNT_LOG_FORMAT", "JSON")
    assert parse([]).log_format == "json"
    assert parse(["--log-format", "human"]).log_format == "human"


def test_page_rules_are_configurable(monkeypatch):
    cfg = parse(["--page", "/now=Now_Page"])
    assert cfg.pages.classify(None, "/now") == Target("page", "Now_Page")
    # Given at all, they replace the defaults: `/` is now a path's own page.
    assert cfg.pages.classify(None, "/") == Target("page", "/")
    monkeypatch.setenv("LIVECOUNT_PAGE", "/=Home,/uses=Uses_Page")
    assert parse([]).pages.names == ["Home", "Uses_Page"]


def test_path_patterns_and_unmatched_paths_reach_the_page_rules():
    cfg = parse(["--path-pattern", "/blog/{id}/", "--unmatched-paths", "refuse"])
    assert cfg.pages.classify(None, "/blog/hello/") == Target("post", "hello")
    assert cfg.pages.classify(None, "/") == Target("page", "Home_Page")
    with pytest.raises(PageError):  # the default /posts/{id} is replaced
        cfg.pages.classify(None, "/posts/x")


def test_values_that_look_odd_but_are_right_are_accepted():
    cfg = parse(
        [
            "--port",
            "0",
            "--site-domain",
            "Bücher.example",
            "--site-domain",
            "Ex.COM.",
            "--site-domain",
            "127.0.0.1",
            "--allowed-origin",
            "http://127.0.0.1:8080",
            "--trusted-proxy",
            "10.0.0.5",
            "--dynamodb-endpoint",
            "aws",
            "--max-pending-views",
            "1_000",
            "--region",
            "local",
            "--node-id",
            "host-1.example:a",
        ]
    )
    assert cfg.site_domains == ("xn--bcher-kva.example", "ex.com", "127.0.0.1")
    assert cfg.port == 0
    assert cfg.max_pending_views == 1000 and cfg.node_id == "host-1.example:a"


def test_every_option_has_a_bad_value():
    assert set(BAD) == set(BY_DEST)


@pytest.mark.parametrize("dest", sorted(BAD))
def test_a_bad_flag_is_one_line_that_names_it(dest, capsys):
    opt, (value, problem) = BY_DEST[dest], BAD[dest]
    err = refusal([f"--{opt.flag}={value}"], capsys)
    assert err.count("\n") == 1 and err.startswith(f"livecount: --{opt.flag}: {problem}"), err


@pytest.mark.parametrize("dest", sorted(BAD))
def test_a_bad_variable_is_one_line_that_names_it(dest, monkeypatch, capsys):
    opt, (value, problem) = BY_DEST[dest], BAD[dest]
    assert opt.env_name is not None
    monkeypatch.setenv(opt.env_name, value)
    err = refusal([], capsys)
    assert err.count("\n") == 1 and err.startswith(f"livecount: {opt.env_name}: {problem}"), err


@pytest.mark.parametrize("under", ["", "journal"])
@pytest.mark.parametrize("flag", ["data-dir", "archive-dir"])
def test_a_directory_that_is_a_file_is_one_line(flag, under, tmp_path, capsys):
    """A hostile pass found `--data-dir` naming a file (or a path under one) ended every
    command in a NotADirectoryError traceback."""
    file = tmp_path / "backup.ndjson"
    file.write_text("{}\n")
    err = refusal([f"--{flag}", str(file / under)], capsys)
    assert err.count("\n") == 1, err
    assert err.startswith(f"livecount: --{flag}: must be a directory, and '{file}' is a file")
    assert parse([f"--{flag}", str(tmp_path / "new" / "dir")])  # one yet to be made is fine


def test_a_report_data_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    from livecount import cli

    file = tmp_path / "backup.ndjson"
    file.write_text("{}\n")
    with pytest.raises(SystemExit) as exited:
        cli.main(["report", "pages", "--data-dir", str(file)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert "--data-dir: must be a directory" in err


def test_one_bad_item_of_a_list_variable_is_named(monkeypatch, capsys):
    monkeypatch.setenv("LIVECOUNT_TRUSTED_PROXY", "10.0.0.5, nonsense")
    err = refusal([], capsys)
    assert (
        err == "livecount: LIVECOUNT_TRUSTED_PROXY: must be an IP address or CIDR block "
        "such as 10.0.0.0/8, got 'nonsense'\n"
    )


def test_the_documented_table_is_the_declaration():
    section = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    table = "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))
    assert table == config.readme_table(), (
        "docs/CONFIGURATION.md's table is stale: paste `python -m livecount.config` over it"
    )


def test_the_readme_table_says_each_default_once_and_never_empty():
    for line in config.readme_table().splitlines()[2:]:
        flag, variable, default, _ = (c.strip() for c in line.strip("|").split(" | "))
        assert re.fullmatch(r"`--[a-z-]+`", flag) and re.fullmatch(r"`LIVECOUNT_[A-Z_]+`", variable)
        assert default and "None" not in default, line
    assert (
        "`/=Home_Page`, `/pages/about=About_Page`, `/pages/contacts=Contact_Page`"
        in config.readme_table()
    )
