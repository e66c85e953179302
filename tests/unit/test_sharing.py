"""What a node tells the others on the live feed: the post counts its stream consumer
copied (`PostSharing`), told while others are alive, and again when one appears."""

from __future__ import annotations

from livecount.core import feed
from livecount.core.sharing import RECENT, PostSharing, recent


def said(payloads: list[bytes]) -> tuple[list[feed.Change], list[tuple[str, str]]]:
    changes: list[feed.Change] = []
    resets: list[tuple[str, str]] = []
    for payload in payloads:
        item = feed.read(payload)
        if isinstance(item, feed.Reset):
            resets += item.targets
        else:
            assert isinstance(item, list)
            changes += item
    return changes, resets


def test_a_node_that_appears_is_told_what_was_copied_while_alone_recently():
    now = [0.0]
    posts = PostSharing(lambda: now[0])
    assert posts.take({"old": (1, 1)}, [], alone=True) == []
    now[0] = RECENT + 1
    assert posts.take({"a": (2, 2), "b": (5, 4)}, [], alone=True) == []
    assert posts.take({"b": (3, 3)}, ["b"], alone=True) == []  # a delete brought it down
    # Another node: told the recent counts ("old" is past RECENT), then the reset of "b".
    assert said(posts.take({}, [], alone=False)) == ([("a", 2, 2), ("b", 3, 3)], [("post", "b")])
    assert not posts.owed
    # From then on, each batch's changes only.
    assert said(posts.take({"a": (4, 3)}, [], alone=False)) == ([("a", 4, 3)], [])
    assert posts.take({}, [], alone=False) == []


def test_after_a_telling_that_failed_the_recent_counts_are_told_again():
    posts = PostSharing(lambda: 0.0)
    posts.take({"a": (1, 1)}, [], alone=False)
    posts.untold()
    assert posts.owed
    assert said(posts.take({"b": (1, 1)}, [], alone=False)) == ([("a", 1, 1), ("b", 1, 1)], [])


def test_what_a_failed_telling_said_is_told_however_long_the_feed_was_away():
    """Found by a hostile trial: after a failed write only the last RECENT seconds were
    told again, so a change older than that when the feed came back was never told, and
    the other nodes (alive, so never reading the store again) showed less for good."""
    now = [0.0]
    posts = PostSharing(lambda: now[0])
    posts.take({"a": (1, 1)}, [], alone=False)
    posts.untold()
    now[0] = RECENT * 10
    posts.take({}, [], alone=False)
    posts.untold()  # still away
    now[0] = RECENT * 20
    assert said(posts.take({"b": (1, 1)}, [], alone=False)) == ([("a", 1, 1), ("b", 1, 1)], [])
    assert said(posts.take({"b": (2, 2)}, [], alone=False)) == ([("b", 2, 2)], [])  # told
    assert posts.take({}, [], alone=False) == []


def test_a_node_seen_a_lease_round_late_is_told_that_far_back():
    """What is told when a node appears covers the others' lease round too: at
    --lease-time 180 they see it up to a minute after it read the store."""
    now = [0.0]
    posts = PostSharing(lambda: now[0], recent(180.0))
    posts.take({"a": (1, 1)}, [], alone=True)
    now[0] = RECENT + 50
    assert said(posts.take({}, [], alone=False)) == ([("a", 1, 1)], [])
