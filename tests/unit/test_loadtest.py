"""The load client's pure parts: popularity, view frames, percentiles, push timing, report."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
import resource

import pytest
from livecount.core import protocol
from livecount.tools import loadtest
from livecount.tools.loadtest import Histogram, PushTracker, Summary, ViewMix, Window, Zipf
from rich.console import Console


def test_zipf_ranks_are_a_distribution_that_favours_the_first():
    z = Zipf(1000, 1.1, random.Random(1))
    probs = [z.probability(k) for k in range(len(z))]
    assert sum(probs) == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(probs))
    # P(0) / P(1) = 2^1.1
    assert probs[0] / probs[1] == pytest.approx(2**1.1)


def test_zipf_samples_follow_the_probabilities():
    z = Zipf(50, 1.0, random.Random(7))
    n = 100_000
    counts = [0] * 50
    for _ in range(n):
        counts[z.sample()] += 1
    for k in (0, 1, 9, 49):
        assert counts[k] / n == pytest.approx(z.probability(k), abs=0.006)


def test_zipf_zero_is_uniform_and_one_rank_is_always_drawn():
    z = Zipf(4, 0.0, random.Random(3))
    assert [z.probability(k) for k in range(4)] == pytest.approx([0.25] * 4)
    one = Zipf(1, 1.1, random.Random(3))
    assert {one.sample() for _ in range(100)} == {0}
    with pytest.raises(ValueError):
        Zipf(0, 1.0, random.Random())
    with pytest.raises(ValueError):
        Zipf(3, -1.0, random.Random())


def test_view_frames_are_valid_views_with_the_chosen_fields():
    mix = ViewMix(20, 1.1, refreshed_ratio=0.5, referrer_ratio=0.5, prefix='q"\\', seed=5)
    refreshed = referred = 0
    for _ in range(400):
        rank, frame = mix.next()
        view = protocol.decode(frame.decode())
        assert isinstance(view, protocol.Views)
        assert view.articleId == mix.ids[rank] == f'q"\\{rank}'
        refreshed += view.refreshed
        referred += view.referrer is not None
        if view.referrer is not None:
            assert view.referrer.startswith("https://ref")
    assert 120 < refreshed < 280 and 120 < referred < 280
    plain = ViewMix(3, 0.0, seed=1)
    view = protocol.decode(plain.next()[1].decode())
    assert isinstance(view, protocol.Views)
    assert not view.refreshed and view.referrer is None and view.articleTitle
    assert plain.hottest(2) == ["loadtest-0", "loadtest-1"]


def test_the_same_seed_gives_the_same_views():
    a, b = ViewMix(100, 1.1, 0.3, 0.3, seed=9), ViewMix(100, 1.1, 0.3, 0.3, seed=9)
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]


def test_histogram_percentiles_are_within_one_percent():
    rng = random.Random(11)
    values = [rng.lognormvariate(0, 1.5) for _ in range(20_000)]
    h = Histogram()
    for v in values:
        h.record(v)
    ordered = sorted(values)
    for p in (50, 95, 99):
        exact = ordered[max(0, -(-p * len(ordered) // 100) - 1)]
        assert h.percentile(p) == pytest.approx(exact, rel=0.011)
    assert h.max == max(values) and h.min == min(values) and h.count == len(values)
    assert h.percentile(100) == pytest.approx(max(values), rel=0.011)


def test_histogram_edges():
    h = Histogram()
    assert h.percentile(50) is None
    assert h.summary() == Summary(0, None, None, None, None, None)
    h.record(0.0)
    h.record(3.5)
    assert h.percentile(0) == 0.0 and h.percentile(100) == 3.5
    h.record(1e12)  # past the last bucket: clamped there, max stays exact
    assert h.max == 1e12 and h.percentile(100) == 1e12


def test_push_latency_is_timed_when_every_watcher_has_seen_the_view():
    t = PushTracker()
    t.watch(1, "a")
    t.watch(2, "a")
    t.seen(1, "a", 0, 0.0)  # the counts a subscribe answers with
    t.seen(2, "a", 0, 0.0)
    t.expect("a", 1, sent_at=10.0)
    t.expect("a", 2, sent_at=10.05)
    assert t.pending == 2
    t.seen(1, "a", 2, 10.1)
    assert t.first.count == 2 and t.all.count == 0
    assert (t.first.min, t.first.max) == pytest.approx((50.0, 100.0))
    t.seen(2, "a", 1, 10.2)  # covers only the first view
    assert t.all.count == 1 and t.pending == 1
    assert t.all.max == pytest.approx(200.0)
    t.seen(2, "a", 1, 10.3)  # a repeated count changes nothing
    t.seen(2, "a", 5, 11.0)
    assert t.pending == 0 and t.all.count == 2
    assert t.all.max == pytest.approx(950.0)


def test_a_reply_that_arrives_after_the_push_is_dated_by_the_push():
    t = PushTracker()
    t.watch(1, "a")
    t.seen(1, "a", 7, 5.0)
    t.seen(1, "a", 9, 5.2)
    t.expect("a", 8, sent_at=4.9)  # seen at 5.2: the first count >= 8
    t.expect("a", 6, sent_at=4.8)  # seen at 5.0
    assert t.pending == 0
    assert sorted([t.all.min, t.all.max]) == pytest.approx([200.0, 300.0])


def test_views_of_unwatched_articles_are_not_tracked_and_the_bound_holds():
    t = PushTracker(max_tracked=2)
    t.expect("nobody", 1, 0.0)
    assert t.pending == 0 and not t.watches("nobody")
    t.watch(1, "a")
    for total in (1, 2, 3):
        t.expect("a", total, 0.0)
    assert t.pending == 2 and t.untracked == 1


def test_a_subscriber_that_leaves_is_no_longer_waited_for():
    t = PushTracker()
    t.watch(1, "a")
    t.watch(2, "a")
    t.expect("a", 1, 0.0)
    t.seen(1, "a", 1, 0.05)
    assert t.pending == 1
    t.leave(2)
    assert t.pending == 0 and t.all.count == 0 and t.untracked == 1  # when 1 saw it is unknown
    t.expect("a", 2, 0.1)
    t.seen(1, "a", 2, 0.15)
    assert t.pending == 0 and t.all.count == 1
    t.leave(1)
    t.expect("a", 2, 0.0)  # no watchers left
    assert t.pending == 0


def test_the_waiting_list_is_compacted_on_long_runs():
    t = PushTracker()
    t.watch(1, "a")
    for total in range(1, 5001):
        t.expect("a", total, 0.0)
        t.seen(1, "a", total, 0.001)
    assert t.pending == 0 and t.all.count == 5000
    assert len(t._articles["a"].waiting) < 2100


def test_a_window_matches_replies_to_views_oldest_first_and_holds_its_size():
    w = Window(3)
    assert (len(w), w.free) == (0, 3)
    w.sent(7, 1.0)
    w.sent(2, 1.5)
    w.sent(7, 2.0)
    assert w.free == 0
    with pytest.raises(OverflowError):
        w.sent(1, 2.5)
    assert w.answered() == (7, 1.0)  # the server answers a socket's messages in order
    w.sent(4, 3.0)
    assert [w.answered(), w.answered(), w.answered()] == [(2, 1.5), (7, 2.0), (4, 3.0)]
    assert w.answered() is None  # a reply nobody waits for: the caller counts it unexpected
    w.sent(1, 4.0)
    w.sent(1, 4.1)
    assert w.clear() == 2 and len(w) == 0 and w.free == 3
    with pytest.raises(ValueError):
        Window(0)


def _report(**changes: object) -> loadtest.Report:
    empty = Histogram().summary()
    h = Histogram()
    h.record(1.5)
    fields: dict[str, object] = dict(
        url="ws://127.0.0.1:1/ws",
        connections=2,
        in_flight=3,
        subscribers=1,
        opened=3,
        connect_failures={},
        connect_s=0.1,
        duration_s=2.0,
        target_rate=None,
        articles=5,
        zipf=1.1,
        sent=10,
        acked=9,
        acked_in_window=9,
        errors={"busy": 1},
        unanswered=0,
        views_per_s=4.5,
        reply_ms=h.summary(),
        push_ms=empty,
        push_first_ms=empty,
        push_missing=0,
        push_untracked=0,
        pushes=3,
        viewer_pushes=0,
        dropped=0,
        missed=0,
        unexpected=0,
        client_cpu_pct=12.0,
        client_saturated=False,
        interrupted=False,
        started_at=0.0,
        stopped_at=2.0,
    )
    fields.update(changes)
    return loadtest.Report(**fields)  # type: ignore[arg-type]


def test_the_json_report_has_the_documented_fields():
    out = json.loads(json.dumps(_report().to_json()))
    for key in ("sent", "acked", "acked_in_window", "errors", "views_per_s", "in_flight"):
        assert key in out
    assert set(out["reply_ms"]) >= {"p50", "p95", "p99", "max"}
    assert set(out["push_ms"]) >= {"p50", "p99"}
    assert out["errors"] == {"busy": 1} and out["reply_ms"]["p50"] == 1.5


def test_the_table_renders_and_a_saturated_client_says_so():
    console = Console(record=True, width=120)
    console.print(_report().render())
    text = console.export_text()
    assert "views sent" in text and "busy 1" in text and "up to 3 unanswered" in text
    assert _report().notes() == []
    notes = _report(client_cpu_pct=97.0, client_saturated=True, interrupted=True).notes()
    assert any("97%" in n for n in notes) and any("Ctrl-C" in n for n in notes)


def test_cpu_share_is_a_share_of_one_core():
    assert loadtest.cpu_share(0.5, 1.0) == 50.0
    assert loadtest.cpu_share(1.0, 0.0) == 0.0


def test_options_are_checked():
    top = argparse.ArgumentParser()
    commands = top.add_subparsers(dest="command", required=True)
    loadtest.register(commands)
    ns = top.parse_args(["loadtest", "--connections", "3", "--rate", "50", "--zipf", "0"])
    opts = loadtest.options_from(ns)
    assert (opts.connections, opts.rate, opts.zipf, opts.subscribers) == (3, 50.0, 0.0, 0)
    assert opts.in_flight == 1  # the closed loop: one view, then its reply
    ns = top.parse_args(["loadtest", "--in-flight", "4"])
    assert loadtest.options_from(ns).in_flight == 4
    for bad in (
        ["--connections", "0"],
        ["--rate", "-1"],
        ["--refreshed-ratio", "1.5"],
        ["--subscribers", "-2"],
        ["--in-flight", "0"],
        ["--in-flight", "two"],
    ):
        with pytest.raises(SystemExit):
            top.parse_args(["loadtest", *bad])


def test_the_descriptor_limit_is_raised_only_within_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert loadtest.raise_fd_limit(1) == soft
    if hard != resource.RLIM_INFINITY:
        with pytest.raises(OSError, match="ulimit -Hn"):
            loadtest.raise_fd_limit(hard + 1)


# -- falling behind the target rate ---------------------------------------------------------
def _paced(**changes: object) -> loadtest.Report:
    """A run of 100 views/s for 2 s on 2 sockets of 3 slots, replies at 1.5 ms."""
    return _report(
        **{
            "target_rate": 100.0,
            "errors": {},
            "sent": 200,
            "acked": 200,
            "acked_in_window": 200,
            "views_per_s": 100.0,
            **changes,
        }
    )


def test_a_run_that_kept_up_or_had_no_target_names_no_limit():
    assert _paced().shortfall() == [] and _paced().to_json()["limited_by"] == []
    assert _paced(views_per_s=91.0).shortfall() == []
    assert _report(views_per_s=1.0, missed=50).shortfall() == []  # no --rate: no target
    assert not any("target" in n for n in _paced().notes())


def test_a_saturated_client_names_its_own_cpu():
    r = _paced(views_per_s=60.0, missed=80, client_cpu_pct=99.0, client_saturated=True)
    assert [code for code, _ in r.shortfall()] == ["client_cpu", "replies"]
    (note,) = r.notes()  # the CPU is said once, in the shortfall
    assert note.startswith(
        "Behind the target of 100 views/s (60 answered a second). "
        "Limited by the client's own CPU (99% of a core)"
    )


def test_rate_limit_errors_are_named_with_what_to_do():
    r = _paced(
        views_per_s=40.0, acked=80, acked_in_window=80, errors={"rate_limited": 120, "too_large": 1}
    )
    assert [code for code, _ in r.shortfall()] == ["rate_limited", "errors"]
    assert r.to_json()["limited_by"] == ["rate_limited", "errors"]
    note = r.notes()[0]
    assert "120 views were refused rate_limited" in note and "--connections" in note
    assert "too_large 1" in note


def test_a_full_in_flight_window_names_the_servers_replies():
    r = _paced(views_per_s=50.0, missed=100)
    ((code, text),) = r.shortfall()
    assert code == "replies"
    assert "100 views found every socket with --in-flight 3 views unanswered" in text
    # 2 sockets x 3 slots at 1.5 ms a reply
    assert "about 4,000 views/s" in text and "raise --connections or --in-flight" in text


def test_replies_still_missing_at_the_end_are_the_fallback():
    r = _paced(views_per_s=70.0, acked_in_window=140)
    assert r.shortfall() == [
        ("replies", "the server's replies: 140 of the 200 views sent were answered within the load")
    ]


# -- progress -------------------------------------------------------------------------------
def test_progress_off_a_terminal_is_plain_lines_every_few_seconds():
    out = io.StringIO()
    now = [0.0]
    display = loadtest._Display(
        True, Console(file=out, force_terminal=False), every=5.0, clock=lambda: now[0]
    )
    assert display.plain and display.progress is None
    with display.phase("load", 10, " s"):
        for t in (1.0, 2.0, 4.9, 5.0, 7.0, 10.0):
            now[0] = t
            display.update(t, f"{int(t * 100)} views/s, 0 errors")
    assert out.getvalue().splitlines() == [
        "loadtest load: 0 of 10 s",
        "loadtest load: 5 of 10 s, 500 views/s, 0 errors",
        "loadtest load: 10 of 10 s, 1000 views/s, 0 errors",  # 10 s after the last line
        "loadtest load: 10 of 10 s, 1000 views/s, 0 errors",  # the phase's end
    ]


def test_progress_on_a_terminal_is_a_bar_whose_remaining_time_is_labelled():
    out = io.StringIO()
    display = loadtest._Display(True, Console(file=out, force_terminal=True, width=120))
    assert display.progress is not None and not display.plain
    with display.phase("opening", 4, " sockets"):
        display.update(2, "1 failed")
        display.progress.refresh()
    text = out.getvalue()
    assert "2/4 sockets" in text and "1 failed" in text and "left" in text


def test_no_progress_with_json():
    out = io.StringIO()
    display = loadtest._Display(False, Console(file=out, force_terminal=False))
    with display.phase("load", 1, " s"):
        display.update(1, "x")
    assert out.getvalue() == "" and display.progress is None


# -- the real site's safety -----------------------------------------------------------------
@pytest.mark.parametrize(
    "ws, http",
    [
        ("ws://127.0.0.1:8080/ws", "http://127.0.0.1:8080"),
        ("wss://blog.example/ws", "https://blog.example:443"),
        ("ws://[::1]:81/ws/", "http://[::1]:81"),
        ("ws://h.example:9/livecount/ws", "http://h.example:9/livecount"),
    ],
)
def test_the_api_is_beside_the_websocket(ws, http):
    assert loadtest.api_base(ws) == http


def test_pages_and_posts_outside_the_load_tests_prefixes_are_a_real_site():
    rows: list[dict[str, object]] = [
        {"articleId": "loadtest-3", "totalViews": 1},
        {"articleId": "lt-1"},
        {"pageName": "Home_Page"},
        {"articleId": "hello-world"},
        {"articleId": "lt"},
        {"articleId": "old-7", "articleTitle": "Load test old-7"},  # a run with its own prefix
        {"articleId": "old-8", "articleTitle": "Load test old-7"},
    ]
    assert loadtest.real_pages(rows, "lt-") == ["Home_Page", "hello-world", "lt", "old-8"]
    assert loadtest.real_pages(rows[:2], "lt-") == []
    assert loadtest.real_pages(rows[:2], "loadtest-") == ["lt-1"]


def _stored(monkeypatch, answers: dict[str, object]) -> list[str]:
    asked: list[str] = []

    def fetch(url: str, token: str | None = None) -> object:
        asked.append(url)
        answer = answers[url.partition("sort=")[2].partition("&")[0]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(loadtest, "fetch", fetch)
    return asked


def test_a_store_with_a_real_site_is_refused_with_the_separate_prefix_way(monkeypatch):
    opts = loadtest.Options(url="ws://127.0.0.1:8080/ws")
    asked = _stored(
        monkeypatch,
        {
            "total": [{"articleId": "loadtest-1"}] + [{"articleId": f"p{i}"} for i in range(6)],
            "title": [{"pageName": "About_Page"}, {"articleId": "p0"}],
        },
    )
    message, code = loadtest.refusal(opts)  # type: ignore[misc]
    assert code == 2
    assert asked == [
        "http://127.0.0.1:8080/api/pages?sort=total&limit=1000",
        "http://127.0.0.1:8080/api/pages?sort=title&limit=1000",
    ]
    assert message.startswith(
        "ws://127.0.0.1:8080/ws counts a real site (p0, p1, p2, p3, p4 "
        "and 2 more): a load test's views would stay in its stats"
    )
    assert (
        "livecount serve --port 8081 --table-prefix loadtest- --data-dir data-loadtest" in message
    )
    assert "--into-real-site" in message


def test_a_store_of_load_tests_only_is_not_refused(monkeypatch):
    _stored(monkeypatch, {"total": [{"articleId": "loadtest-1"}], "title": []})
    assert loadtest.refusal(loadtest.Options(url="ws://127.0.0.1:1/ws")) is None


def test_a_server_that_cannot_be_asked_is_refused(monkeypatch):
    from livecount.tools.report import ReportError

    _stored(monkeypatch, {"total": ReportError("cannot reach it; is `livecount serve` running?")})
    message, code = loadtest.refusal(loadtest.Options(url="ws://127.0.0.1:1/ws"))  # type: ignore[misc]
    assert code == 1 and "is `livecount serve` running?" in message
    assert "pass --into-real-site" in message
    _stored(monkeypatch, {"total": {"not": "a list"}})
    message, code = loadtest.refusal(loadtest.Options(url="ws://127.0.0.1:1/ws"))  # type: ignore[misc]
    assert code == 1 and "did not answer a list of pages" in message


def test_the_help_shows_the_separate_store_and_the_flag(capsys):
    top = argparse.ArgumentParser()
    loadtest.register(top.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        top.parse_args(["loadtest", "--help"])
    text = capsys.readouterr().out
    assert "--into-real-site" in text
    assert (
        "livecount serve --port 8081 --table-prefix loadtest- --data-dir data-loadtest\n"
        "  livecount loadtest --url ws://127.0.0.1:8081/ws" in text
    )
    assert top.parse_args(["loadtest"]).into_real_site is False
    assert top.parse_args(["loadtest", "--into-real-site"]).into_real_site is True
