"""The codebase's shape rules that no linter checks: each class can be read at once."""

import ast
import re
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
MAX_CLASS_LINES = 200


def classes() -> list[tuple[str, int]]:
    found = []
    for path in sorted(SERVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                found.append(
                    (f"{path.relative_to(SERVER)}:{node.name}", node.end_lineno - node.lineno + 1)
                )
    return found


def test_the_walk_sees_the_known_classes() -> None:
    names = {name for name, _ in classes()}
    assert {"core/engine.py:Engine", "node/sockets.py:Connection", "aws/store.py:Store"} <= names


def test_no_class_is_over_200_lines() -> None:
    over = {name: lines for name, lines in classes() if lines > MAX_CLASS_LINES}
    assert not over, f"split these along a concept: {over}"


def test_no_two_classes_share_a_name() -> None:
    """One name per concept: a reader who meets `Plan` knows which one it is."""
    seen: dict[str, list[str]] = {}
    for name, _ in classes():
        path, _, cls = name.partition(":")
        seen.setdefault(cls, []).append(path)
    assert {c: p for c, p in seen.items() if len(p) > 1} == {}


def test_the_edges_ask_the_core_through_its_methods() -> None:
    """node/ calls the engine's (and its siblings') methods, never through their parts:
    `engine.ledger.idle` would tie an edge to how the engine keeps its books."""
    reach = re.compile(r"\b(engine|live|writes|readers)\.[a-z_]+\.[a-z_]+\(?")
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted((SERVER / "node").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reach.search(line.split("#")[0])
    ]
    assert found == []
