from livecount.core.leases import NODE_PREFIX, Lease, LeaseMoves, Observer, counted_out, plan

LEASE_TIME = 10.0


def node(name: str, counter: int = 1) -> Lease:
    return Lease(NODE_PREFIX + name, name, counter)


def shard(key: str, owner: str | None, counter: int = 1) -> Lease:
    return Lease(key, owner, counter)


def test_a_lone_node_takes_every_free_lease():
    observer = Observer(LEASE_TIME)
    leases = [node("a"), shard("s1", None), shard("s2", None)]
    result = plan("a", leases, {"s1", "s2"}, set(), observer, 0.0)
    assert [lease.key for lease in result.take] == ["s1", "s2"] and not result.steal


def test_leases_spread_evenly_and_a_newcomer_steals_one_at_a_time():
    observer = Observer(LEASE_TIME)
    leases = [node("a"), node("b"), node("c")] + [shard(f"s{i}", "a") for i in range(6)]
    readable = {f"s{i}" for i in range(6)}
    result = plan("c", leases, readable, set(), observer, 0.0)
    assert not result.take and [lease.key for lease in result.steal] == ["s0"]
    # Once "a" holds only its share (6 / 3 = 2 each with b holding 2), nothing moves.
    balanced = [node("a"), node("b"), node("c")] + [
        shard(f"s{i}", owner) for i, owner in enumerate("aabbcc")
    ]
    assert plan("c", balanced, readable, {"s4", "s5"}, observer, 1.0) == LeaseMoves()
    # "a" still over its share: the newcomer would take one more, never two at once.
    crowded = [node("a"), node("b"), node("c")] + [
        shard(f"s{i}", owner) for i, owner in enumerate("aaabbc")
    ]
    assert plan("c", crowded, readable, {"s5"}, observer, 1.0) == LeaseMoves(steal=[crowded[3]])


def test_a_dead_owner_loses_its_leases_after_the_lease_time():
    observer = Observer(LEASE_TIME)
    leases = [node("a"), node("b"), shard("s1", "a", counter=5)]
    assert plan("b", leases, {"s1"}, set(), observer, 0.0).take == []
    assert plan("b", leases, {"s1"}, set(), observer, 9.9).take == []
    moved = [node("a"), node("b", 2), shard("s1", "a", counter=5)]  # a's counter froze
    assert [lease.key for lease in plan("b", moved, {"s1"}, set(), observer, 10.0).take] == ["s1"]


def test_a_renewing_owner_keeps_its_lease():
    observer = Observer(LEASE_TIME)
    for t in range(0, 60, 3):
        leases = [node("a", t), node("b", t), shard("s1", "a", counter=t)]
        result = plan("b", leases, {"s1"}, set(), observer, float(t))
        assert not result.take and not result.steal


def test_a_lease_owned_elsewhere_is_reported_lost():
    observer = Observer(LEASE_TIME)
    leases = [node("a"), node("b"), shard("s1", "b"), shard("s2", "a")]
    assert plan("a", leases, {"s1", "s2"}, {"s1", "s2"}, observer, 0.0).lost == ["s1"]


def test_only_readable_shards_are_leased():
    observer = Observer(LEASE_TIME)
    leases = [node("a"), shard("parent", None), shard("child", None)]
    assert [lease.key for lease in plan("a", leases, {"parent"}, set(), observer, 0).take] == [
        "parent"
    ]


def test_a_restarted_node_takes_back_what_it_held_before():
    observer = Observer(LEASE_TIME)
    leases = [node("a"), shard("s1", "a", counter=9)]
    assert [lease.key for lease in plan("a", leases, {"s1"}, set(), observer, 0).take] == ["s1"]
    assert plan("a", leases, {"s1"}, {"s1"}, observer, 0).take == []


def test_a_node_whose_renewals_came_too_far_apart_may_have_been_judged_dead():
    """The others look every lease_time/3 and give up after lease_time without a move:
    renewals at the usual lease_time/3 keep a node counted; two thirds of it apart may
    not (it was stopped, or cut off from the store), and it must read the store again."""
    assert not counted_out(LEASE_TIME / 3, LEASE_TIME)
    assert not counted_out(LEASE_TIME / 2, LEASE_TIME)
    assert counted_out(LEASE_TIME * 2 / 3, LEASE_TIME)
    assert counted_out(60.0, LEASE_TIME)


def test_a_node_that_left_and_comes_back_counts_at_once():
    """Found by a hostile trial: a node that stopped cleanly (its presence deleted) and
    restarted announced counter 1 again, the counter last seen, so the others took it
    for dead until its next announcement: a lease round on which no node told it the
    views it had missed since it read the store."""
    observer = Observer(LEASE_TIME)
    plan("a", [node("a"), node("b", 1)], set(), set(), observer, 0.0)
    plan("a", [node("a", 2)], set(), set(), observer, 20.0)  # b left
    plan("a", [node("a", 3), node("b", 1)], set(), set(), observer, 21.0)  # b is back
    assert observer.alive(node("b", 1), 21.0)
