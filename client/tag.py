"""The tag, `<script defer src="https://count.example.com/livecount.js">`, built from
the browser client's one source, `gatsby-plugin-livecount/livecount.mjs`.

The source is an ES module (the Gatsby snippet as it is; the plugin imports it). The
tag is a classic script made of the module's part above its "Gatsby browser API" line,
without comment lines, blank lines and indentation, inside a function that ends by
starting the tag. That is all the build: a few lines of Python the server runs when it
starts, so neither `pip install` nor `livecount serve` needs a JavaScript toolchain.
The source keeps the conventions that make it safe (its header lists them), and this
build refuses a source that breaks the ones it can see.

`python client/tag.py` writes the tag to stdout (the JavaScript tests run it).
"""

from __future__ import annotations

import functools
import sys
from importlib import resources
from pathlib import Path

SOURCE = "gatsby-plugin-livecount/livecount.mjs"
CUT = "// ---- Gatsby browser API"
START = "startTag(window, document.currentScript);"


def build(source: str) -> str:
    """The tag's text from the module's."""
    core, cut, _ = source.partition("\n" + CUT)
    if not cut:
        raise ValueError(f"the client's source has no line starting with {CUT!r}")
    lines = []
    for line in core.splitlines():
        text = line.strip()
        if not text or text.startswith("//"):
            continue
        if text.startswith(("import ", "import{", "export ")):
            raise ValueError(
                f"the tag cannot hold {text[:60]!r}: the part of the "
                "client's source above the Gatsby line has no imports or exports"
            )
        lines.append(text)
    return '(function () {\n"use strict";\n' + "\n".join(lines) + f"\n{START}\n}})();\n"


@functools.cache
def tag() -> bytes:
    """The tag as served, UTF-8; built once per process."""
    return build(resources.files("livecount_client").joinpath(SOURCE).read_text("utf-8")).encode()


if __name__ == "__main__":
    sys.stdout.buffer.write(build((Path(__file__).parent / SOURCE).read_text("utf-8")).encode())
