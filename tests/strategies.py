"""Hypothesis strategies for hostile frames: the message schema, bent every way."""

from __future__ import annotations

import json
import os
import random
from typing import Any

from hypothesis import strategies as st
from livecount.core import sizes
from livecount.core.protocol import MAX_ID_CHARS, MAX_URL_CHARS
from livecount.core.sizes import TextLimit

SOAK = os.environ.get("LIVECOUNT_SOAK") == "1"  # `make soak`: the thorough runs


def examples(thorough: int) -> int:
    """A property's examples: `thorough` in `make soak`, a fifth of it (at least 50) in
    `make test`, where these properties took a tenth of the unit tier."""
    return thorough if SOAK else max(50, thorough // 5)


# What a field may hold: right values, near misses and plain garbage.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1, max_size=5),  # controls
    st.just("x" * (MAX_ID_CHARS + 1)),
    st.just("/" + "p" * MAX_URL_CHARS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)
ids = st.one_of(st.sampled_from(["a", "b", "hello-world"]), values)
pages = st.sampled_from(["/", "/pages/about", "/pages/contacts", "/nowhere", "", "pages/about/"])

views = st.fixed_dictionaries(
    {"message": st.just("views")},
    optional={
        "articleId": ids,
        "articleTitle": values,
        "previousPage": st.one_of(pages, values),
        "currentPage": st.one_of(pages, values),
        "refreshed": st.one_of(st.booleans(), values),
        "referrer": st.one_of(st.just("https://news.example/x"), values),
    },
)
subscriptions = st.fixed_dictionaries(
    {"message": st.sampled_from(["subscribe", "unsubscribe"])},
    optional={
        "articleIds": st.one_of(st.lists(ids, max_size=5), values),
        "pageNames": st.one_of(st.lists(st.sampled_from(["Home_Page", "Nope"])), values),
    },
)
objects = st.one_of(
    views,
    subscriptions,
    st.dictionaries(st.text(max_size=10), values, max_size=5),  # anything, even no message
    st.fixed_dictionaries({"message": values}),
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@st.composite
def _nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3000))
    return "[" * depth + "]" * depth if draw(st.booleans()) else '{"a":' * depth + "1" + "}" * depth


text_frames = st.one_of(
    objects.map(_json),
    st.text(max_size=200),  # not JSON at all
    _nested(),  # deep nesting
    st.integers(1, 400).map(lambda n: '{"message":"views","refreshed":' + "9" * n + "}"),
    st.text(min_size=1, max_size=3).map(lambda s: '{"message":"views","articleId":"' + s),
)
OVERSIZE = _json({"message": "views", "articleId": "a" * 5000})  # over the frame limit


@st.composite
def frames(draw: st.DrawFn) -> tuple[str, str | bytes]:
    """(kind, payload): "text" frames carry str, "binary" frames bytes, "bad-utf8"
    invalid UTF-8 in a text frame. Frames that end the connection (bad UTF-8: 1007,
    oversize: 1009) are kept rare so the flood stays a flood."""
    roll = draw(st.integers(0, 99))
    if roll == 0:
        return "bad-utf8", b'{"message":"views","articleId":"\xff\xfe"}'
    if roll == 1:
        return "text", OVERSIZE
    if roll < 10:
        return "binary", draw(st.binary(max_size=64))
    return "text", draw(text_frames)


# -- a fast seeded generator of the same kinds of frame, for floods of 100,000+ ------
_FIELDS = ("articleId", "articleTitle", "previousPage", "currentPage", "refreshed", "referrer")


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.randrange(12 if depth < 3 else 9)
    if roll == 0:
        return None
    if roll == 1:
        return rng.random() < 0.5
    if roll == 2:
        return rng.randint(-(2**70), 2**70)
    if roll == 3:
        return rng.uniform(-1e300, 1e300)
    if roll == 4:
        return "".join(chr(rng.randrange(0, 0x20)) for _ in range(rng.randint(1, 4)))
    if roll == 5:
        return "x" * rng.choice([MAX_ID_CHARS, MAX_ID_CHARS + 1, 1000])
    if roll == 6:
        return rng.choice(["a", "b", "hello-world", "/", "/pages/about", "/nowhere", ""])
    if roll in (7, 8):
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randint(0, 12)))
    if roll in (9, 10):
        return [_garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {str(_garbage(rng, 3))[:8]: _garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def random_frame(rng: random.Random) -> tuple[str, str | bytes]:
    roll = rng.randrange(100)
    if roll == 0:
        return "bad-utf8", b'{"message":"views","articleId":"\xff\xfe"}'
    if roll == 1:
        return "text", OVERSIZE
    if roll < 8:
        return "binary", rng.randbytes(rng.randint(0, 64))
    if roll < 12:
        return "text", "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randint(0, 40)))
    if roll < 14:
        depth = rng.randint(1, 1300)
        if rng.random() < 0.5:
            return "text", "[" * depth + "]" * depth
        return "text", '{"message":"views","x":' + '{"a":' * depth + "1" + "}" * (depth + 1)
    message: dict[str, Any] = {
        "message": rng.choice(
            ["views", "views", "views", "subscribe", "unsubscribe", "dance", 7, None]
        )
    }
    if message["message"] in ("subscribe", "unsubscribe"):
        message["articleIds"] = rng.choice([["a", "b"], [], _garbage(rng)])
    else:
        for name in rng.sample(_FIELDS, rng.randint(0, len(_FIELDS))):
            message[name] = (
                _garbage(rng)
                if rng.random() < 0.5
                else {"articleId": "a", "refreshed": False, "currentPage": "/"}.get(name, "ok")
            )
    text = json.dumps(message, ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.05:
        text = text[: rng.randrange(len(text))]  # torn
    return "text", text


# -- the protocol's whole value space, for views that may well be accepted ----------
# Texts a page could send: any Unicode (astral included), and now and then what the
# protocol refuses: C0, DEL, C1, the line separators. Lone surrogates cannot travel in
# a text frame (UTF-8 has no form for them), so they are tested at `protocol.decode`.
ODD = (
    "\x00",
    "\n",
    "\x1f",
    "\x7f",
    "\x80",
    "\x85",
    "\x9f",
    "\u2028",
    "\u2029",
    "\u200b",
    "\u200e",
    "\u202e",
    "\ufeff",
    "\ufffd",
    "\uffff",
    "\U0001f600",
    "\U0010ffff",
    "e\u0301",
    "\u00df",
    "#",
    "/",
    "?",
    "%",
    "\\",
    '"',
    " ",
)
clean_chars = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\u2028\u2029")
clean_texts = st.text(clean_chars, max_size=24)
odd_texts = st.lists(st.one_of(clean_chars, clean_chars, st.sampled_from(ODD)), max_size=12).map(
    "".join
)


@st.composite
def at_limit(
    draw: st.DrawFn,
    limit: TextLimit,
    bytes_: bool = True,
    widths: tuple[str, ...] = ("a", "\u00e9", "\u20ac", "\U0001f600"),
) -> str:
    """A text at `limit`, one under or one over it, in characters (of one of `widths`,
    if that many fit the byte limit) or in UTF-8 bytes (mostly 4-byte characters,
    topped up with a 1-3 byte one)."""
    over = draw(st.sampled_from([-1, 0, 1]))
    if bytes_ and draw(st.booleans()):
        quads, rest = divmod(limit.bytes + over, 4)
        wide = draw(st.lists(st.characters(min_codepoint=0x10000), min_size=1, max_size=4))
        top = ["", "a", "\u00e9", "\u20ac"][rest]
        return "".join(wide[i % len(wide)] for i in range(quads)) + top
    size = limit.chars + over
    width = draw(
        st.sampled_from([c for c in widths if len(c.encode()) * limit.chars <= limit.bytes])
    )
    return width * size


# Hosts: valid ones at their limits and in every spelling, and near misses.
_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
_idn_labels = st.sampled_from(
    [
        "b\u00fccher",
        "\u4f8b\u3048",
        "fa\u00df",
        "\u043f\u0440\u0438\u043c\u0435\u0440",
        "\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25",
        "xn--bcher-kva",
        "XN--BCHER-KVA",
        "r3---sn-abc",
        "\U0001f600",
        "xn--ls8h",
        "xn--zz",
        "my_host",
        "-lead",
        "trail-",
    ]
)
_dns_names = st.lists(st.one_of(_labels, _idn_labels), min_size=1, max_size=4).map(
    lambda labels: ".".join([*labels, "example"])
)


def host_of(size: int, label: int = 63) -> str:
    """A host name of `size` characters in labels of `label` letters (the last shorter)."""
    text = ".".join(letter * label for letter in "abcdefghijklmnopq")[:size]
    return text[:-2] + ".z" if text.endswith(".") else text


# Three kinds, drawn as often: long ones (253 is the most DNS takes, 1,024 bytes the
# most the Referrer sort key takes), DNS names in every spelling, and junk.
_long_hosts = st.one_of(
    st.builds(
        host_of,
        st.one_of(st.sampled_from([252, 253, 254, 255]), st.integers(240, 270)),
        st.sampled_from([63, 64]),
    ),
    st.sampled_from([1016, 1017, 1019, 1020, 1100]).map(lambda n: "a" * n + ".example"),
)
hosts = st.one_of(
    _long_hosts,
    st.one_of(
        _dns_names,
        _dns_names.map(str.upper),
        _dns_names.map(lambda h: "www." + h),
        _dns_names.map(lambda h: h + "."),
    ),
    st.one_of(
        clean_texts,
        odd_texts,
        st.sampled_from(
            [
                "a..b.example",
                ".example",
                "localhost",
                "example.com",
                "blog.example.com",
                "WWW.Example.COM",
                "127.0.0.1",
                "0x7f.1",
                "2130706433",
                "[::1]",
                "[2001:db8::1]",
                "[::1",
                "user:pw@news.example",
                "news.example:8080",
                "news.example:99999",
                "\u4f8b\u3048\u3002\u30c6\u30b9\u30c8",
                "%65xample.org",
                "xn--.org",
                "e\u0301.fr",
            ]
        ),
    ),
)
# Paths and referrers at their limit in characters; ASCII, or the frame would not fit.
_long_urls = at_limit(sizes.URL, bytes_=False, widths=("a",))
_schemes = st.one_of(
    st.sampled_from(["https", "http"]),
    st.sampled_from(["HTTPS", "ftp", "android-app", "javascript", ""]),
)
_path_texts = st.one_of(clean_texts, clean_texts, clean_texts, odd_texts)
_structured = st.tuples(_schemes, hosts, _path_texts, clean_texts).map(
    lambda p: f"{p[0]}://{p[1]}/{p[2]}?q={p[3]}#f"
)
urls = st.one_of(
    _structured,
    _structured,
    _structured,
    _structured,
    clean_texts,
    odd_texts,
    _long_urls.map(lambda s: "https://x.org/" + s[14:]),
)
paths = st.sampled_from(
    [
        "/",
        "",
        "/pages/about",
        "/pages/about/?x=1#top",
        "pages/contacts",
        "/nowhere",
        "/pages",
        "/pages/about\n",
        "/\u2028",
    ]
)
# Ids repeat (so that targets gather views), and reach into every corner now and then.
ids = st.one_of(
    st.sampled_from(
        [
            "a",
            "hello-world",
            "\u00fcn\u00efc\u00f6d\u00e9",
            "x" * 256,
            "\U0001f600" * 254 + "\u20ac",
            "Home_Page",
            "post#1",
            " ",
            "a\u200bb",
        ]
    ),
    st.sampled_from(["b", "c", "\U0001f600", "\u05e9\u05dc\u05d5\u05dd"]),
    clean_texts.filter(bool),
    clean_texts.filter(bool),
    at_limit(sizes.ID),
    odd_texts,
)
titles = st.one_of(clean_texts, clean_texts, clean_texts, at_limit(sizes.TITLE), odd_texts)

# A views message: each field absent, right, at its limit, or hostile. About half are
# accepted; the rest are refused for one field or another.
protocol_views = st.fixed_dictionaries(
    {"message": st.just("views")},
    optional={
        "articleId": ids,
        "articleTitle": titles,
        "previousPage": st.one_of(paths, urls),
        "currentPage": st.one_of(paths, urls),
        "refreshed": st.booleans(),
        "referrer": urls,
    },
)
# Views of posts with a referrer: what ends up in keys, drawn more often.
post_views = st.fixed_dictionaries(
    {"message": st.just("views"), "articleId": ids, "referrer": urls},
    optional={"articleTitle": titles, "refreshed": st.booleans()},
)
