"""What the node did, counted for its metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Tally:
    views: int = 0  # counted
    bots: int = 0  # answered, not counted
    pushes: int = 0  # count messages pushed (to every watcher of a moved count)
    refused: Counter[str] = field(default_factory=Counter)  # messages refused, by code
