"""Whatever a client sends, decoding yields a message or a ProtocolError: nothing else."""

from hypothesis import given, settings
from hypothesis import strategies as st
from livecount.core import protocol

from tests.strategies import frames, text_frames


@settings(max_examples=1500, deadline=None)
@given(frames())
def test_decode_never_fails_any_other_way(frame: tuple[str, str | bytes]):
    _, payload = frame
    try:
        message = protocol.decode(payload)
    except protocol.ProtocolError as exc:
        assert exc.code in {"invalid_json", "invalid_message", "unknown_message",
                            "invalid_field", "binary_frame"}
        assert exc.detail
    else:
        assert isinstance(message, protocol.Views | protocol.Subscribe | protocol.Unsubscribe)


@settings(max_examples=500, deadline=None)
@given(text_frames, st.text(max_size=5))
def test_accepted_ids_and_paths_are_within_the_limits(frame: str, _: str):
    try:
        message = protocol.decode(frame)
    except protocol.ProtocolError:
        return
    if isinstance(message, protocol.Views):
        for value in (message.articleId, message.articleTitle):
            assert value is None or len(value) <= protocol.MAX_ID_CHARS
        for value in (message.currentPage, message.previousPage, message.referrer):
            assert value is None or len(value) <= protocol.MAX_URL_CHARS
