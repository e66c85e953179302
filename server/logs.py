"""JSON-lines logging: one object per line with `ts`, `level`, `event` and fields.

`log("flushed", views=12)` is the whole API; machines read the output, so events are
stable snake_case names and details are fields, never prose to parse.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

_logger = logging.getLogger("livecount")
_encoder = msgspec.json.Encoder()


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


def setup(level: str = "info", node: str = "") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonFormatter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    _logger.setLevel(level.upper())
    # Libraries log through the same handler, but only when something is wrong.
    logging.getLogger("websockets").setLevel(logging.ERROR)


def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    if _logger.isEnabledFor(level):
        _logger.log(level, event, extra={"fields": _plain(fields)})


def warn(event: str, **fields: Any) -> None:
    log(event, logging.WARNING, **fields)


class Limited:
    """At most one line per `interval` seconds for each key, with how many were held back.

    A failing store fails the same way many times a second; the log should say so
    once, not fill the disk."""

    def __init__(self, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
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
    return {k: v if isinstance(v, int | float | str | bool | None | list | dict) else str(v)
            for k, v in fields.items()}
