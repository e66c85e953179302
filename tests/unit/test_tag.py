"""The tag's build (client/tag.py): the client's source above its Gatsby line, made a
classic script, and nothing else."""

from __future__ import annotations

import gzip

import pytest
from livecount_client.tag import CUT, START, build, tag

from tests.support import ROOT

SOURCE = f"""// a comment line
const A = 1; // a trailing comment stays: the build does not parse JavaScript

    function f() {{
      //   an indented comment
      return "// not a comment";
    }}
{CUT}: the module's own part
export function onRouteUpdate() {{}}
"""


def test_the_tag_is_the_part_above_the_gatsby_line_in_a_function_that_starts_it() -> None:
    assert build(SOURCE) == (
        '(function () {\n"use strict";\n'
        "const A = 1; // a trailing comment stays: the build does not parse JavaScript\n"
        "function f() {\n"
        'return "// not a comment";\n'
        "}\n"
        f"{START}\n"
        "})();\n"
    )


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("const A = 1;\n", "no line starting with"),
        (f"import x from './x.js';\n{CUT}\n", "no imports or exports"),
        (f"export function f() {{}}\n{CUT}\n", "no imports or exports"),
    ],
)
def test_a_source_the_build_cannot_make_a_tag_of_is_refused(source: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build(source)


def test_the_served_tag_is_built_from_the_installed_source() -> None:
    body = tag().decode()
    assert body.endswith(f"{START}\n}})();\n")
    assert "function createLivecount(" in body and "function startTag(" in body
    assert "getInstance" not in body, "the Gatsby API stays out of the tag"


def test_the_readme_says_how_big_the_tag_is() -> None:
    body = tag()
    size = f"{len(body) / 1000:.1f} KB, {len(gzip.compress(body, 9)) / 1000:.1f} KB gzipped"
    assert size in " ".join((ROOT / "README.md").read_text().split()), (
        f"README.md's size of the tag is stale: it is {size}"
    )
