import pytest
from livecount.core.hub import Hub, TooManySubscriptions
from livecount.core.pages import Target

A, B, C = Target("post", "a"), Target("post", "b"), Target("page", "Home_Page")


def test_watchers_follow_subscribe_unsubscribe_and_drop():
    hub: Hub[str] = Hub()
    hub.subscribe("s1", [A, B])
    hub.subscribe("s2", [A])
    assert hub.watchers(A) == {"s1", "s2"}
    hub.unsubscribe("s1", [A])
    assert hub.watchers(A) == {"s2"} and hub.subscriptions("s1") == {B}
    hub.drop("s2")
    assert hub.watchers(A) == set() and hub.watched() == {B}
    hub.drop("s1")
    assert hub.watched() == set() and hub.connections == 0


def test_the_limit_is_all_or_nothing():
    hub: Hub[str] = Hub(max_per_connection=2)
    hub.subscribe("s", [A])
    with pytest.raises(TooManySubscriptions):
        hub.subscribe("s", [B, C])
    assert hub.subscriptions("s") == {A}
    hub.subscribe("s", [A, B])  # A again does not count twice
    assert hub.subscriptions("s") == {A, B}


def test_a_refused_first_request_leaves_no_trace():
    hub: Hub[str] = Hub(max_per_connection=1)
    with pytest.raises(TooManySubscriptions):
        hub.subscribe("s", [A, B])
    assert hub.connections == 0


def test_changes_are_coalesced_until_due():
    hub: Hub[str] = Hub()
    hub.subscribe("s", [A])
    for n in range(100):
        hub.changed(A, 10.0 + n)
    hub.changed(B, 10.0)  # nobody watches B
    assert hub.due(12.5) == ([A], [2.5])  # waited from its first change
    assert hub.due(13.0) == ([], [])


def test_a_change_whose_watchers_left_is_not_pushed():
    hub: Hub[str] = Hub()
    hub.subscribe("s", [A])
    hub.changed(A)
    hub.drop("s")
    assert hub.due(1.0) == ([], [])


def test_a_view_watches_its_page_in_place_of_the_one_viewed_before():
    hub: Hub[str] = Hub()
    hub.view("s", A)
    hub.view("s", B)
    assert hub.subscriptions("s") == {B} and hub.viewing("s") == B
    hub.subscribe("s", [C])
    hub.view("s", C)  # subscribed to and viewed: leaving it keeps the subscription
    hub.view("s", A)
    assert hub.subscriptions("s") == {A, C}


def test_unsubscribing_the_viewed_page_stops_watching_it():
    hub: Hub[str] = Hub()
    hub.view("s", A)
    hub.unsubscribe("s", [A])
    assert hub.subscriptions("s") == set() and hub.viewing("s") is None
    hub.view("s", B)
    assert hub.subscriptions("s") == {B}


def test_a_full_watch_list_does_not_refuse_a_view():
    hub: Hub[str] = Hub(max_per_connection=1)
    hub.subscribe("s", [A])
    hub.view("s", B)
    assert hub.subscriptions("s") == {A} and hub.viewing("s") is None
