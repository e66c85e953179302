"""How a long command shows how far it is: bars on a terminal, JSON lines otherwise.

`livecount backup`, `restore` and `admin delete --prefix` take seconds to minutes. On a
terminal each phase is a `rich` progress bar on stderr, and the outcome a sentence on
stdout. Otherwise, or with `--json`, every step is a JSON line on stdout,
`{"event":"progress","phase":"read","done":12,"of":40}` (a few a second at most, and
each phase's last), and the outcome is the last line, `{"event":"backup",…}`.
"""

from __future__ import annotations

import json
import sys
import time
from types import TracebackType
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

EVERY: Final = 0.5  # seconds between two JSON lines of one phase
STOPPED: Final = 130  # a long command's exit code after Ctrl-C, as a shell's


class ProgressReport:
    def __init__(self, command: str, json_lines: bool, phases: dict[str, str]) -> None:
        self.command = command
        self.json = json_lines or not sys.stderr.isatty()
        self.phases = phases  # phase → what it does, in words
        self._bar = (
            None
            if self.json
            else Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
                transient=False,
            )
        )
        self._tasks: dict[str, TaskID] = {}
        self._last: dict[str, float] = {}

    def __enter__(self) -> ProgressReport:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def step(self, phase: str, done: int, of: int) -> None:
        if self._bar is not None:
            if phase not in self._tasks:
                self._tasks[phase] = self._bar.add_task(self.phases[phase], total=of)
            self._bar.update(self._tasks[phase], completed=done, total=of)
            return
        now = time.monotonic()
        if done < of and now - self._last.get(phase, 0.0) < EVERY:
            return
        self._last[phase] = now
        self._line({"event": "progress", "phase": phase, "done": done, "of": of})

    def outcome(self, text: str, **fields: Any) -> None:
        """The command's result: `text` for a person, `fields` as the last JSON line."""
        if self._bar is not None:
            self._bar.stop()
            print(text, flush=True)
        else:
            self._line({"event": self.command, **fields})

    @staticmethod
    def _line(value: dict[str, Any]) -> None:
        print(json.dumps(value, ensure_ascii=False, separators=(",", ":")), flush=True)
