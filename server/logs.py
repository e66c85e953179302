"""JSON-lines logging: one object per line with `ts`, `level`, `event` and fields.

`log("flushed", views=12)` is the whole API; machines read the output, so events are
stable snake_case names and details are fields, never prose to parse.

A person at a terminal reads it too: there (`auto` and stdout a TTY, or `human`) the
same events are one short line each, and only warnings and errors (everything at
`debug`), since `node/banner.py` sums up the start. A process manager, a pipe or a
file gets JSON lines, every one.
"""

from __future__ import annotations

import calendar
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TextIO

import msgspec

_logger = logging.getLogger("livecount")
_encoder = msgspec.json.Encoder()
FORMATS: Final = ("auto", "json", "human")
_human = False
_human_level = logging.WARNING


class _JsonFormatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        if self.node:
            entry["node"] = self.node
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode(errors="replace")


class _HumanFormatter(logging.Formatter):
    """`12:00:01 warning  dynamodb_unreachable  error="…" retry_in=2.0`: local time, as
    the person at the terminal reads a clock."""

    def format(self, record: logging.LogRecord) -> str:
        return human_line(
            time.strftime("%H:%M:%S", time.localtime(record.created)),
            record.levelname.lower(),
            record.getMessage(),
            getattr(record, "fields", {}),
            self.formatException(record.exc_info) if record.exc_info else "",
        )


def human_line(clock: str, level: str, event: str, fields: dict[str, Any], trace: str = "") -> str:
    shown = " ".join(f"{key}={_value(value)}" for key, value in fields.items())
    line = f"{clock} {level:<8} {event}" + (f"  {shown}" if shown else "")
    return line + (f"\n{trace}" if trace else "")


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else _encoder.encode(value).decode(errors="replace")
    if isinstance(value, str) and (not text or any(c in text for c in ' "=\n\t')):
        return _encoder.encode(text).decode(errors="replace")
    return text


def is_human(fmt: str = "auto", stream: TextIO | None = None) -> bool:
    """Whether `fmt` means lines for a person: `human`, or `auto` on a terminal."""
    stream = sys.stdout if stream is None else stream
    if fmt == "auto":
        try:
            return stream.isatty()
        except (AttributeError, ValueError):  # replaced or closed: not a terminal
            return False
    return fmt == "human"


def human() -> bool:
    """Whether this process logs for a person (set by `setup`)."""
    return _human


def setup(level: str = "info", node: str = "", fmt: str = "auto") -> None:
    """Log at `level` and above to stdout, as JSON lines or, for a person, short lines
    of warnings and errors only (everything at `debug`). `fmt`: one of `FORMATS`."""
    global _human, _human_level
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    _human = is_human(fmt)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_HumanFormatter() if _human else _JsonFormatter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    _human_level = max(logging.WARNING, _level(level)) if level != "debug" else logging.DEBUG
    _logger.setLevel(_human_level if _human else _level(level))
    # Libraries log through the same handler, but only when something is wrong.
    logging.getLogger("websockets").setLevel(logging.ERROR)


def _level(name: str) -> int:
    return logging.getLevelNamesMapping().get(name.upper(), logging.INFO)


def relayed(line: bytes) -> bytes | None:
    """Another process's JSON log line as this process shows it (the workers' parent
    relays its workers' lines): unchanged as JSON; for a person a short line, or None
    below what a person is shown. A line that is not a log entry passes unchanged."""
    if not _human:
        return line
    try:
        entry = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return line
    if not isinstance(entry, dict) or not isinstance(entry.get("event"), str):
        return line
    level = str(entry.pop("level", "info"))
    if _level(level) < _human_level:
        return None
    stamp = str(entry.pop("ts", ""))
    event = entry.pop("event")
    error = entry.pop("error", "")
    clock = time.strftime("%H:%M:%S")
    if len(stamp) >= 19:  # UTC in the entry; a person reads local time
        try:
            moment = time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
            clock = time.strftime("%H:%M:%S", time.localtime(calendar.timegm(moment)))
        except ValueError:
            pass
    return (human_line(clock, level, event, entry, str(error or "")) + "\n").encode()


def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    if _logger.isEnabledFor(level):
        _logger.log(level, event, extra={"fields": _plain(fields)})


def warn(event: str, **fields: Any) -> None:
    log(event, logging.WARNING, **fields)


class Limited:
    """At most one line per `interval` seconds for each key, with how many were held back.

    A failing store fails the same way many times a second; the log should say so
    once, not fill the disk."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}

    def allow(self, key: str) -> int | None:
        """None to hold this line back; otherwise how many were held back before it."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) > 10_000:  # many distinct keys: forget, do not grow
            self._last.clear()
        self._last[key] = (now, 0)
        return 0 if last is None else last[1]


_limited = Limited()


def warn_limited(event: str, key: str = "", **fields: Any) -> None:
    """`warn`, at most once per 10 s per (event, key); counts what it held back."""
    held = _limited.allow(f"{event} {key}")
    if held is not None:
        warn(event, **fields, **({"suppressed": held} if held else {}))


def error(event: str, exc: BaseException | None = None, **fields: Any) -> None:
    _logger.error(event, exc_info=exc, extra={"fields": _plain(fields)})


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, int | float | str | bool | None | list | dict) else str(v)
        for k, v in fields.items()
    }
