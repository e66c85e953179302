"""Progress of a long command, on stderr: a bar for a person at a terminal, JSON lines
for anything else (`--json`, or stdout not a terminal), at most one a second per phase
and one at each phase's end: `{"event": "<name>_progress", "phase": …, "done": …,
"of": …}`.
"""

from __future__ import annotations

import json
import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

EVERY = 1.0  # seconds between two JSON lines of one phase


class Meter:
    def __init__(self, name: str, lines: bool) -> None:
        self.name = name
        self.lines = lines  # JSON lines rather than a bar
        self.phase = ""
        self.done = 0
        self.of = 0
        self._said = 0.0
        self._open = False
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    @classmethod
    def for_command(cls, name: str, json_asked: bool) -> Meter:
        return cls(name, json_asked or not (sys.stdout.isatty() and sys.stderr.isatty()))

    def start(self, phase: str, of: int, label: str) -> None:
        """A new phase of `of` steps (bytes, chunks), shown as `label`."""
        self.end()
        self.phase, self.done, self.of, self._open = phase, 0, of, True
        if self.lines:
            self._line()
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=of or None)

    def update(self, done: int) -> None:
        self.done = done
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done)
        elif self.lines and time.monotonic() - self._said >= EVERY:
            self._line()

    def end(self) -> None:
        """The phase is over (or stopped): its last figure said, the bar closed."""
        if not self._open:
            return
        self._open = False
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None
        elif self.lines:
            self._line()

    def _line(self) -> None:
        self._said = time.monotonic()
        print(
            json.dumps(
                {
                    "event": f"{self.name}_progress",
                    "phase": self.phase,
                    "done": self.done,
                    "of": self.of,
                }
            ),
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> Meter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.end()
