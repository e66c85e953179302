"""The WebSocket wire format: message schemas, validation and encoding.

Pure: bytes in, typed messages or a `ProtocolError` out. The field names are the
seed's (`articleId`, `currentPage`, `refreshed`, ...) so existing blog clients keep
working. Every limit lives here, so validation is one decode, not a hand-written walk.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

MAX_FRAME_BYTES: Final = 4096
MAX_ID_CHARS: Final = 256
MAX_URL_CHARS: Final = 2048
MAX_IDS_PER_MESSAGE: Final = 100

# No control characters: they are never part of a real id or path, and keeping them
# out means every stored key prints cleanly in logs, reports and the console.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS, pattern=_PRINTABLE)]
Title = Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS, pattern=_PRINTABLE)]
Url = Annotated[str, msgspec.Meta(max_length=MAX_URL_CHARS, pattern=_PRINTABLE)]
IdList = Annotated[list[Id], msgspec.Meta(max_length=MAX_IDS_PER_MESSAGE)]


class Views(msgspec.Struct, tag="views", tag_field="message", frozen=True, gc=False):
    """A page view. With `articleId` it is a post; otherwise `currentPage` is classified."""

    articleId: Id | None = None
    articleTitle: Title | None = None
    previousPage: Url | None = None
    currentPage: Url | None = None
    refreshed: bool = False
    referrer: Url | None = None


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="message", frozen=True):
    articleIds: IdList = []
    pageNames: IdList = []


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="message", frozen=True):
    articleIds: IdList = []
    pageNames: IdList = []


Inbound = Views | Subscribe | Unsubscribe


class ViewsReply(msgspec.Struct, tag="views", tag_field="message", omit_defaults=True, gc=False):
    totalViews: int
    uniqueViews: int
    articleId: str | None = None
    pageName: str | None = None


class Count(msgspec.Struct, tag="count", tag_field="message", omit_defaults=True, gc=False):
    totalViews: int
    uniqueViews: int
    articleId: str | None = None
    pageName: str | None = None


class Error(msgspec.Struct, tag="error", tag_field="message"):
    error: str
    detail: str


Outbound = ViewsReply | Count | Error


class ProtocolError(Exception):
    """A client mistake: reported to that client, never fatal to the connection."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def reply(self) -> bytes:
        return encode(Error(self.code, self.detail))


_decoder: Final = msgspec.json.Decoder(Inbound)
_encoder: Final = msgspec.json.Encoder()
_KNOWN = ("views", "subscribe", "unsubscribe")


def decode(frame: str | bytes) -> Inbound:
    """Parse one frame into a message, or raise `ProtocolError` with a stable code."""
    if isinstance(frame, bytes):
        raise ProtocolError("binary_frame", "send JSON in text frames")
    try:
        message: Inbound = _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise _classify(frame, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("invalid_json", str(exc)) from None
    except RecursionError:  # found by fuzzing: {"a":{"a":... thousands deep
        raise ProtocolError("invalid_json", "nested too deeply") from None
    return message


def _classify(frame: str, detail: str) -> ProtocolError:
    """Tell an unknown or missing `message` apart from a bad field, for a useful code."""
    if "`$.message`" in detail or "Object missing required field `message`" in detail:
        try:
            tag = msgspec.json.decode(frame).get("message")
        except (msgspec.DecodeError, AttributeError, RecursionError):
            tag = None
        if tag not in _KNOWN:
            return ProtocolError("unknown_message", f"message must be one of {', '.join(_KNOWN)}")
    if detail.startswith("Expected `object`"):
        return ProtocolError("invalid_message", "a message is a JSON object")
    return ProtocolError("invalid_field", detail)


def encode(message: Outbound) -> bytes:
    return _encoder.encode(message)
