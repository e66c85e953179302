import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livecount.core import sizes
from livecount.core.pages import (
    PageError,
    PageRules,
    Target,
    compile_pattern,
    dns_host,
    normalise_path,
    referrer_host,
)

from tests.strategies import examples, urls


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/", "Home_Page"),
        ("/pages/about", "About_Page"),
        ("/pages/about/", "About_Page"),
        ("/pages/about?ref=x#top", "About_Page"),
        ("/pages/contacts", "Contact_Page"),
    ],
)
def test_default_pages(path, name):
    assert PageRules().classify(None, path) == Target("page", name)


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/pages", "/pages"),
        ("/pages/about/more/", "/pages/about/more"),
        ("/tags/x?p=2", "/tags/x"),
        ("/blog/x/index.html", "/blog/x"),
        ("/caf%C3%A9", "/café"),
    ],
)
def test_every_other_path_is_a_page_of_its_own_named_by_its_normal_form(path, page):
    assert PageRules().classify(None, path) == Target("page", page)


@pytest.mark.parametrize("path", ["/pages", "/tags/x"])
def test_other_paths_can_be_refused_with_a_reason_that_names_the_options(path):
    with pytest.raises(PageError) as refused:
        PageRules(unmatched="refuse").classify(None, path)
    assert refused.value.code == "unrecognised_page"
    assert "--unmatched-paths page" in refused.value.detail
    assert "--path-pattern" in refused.value.detail


def test_the_default_pattern_makes_posts_of_the_seeds_paths():
    assert PageRules().classify(None, "/posts/hello-world/") == Target("post", "hello-world")
    assert PageRules().classify(None, "/posts/caf%C3%A9") == Target("post", "café")


@pytest.mark.parametrize(
    ("pattern", "path", "post"),
    [
        ("/blog/{id}/", "/blog/my-hugo-post/", "my-hugo-post"),
        ("/{yyyy}/{mm}/{dd}/{id}/", "/2024/05/17/dated-post/", "dated-post"),
        ("/{yyyy}/{mm}/{id}/", "/2024/05/dated-post/?utm=x", "dated-post"),
        ("/{*}/posts/{id}", "/en/posts/hello", "hello"),
        ("/{id}.html", "/old-post.html", "old-post"),
        ("/blog/{id}", "/blog/a%20b", "a b"),
    ],
)
def test_path_patterns_name_posts(pattern, path, post):
    assert PageRules(patterns=[pattern]).classify(None, path) == Target("post", post)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("/{yyyy}/{mm}/{dd}/{id}/", "/2024/5/17/dated-post/"),
        ("/blog/{id}/", "/blog/a/b/"),
        ("/blog/{id}/", "/blog/"),
    ],
)
def test_a_path_a_pattern_does_not_match_is_a_page(pattern, path):
    assert PageRules(patterns=[pattern]).classify(None, path).kind == "page"


def test_page_rules_come_before_patterns_and_data_article_id_before_both():
    rules = PageRules.parse(["/blog/=Blog_Index"], ["/blog/{id}/"])
    assert rules.classify(None, "/blog/") == Target("page", "Blog_Index")
    assert rules.classify("chosen", "/blog/other/") == Target("post", "chosen")


@pytest.mark.parametrize(
    "bad", ["blog/{id}", "/blog/", "/{id}/{id}", "/{slug}/{id}", "/{id}?x", "/{id}}", "/{{id}/"]
)
def test_bad_patterns_are_refused_with_what_to_write(bad):
    with pytest.raises(ValueError, match=r"^must "):
        compile_pattern(bad)


@pytest.mark.parametrize(
    "path", ["/blog/%20%20/", "/blog/%E3%80%80/", "/blog/" + "x" * 300, "/blog/a%00b/"]
)
def test_an_id_from_a_path_passes_the_ids_validation(path):
    with pytest.raises(PageError) as refused:
        PageRules(patterns=["/blog/{id}/"]).classify(None, path)
    assert refused.value.code == "invalid_field"


@pytest.mark.parametrize("path", ["/" + "x" * 300, "/" + "\u00e9" * 600, "/a%01"])
def test_a_path_that_cannot_name_a_page_is_refused(path):
    with pytest.raises(PageError) as refused:
        PageRules().classify(None, path)
    assert refused.value.code == "invalid_field"


def test_subscriptions_name_configured_pages_or_paths():
    assert PageRules().page("Home_Page") == Target("page", "Home_Page")
    assert PageRules().page("/about/") == Target("page", "/about")
    for refused, rules in (("Nope", PageRules()), ("/about", PageRules(unmatched="refuse"))):
        with pytest.raises(PageError) as error:
            rules.page(refused)
        assert error.value.code == "unknown_page"


VECTORS = json.loads((Path(__file__).parent.parent / "paths.json").read_text())


@pytest.mark.parametrize(("raw", "normal"), VECTORS["normalised"])
def test_paths_normalise_as_the_browser_client_does(raw, normal):
    assert normalise_path(raw) == normal
    assert normalise_path(normal.replace("%", "%25")) == normal  # its own spelling, encoded


@pytest.mark.parametrize("raw", VECTORS["refused"])
def test_paths_whose_escapes_are_not_utf8_are_refused(raw):
    with pytest.raises(ValueError, match="UTF-8"):
        normalise_path(raw)


def test_an_article_id_makes_a_post_whatever_the_path():
    assert PageRules().classify("a-1", "/") == Target("post", "a-1")


def test_custom_rules_replace_the_defaults():
    rules = PageRules.parse(["/=Start", "/now/=Now_Page"])
    assert rules.classify(None, "/now") == Target("page", "Now_Page")
    assert rules.classify(None, "/pages/about") == Target("page", "/pages/about")
    assert rules.names == ["Now_Page", "Start"]


@pytest.mark.parametrize("spec", ["/about", "=About", "/about="])
def test_bad_rules_are_refused(spec):
    with pytest.raises(ValueError, match="PATH=NAME"):
        PageRules.parse([spec])


def test_target_refs_keep_posts_and_pages_apart():
    assert Target("post", "x").ref != Target("page", "x").ref


def test_normalise_path_adds_a_leading_slash():
    assert normalise_path("pages/about") == "/pages/about"


@pytest.mark.parametrize(
    ("referrer", "host"),
    [
        ("https://news.ycombinator.com/item?id=1", "news.ycombinator.com"),
        ("https://www.google.com/", "google.com"),
        ("http://Reddit.COM:8080/r/x", "reddit.com"),
        ("https://blog.example.com/post", None),
        ("https://example.com/", None),
        ("https://notexample.com/", "notexample.com"),
        ("", None),
        (None, None),
        ("android-app://com.slack", None),
        ("not a url", None),
        ("http://[::1", None),
    ],
)
def test_referrer_host(referrer, host):
    assert referrer_host(referrer, ["example.com"]) == host


# -- referrer hosts: DNS names only, in one spelling --------------------------------
LONGEST = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61  # 253 characters


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("b\u00fccher.example", "xn--bcher-kva.example"),  # Unicode: as punycode
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),  # the same host
        ("XN--BCHER-KVA.Example", "xn--bcher-kva.example"),
        ("B\u00dcCHER.example", "xn--bcher-kva.example"),
        ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "example.com"),  # fullwidth folded
        ("\u4f8b\u3048\u3002\u30c6\u30b9\u30c8", "xn--r8jz45g.xn--zckzah"),  # ideographic dot
        ("e\u0301.fr", "xn--9ca.fr"),
        ("\u00e9.fr", "xn--9ca.fr"),  # one host, NFC
        ("example.com.", "example.com"),
        ("localhost", "localhost"),
        ("r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"),  # a real LDH name
        (LONGEST, LONGEST),
        (LONGEST + ".", LONGEST),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
    ],
)
def test_dns_hosts_in_their_ascii_form(name, host):
    assert dns_host(name) == host


@pytest.mark.parametrize(
    "name",
    [
        LONGEST + "d",
        "a" * 64 + ".com",
        "a" * 1100 + ".example",  # 254; a label of 64; issue 10
        "",
        ".",
        "a..b",
        ".a",
        "a.b..",
        "-a.com",
        "a-.com",
        "my_host.com",
        "a b.com",
        "%65x.com",
        "127.0.0.1",
        "0x7f.1",
        "2130706433",
        "1.2.3.256",
        "::1",
        "2001:db8::1",
        "fe80::1%eth0",
        "xn--zz.com",
        "xn--.com",
        "xn--ls8h.la",
        "\U0001f600.la",
        "\u2603.net",  # not IDNA 2008
        "a\x00.com",
        "a\u2028.com",
    ],
)
def test_what_is_no_dns_host(name):
    assert dns_host(name) is None


@pytest.mark.parametrize(
    "referrer",
    [
        "https://" + "a" * 1100 + ".example/",  # issue 10, item 1: counted, but as no referrer
        "https://" + LONGEST + "d/",
        "https://a..b/",
        "http://127.0.0.1:8080/",
        "http://[::1]/x",
        "https://[2001:db8::1]/",
        "http://0x7f.1/",
        "https://\U0001f600.la/",
        "https://my_host.com/",
    ],
)
def test_a_referrer_that_is_not_a_dns_host_is_no_referrer(referrer):
    assert referrer_host(referrer, ["example.com"]) is None


def test_a_unicode_referrer_and_its_punycode_are_one_host():
    assert referrer_host("https://www.b\u00fccher.example/a", []) == "xn--bcher-kva.example"
    assert referrer_host("https://xn--bcher-kva.example/b", []) == "xn--bcher-kva.example"


def test_site_domains_match_in_either_spelling():
    assert referrer_host("https://xn--bcher-kva.example/", ["b\u00fccher.example"]) is None
    assert referrer_host("https://blog.b\u00fccher.example/", ["xn--bcher-kva.example"]) is None
    assert referrer_host("https://BLOG.EXAMPLE.COM./", ["Example.com"]) is None


def test_the_longest_host_fits_the_referrer_sort_key():
    host = referrer_host(f"https://{LONGEST}/", [])
    assert host == LONGEST and len(host.encode()) <= sizes.SORT_KEY_BYTES


@settings(max_examples=examples(500), deadline=None)
@given(st.one_of(urls, st.text()))
def test_any_referrer_gives_no_host_or_an_ascii_dns_name(referrer):
    host = referrer_host(referrer, ["example.com"])
    if host is not None:
        assert host.isascii() and len(host) <= 253 and host == host.lower()
        assert all(1 <= len(label) <= 63 for label in host.split("."))
        assert not host.split(".")[-1][0].isdigit()


@pytest.mark.parametrize("name", ["x" * 257, "\U0001f600" * 255, "Home\nPage", "Ho\x85me"])
def test_page_names_that_cannot_be_stored_are_refused(name):
    with pytest.raises(ValueError, match="the name"):
        PageRules.parse(["/=Home_Page", f"/x={name}"])


def test_a_page_name_at_the_limit_is_taken():
    name = "\U0001f600" * 254 + "\u20ac"  # 1,019 bytes
    assert PageRules.parse([f"/x={name}"]).classify(None, "/x") == Target("page", name)


@pytest.mark.parametrize(
    "referrer", ["http://[v1.evil.example]/", "http://[::1]/", "https://[2001:db8::1]:8443/x"]
)
def test_ip_literals_of_every_kind_are_no_referrer(referrer: str) -> None:
    assert referrer_host(referrer, ()) is None


def test_a_backslash_ends_the_host_as_in_a_browser() -> None:
    assert referrer_host("http://evil.example\\@good.example/", ()) == "evil.example"


def test_www_and_bare_domain_are_one_site_whichever_is_configured() -> None:
    assert referrer_host("https://example.com/", ["www.example.com"]) is None
    assert referrer_host("https://www.example.com/a", ["example.com"]) is None
    assert referrer_host("https://blog.example.com/", ["www.example.com"]) is None


@pytest.mark.parametrize("path", ["", " ", "?x=1", "#frag", "\u3000", "pages/about", None])
def test_a_current_page_that_is_not_a_path_names_no_page(path: str | None) -> None:
    with pytest.raises(PageError) as refused:
        PageRules().classify(None, path)
    assert refused.value.code == "unrecognised_page"


def test_page_rules_travel_to_workers_whole():
    import pickle

    rules = PageRules.parse(["/=Start"], ["/blog/{id}/"], "refuse")
    rules.classify(None, "/blog/x/")  # a warm cache is no obstacle
    copy = pickle.loads(pickle.dumps(rules))
    assert copy.classify(None, "/blog/x/") == Target("post", "x")
    assert copy.classify(None, "/") == Target("page", "Start")
    assert copy.unmatched == "refuse"
