"""The codebase's shape rules that no linter checks: each class can be read at once."""
import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
MAX_CLASS_LINES = 200


def classes() -> list[tuple[str, int]]:
    found = []
    for path in sorted(SERVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                found.append((f"{path.relative_to(SERVER)}:{node.name}",
                              node.end_lineno - node.lineno + 1))
    return found


def test_the_walk_sees_the_known_classes() -> None:
    names = {name for name, _ in classes()}
    assert {"core/engine.py:Engine", "node/sockets.py:Connection", "aws/store.py:Store"} <= names


def test_no_class_is_over_200_lines() -> None:
    over = {name: lines for name, lines in classes() if lines > MAX_CLASS_LINES}
    assert not over, f"split these along a concept: {over}"
