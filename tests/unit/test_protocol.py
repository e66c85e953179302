import json

import msgspec
import pytest
from livecount.core import protocol, sizes
from livecount.core.pages import Target
from livecount.core.protocol import ProtocolError, Subscribe, Views, Visibility


def error_of(frame: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(frame)
    return caught.value


def test_views_with_the_seed_field_names():
    msg = protocol.decode(
        '{"message":"views","articleId":"a-1","articleTitle":"Hi","previousPage":"/",'
        '"currentPage":"/posts/a-1","refreshed":true,"referrer":"https://x.org/"}'
    )
    assert msg == Views("a-1", "Hi", "/", "/posts/a-1", True, "https://x.org/")


def test_views_defaults_count_as_unique():
    msg = protocol.decode('{"message":"views","currentPage":"/"}')
    assert isinstance(msg, Views)
    assert msg.refreshed is False and msg.articleId is None


def test_unknown_fields_are_ignored_for_forward_compatibility():
    assert isinstance(protocol.decode('{"message":"views","articleId":"a","x":1}'), Views)


def test_subscribe():
    msg = protocol.decode('{"message":"subscribe","articleIds":["a","b"]}')
    assert msg == Subscribe(["a", "b"], [])


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ('{"message":"views"', "invalid_json"),
        ('{"message":"dance"}', "unknown_message"),
        ('{"articleId":"a"}', "unknown_message"),
        ('{"message":5}', "unknown_message"),
        ("[1,2]", "invalid_message"),
        ('"views"', "invalid_message"),
        ('{"message":"views","articleId":7}', "invalid_field"),
        ('{"message":"views","refreshed":"yes"}', "invalid_field"),
        ('{"message":"views","articleId":""}', "invalid_field"),
        ('{"message":"views","articleId":"a\\u0000b"}', "invalid_field"),
        ('{"message":"views","articleId":"' + "x" * 257 + '"}', "invalid_field"),
        ('{"message":"views","referrer":"' + "x" * 2049 + '"}', "invalid_field"),
        ('{"message":"subscribe","articleIds":"a"}', "invalid_field"),
        ('{"message":"views","x":' + '{"a":' * 3000 + "1" + "}" * 3001, "invalid_json"),
        ('{"x":' + '{"a":' * 3000 + "1" + "}" * 3001, "invalid_json"),
        ('{"message":"subscribe","articleIds":[' + ",".join(['"a"'] * 101) + "]}", "invalid_field"),
    ],
)
def test_bad_frames_get_a_stable_code(frame, code):
    assert error_of(frame).code == code


def test_field_errors_name_the_field():
    assert "$.articleId" in error_of('{"message":"views","articleId":7}').detail


def test_binary_frames_are_refused():
    assert error_of(b'{"message":"views"}').code == "binary_frame"


def test_error_reply_is_json_with_code_and_detail():
    reply = msgspec.json.decode(error_of("{").reply())
    assert reply["message"] == "error" and reply["error"] == "invalid_json" and reply["detail"]


def test_replies_carry_either_article_or_page_and_reading_now_even_at_zero():
    post = msgspec.json.decode(protocol.encode(protocol.ViewsReply(3, 2, 0, articleId="a")))
    page = msgspec.json.decode(protocol.encode(protocol.Count(3, 2, 4, pageName="Home_Page")))
    assert post == {
        "message": "views",
        "totalViews": 3,
        "uniqueViews": 2,
        "readingNow": 0,
        "articleId": "a",
    }
    assert page == {
        "message": "count",
        "totalViews": 3,
        "uniqueViews": 2,
        "readingNow": 4,
        "pageName": "Home_Page",
    }


def test_a_reply_to_a_view_not_counted_says_so_and_why():
    reply = msgspec.json.decode(
        protocol.encode(protocol.ViewsReply(3, 2, 0, articleId="a", counted=False, reason="bot"))
    )
    assert reply["counted"] is False and reply["reason"] == "bot"


def test_visibility_says_whether_the_tab_is_shown():
    assert protocol.decode('{"message":"visibility","visible":false}') == Visibility(False)
    assert protocol.decode('{"message":"visibility","visible":true}') == Visibility(True)
    assert error_of('{"message":"visibility"}').code == "invalid_field"
    assert error_of('{"message":"visibility","visible":"no"}').code == "invalid_field"
    assert "visibility" in error_of('{"message":"hidden"}').detail  # listed as known


# -- every limit at its exact boundary, per field ----------------------------------
def frame_of(**fields: object) -> str:
    return json.dumps({"message": "views", **fields}, ensure_ascii=False)


def id_of_bytes(size: int) -> str:
    """An id of exactly `size` UTF-8 bytes in as few characters as it takes."""
    quads, rest = divmod(size, 4)
    return "\U0001f600" * quads + ["", "a", "\u00e9", "\u20ac"][rest]


def test_the_id_limit_is_what_the_tightest_key_holds():
    longest = id_of_bytes(sizes.MAX_ID_BYTES)
    assert len(longest) <= sizes.MAX_ID_CHARS
    # PageIndex keeps every post as its sort key `post#<id>`: at most 1,024 bytes.
    assert len(Target("post", longest).ref.encode()) == sizes.SORT_KEY_BYTES
    assert len(Target("page", longest).ref.encode()) == sizes.SORT_KEY_BYTES


def views_with(field: str, value: str) -> str:
    if field in ("articleIds", "pageNames"):
        return json.dumps({"message": "subscribe", field: ["ok", value]}, ensure_ascii=False)
    return frame_of(**{field: value})


ID_FIELDS = ["articleId", "articleIds", "pageNames"]


@pytest.mark.parametrize("field", ID_FIELDS)
def test_ids_take_exactly_their_limit_in_bytes(field):
    protocol.decode(views_with(field, id_of_bytes(sizes.MAX_ID_BYTES)))
    detail = error_of(views_with(field, id_of_bytes(sizes.MAX_ID_BYTES + 1))).detail
    assert "1,020 bytes in UTF-8; at most 1,019" in detail


@pytest.mark.parametrize("field", ID_FIELDS)
def test_ids_take_exactly_their_limit_in_characters(field):
    protocol.decode(views_with(field, "x" * sizes.MAX_ID_CHARS))
    protocol.decode(views_with(field, "\u20ac" * sizes.MAX_ID_CHARS))  # 768 bytes
    detail = error_of(views_with(field, "x" * (sizes.MAX_ID_CHARS + 1))).detail
    assert "257 characters long; at most 256" in detail


@pytest.mark.parametrize("field", ID_FIELDS)
def test_ids_are_not_empty(field):
    assert error_of(views_with(field, "")).code == "invalid_field"


@pytest.mark.parametrize("field", ID_FIELDS)
@pytest.mark.parametrize("blank", [" ", "\u00a0\u3000", " " * 256])
def test_ids_of_only_whitespace_are_refused(field, blank):
    error = error_of(views_with(field, blank))
    assert error.code == "invalid_field" and "shows nothing" in error.detail
    protocol.decode(views_with(field, " a "))  # a visible character is enough


def test_titles_take_256_characters_of_any_width():
    assert isinstance(protocol.decode(frame_of(articleTitle="\U0001f600" * 256)), Views)
    protocol.decode(frame_of(articleTitle=""))
    detail = error_of(frame_of(articleTitle="a" * 257)).detail
    assert detail.startswith("`$.articleTitle` is 257 characters long; at most 256")


@pytest.mark.parametrize("field", ["previousPage", "currentPage", "referrer"])
def test_paths_and_referrers_take_2048_characters(field):
    protocol.decode(frame_of(**{field: "/" + "p" * (sizes.MAX_URL_CHARS - 1)}))
    detail = error_of(frame_of(**{field: "/" + "p" * sizes.MAX_URL_CHARS})).detail
    assert detail.startswith(f"`$.{field}` is 2,049 characters long; at most 2,048")


# -- no control characters anywhere, the last one included --------------------------
REFUSED = ["\x00", "\t", "\n", "\r", "\x1f", "\x7f", "\x80", "\x85", "\x9f", "\u2028", "\u2029"]
ALLOWED = [
    "\xa0",
    "\u200b",
    "\u200e",
    "\ufeff",
    "\ufffd",
    "\uffff",
    "\U0001f600",
    "\U0010ffff",
    "e\u0301",
]
TEXT_FIELDS = [
    "articleId",
    "articleTitle",
    "previousPage",
    "currentPage",
    "referrer",
    "articleIds",
    "pageNames",
]


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("char", REFUSED)
@pytest.mark.parametrize("where", ["{}x", "x{}y", "x{}"])
def test_controls_are_refused_anywhere(field, char, where):
    """`x\\n` was accepted: `$` matches before a final newline."""
    detail = error_of(views_with(field, where.format(char))).detail
    assert f"U+{ord(char):04X} at character {where.index('{') + 1}" in detail
    assert field in detail


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("char", ALLOWED)
def test_other_characters_are_text(field, char):
    protocol.decode(views_with(field, f"x{char}y{char}"))


@pytest.mark.parametrize("char", ["\u202a", "\u202e", "\u2066", "\u2069"])
def test_ids_hold_no_direction_overrides_that_text_may(char):
    """An id reads in reports as it is: `abc\u202egpj.exe` would show as `abcexe.jpg`."""
    for field in ID_FIELDS:
        assert "bidirectional" in error_of(views_with(field, f"abc{char}x")).detail
    for field in set(TEXT_FIELDS) - set(ID_FIELDS):
        protocol.decode(views_with(field, f"abc{char}x"))


@pytest.mark.parametrize(
    "blank",
    [
        "\u200b",
        "\u200b\u200d\ufeff",
        "\u3164",
        "\u115f\u1160",
        "\u0301",
        "\u2060",
        "\ufe0f",
        "\u2800",
    ],
)
def test_ids_that_show_nothing_are_refused(blank):
    for field in ID_FIELDS:
        assert "shows nothing" in error_of(views_with(field, blank)).detail


@pytest.mark.parametrize(
    "escaped",
    [
        r"\ud800",
        r"\udfff",
        r"a\ud800",
        r"\ud800a",
        r"\ud800\u0041",
        r"\udc00\ud800",
        r"\ud800\ud800",
    ],
)
def test_lone_surrogates_are_not_text(escaped):
    """msgspec refuses them as JSON (UTF-8 has no form for them); the reply says so."""
    caught = error_of('{"message":"views","articleId":"' + escaped + '"}')
    assert caught.code == "invalid_json" and "surrogate" in caught.detail


def test_a_surrogate_pair_is_one_astral_character():
    msg = protocol.decode(r'{"message":"views","articleId":"\ud83d\ude00"}')
    assert isinstance(msg, Views) and msg.articleId == "\U0001f600"


def test_a_lone_surrogate_in_a_str_frame_is_refused_not_raised():
    assert error_of('{"message":"views","articleId":"\ud800"}').code == "invalid_json"


def test_messages_built_in_python_are_checked_too():
    with pytest.raises(ValueError, match="articleId"):
        Views(articleId="x\n")
    with pytest.raises(ValueError, match="pageNames"):
        Subscribe([], ["\u2028"])
