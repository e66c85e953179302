"""The load client's pure parts: popularity, view frames, percentiles, push timing, report."""

from __future__ import annotations

import argparse
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
    assert probs[0] / probs[1] == pytest.approx(2 ** 1.1)


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
        url="ws://127.0.0.1:1/ws", connections=2, in_flight=3, subscribers=1, opened=3,
        connect_failures={}, connect_s=0.1, duration_s=2.0, target_rate=None, articles=5,
        zipf=1.1, sent=10, acked=9, acked_in_window=9, errors={"busy": 1}, unanswered=0,
        views_per_s=4.5,
        reply_ms=h.summary(), push_ms=empty, push_first_ms=empty, push_missing=0,
        push_untracked=0, pushes=3, viewer_pushes=0, dropped=0, missed=0, unexpected=0,
        client_cpu_pct=12.0, client_saturated=False, interrupted=False, started_at=0.0,
        stopped_at=2.0)
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
    for bad in (["--connections", "0"], ["--rate", "-1"], ["--refreshed-ratio", "1.5"],
                ["--subscribers", "-2"], ["--in-flight", "0"], ["--in-flight", "two"]):
        with pytest.raises(SystemExit):
            top.parse_args(["loadtest", *bad])


def test_the_descriptor_limit_is_raised_only_within_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert loadtest.raise_fd_limit(1) == soft
    if hard != resource.RLIM_INFINITY:
        with pytest.raises(OSError, match="ulimit -Hn"):
            loadtest.raise_fd_limit(hard + 1)
