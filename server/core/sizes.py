"""How long, and made of what, each text a client sends may be: one place, derived
from every place livecount stores it.

DynamoDB measures keys in UTF-8 bytes: a partition key holds at most 2,048, a sort key
at most 1,024, an item at most 400 KB. A value the protocol accepts but the store
refuses is a poison view: counted, replied to, and then refused at every flush. So
each limit here comes from the tightest key or attribute the value ends up in, and
is checked in the unit that key is measured in as well as in characters, the unit a
writer of slugs and titles thinks in.

Where each client text is stored, and the tightest place:

- `articleId`: the writer and reader tables' `articleId` (partition key); `post#<id>`
  as the `target` of `Referrer` and `Timeline` (partition) and of `PageIndex` (sort
  key). Tightest: the `PageIndex` sort key, 1,024 bytes less the 5 of `post#`.
- `pageNames` (and the names of `--page` rules): `HomeAndProfile` `pageName`, and
  `page#<name>` as above. The same limit.
- `articleTitle`: an attribute of the writer and reader items, a field of journal and
  archive lines. The item limit is far away; 256 characters keep lines short.
- `currentPage`, `previousPage`, `referrer`: the archive only, bounded by the frame.
  The referrer's host is the `Referrer` sort key: a DNS name, at most 253 bytes.

Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

PARTITION_KEY_BYTES: Final = 2048
SORT_KEY_BYTES: Final = 1024
ITEM_BYTES: Final = 400_000  # DynamoDB says 400 KB; the smaller reading of it

# `Target.ref`: the key of a post or page in the report tables. Both kinds are four
# letters; the longer would bind.
REF_PREFIX_BYTES: Final = max(len(f"{kind}#") for kind in ("post", "page"))

MAX_ID_CHARS: Final = 256
MAX_ID_BYTES: Final = SORT_KEY_BYTES - REF_PREFIX_BYTES  # 1,019: PageIndex `post#<id>`
MAX_TITLE_CHARS: Final = 256
MAX_URL_CHARS: Final = 2048
MAX_HOST_CHARS: Final = 253  # a DNS name in its ASCII form (RFC 1035), no final dot
MAX_LABEL_CHARS: Final = 63

# Refused anywhere in a string, the last character included: C0 controls, DEL, C1
# controls, the Unicode line and paragraph separators (line breaks to JavaScript and
# to Python's str.splitlines), and lone surrogates (not text; UTF-8 cannot hold them).
_FORBIDDEN: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


# Refused in ids only: bidirectional embeddings, overrides and isolates, which make an
# id read differently from what it is in a report or a terminal ("Trojan Source").
_BIDI: Final = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Characters that show nothing: spaces of every kind, format characters (zero-width
# space, joiners, the byte-order mark) and the other default-ignorable code points.
_INVISIBLE_CATEGORIES: Final = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"})
# Drawn blank outside those categories: the Hangul fillers, the Mongolian selectors, and
# U+2800 BRAILLE PATTERN BLANK (a symbol, So), a favourite of names made to look empty.
_INVISIBLE: Final = frozenset("\u115f\u1160\u3164\uffa0\u034f\u180b\u180c\u180d\u180e\u2800")


@dataclass(frozen=True, slots=True)
class TextLimit:
    """The size of one kind of client text, in characters and in UTF-8 bytes. An `id`
    names a row: it must show something, and cannot hide its direction."""

    chars: int
    bytes: int
    min_chars: int = 0
    id: bool = False

    def __post_init__(self) -> None:
        if self.bytes > 4 * self.chars:
            raise ValueError("a byte limit above 4 bytes a character never binds")


ID: Final = TextLimit(MAX_ID_CHARS, MAX_ID_BYTES, min_chars=1, id=True)
# An id already stored, named to be renamed away or deleted: one stored before a rule of
# `ID` came in (an id of spaces, once) must still be removable, so only what its key holds.
STORED_ID: Final = TextLimit(MAX_ID_CHARS, MAX_ID_BYTES, min_chars=1)
TITLE: Final = TextLimit(MAX_TITLE_CHARS, 4 * MAX_TITLE_CHARS)
URL: Final = TextLimit(MAX_URL_CHARS, 4 * MAX_URL_CHARS)


def problem(value: str, limit: TextLimit) -> str | None:
    """What is wrong with `value`, in words its sender can act on; None when it fits.

    Reads as the end of a sentence that begins with the field's name."""
    chars = len(value)
    if chars < limit.min_chars:
        return "must not be empty"
    if found := _FORBIDDEN.search(value):
        return (
            f"has U+{ord(found.group()):04X} at character {found.start() + 1}: control "
            "characters (U+0000-U+001F, U+007F-U+009F), U+2028, U+2029 and lone "
            "surrogates are not allowed anywhere"
        )
    if chars > limit.chars:
        return f"is {chars:,} characters long; at most {limit.chars:,}"
    if 4 * chars > limit.bytes and (size := len(value.encode())) > limit.bytes:
        return (
            f"is {size:,} bytes in UTF-8; at most {limit.bytes:,} (up to {limit.chars:,} "
            "characters; each one outside ASCII takes 2 to 4 bytes)"
        )
    if limit.id:
        if found := _BIDI.search(value):
            return (
                f"has U+{ord(found.group()):04X} at character {found.start() + 1}: "
                "bidirectional embeddings, overrides and isolates are not allowed in ids"
            )
        if not shows(value):
            # A template variable that came out blank would count every such page as one,
            # under a name no report can show.
            return (
                "shows nothing (only spaces or invisible characters): an id needs a "
                "visible character"
            )
    return None


def shows(value: str) -> bool:
    """Whether `value` has a character that shows. A title of only spaces or zero-width
    characters is no title: a view that sends one keeps none (a post keeps its first
    title, so a blank one would stay), and the operator cannot set one."""
    return any(map(_visible, value))


def _visible(char: str) -> bool:
    return char not in _INVISIBLE and unicodedata.category(char) not in _INVISIBLE_CATEGORIES


def fits(value: str, limit: TextLimit) -> bool:
    return problem(value, limit) is None
