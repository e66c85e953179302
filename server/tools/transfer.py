"""`livecount export` and `livecount import`: counts out, and in from other counters.

Both work on the store directly, with `serve`'s store options (and its `--page`
rules and `--site-domain`s, which an import maps paths and referrers with). An import
is read whole first (`core/imports.py`), then added once: the file's hash marks every
item it adds, so importing it again, or again after a crash, adds nothing twice.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import uvloop
from livecount import config, logs
from livecount.aws.store_admin import Exports, Imported, Imports
from livecount.core import exports, imports
from livecount.core.errors import LivecountError
from livecount.core.imports import ImportPlan
from livecount.tools.admin import ENV_NOTE, add_store_options, failed, opened, store_config
from rich.console import Console
from rich.table import Table
from rich.text import Text

PROGRESS_EVERY = 500  # writes between two `import_progress` log lines


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
            out.write(exports.ndjson_line(record) if form == "ndjson"
                      else exports.csv_line(record))
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
    logs.log("exported", counts=written["count"], hours=written["timeline"],
             referrers=written["referrer"], output=str(ns.output or "stdout"))
    return 0


# -- import ---------------------------------------------------------------------------------
def _progress(done: int, of: int) -> None:
    if done % PROGRESS_EVERY == 0 or done == of:
        logs.log("import_progress", done=done, of=of)


async def _import(cfg: config.Config, plan: ImportPlan, import_id: str, name: str) -> Imported:
    async with opened(cfg, create=True) as store:
        return await Imports(store).run(plan, import_id, name, _progress)


def pages(plan: ImportPlan, done: Imported) -> list[dict[str, Any]]:
    """Each post and page of the file, most viewed first, and whether this run added it."""
    return [{"kind": target.kind, "id": target.id, "totalViews": counts.total,
             "uniqueViews": counts.unique,
             "added": bool(done.added.get(target)) and not done.already}
            for target, counts in sorted(plan.counts.items(), key=lambda i: (-i[1].total, i[0]))]


def summary(plan: ImportPlan, done: Imported) -> dict[str, Any]:
    """The import's outcome as the `--json` object."""
    return {"format": plan.format, "alreadyImported": done.already, "pages": pages(plan, done),
            "rowsAdded": done.rows, "skipped": dict(plan.skipped),
            "unmatched": dict(plan.unmatched.most_common(20))}


def table(plan: ImportPlan, done: Imported) -> Table:
    out = Table(title=f"Imported ({plan.format})", title_justify="left", show_footer=True)
    out.add_column("Kind", footer="Total")
    out.add_column("Id", overflow="fold")
    out.add_column("Total", justify="right",
                   footer=f"{sum(c.total for c in plan.counts.values()):,}")
    out.add_column("Unique", justify="right",
                   footer=f"{sum(c.unique for c in plan.counts.values()):,}")
    out.add_column("")
    for page in pages(plan, done):
        out.add_row(page["kind"], Text(page["id"]), f"{page['totalViews']:,}",
                    f"{page['uniqueViews']:,}", "added" if page["added"] else "already there")
    return out


def _run_import(ns: argparse.Namespace) -> int:
    cfg = store_config(ns)
    try:
        data = ns.file.read_bytes()
    except OSError as exc:
        print(f"livecount: cannot read {ns.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        plan = imports.read(data, imports.PathMap(cfg.pages),
                            cfg.site_domains)
        if not plan.counts:
            raise imports.bad(f"nothing in {ns.file} maps to a post or page"
                              + (f" (e.g. {next(iter(plan.unmatched))!r}): give --path-pattern"
                                 if plan.unmatched else ""))
        done = uvloop.run(_import(cfg, plan, imports.import_id(data), ns.file.name))
    except LivecountError as exc:
        return failed(exc)
    if ns.json:
        print(json.dumps(summary(plan, done), ensure_ascii=False))
        return 0
    console = Console()
    if done.already:
        console.print(f"{ns.file.name} was imported before: nothing added.")
    console.print(table(plan, done))
    if plan.skipped:
        why = ", ".join(f"{n:,} {reason}" for reason, n in plan.skipped.most_common())
        console.print(Text(f"Skipped lines: {why}."))
    if plan.unmatched:
        console.print(Text("Paths that map to nothing (most first): " + ", ".join(
            p for p, _ in plan.unmatched.most_common(5))))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export", help="write every count as CSV or NDJSON",
        description="Write every stored count: each post's and page's totals, every hour "
                    "of the timeline and every referrer, for each and for the whole site. "
                    "livecount import reads it back.", epilog=ENV_NOTE)
    export.add_argument("--format", type=config.choice(*exports.FORMATS), default="csv",
                        metavar="{csv,ndjson}",
                        help="CSV (one table, a record column) or NDJSON (default: csv)")
    export.add_argument("--output", type=config.path, metavar="FILE",
                        help="write here, whole or not at all (default: stdout)")
    add_store_options(export)
    export.set_defaults(run=_run_export, parser=export)
    load = commands.add_parser(
        "import", help="add counts from an export: livecount's, Plausible's, GoatCounter's",
        description="Add the counts of FILE: a livecount export, GoatCounter's CSV export "
                    "(.csv or .csv.gz), or Plausible's export (its zip, pages.csv or "
                    "imported_pages_*.csv). Paths map as serve maps them: --page rules, then "
                    "--path-pattern posts, then pages of their own (--unmatched-paths). "
                    "Importing the same file again adds nothing.", epilog=ENV_NOTE)
    load.add_argument("file", metavar="FILE", type=config.path, help="the export to read")
    load.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_store_options(load, ("pages", "path_patterns", "unmatched_paths", "site_domains"))
    load.set_defaults(run=_run_import, parser=load)
