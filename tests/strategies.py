"""Hypothesis strategies for hostile frames: the message schema, bent every way."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import strategies as st
from livecount.core.protocol import MAX_ID_CHARS, MAX_URL_CHARS

# What a field may hold: right values, near misses and plain garbage.
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1, max_size=5),  # controls
    st.just("x" * (MAX_ID_CHARS + 1)),
    st.just("/" + "p" * MAX_URL_CHARS),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=10)
ids = st.one_of(st.sampled_from(["a", "b", "hello-world"]), values)
pages = st.sampled_from(["/", "/pages/about", "/pages/contacts", "/nowhere", "", "pages/about/"])

views = st.fixed_dictionaries(
    {"message": st.just("views")},
    optional={"articleId": ids, "articleTitle": values,
              "previousPage": st.one_of(pages, values), "currentPage": st.one_of(pages, values),
              "refreshed": st.one_of(st.booleans(), values),
              "referrer": st.one_of(st.just("https://news.example/x"), values)})
subscriptions = st.fixed_dictionaries(
    {"message": st.sampled_from(["subscribe", "unsubscribe"])},
    optional={"articleIds": st.one_of(st.lists(ids, max_size=5), values),
              "pageNames": st.one_of(st.lists(st.sampled_from(["Home_Page", "Nope"])), values)})
objects = st.one_of(
    views, subscriptions,
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
    st.text(max_size=200),                                   # not JSON at all
    _nested(),                                               # deep nesting
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
    message: dict[str, Any] = {"message": rng.choice(
        ["views", "views", "views", "subscribe", "unsubscribe", "dance", 7, None])}
    if message["message"] in ("subscribe", "unsubscribe"):
        message["articleIds"] = rng.choice([["a", "b"], [], _garbage(rng)])
    else:
        for name in rng.sample(_FIELDS, rng.randint(0, len(_FIELDS))):
            message[name] = _garbage(rng) if rng.random() < 0.5 else \
                {"articleId": "a", "refreshed": False, "currentPage": "/"}.get(name, "ok")
    text = json.dumps(message, ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.05:
        text = text[:rng.randrange(len(text))]  # torn
    return "text", text
