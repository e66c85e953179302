"""Waits that end early when asked to stop, and capped exponential backoff.

Every loop in the node and the stream consumer waits between rounds and must stop
at once on SIGTERM; every retry loop backs off. One copy of each, here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import suppress


async def pause(
    stop: asyncio.Event,
    seconds: float,
    wake: asyncio.Event | None = None,
) -> bool:
    """Wait `seconds`, or until `stop` (or `wake`) is set; True when it is time to stop."""
    if stop.is_set() or (wake is not None and wake.is_set()):
        return stop.is_set()
    if wake is None:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, seconds))
        return stop.is_set()
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
    return stop.is_set()


def backoff(first: float = 0.5, most: float = 10.0) -> Iterator[float]:
    """Delays that double from `first` up to `most`, for as long as they are asked for."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)
