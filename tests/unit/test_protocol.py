import msgspec
import pytest
from livecount.core import protocol
from livecount.core.protocol import ProtocolError, Subscribe, Views


def error_of(frame: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(frame)
    return caught.value


def test_views_with_the_seed_field_names():
    msg = protocol.decode(
        '{"message":"views","articleId":"a-1","articleTitle":"Hi","previousPage":"/",'
        '"currentPage":"/posts/a-1","refreshed":true,"referrer":"https://x.org/"}')
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


@pytest.mark.parametrize(("frame", "code"), [
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
])
def test_bad_frames_get_a_stable_code(frame, code):
    assert error_of(frame).code == code


def test_field_errors_name_the_field():
    assert "$.articleId" in error_of('{"message":"views","articleId":7}').detail


def test_binary_frames_are_refused():
    assert error_of(b'{"message":"views"}').code == "binary_frame"


def test_error_reply_is_json_with_code_and_detail():
    reply = msgspec.json.decode(error_of("{").reply())
    assert reply["message"] == "error" and reply["error"] == "invalid_json" and reply["detail"]


def test_replies_carry_either_article_or_page():
    post = msgspec.json.decode(protocol.encode(protocol.ViewsReply(3, 2, articleId="a")))
    page = msgspec.json.decode(protocol.encode(protocol.Count(3, 2, pageName="Home_Page")))
    assert post == {"message": "views", "totalViews": 3, "uniqueViews": 2, "articleId": "a"}
    assert page == {"message": "count", "totalViews": 3, "uniqueViews": 2,
                    "pageName": "Home_Page"}
