"""Reading now: this node's readers, the other nodes' as the feed tells them, and the
feed items that carry them."""

import json
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from livecount.core import feed
from livecount.core.pages import Target
from livecount.core.readers import Elsewhere, Readers

from tests.strategies import examples

A, B, H = Target("post", "a"), Target("post", "b"), Target("page", "Home_Page")


def test_a_view_moves_its_reader_and_a_repeat_moves_nothing():
    r: Readers[str] = Readers()
    assert r.view("s", A) == (A,)
    assert r.view("s", A) == ()
    assert r.view("s", B) == (B, A)
    assert r.here == {B: 1} and r.now(A) == 0 and r.now(B) == 1


def test_a_hidden_tab_does_not_read_and_comes_back_where_it_went():
    r: Readers[str] = Readers()
    r.view("s", A)
    assert r.visible("s", False) == (A,) and r.here == {}
    assert r.visible("s", False) == ()  # hidden twice: once
    assert r.view("s", B) == ()  # it navigated while hidden: still not reading
    assert r.visible("s", True) == (B,) and r.here == {B: 1}
    assert r.visible("s", True) == ()


def test_a_tab_hidden_before_its_first_view_reads_once_shown():
    r: Readers[str] = Readers()
    r.visible("s", False)
    r.view("s", A)
    assert r.here == {}
    r.visible("s", True)
    assert r.here == {A: 1}


def test_closing_or_leaving_for_an_uncounted_page_stops_reading():
    r: Readers[str] = Readers()
    r.view("s1", A)
    r.view("s2", A)
    r.view("s3", A)
    r.visible("s3", False)
    assert r.drop("s1") == (A,)
    assert r.leave("s2") == (A,) and r.here == {}
    assert r.drop("s3") == ()  # hidden: it was not counted
    assert r.drop("never-seen") == ()
    assert r.sockets == 0  # nothing kept of a closed socket


def test_take_moved_tells_each_moved_target_once_with_its_number():
    r: Readers[str] = Readers()
    r.view("s1", A)
    r.view("s2", A)
    r.view("s2", B)
    assert r.take_moved() == {A: 1, B: 1}
    assert r.take_moved() == {}
    r.drop("s1")
    assert r.take_moved() == {A: 0}


OPS = st.lists(
    st.tuples(
        st.sampled_from(["view", "hide", "show", "leave", "drop"]),
        st.integers(0, 5),
        st.sampled_from([A, B, H]),
    ),
    max_size=200,
)


@settings(max_examples=examples(300), deadline=None)
@given(OPS)
def test_many_sockets_any_order_the_number_is_the_visible_sockets_per_target(ops):
    """Against a plain model: the last target each open socket viewed, its tab state."""
    r: Readers[int] = Readers()
    last: dict[int, Target] = {}
    hidden: set[int] = set()
    for op, conn, target in ops:
        if op == "view":
            r.view(conn, target)
            last[conn] = target
        elif op in ("hide", "show"):
            r.visible(conn, op == "show")
            (hidden.add if op == "hide" else hidden.discard)(conn)
        elif op == "leave":
            r.leave(conn)
            last.pop(conn, None)
        else:
            r.drop(conn)
            last.pop(conn, None)
            hidden.discard(conn)
        expected = Counter(t for c, t in last.items() if c not in hidden)
        assert r.here == dict(expected)
    for conn in range(6):
        r.drop(conn)
    assert r.here == {} and r.sockets == 0


# -- the other nodes --------------------------------------------------------------
def test_other_nodes_add_up_and_a_whole_snapshot_replaces_what_a_node_said():
    e = Elsewhere()
    assert e.heard("n1", 10, True, [(A, 2), (B, 1)], 0.0) == [A, B]
    assert e.heard("n2", 5, True, [(A, 3)], 0.0) == [A]
    assert e.totals == {A: 5, B: 1}
    assert e.heard("n1", 11, False, [(B, 0)], 0.0) == [B]  # moved: B left n1
    assert e.totals == {A: 5}
    assert set(e.heard("n1", 12, True, [(H, 1)], 0.0)) == {H, A}  # A: not in n1's snapshot
    assert e.totals == {A: 3, H: 1}


def test_an_item_read_again_changes_nothing():
    e = Elsewhere()
    e.heard("n1", 10, True, [(A, 2)], 0.0)
    e.heard("n1", 11, False, [(A, 1)], 0.0)
    assert e.heard("n1", 10, True, [(A, 2)], 1.0) == []  # the feed's re-read window
    assert e.totals == {A: 1}


def test_a_silent_node_is_gone_with_its_readers_and_stays_gone():
    e = Elsewhere()
    e.heard("n1", 10, True, [(A, 2)], 0.0)
    e.heard("n2", 10, True, [(A, 1)], 0.0)
    e.heard("n2", 20, True, [(A, 1)], 4.0)
    assert e.expire(4.9, 5.0, horizon=0) == []
    assert e.expire(5.0, 5.0, horizon=0) == [A] and e.totals == {A: 1}
    assert e.heard("n1", 10, True, [(A, 2)], 6.0) == []  # its last item, read again
    assert e.totals == {A: 1}
    e.expire(7.0, 5.0, horizon=11)  # its items are behind what the feed reads now
    assert e.heard("n1", 30, True, [(A, 2)], 8.0) == [A]  # back after all: it speaks
    assert e.totals == {A: 3}


# -- on the feed -------------------------------------------------------------------
def test_readers_travel_as_feed_items_that_count_readers_ignore():
    payloads = feed.says("n1", [("post", "a", 2), ("page", "Home_Page", 1)], whole=True)
    assert len(payloads) == 1
    assert feed.read(payloads[0]) == feed.Said(
        "n1", True, [("post", "a", 2), ("page", "Home_Page", 1)]
    )
    assert feed.decode(payloads[0]) == []  # a node that knows only counts skips it
    assert feed.read(feed.says("n1", [], whole=True)[0]) == feed.Said("n1", True, [])
    assert feed.says("n1", [], whole=False) == []


def test_a_large_snapshot_is_split_and_only_its_first_item_replaces():
    many: list[feed.Reading] = [("post", f"article-{i:06d}", i % 7 + 1) for i in range(30_000)]
    payloads = feed.says("n1", many, whole=True)
    assert len(payloads) > 1 and all(len(p) <= feed.MAX_ITEM_BYTES for p in payloads)
    said = [feed.read(p) for p in payloads]
    assert [s.whole for s in said if isinstance(s, feed.Said)] == [True] + [False] * (
        len(payloads) - 1
    )
    assert [r for s in said if isinstance(s, feed.Said) for r in s.readers] == many


def test_feed_items_that_no_node_wrote_say_nothing():
    for bad in [
        '{"node":1,"whole":true,"readers":[]}',
        '{"node":"n","readers":[]}',
        '{"node":"n","whole":true,"readers":[["post","a",-1]]}',
        '{"node":"n","whole":true,"readers":[["site","a",1]]}',
        '{"node":"n","whole":"yes","readers":[]}',
        "{}",
        "null",
        "{",
    ]:
        assert feed.read(bad) == [], bad
    assert feed.read(json.dumps([["a", 1, 1]])) == [("a", 1, 1)]


def test_a_reset_on_the_feed_reads_back_as_one():
    puts = feed.resets([("post", "old"), ("page", "gone")], "feed", "admin", 1_764_000_000.0)
    said = [feed.read(put["Item"]["changes"]["S"]) for put in puts]
    assert said == [feed.Reset([("post", "old"), ("page", "gone")])]
    assert feed.decode(puts[0]["Item"]["changes"]["S"]) == []  # no count change in it
    # An undone import resets thousands: as many to an item as fit in one.
    many = [("post", f"{i:04d}" + "x" * 995) for i in range(1000)]
    puts = feed.resets(many, "feed", "admin", 1_764_000_000.0)
    assert 1 < len(puts) < 10
    assert all(len(put["Item"]["changes"]["S"].encode()) <= feed.MAX_ITEM_BYTES for put in puts)
    said = [feed.read(put["Item"]["changes"]["S"]) for put in puts]
    assert [a for reset in said if isinstance(reset, feed.Reset) for a in reset.targets] == many
