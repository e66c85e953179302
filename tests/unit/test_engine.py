"""The node's decisions, without sockets, disks, DynamoDB or a clock."""

from typing import Any

import msgspec
from livecount.core import journal
from livecount.core.admission import GONE_KEPT
from livecount.core.engine import (
    Action,
    Append,
    Close,
    Core,
    NeedCounts,
    PendingView,
    Send,
    Settings,
)
from livecount.core.ledger import ZERO, Counts, FlushResult, Ledger
from livecount.core.pages import PageRules, Target

A, B = Target("post", "a"), Target("post", "b")
T = 1_764_000_000.0  # a wall-clock moment


def engine(**settings: Any) -> Core[str]:
    """The core as the node wires it, with a socket "s" open."""
    made: Core[str] = Core.make(Settings(**settings))
    assert made.engine.opened("s", "10.0.0.1", None, "Mozilla/5.0", T) is None
    return made


def frame(**fields: object) -> str:
    return msgspec.json.encode({"message": "views", **fields}).decode()


def messages(data: bytes) -> list[dict[str, Any]]:
    """The text frames `Live.output` wrote, decoded."""
    found = []
    while data:
        size, start = data[1], 2
        if size == 126:
            size, start = int.from_bytes(data[2:4], "big"), 4
        found.append(msgspec.json.decode(data[start : start + size]))
        data = data[start + size :]
    return found


def sent(e: Core[str], conn: str = "s") -> list[dict[str, Any]]:
    return messages(e.live.output(conn))


def loaded(
    e: Core[str], action: Action | None, counts: Counts = ZERO, now: float = T
) -> list[tuple[str, Action]]:
    """Read the counts `action` asks for, and list what it lists, as the edge would."""
    assert isinstance(action, NeedCounts)
    return e.engine.loaded(dict.fromkeys(action.targets, counts), now, action.listing)


def view(e: Core[str], conn: str = "s", now: float = T, **fields: object) -> dict[str, Any]:
    """A view as the edge runs it: read its counts if asked, journal, count; its reply."""
    actions: list[tuple[str, Action]] = []
    action = e.engine.receive(conn, frame(**fields), now)
    if isinstance(action, NeedCounts):
        actions = loaded(e, action, now=now)
    elif action is not None:
        actions = [(conn, action)]
    for _, act in actions:
        if isinstance(act, Append):
            e.live.stored(act.view, now)
    return sent(e, conn)[-1]


def test_a_first_view_waits_for_the_stored_count_and_never_shows_less():
    e = engine()
    action = e.engine.receive("s", frame(articleId="a"), T)
    assert action == NeedCounts((A,), (A,)) and e.live.output("s") == b""  # read, listed
    [(conn, appended)] = loaded(e, action, Counts(10, 7))
    assert conn == "s" and isinstance(appended, Append)
    pending = appended.view
    assert isinstance(pending, PendingView)
    assert pending.record == journal.view_record(A, False, pending.hour, None, None)
    assert e.live.output("s") == b""  # the reply waits for the disk
    e.live.stored(pending, T)
    assert sent(e) == [
        {"message": "views", "totalViews": 11, "uniqueViews": 8, "readingNow": 1, "articleId": "a"}
    ]


def test_nothing_counts_until_the_journal_has_it():
    e = engine()
    view(e, articleId="a")
    action = e.engine.receive("s", frame(articleId="a"), T)
    assert isinstance(action, Append) and e.live.shown(A) == Counts(1, 1)
    e.live.unstored(action.view, OSError("disk full"))  # the journal could not write it
    assert e.live.shown(A) == Counts(1, 1) and e.writes.pending_views == 1
    assert sent(e)[0]["error"] == "internal"


def test_a_socket_is_never_shown_a_count_below_one_it_was_shown_before():
    """Issue 22's race: a push queued behind a reply was read when it left, so it
    showed views counted after the reply that followed it (36, then 28). Every
    count is now read when it leaves, in order."""
    e = engine()
    e.engine.opened("t", "10.0.0.2", None, "Mozilla/5.0", T)
    view(e, articleId="a")
    view(e, "t", articleId="a")
    first = e.engine.receive("s", frame(articleId="a"), T)
    assert isinstance(first, Append)
    e.live.stored(first.view, T)  # s's reply is ready, not yet written
    e.live.due(T)
    e.live.push(A)  # t's views moved A: s, owed its reply, gets the push in its turn
    second = e.engine.receive("s", frame(articleId="a"), T)
    assert isinstance(second, Append)
    others = [e.engine.receive("t", frame(articleId="a"), T) for _ in range(5)]
    e.live.stored(second.view, T)
    for other in others:
        assert isinstance(other, Append)
        e.live.stored(other.view, T)  # counted after s's second view, before it leaves
    totals = [m["totalViews"] for m in sent(e)]
    assert totals == sorted(totals) and totals[-1] == 9, totals


def test_bots_see_counts_and_are_not_counted():
    e: Core[str] = Core.make(Settings())
    e.engine.opened("bot", "10.0.0.2", None, "Mozilla/5.0 HeadlessChrome/120", T)
    e.engine.loaded({A: Counts(3, 3)}, T, [A])
    assert e.engine.receive("bot", frame(articleId="a"), T) == Send()
    assert sent(e, "bot") == [
        {
            "message": "views",
            "totalViews": 3,
            "uniqueViews": 3,
            "readingNow": 0,
            "articleId": "a",
            "counted": False,
            "reason": "bot",
        }
    ]
    assert e.writes.pending_views == 0 and e.engine.tally.bots == 1


def test_a_resumed_page_reads_again_and_counts_no_view():
    """After a server restart a page's socket reopens: the page says its view was
    counted already, and is back among the readers without a second view."""
    e = engine()
    assert view(e, articleId="a")["readingNow"] == 1
    e.engine.closed("s")  # the server went away
    assert e.readers.everywhere() == {}
    e.engine.opened("s", "10.0.0.1", None, "Mozilla/5.0", T + 1)
    assert view(e, now=T + 1, articleId="a", resumed=True) == {
        "message": "views",
        "totalViews": 1,
        "uniqueViews": 1,
        "readingNow": 1,
        "articleId": "a",
        "counted": False,
        "reason": "resumed",
    }
    assert e.readers.everywhere() == {A: 1} and e.live.shown(A) == Counts(1, 1)
    assert e.writes.pending_views == 1  # only the first view waits for the store


def test_a_socket_that_keeps_flooding_is_struck_out():
    e = engine(rate_limit=1.0, rate_burst=2.0, max_strikes=3)
    e.engine.loaded({A: Counts(0, 0)}, T, [A])
    actions = [e.engine.receive("s", frame(articleId="a"), T) for _ in range(6)]
    assert [type(a) for a in actions[:2]] == [Append, Append]
    assert actions[2:5] == [Send()] * 3
    assert sent(e) == []  # in order: after the two views, which wait for the disk
    for appended in actions[:2]:
        assert isinstance(appended, Append)
        e.live.stored(appended.view, T)
    assert [m.get("error") for m in sent(e)] == [None, None, *["rate_limited"] * 3]
    assert actions[5] == Close(1008, "rate limit exceeded")
    assert e.engine.tally.refused["rate_limited"] == 4


def test_sockets_per_address_are_bounded():
    e: Core[str] = Core.make(Settings(max_connections_per_ip=1))
    assert e.engine.opened("s1", "10.0.0.9", None, None, T) is None
    assert e.engine.opened("s2", "10.0.0.9", None, None, T) == Close(
        1008, "too many connections from this address"
    )
    e.engine.closed("s1")
    assert e.engine.opened("s3", "10.0.0.9", None, None, T) is None
    assert e.engine.tally.refused["too_many_connections"] == 1


def test_a_view_watches_only_the_page_it_shows():
    e = engine()
    view(e, articleId="a")
    view(e, articleId="b")
    e.live.due(T)
    e.live.observed("a", Counts(5, 5), T)
    e.live.observed("b", Counts(5, 5), T)
    assert e.live.due(T)[0] == [B]


def test_subscribe_answers_each_count_once_its_counts_are_read():
    e = engine()
    action = e.engine.receive("s", '{"message":"subscribe","articleIds":["a","a"]}', T)
    assert action == NeedCounts((A,))
    assert loaded(e, action, Counts(4, 2)) == [("s", Send())]
    assert sent(e) == [
        {"message": "count", "totalViews": 4, "uniqueViews": 2, "readingNow": 0, "articleId": "a"}
    ]  # one answer per id
    assert e.engine.receive("s", '{"message":"subscribe","pageNames":["Nope"]}', T) == Send()
    assert sent(e)[0]["error"] == "unknown_page"


def test_messages_behind_a_first_read_keep_their_order():
    """A socket's later messages wait while its first view's counts are read, then go
    on in order: views are journaled, and so counted, in the order they were sent."""
    e = engine()
    first = e.engine.receive("s", frame(articleId="a"), T)
    assert e.engine.receive("s", frame(articleId="b"), T) is None  # held
    assert e.engine.receive("s", '{"message":"subscribe","articleIds":["a"]}', T) is None
    assert e.engine.owed("s") == 3
    actions = loaded(e, first)
    assert [type(a) for _, a in actions] == [Append, NeedCounts]  # b's counts, in turn
    a_view = actions[0][1]
    actions = loaded(e, actions[1][1], Counts(5, 5))
    assert [type(a) for _, a in actions] == [Append, Send]
    b_view = actions[0][1]
    assert isinstance(a_view, Append) and isinstance(b_view, Append)
    e.live.stored(a_view.view, T)
    e.live.stored(b_view.view, T)
    assert [(m["message"], m["articleId"], m["totalViews"]) for m in sent(e)] == [
        ("views", "a", 1),
        ("views", "b", 6),
        ("count", "a", 1),
    ]


def test_a_read_that_fails_refuses_only_what_waited_for_it():
    e = engine()
    first = e.engine.receive("s", frame(articleId="a"), T)
    assert e.engine.receive("s", '{"message":"visibility","visible":false}', T) is None
    assert isinstance(first, NeedCounts)
    assert e.engine.unloaded(first.targets, T) == [("s", Send())]
    assert sent(e) == [
        {
            "message": "error",
            "error": "unavailable",
            "detail": "counts are unavailable right now; nothing was counted",
        }
    ]
    assert e.writes.pending_views == 0 and e.engine.owed("s") == 0


def test_counts_asked_for_are_asked_for_once():
    e = engine()
    e.engine.opened("t", "10.0.0.2", None, "Mozilla/5.0", T)
    assert e.engine.receive("s", frame(articleId="a"), T) == NeedCounts((A,), (A,))
    assert e.engine.receive("t", frame(articleId="a"), T) is None  # the same read serves both
    actions = e.engine.loaded({A: Counts(0, 0)}, T, [A])
    assert sorted(c for c, a in actions if isinstance(a, Append)) == ["s", "t"]


def test_too_many_waiting_views_are_refused_busy():
    e = engine(max_pending_views=1)
    e.engine.loaded({A: Counts(0, 0)}, T, [A])
    assert isinstance(e.engine.receive("s", frame(articleId="a"), T), Append)
    assert e.engine.receive("s", frame(articleId="a"), T) == Send()
    assert e.engine.tally.refused["busy"] == 1


def test_sequence_numbers_pass_the_journal_and_the_clock():
    e = engine()
    e.writes.replay([["s", 5_000]])
    assert e.writes.next_seq(10) == 5_001
    assert e.writes.next_seq(9_000) == 9_000
    assert e.writes.next_seq(10) == 9_001


def test_recovery_ends_when_every_replayed_write_settles():
    e = engine()
    record = msgspec.json.decode(journal.view_record(A, False, "2026-01-01T00", None, None))
    e.writes.replay([record, ["s", 1]])
    assert e.writes.recovering
    flush = e.writes.take(e.writes.next_seq(2))
    e.writes.settle(flush, FlushResult.nothing_known(flush))
    e.writes.release(flush)
    assert e.writes.recovering
    again = e.writes.take(e.writes.next_seq(3))
    e.writes.settle(again, FlushResult())
    e.writes.release(again)
    assert not e.writes.recovering and e.writes.idle


def test_refused_writes_become_dead_letters_and_hold_nothing_up():
    e = engine()
    view(e, articleId="a", referrer="https://x.org/")
    view(e, articleId="b")
    flush = e.writes.take(e.writes.next_seq(1))
    bad = next(r for r in flush.rows if r.table == "referrer" and r.target == A.ref)
    _, settled = e.writes.settle(
        flush, FlushResult(rejected_rows={bad: "ValidationException: key"})
    )
    e.writes.release(flush)
    assert e.writes.idle  # nothing left to retry
    assert settled.views == 2
    ((key, line),) = settled.dead_letters
    letter = msgspec.json.decode(line)
    assert key == f"referrer {A.ref} x.org"  # the post's row of that host
    assert letter["error"] == "ValidationException: key" and letter["totalViews"] == 1
    assert letter["sort"] == "x.org"
    assert letter["seq"] == flush.seq


def test_changes_are_pushed_to_watchers_with_their_wait():
    e = engine()
    view(e, articleId="a", now=T)
    targets, waited = e.live.due(T + 0.25)
    assert targets == [A] and waited == [0.25]
    frame_, now = e.live.push(A)
    assert now == []  # s was told this very count in its reply
    assert e.live.due(T + 1) == ([], [])
    e.live.observed("a", Counts(5, 4), T + 1)  # others' views: 5 stored, and this node's one
    assert e.live.due(T + 1)[0] == [A]
    frame_, now = e.live.push(A)
    assert now == ["s"] and messages(frame_)[0]["totalViews"] == 6
    assert e.engine.tally.pushes == 2  # one watcher, two pushes: one said nothing new


def test_a_count_seen_in_the_stream_moves_only_known_targets():
    e = engine()
    e.live.observed("a", Counts(9, 9), T)
    assert e.live.shown(A) is None  # unknown: it is read when someone asks
    view(e, articleId="a")
    e.live.observed("a", Counts(20, 15), T)  # stored by others; this node's view is pending
    assert e.live.shown(A) == Counts(21, 16)


def test_quiet_sockets_that_watch_nothing_are_idle():
    e = engine(idle_timeout=60.0)
    e.engine.opened("watching", "10.0.0.3", None, None, T)
    e.engine.loaded({A: Counts(0, 0)}, T, [A])
    e.engine.receive("watching", '{"message":"subscribe","articleIds":["a"]}', T)
    assert e.engine.idle(T + 30) == []
    assert e.engine.idle(T + 61) == ["s"]


def test_the_ledger_starts_empty():
    assert Ledger().idle and engine().writes.idle


def test_a_view_that_waited_for_its_counts_counts_after_its_page_left():
    e = engine()
    action = e.engine.receive("s", frame(articleId="a"), T)
    assert e.engine.receive("s", '{"message":"subscribe","articleIds":["b"]}', T) is None
    e.engine.closed("s")
    [(_, late)] = loaded(e, action, Counts(2, 2))  # the subscribe: nobody left to answer
    assert isinstance(late, Append)
    e.live.stored(late.view, T)
    assert e.live.shown(A) == Counts(3, 3) and e.live.output("s") == b""


def test_a_bot_that_left_is_still_not_counted():
    e: Core[str] = Core.make(Settings())
    e.engine.opened("bot", "10.0.0.2", None, "curl/8.0", T)
    action = e.engine.receive("bot", frame(articleId="a"), T)
    e.engine.closed("bot")
    assert loaded(e, action) == [] and e.writes.pending_views == 0


def test_a_socket_that_left_keeps_its_rate_for_a_while():
    """Frames read before a close are judged by the socket that sent them; the
    memory of closed sockets is bounded."""
    e = engine(rate_limit=1.0, rate_burst=1.0)
    e.engine.loaded({A: Counts(0, 0)}, T, [A])
    assert isinstance(e.engine.receive("s", frame(articleId="a"), T), Append)
    e.engine.closed("s")
    assert e.engine.receive("s", frame(articleId="a"), T) is None  # refused; nobody to tell
    assert e.engine.tally.refused["rate_limited"] == 1
    for n in range(GONE_KEPT):
        assert e.engine.opened(f"other{n}", "10.0.0.7", None, None, T) is None
        e.engine.closed(f"other{n}")
    assert isinstance(e.engine.receive("s", frame(articleId="a"), T), Append)  # forgotten


# -- reading now -------------------------------------------------------------------
def reading(e: Core[str], target: Target = A) -> int:
    """What a push of `target` would tell its watchers now."""
    return int(messages(e.live.frame(target))[0]["readingNow"])


def pushed(e: Core[str], now: float = T) -> dict[Target, int]:
    return {t: reading(e, t) for t in e.live.due(now)[0]}


def test_a_second_reader_is_pushed_to_the_first_and_a_move_to_both():
    e = engine()
    e.engine.opened("s2", "10.0.0.2", None, "Mozilla/5.0", T)
    assert view(e, articleId="a")["readingNow"] == 1
    e.live.due(T)
    assert view(e, "s2", articleId="a")["readingNow"] == 2
    assert pushed(e) == {A: 2}  # s watches A: it learns of s2
    e.engine.receive("s", '{"message":"subscribe","articleIds":["a"]}', T)
    view(e, articleId="b")  # s moves to B; still subscribed to A
    assert pushed(e) == {A: 1, B: 1}


def test_a_hidden_tab_stops_reading_and_is_pushed():
    e = engine()
    e.engine.opened("s2", "10.0.0.2", None, "Mozilla/5.0", T)
    view(e, articleId="a")
    view(e, "s2", articleId="a")
    e.live.due(T)
    assert e.engine.receive("s2", '{"message":"visibility","visible":false}', T) is None
    assert pushed(e) == {A: 1}
    e.engine.receive("s2", '{"message":"visibility","visible":true}', T)
    assert pushed(e) == {A: 2}


def test_a_closed_socket_stops_reading_at_once():
    e = engine()
    e.engine.opened("s2", "10.0.0.2", None, "Mozilla/5.0", T)
    view(e, articleId="a")
    view(e, "s2", articleId="a")
    e.live.due(T)
    e.engine.closed("s2")  # with or without a close frame: the transport is gone
    assert pushed(e) == {A: 1} and reading(e) == 1
    e.engine.closed("s")
    assert reading(e) == 0 and e.readers.everywhere() == {}


def test_a_view_of_a_page_that_is_not_counted_leaves_the_one_before():
    e = engine(pages=PageRules(unmatched="refuse"))
    view(e, articleId="a")
    assert e.engine.receive("s", frame(currentPage="/tags/"), T) == Send()
    assert sent(e)[0]["error"] == "unrecognised_page" and reading(e) == 0


def test_bots_never_read_even_when_they_say_they_are_visible():
    e = engine()
    e.engine.opened("bot", "10.0.0.2", None, "Lighthouse", T)
    view(e, articleId="a")
    assert view(e, "bot", articleId="a")["readingNow"] == 1
    e.engine.receive("bot", '{"message":"visibility","visible":true}', T)
    assert reading(e) == 1 and e.readers.everywhere() == {A: 1}


def test_other_nodes_readers_add_to_what_is_shown_and_pushed():
    e = engine()
    view(e, articleId="a")
    e.live.due(T)
    e.live.moved(e.readers.heard("n2", 1, True, [(A, 3), (B, 5)], 0.0), T)
    assert pushed(e) == {A: 4}  # B: nobody here shows it
    assert e.readers.everywhere() == {A: 4, B: 5}
    e.live.moved(e.readers.expire(100.0, 10.0, 0), T)  # n2 fell silent
    assert pushed(e) == {A: 1} and e.readers.everywhere() == {A: 1}


def test_an_article_renamed_away_is_read_again_and_may_show_less():
    """`livecount admin` moved its counts: the larger count this node saw is forgotten
    (only a reset can bring a count down), and its pages are shown the store's."""
    e = engine()
    e.engine.loaded({A: Counts(7, 5), B: Counts(2, 2)}, T, [A, B])
    e.engine.receive("s", '{"message":"subscribe","articleIds":["a"]}', T)
    e.live.observed("a", Counts(9, 6), T)  # counts merge by maximum: 9 stays
    e.live.observed("a", Counts(0, 0), T)
    assert e.live.shown(A) == Counts(9, 6)
    assert e.live.reset([A, B]) == [A]  # only a's pages need it now; b is read when asked
    assert e.live.shown(A) is None and e.live.shown(B) is None
    e.live.due(T)
    e.live.reloaded({A: Counts(0, 0)}, T)
    assert e.live.due(T)[0] == [A] and messages(e.live.frame(A))[0]["totalViews"] == 0
    assert view(e, articleId="a")["totalViews"] == 1  # counts on from what is stored


# -- the page cap -----------------------------------------------------------------------
def test_a_view_lists_its_target_before_it_counts_and_the_cap_refuses_it():
    """Every path counts as a page: a view of a new target is listed in the page index
    first, within `--max-pages` on every node together, or refused and not counted."""
    e = engine()
    e.engine.loaded({A: Counts(0, 0)}, T)  # its count is known (a subscribe read it)...
    action = e.engine.receive("s", frame(articleId="a"), T)
    assert action == NeedCounts((), (A,))  # ...but it is not known to be listed
    assert e.engine.loaded({}, T, refused=[A]) == [("s", Send())]
    assert sent(e)[0]["error"] == "too_many_pages" and e.writes.pending_views == 0
    assert e.engine.tally.refused["too_many_pages"] == 1
    again = e.engine.receive("s", frame(articleId="a"), T)  # asked again: pages go away
    assert again == NeedCounts((), (A,))
    [(_, appended)] = e.engine.loaded({}, T, listed=[A])
    assert isinstance(appended, Append)
    assert isinstance(e.engine.receive("s", frame(articleId="a"), T), Append)  # listed now


def test_views_that_count_nothing_list_nothing():
    e = engine()
    e.engine.opened("bot", "10.0.0.2", None, "curl/8.0", T)
    e.engine.loaded({A: Counts(1, 1)}, T)
    assert e.engine.receive("bot", frame(articleId="a"), T) == Send()
    assert e.engine.receive("s", frame(articleId="a", resumed=True), T) == Send()
    assert [m.get("reason") for m in sent(e, "bot") + sent(e)] == ["bot", "resumed"]


def test_a_reset_forgets_that_a_target_was_listed():
    """A rename or delete took it out of the page index: its next view lists it again."""
    e = engine()
    view(e, articleId="a")
    e.live.reset([A])
    assert e.engine.receive("s", frame(articleId="a"), T) == NeedCounts((A,), (A,))
