import pytest
from livecount.core.pages import PageRules, Target, normalise_path, referrer_host


@pytest.mark.parametrize(("path", "name"), [
    ("/", "Home_Page"), ("", "Home_Page"), ("/pages/about", "About_Page"),
    ("/pages/about/", "About_Page"), ("/pages/about?ref=x#top", "About_Page"),
    ("/pages/contacts", "Contact_Page"),
])
def test_default_pages(path, name):
    assert PageRules().classify(None, path) == Target("page", name)


@pytest.mark.parametrize("path", ["/pages", "/posts/x", "/pages/about/more", None])
def test_other_paths_are_unrecognised(path):
    assert PageRules().classify(None, path) is None


def test_an_article_id_makes_a_post_whatever_the_path():
    assert PageRules().classify("a-1", "/") == Target("post", "a-1")


def test_custom_rules_replace_the_defaults():
    rules = PageRules.parse(["/=Start", "/now/=Now_Page"])
    assert rules.classify(None, "/now") == Target("page", "Now_Page")
    assert rules.classify(None, "/pages/about") is None
    assert rules.names == ["Now_Page", "Start"]


@pytest.mark.parametrize("spec", ["/about", "=About", "/about="])
def test_bad_rules_are_refused(spec):
    with pytest.raises(ValueError, match="PATH=NAME"):
        PageRules.parse([spec])


def test_target_refs_keep_posts_and_pages_apart():
    assert Target("post", "x").ref != Target("page", "x").ref


def test_normalise_path_adds_a_leading_slash():
    assert normalise_path("pages/about") == "/pages/about"


@pytest.mark.parametrize(("referrer", "host"), [
    ("https://news.ycombinator.com/item?id=1", "news.ycombinator.com"),
    ("https://www.google.com/", "google.com"),
    ("http://Reddit.COM:8080/r/x", "reddit.com"),
    ("https://blog.example.com/post", None),
    ("https://example.com/", None),
    ("https://notexample.com/", "notexample.com"),
    ("", None), (None, None), ("android-app://com.slack", None),
    ("not a url", None), ("http://[::1", None),
])
def test_referrer_host(referrer, host):
    assert referrer_host(referrer, ["example.com"]) == host
