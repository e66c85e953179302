"""The WebSocket wire format: message schemas, validation and encoding.

Pure: bytes in, typed messages or a `ProtocolError` out. The field names are the
seed's (`articleId`, `currentPage`, `refreshed`, ...) so existing blog clients keep
working. Validation is one decode: msgspec checks types and shapes, and each text is
checked against its limits from `sizes` (characters, UTF-8 bytes, no controls) as the
message is built, so a message that exists is a message every table can store.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec
from livecount.core import sizes

MAX_FRAME_BYTES: Final = 4096
MAX_ID_CHARS: Final = sizes.MAX_ID_CHARS
MAX_ID_BYTES: Final = sizes.MAX_ID_BYTES
MAX_TITLE_CHARS: Final = sizes.MAX_TITLE_CHARS
MAX_URL_CHARS: Final = sizes.MAX_URL_CHARS
MAX_IDS_PER_MESSAGE: Final = 100

IdList = Annotated[list[str], msgspec.Meta(max_length=MAX_IDS_PER_MESSAGE)]


class _Invalid(ValueError):
    """Raised while a message is built; msgspec reports it as a validation error."""


def _check(path: str, value: str | None, limit: sizes.TextLimit) -> None:
    if value is not None and (wrong := sizes.problem(value, limit)) is not None:
        raise _Invalid(f"`{path}` {wrong}")


class Views(msgspec.Struct, tag="views", tag_field="message", frozen=True, gc=False):
    """A page view. With `articleId` it is a post; otherwise `currentPage` is classified."""

    articleId: str | None = None
    articleTitle: str | None = None
    previousPage: str | None = None
    currentPage: str | None = None
    refreshed: bool = False
    referrer: str | None = None
    # Already counted, on a socket that reopened (a server restart, a lost network): the
    # page reads its target again and is answered its counts; no view is counted.
    resumed: bool = False

    def __post_init__(self) -> None:
        _check("$.articleId", self.articleId, sizes.ID)
        _check("$.articleTitle", self.articleTitle, sizes.TITLE)
        if self.articleTitle is not None and not sizes.shows(self.articleTitle):
            msgspec.structs.force_setattr(self, "articleTitle", None)  # no title at all
        _check("$.previousPage", self.previousPage, sizes.URL)
        _check("$.currentPage", self.currentPage, sizes.URL)
        _check("$.referrer", self.referrer, sizes.URL)


def _check_ids(message: Subscribe | Unsubscribe) -> None:
    for name, ids in (("articleIds", message.articleIds), ("pageNames", message.pageNames)):
        for i, id_ in enumerate(ids):
            _check(f"$.{name}[{i}]", id_, sizes.ID)


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="message", frozen=True):
    articleIds: IdList = []
    pageNames: IdList = []

    def __post_init__(self) -> None:
        _check_ids(self)


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="message", frozen=True):
    articleIds: IdList = []
    pageNames: IdList = []

    def __post_init__(self) -> None:
        _check_ids(self)


class Visibility(msgspec.Struct, tag="visibility", tag_field="message", frozen=True):
    """The page's tab was hidden or shown again (the Page Visibility API): a hidden
    page is not reading. A socket starts visible."""

    visible: bool


Inbound = Views | Subscribe | Unsubscribe | Visibility


class ViewsReply(msgspec.Struct, tag="views", tag_field="message", omit_defaults=True, gc=False):
    """`readingNow` is always sent, 0 included; `counted` only when false, with why:
    `bot`, or `resumed` (the page said it was counted before)."""

    totalViews: int
    uniqueViews: int
    readingNow: int
    articleId: str | None = None
    pageName: str | None = None
    counted: bool = True
    reason: str | None = None


class Count(msgspec.Struct, tag="count", tag_field="message", omit_defaults=True, gc=False):
    totalViews: int
    uniqueViews: int
    readingNow: int
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
_KNOWN = ("views", "subscribe", "unsubscribe", "visibility")


def decode(frame: str | bytes) -> Inbound:
    """Parse one frame into a message, or raise `ProtocolError` with a stable code."""
    if isinstance(frame, bytes):
        raise ProtocolError("binary_frame", "send JSON in text frames")
    try:
        message: Inbound = _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise _classify(frame, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("invalid_json", _json_detail(frame, str(exc))) from None
    except RecursionError:  # found by fuzzing: {"a":{"a":... thousands deep
        raise ProtocolError("invalid_json", "nested too deeply") from None
    except UnicodeEncodeError:  # a str holding a lone surrogate: not from a socket (1007)
        raise ProtocolError("invalid_json", "the frame is not valid Unicode text") from None
    return message


_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _json_detail(frame: str, detail: str) -> str:
    """msgspec calls a lone surrogate escape "truncated"; say what it is."""
    if "surrogate" in detail or (
        detail.startswith("Input data was truncated") and _SURROGATE_ESCAPE.search(frame)
    ):
        return (
            "a \\uD800-\\uDFFF escape that is not half of a surrogate pair is not text: " + detail
        )
    return detail


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
