"""`livecount export`: every stored count out, as CSV or NDJSON, which `livecount
import` (`tools/importer.py`) reads back.

It works on the store directly, with `serve`'s store options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import uvloop
from livecount import config, logs
from livecount.aws.store_admin import Exports
from livecount.core import exports
from livecount.core.errors import LivecountError
from livecount.tools.admin import ENV_NOTE, add_store_options, failed, opened, store_config


# -- export ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or a file that appears whole or not at all."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


async def _export(cfg: config.Config, form: str, out: IO[str]) -> dict[str, int]:
    written = {"count": 0, "timeline": 0, "referrer": 0}
    async with opened(cfg) as store:
        if form == "ndjson":
            out.write(exports.ndjson_head(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        else:
            out.write(exports.csv_head())
        async for record in Exports(store).records():
            out.write(exports.ndjson_line(record) if form == "ndjson" else exports.csv_line(record))
            written[record.record] += 1
    return written


def _run_export(ns: argparse.Namespace) -> int:
    cfg = store_config(ns)
    try:
        with _output(ns.output) as out:
            written = uvloop.run(_export(cfg, ns.format, out))
    except LivecountError as exc:
        return failed(exc)
    except OSError as exc:
        print(f"livecount: cannot write {ns.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    logs.log(
        "exported",
        counts=written["count"],
        hours=written["timeline"],
        referrers=written["referrer"],
        output=str(ns.output or "stdout"),
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        help="write every count as CSV or NDJSON",
        description="Write every stored count: each post's and page's totals, every hour "
        "of the timeline and every referrer, for each and for the whole site. "
        "livecount import reads it back.",
        epilog=ENV_NOTE,
    )
    export.add_argument(
        "--format",
        type=config.choice(*exports.FORMATS),
        default="csv",
        metavar="{csv,ndjson}",
        help="CSV (one table, a record column) or NDJSON (default: csv)",
    )
    export.add_argument(
        "--output",
        type=config.path,
        metavar="FILE",
        help="write here, whole or not at all (default: stdout)",
    )
    add_store_options(export)
    export.set_defaults(run=_run_export, parser=export)
