"""The node's decisions, without sockets, disks, DynamoDB or a clock."""

from typing import Any

import msgspec
from livecount.core import journal, protocol
from livecount.core.admission import GONE_KEPT
from livecount.core.engine import Close, Engine, Outcome, PendingView, Settings, Shown
from livecount.core.ledger import Counts, FlushResult, Ledger
from livecount.core.pages import Target

A, B = Target("post", "a"), Target("post", "b")
T = 1_764_000_000.0  # a wall-clock moment


def engine(**settings: Any) -> Engine[str]:
    made: Engine[str] = Engine(Settings(**settings))
    assert made.opened("s", "10.0.0.1", None, "Mozilla/5.0", T) is None
    return made


def frame(**fields: object) -> str:
    return msgspec.json.encode({"message": "views", **fields}).decode()


def answer(out: Outcome) -> list[dict[str, object]]:
    return [msgspec.json.decode(r) for r in out.replies]


def view(e: Engine[str], conn: str = "s", now: float = T, **fields: object) -> dict[str, object]:
    """A view as the edge runs it: load the base if asked, journal, count."""
    out = e.receive(conn, frame(**fields), now)
    if out.load:
        e.loaded({t: Counts(0, 0) for t in out.load if not e.ledger.has_base(t)})
        assert out.again is not None
        out = e.handle(conn, out.again, now)
    if out.view is None:
        return answer(out)[0]
    return msgspec.json.decode(e.count(out.view, now))


def test_a_first_view_waits_for_the_stored_count_and_never_shows_less():
    e = engine()
    out = e.receive("s", frame(articleId="a"), T)
    assert out.load == [A] and out.view is None and not out.replies
    e.loaded({A: Counts(10, 7)})
    pending = e.handle("s", out.again, T)  # type: ignore[arg-type]
    assert isinstance(pending.view, PendingView)
    assert pending.view.record == journal.view_record(A, False, pending.view.hour, None, None)
    reply = msgspec.json.decode(e.count(pending.view, T))
    assert reply == {"message": "views", "totalViews": 11, "uniqueViews": 8, "readingNow": 1,
                     "articleId": "a"}


def test_nothing_counts_until_the_journal_has_it():
    e = engine()
    view(e, articleId="a")
    out = e.receive("s", frame(articleId="a"), T)
    assert out.view is not None and e.ledger.current(A) == Counts(1, 1)
    e.dropped(out.view)  # the journal could not write it
    assert e.ledger.current(A) == Counts(1, 1) and e.ledger.pending_views == 1


def test_bots_see_counts_and_are_not_counted():
    e: Engine[str] = Engine(Settings())
    e.opened("bot", "10.0.0.2", None, "Mozilla/5.0 HeadlessChrome/120", T)
    e.loaded({A: Counts(3, 3)})
    out = e.receive("bot", frame(articleId="a"), T)
    assert out.bot and out.view is None
    assert answer(out)[0] == {"message": "views", "totalViews": 3, "uniqueViews": 3,
                              "readingNow": 0, "articleId": "a", "counted": False,
                              "reason": "bot"}
    assert e.ledger.pending_views == 0


def test_a_resumed_page_reads_again_and_counts_no_view():
    """After a server restart a page's socket reopens: the page says its view was
    counted already, and is back among the readers without a second view."""
    e = engine()
    assert view(e, articleId="a")["readingNow"] == 1
    e.closed("s")  # the server went away
    assert e.readers.now(A) == 0
    e.opened("s", "10.0.0.1", None, "Mozilla/5.0", T + 1)
    assert view(e, now=T + 1, articleId="a", resumed=True) == {
        "message": "views", "totalViews": 1, "uniqueViews": 1, "readingNow": 1,
        "articleId": "a", "counted": False, "reason": "resumed"}
    assert e.readers.now(A) == 1 and e.ledger.current(A) == Counts(1, 1)
    assert e.ledger.pending_views == 1  # only the first view waits for the store


def test_a_socket_that_keeps_flooding_is_struck_out():
    e = engine(rate_limit=1.0, rate_burst=2.0, max_strikes=3)
    e.loaded({A: Counts(0, 0)})
    outcomes = [e.receive("s", frame(articleId="a"), T) for _ in range(6)]
    assert [o.refused for o in outcomes[:2]] == [None, None]
    assert [answer(o)[0]["error"] for o in outcomes[2:5]] == ["rate_limited"] * 3
    assert outcomes[5].close == Close(1008, "rate limit exceeded")


def test_sockets_per_address_are_bounded():
    e: Engine[str] = Engine(Settings(max_connections_per_ip=1))
    assert e.opened("s1", "10.0.0.9", None, None, T) is None
    assert e.opened("s2", "10.0.0.9", None, None, T) == Close(
        1008, "too many connections from this address")
    e.closed("s1")
    assert e.opened("s3", "10.0.0.9", None, None, T) is None


def test_a_view_watches_only_the_page_it_shows():
    e = engine()
    view(e, articleId="a")
    view(e, articleId="b")
    assert e.hub.subscriptions("s") == {B}


def test_subscribe_answers_each_count_once_its_base_is_read():
    e = engine()
    out = e.receive("s", '{"message":"subscribe","articleIds":["a","a"]}', T)
    assert out.load == [A]
    e.loaded({A: Counts(4, 2)})
    out = e.handle("s", out.again, T)  # type: ignore[arg-type]
    assert out.counts == (A,)  # one answer per id, read as it is sent
    assert msgspec.json.decode(e.push_now(A)[1]) == {
        "message": "count", "totalViews": 4, "uniqueViews": 2, "readingNow": 0,
        "articleId": "a"}
    bad = e.receive("s", '{"message":"subscribe","pageNames":["Nope"]}', T)
    assert bad.refused == "unknown_page"


def test_too_many_waiting_views_are_refused_busy():
    e = engine(max_pending_views=1)
    e.loaded({A: Counts(0, 0)})
    first = e.receive("s", frame(articleId="a"), T)
    assert first.view is not None
    second = e.receive("s", frame(articleId="a"), T)
    assert second.refused == "busy" and second.view is None


def test_sequence_numbers_pass_the_journal_and_the_clock():
    e = engine()
    e.replayed(5_000)
    assert e.next_seq(10) == 5_001
    assert e.next_seq(9_000) == 9_000
    assert e.next_seq(10) == 9_001


def test_recovery_ends_when_every_replayed_write_settles():
    e = engine()
    e.ledger.record(A, refreshed=False, hour="2026-01-01T00", force=True)
    e.replayed(1)
    assert e.recovering
    flush = e.ledger.take(e.next_seq(2))
    e.settle(flush, FlushResult.nothing_known(flush), T)
    assert e.recovering
    again = e.ledger.take(e.next_seq(3))
    e.settle(again, FlushResult(), T)
    assert not e.recovering and e.ledger.idle


def test_refused_writes_become_dead_letters_and_hold_nothing_up():
    e = engine()
    view(e, articleId="a", referrer="https://x.org/")
    view(e, articleId="b")
    flush = e.ledger.take(e.next_seq(1))
    bad = next(r for r in flush.rows if r.table == "referrer" and r.target == A.ref)
    settled = e.settle(flush, FlushResult(rejected_rows={bad: "ValidationException: key"}), T)
    assert e.ledger.idle  # nothing left to retry
    assert settled.views == 2
    (key, line), = settled.dead_letters
    letter = msgspec.json.decode(line)
    assert key == f"referrer {A.ref} x.org"  # the post's row of that host
    assert letter["error"] == "ValidationException: key" and letter["totalViews"] == 1
    assert letter["sort"] == "x.org"
    assert letter["seq"] == flush.seq


def test_changes_are_pushed_to_watchers_with_their_wait():
    e = engine()
    view(e, articleId="a", now=T)
    pushes, waited = e.due(T + 0.25)
    (push,) = pushes
    assert push.watchers == {"s"} and msgspec.json.decode(push.message)["totalViews"] == 1
    assert push.target == A and push.counts == Shown(1, 1, 1)
    assert waited == [0.25]
    assert e.due(T + 1) == ([], [])


def test_a_count_seen_in_the_stream_moves_only_known_targets():
    e = engine()
    e.observed("a", Counts(9, 9), T)
    assert not e.ledger.has_base(A)  # unknown: it is read when someone asks
    view(e, articleId="a")
    e.observed("a", Counts(20, 15), T)  # stored by others; this node's view is pending
    assert e.shown(A) == Counts(21, 16)


def test_quiet_sockets_that_watch_nothing_are_idle():
    e = engine(idle_timeout=60.0)
    e.opened("watching", "10.0.0.3", None, None, T)
    e.loaded({A: Counts(0, 0)})
    e.receive("watching", '{"message":"subscribe","articleIds":["a"]}', T)
    assert e.idle(T + 30) == []
    assert e.idle(T + 61) == ["s"]


def test_the_ledger_starts_empty():
    assert Ledger().idle


def test_a_view_that_waited_for_its_base_counts_after_its_page_left():
    e = engine()
    out = e.receive("s", frame(articleId="a"), T)
    e.closed("s")
    e.loaded({A: Counts(2, 2)})
    late = e.handle("s", out.again, T)  # type: ignore[arg-type]
    assert late.view is not None and e.hub.subscriptions("s") == set()
    assert msgspec.json.decode(e.count(late.view, T))["totalViews"] == 3
    subscribe = protocol.decode('{"message":"subscribe","articleIds":["b"]}')
    assert e.handle("s", subscribe, T) == Outcome()  # nobody left to answer or push to
    assert e.hub.subscriptions("s") == set()


def test_a_bot_that_left_is_still_not_counted():
    e: Engine[str] = Engine(Settings())
    e.opened("bot", "10.0.0.2", None, "curl/8.0", T)
    out = e.receive("bot", frame(articleId="a"), T)
    e.closed("bot")
    e.loaded({A: Counts(0, 0)})
    late = e.handle("bot", out.again, T)  # type: ignore[arg-type]
    assert late.bot and late.view is None and e.ledger.pending_views == 0


def test_a_socket_that_left_keeps_its_rate_for_a_while():
    """Frames read before a close are judged by the socket that sent them; the
    memory of closed sockets is bounded."""
    e = engine(rate_limit=1.0, rate_burst=1.0)
    e.loaded({A: Counts(0, 0)})
    assert e.receive("s", frame(articleId="a"), T).refused is None
    e.closed("s")
    assert e.receive("s", frame(articleId="a"), T).refused == "rate_limited"
    for n in range(GONE_KEPT):
        assert e.opened(f"other{n}", "10.0.0.7", None, None, T) is None
        e.closed(f"other{n}")
    assert e.receive("s", frame(articleId="a"), T).refused is None  # forgotten


# -- reading now -------------------------------------------------------------------
def reading(e: Engine[str], target: Target = A) -> int:
    """What a push of `target` would tell its watchers now."""
    return int(msgspec.json.decode(e.push_now(target)[1])["readingNow"])


def pushed(e: Engine[str], now: float = T) -> dict[Target, int]:
    return {p.target: p.counts.reading for p in e.due(now)[0]}


def test_a_second_reader_is_pushed_to_the_first_and_a_move_to_both():
    e = engine()
    e.opened("s2", "10.0.0.2", None, "Mozilla/5.0", T)
    assert view(e, articleId="a")["readingNow"] == 1
    e.due(T)
    assert view(e, "s2", articleId="a")["readingNow"] == 2
    assert pushed(e) == {A: 2}  # s watches A: it learns of s2
    e.receive("s", '{"message":"subscribe","articleIds":["a"]}', T)
    view(e, articleId="b")  # s moves to B; still subscribed to A
    assert pushed(e) == {A: 1, B: 1}


def test_a_hidden_tab_stops_reading_and_is_pushed():
    e = engine()
    e.opened("s2", "10.0.0.2", None, "Mozilla/5.0", T)
    view(e, articleId="a")
    view(e, "s2", articleId="a")
    e.due(T)
    assert e.receive("s2", '{"message":"visibility","visible":false}', T) == Outcome()
    assert pushed(e) == {A: 1}
    e.receive("s2", '{"message":"visibility","visible":true}', T)
    assert pushed(e) == {A: 2}


def test_a_closed_socket_stops_reading_at_once():
    e = engine()
    e.opened("s2", "10.0.0.2", None, "Mozilla/5.0", T)
    view(e, articleId="a")
    view(e, "s2", articleId="a")
    e.due(T)
    e.closed("s2")  # with or without a close frame: the transport is gone
    assert pushed(e) == {A: 1} and reading(e) == 1
    e.closed("s")
    assert reading(e) == 0 and e.readers.sockets == 0


def test_a_view_of_a_page_that_is_not_counted_leaves_the_one_before():
    e = engine()
    view(e, articleId="a")
    out = e.receive("s", frame(currentPage="/tags/"), T)
    assert out.refused == "unrecognised_page" and reading(e) == 0


def test_bots_never_read_even_when_they_say_they_are_visible():
    e = engine()
    e.opened("bot", "10.0.0.2", None, "Lighthouse", T)
    view(e, articleId="a")
    assert view(e, "bot", articleId="a")["readingNow"] == 1
    e.receive("bot", '{"message":"visibility","visible":true}', T)
    assert reading(e) == 1 and e.readers.sockets == 1


def test_other_nodes_readers_add_to_what_is_shown_and_pushed():
    e = engine()
    view(e, articleId="a")
    e.due(T)
    e.moved(e.readers.elsewhere.heard("n2", 1, True, [(A, 3), (B, 5)], 0.0), T)
    assert pushed(e) == {A: 4}  # B: nobody here shows it
    assert e.readers.everywhere() == {A: 4, B: 5}


def test_an_article_renamed_away_is_read_again_and_may_show_less():
    """`livecount admin` moved its counts: the larger count this node saw is forgotten
    (only a reset can bring a count down), and its pages are shown the store's."""
    e = engine()
    e.loaded({A: Counts(7, 5), B: Counts(2, 2)})
    e.handle("s", protocol.Subscribe(articleIds=["a"]), T)
    e.observed("a", Counts(9, 6), T)  # counts merge by maximum: 9 stays
    e.observed("a", Counts(0, 0), T)
    assert e.shown(A) == Counts(9, 6)
    assert e.reset(["a", "b"]) == [A]  # only a's pages need it now; b is read when asked
    assert not e.ledger.has_base(A) and not e.ledger.has_base(B)
    e.due(T)
    e.reloaded({A: Counts(0, 0)}, T)
    pushes, _ = e.due(T)
    assert [(p.target, p.counts[:2]) for p in pushes] == [(A, (0, 0))]
    assert view(e, articleId="a")["totalViews"] == 1  # counts on from what is stored
