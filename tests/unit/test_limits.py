import pytest
from livecount.core.limits import (
    AddressCounter,
    TokenBucket,
    client_address,
    is_bot,
    parse_networks,
)


def test_the_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.strikes == 1
    assert bucket.allow(0.5) is True  # half a second refills one
    assert bucket.strikes == 0
    assert bucket.allow(0.5) is False
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_addresses_are_counted_and_released():
    counter = AddressCounter(limit=2)
    assert counter.admit("a") and counter.admit("a") and not counter.admit("a")
    assert counter.admit("b")
    counter.release("a")
    assert counter.admit("a") and len(counter) == 3
    for _ in range(3):
        counter.release("a")
    assert len(counter) == 1


TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # untrusted peer: header ignored
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),  # skip trusted hops
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a forged first hop loses
        ("127.0.0.1", "10.1.1.1", "127.0.0.1"),  # only proxies: the peer
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(peer, header, client):
    assert client_address(peer, header, TRUSTED) == client


@pytest.mark.parametrize(
    ("agent", "bot"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("Mozilla/5.0 (compatible; bingbot/2.0)", True),
        ("facebookexternalhit/1.1", True),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0", True),
        ("curl/8.5.0", True),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36",
            False,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            False,
        ),
        ("Python/3.11 websockets/17.4", False),
        (None, False),
        ("", False),
    ],
)
def test_bots(agent, bot):
    assert is_bot(agent) is bot
