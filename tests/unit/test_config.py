import argparse
from pathlib import Path

import pytest
from livecount import config
from livecount.core.pages import Target


def parse(argv: list[str]) -> config.Config:
    parser = argparse.ArgumentParser()
    config.add_options(parser)
    return config.from_args(parser.parse_args(argv))


def test_defaults_match_the_documented_contract(monkeypatch):
    for name in ("HOST", "PORT", "SITE_DOMAIN", "FLUSH_INTERVAL"):
        monkeypatch.delenv(f"LIVECOUNT_{name}", raising=False)
    cfg = parse([])
    assert (cfg.host, cfg.port, cfg.data_dir) == ("127.0.0.1", 8080, Path("data"))
    assert cfg.dynamodb_endpoint == "embedded" and cfg.table_prefix == ""
    assert cfg.allowed_origins == () and cfg.flush_interval == 1.0


def test_environment_then_flags(monkeypatch):
    monkeypatch.setenv("LIVECOUNT_PORT", "9000")
    monkeypatch.setenv("LIVECOUNT_SITE_DOMAIN", "example.com, blog.example.org")
    monkeypatch.setenv("LIVECOUNT_FLUSH_INTERVAL", "0.5")
    cfg = parse([])
    assert cfg.port == 9000 and cfg.flush_interval == 0.5
    assert cfg.site_domains == ("example.com", "blog.example.org")
    cfg = parse(["--port", "9001", "--site-domain", "a.org", "--site-domain", "b.org"])
    assert cfg.port == 9001 and cfg.site_domains == ("a.org", "b.org")


def test_page_rules_are_configurable():
    cfg = parse(["--page", "/now=Now_Page"])
    assert cfg.pages.classify(None, "/now") == Target("page", "Now_Page")


@pytest.mark.parametrize("argv", [["--flush-interval", "0"], ["--port", "70000"],
                                  ["--max-pending-views", "-1"]])
def test_bad_values_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        parse(argv)
    assert "error" in capsys.readouterr().err
