"""docs/ARCHITECTURE.md's module table is made from the modules' own docstrings.

Regenerate it with `python -m tests.unit.test_docs` (from the repo root): it rewrites the
table between the markers. A module without a docstring, or one the table misses, fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
START, END = "<!-- modules: python -m tests.unit.test_docs -->", "<!-- /modules -->"
FOLDERS = ("core", "aws", "node", "tools", ".")


def summary(path: Path) -> str:
    """A module's docstring up to its first full stop: what it is, in a line."""
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path.relative_to(ROOT)} has no docstring"
    text = " ".join(doc.split("\n\n")[0].split())
    first = re.match(r"(.+?\.)(\s|$)", text)
    return (first.group(1) if first else text).rstrip(".") + "."


def table() -> str:
    rows = ["| module | what it is |", "|---|---|"]
    for folder in FOLDERS:
        for path in sorted((ROOT / "server" / folder).glob("*.py")):
            if path.stem in ("__init__", "__main__"):
                continue
            name = path.stem if folder == "." else f"{folder}/{path.stem}"
            cell = summary(path).replace("|", r"\|")
            rows.append(f"| `{name}` | {cell} |")
    return "\n".join(rows) + "\n"


def test_the_module_table_is_made_from_the_docstrings() -> None:
    text = DOC.read_text()
    assert START in text and END in text, f"{DOC.name} lost its module table's markers"
    shown = text.split(START)[1].split(END)[0].strip("\n") + "\n"
    assert shown == table(), "the module table is stale: run `python -m tests.unit.test_docs`"


if __name__ == "__main__":
    text = DOC.read_text()
    head, rest = text.split(START)
    DOC.write_text(head + START + "\n" + table() + END + rest.split(END)[1])
