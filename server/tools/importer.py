"""`livecount import`: add another counter's history (or livecount's own export), see
what it would add first (`--dry-run`), list imports (`--list`), take one back
(`--undo ID`).

An import runs in two steps. The file is read, decompressed and parsed a line at a
time into a plan on disk (`core/imports.py`, `tools/import_plan.py`), so memory stays
bounded whatever the file, and a line that cannot be read stops it before anything is
written. Then the plan's chunks are added, each one transaction that applies once
(`core/import_chunks.py`, `aws/store_imports.py`): Ctrl-C or a kill anywhere leaves every
chunk whole or absent, and the same command finishes the import; `--undo ID` takes
back exactly what it added.

The store is opened by `tools/admin.opened`, as every command that works on it.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

import uvloop
from livecount import config
from livecount.aws.store_imports import Begun, Imports, ImportUndo, Undone
from livecount.core import imports
from livecount.core.errors import LivecountError
from livecount.core.import_chunks import ImportRecord
from livecount.core.imports import Reader
from livecount.tools.admin import ENV_NOTE, add_store_options, failed, opened, store_config
from livecount.tools.import_plan import ImportPlan, PlanSummary
from livecount.tools.progress import STOPPED, ProgressReport
from rich.console import Console
from rich.table import Table
from rich.text import Text

TOP = 20  # posts and pages in the table (the JSON has TOP_JSON)
TOP_JSON = 1000


def _size(value: str) -> int:
    """`2GiB`, `500MB`, `1000000`: a size in bytes (K, M, G and T are powers of 1024)."""
    found = re.fullmatch(r"\s*([0-9]+)\s*(?:([kmgt])i?)?b?\s*", value.lower())
    if not found or int(found.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"must be a size such as 2GiB or 500MB, got {value!r}")
    return int(found.group(1)) << (10 * " kmgt".index(found.group(2) or " "))


def in_flight(cfg: config.Config) -> int:
    """Chunk transactions at once: DynamoDB Local (embedded, or on this host) applies
    one at a time and slows with a queue (4 in flight), but with 2 the importer builds
    and sends the next while one is applied, on the other core (faster on half of issue
    24's history at like load: docs/BENCHMARKS.md, imports). DynamoDB proper takes
    many, each a network round trip away."""
    host = urlsplit(cfg.dynamodb_endpoint).hostname or ""
    local = (
        cfg.dynamodb_endpoint == "embedded"
        or host in ("localhost", "::1")
        or host.startswith("127.")
    )
    return 2 if local else 8


# -- what is shown ---------------------------------------------------------------------------
def _views(s: PlanSummary | ImportRecord) -> str:
    return (
        f"{s.posts:,} posts and {s.pages:,} pages: {s.views:,} views "
        f"({s.unique:,} unique), {s.adds:,} items in {s.chunks:,} transactions"
    )


def outcome(
    plan: ImportPlan, reader: Reader, status: str, record: ImportRecord | None, written: int = 0
) -> dict[str, Any]:
    """The `--json` object of an import or a dry run."""
    s = plan.summary()
    return {
        "status": status,
        "import": reader.import_id,
        "format": reader.format,
        "records": reader.records,
        "posts": s.posts,
        "pages": s.pages,
        "totalViews": s.views,
        "uniqueViews": s.unique,
        "items": s.adds,
        "chunks": s.chunks,
        "chunksWritten": written,
        "attempt": record.attempt if record else None,
        "skipped": dict(reader.skipped.most_common()),
        "unmatched": {p: n for p, _, n in plan.paths(20, mapped=False)},
        "paths": [{"path": p, "to": to, "records": n} for p, to, n in plan.paths(30, True)],
        "top": [
            {"kind": t.kind, "id": t.id, "totalViews": total, "uniqueViews": unique}
            for t, total, unique in plan.top(TOP_JSON)
        ],
    }


def say(console: Console, text: str) -> None:
    """A line of its own, not wrapped: ids and commands stay whole for copying."""
    console.print(Text(text), soft_wrap=True)


def top_table(plan: ImportPlan, title: str) -> Table:
    s = plan.summary()
    out = Table(title=title, title_justify="left", show_footer=True)
    out.add_column("Kind", footer="Total")
    out.add_column(
        "Id",
        overflow="fold",
        footer=f"{s.posts + s.pages:,}"
        + (" (most viewed shown)" if s.posts + s.pages > TOP else ""),
    )
    out.add_column("Total", justify="right", footer=f"{s.views:,}")
    out.add_column("Unique", justify="right", footer=f"{s.unique:,}")
    for target, total, unique in plan.top(TOP):
        out.add_row(target.kind, Text(target.id), f"{total:,}", f"{unique:,}")
    return out


def _skipped(console: Console, reader: Reader, plan: ImportPlan) -> None:
    if reader.skipped:
        why = ", ".join(f"{n:,} {reason}" for reason, n in reader.skipped.most_common())
        say(console, f"Skipped records: {why}.")
    if unmatched := plan.paths(5, mapped=False):
        say(
            console,
            "Paths that map to nothing (most first): " + ", ".join(p for p, _, _ in unmatched),
        )


def dry_run(console: Console, plan: ImportPlan, reader: Reader, name: str) -> None:
    say(
        console,
        f"Dry run of {name} ({reader.format}, {reader.records:,} records): nothing was written.",
    )
    if mapped := plan.paths(30, mapped=True):
        paths = Table(title="Paths and where they count (most records first)", title_justify="left")
        paths.add_column("Path", overflow="fold")
        paths.add_column("Counts as", overflow="fold")
        paths.add_column("Records", justify="right")
        for path, ref, n in mapped:
            kind, _, id_ = ref.partition("#")
            paths.add_row(Text(path), Text(f"{kind} {id_}"), f"{n:,}")
        console.print(paths)
    console.print(top_table(plan, "What it would add"))
    _skipped(console, reader, plan)


def done(
    console: Console, plan: ImportPlan, reader: Reader, begun: Begun, written: int, name: str
) -> None:
    record = begun.record
    if begun.already:
        say(
            console,
            f"These records were imported before, as import {record.id} "
            f"({record.file}, {record.started}): nothing added.",
        )
        return
    console.print(top_table(plan, f"Import {record.id}: {name} ({reader.format})"))
    _skipped(console, reader, plan)
    if begun.resumed:
        say(
            console,
            f"Resumed import {record.id}: {written:,} transactions written now, "
            f"{record.chunks - written:,} were in already.",
        )
    say(console, f"Added {_views(record)}.")


# -- the commands ----------------------------------------------------------------------------
def _run_import(ns: argparse.Namespace) -> int:
    picked = [bool(ns.file), ns.list, bool(ns.undo)]
    if sum(picked) != 1:
        ns.parser.error("give FILE, --list or --undo ID (one of them)")
    if ns.dry_run and not ns.file:
        ns.parser.error("--dry-run goes with FILE")
    cfg = store_config(ns)
    if ns.list:
        return _list(cfg, ns.json)
    if ns.undo:
        return _undo(cfg, ns.undo, ns.json)
    with ImportPlan.temporary() as plan:
        return _import(cfg, ns, plan)


def _import(cfg: config.Config, ns: argparse.Namespace, plan: ImportPlan) -> int:
    name = ns.file.name
    shown = ProgressReport("import", ns.json, {"read": f"Reading {name}", "write": "Writing"})
    last = ["", 0, 0]  # the last step shown: where a Ctrl-C stopped it

    def step(phase: str, done: int, of: int) -> None:
        last[:] = [phase, done, of]
        shown.step(phase, done, of)

    async def write(fresh: ImportRecord) -> tuple[Begun, int]:
        async with opened(cfg, create=True, bulk=True) as store:
            return await Imports(store).run(
                fresh,
                plan.chunks(),
                plan.targets(),
                lambda done, of: step("write", done, of),
                in_flight(cfg),
            )

    reader: Reader | None = None
    try:
        with shown:
            reader = plan.read(
                ns.file,
                cfg.pages,
                cfg.site_domains,
                ns.max_expanded,
                lambda done, of: step("read", done, of),
            )
            if not plan.summary().adds:
                raise imports.bad(
                    f"nothing in {name} maps to a post or page"
                    + "".join(
                        f" (e.g. {path!r}: {why}): give --path-pattern or --page"
                        for path, why, _ in plan.paths(1, mapped=False)
                    )
                )
            begun, written = (
                (None, 0) if ns.dry_run else uvloop.run(write(plan.record(reader, name)))
            )
    except LivecountError as exc:
        return failed(exc)
    except OSError as exc:
        print(f"livecount: cannot read {ns.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if reader is None or last[0] != "write":
            print("livecount: stopped before writing: nothing was written.", file=sys.stderr)
        else:
            print(
                f"livecount: stopped: {last[1]:,} of {last[2]:,} transactions of import "
                f"{reader.import_id} were done, each whole or not at all. Run the same "
                "command again to finish it, or take it back with: livecount import "
                f"--undo {reader.import_id}",
                file=sys.stderr,
            )
        return STOPPED
    if begun is None:
        if not shown.json:
            dry_run(Console(), plan, reader, name)
        shown.outcome(
            f"It would add {_views(plan.summary())}, as import {reader.import_id}.",
            **outcome(plan, reader, "dry_run", None),
        )
        return 0
    status = "already_imported" if begun.already else "resumed" if begun.resumed else "imported"
    if not shown.json:
        done(Console(), plan, reader, begun, written, name)
    record = begun.record
    shown.outcome(
        f"Undo it with: livecount import --undo {record.id}",
        **outcome(plan, reader, status, record, written),
    )
    return 0


def _list(cfg: config.Config, as_json: bool) -> int:
    async def listed() -> list[ImportRecord]:
        async with opened(cfg) as store:
            return await Imports(store).records()

    try:
        records = uvloop.run(listed())
    except LivecountError as exc:
        return failed(exc)
    shown = ProgressReport("import_list", as_json, {})
    if shown.json:
        shown.outcome("", imports=[asdict(r) for r in records])
        return 0
    if not records:
        print("No imports.")
        return 0
    out = Table(title="Imports, oldest first", title_justify="left")
    out.add_column("Id", no_wrap=True)
    out.add_column("State")
    out.add_column("File", overflow="fold")
    out.add_column("Views", justify="right")
    out.add_column("Posts, pages", justify="right")
    out.add_column("Started (UTC)", no_wrap=True)
    for r in records:
        state = r.state if r.attempt else f"{r.state} (cannot be undone)"
        out.add_row(
            r.id,
            state,
            Text(f"{r.file} ({r.format})"),
            f"{r.views:,}",
            f"{r.posts:,}, {r.pages:,}",
            r.started.replace("T", " ").rstrip("Z"),
        )
    Console().print(out)
    return 0


def _undo(cfg: config.Config, import_id: str, as_json: bool) -> int:
    shown = ProgressReport("import_undo", as_json, {"undo": f"Taking back import {import_id}"})
    last = [0, 0]

    def step(done: int, of: int) -> None:
        last[:] = [done, of]
        shown.step("undo", done, of)

    async def undo() -> Undone:
        async with opened(cfg, bulk=True) as store:
            return await ImportUndo(store).undo(import_id, step, in_flight(cfg))

    try:
        with shown:
            undone = uvloop.run(undo())
    except LivecountError as exc:
        return failed(exc)
    except KeyboardInterrupt:
        print(
            f"livecount: stopped: {last[0]:,} of {last[1]:,} transactions taken back, each "
            f"whole or not at all. Run livecount import --undo {import_id} again to finish.",
            file=sys.stderr,
        )
        return STOPPED
    record = undone.record
    if undone.already:
        text = f"Import {record.id} ({record.file}) was undone before: nothing to do."
    else:
        text = (
            f"Undid import {record.id} ({record.file}): {record.views:,} views of "
            f"{record.posts:,} posts and {record.pages:,} pages taken back."
        )
    if undone.kept:
        text += (
            f" {undone.kept:,} items kept what the import added, since a rename or "
            "delete had moved it elsewhere."
        )
    shown.outcome(
        text,
        status="already_undone" if undone.already else "undone",
        chunksUndone=undone.chunks,
        **asdict(record),  # its `kept`: every run's
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    load = commands.add_parser(
        "import",
        help="add counts from an export: livecount's, Plausible's, GoatCounter's",
        description="Add the counts of FILE: a livecount export, GoatCounter's CSV export "
        "(.csv or .csv.gz), or Plausible's export (its zip, pages.csv or "
        "imported_pages_*.csv). Paths map as serve maps them: --page rules, then "
        "--path-pattern posts, then pages of their own (--unmatched-paths). "
        "Each import has an id, from its records: importing the same records "
        "again (gzipped or not) adds nothing; --undo ID takes one back.",
        epilog=ENV_NOTE,
    )
    load.add_argument(
        "file", metavar="FILE", type=config.path, nargs="?", help="the export to read"
    )
    load.add_argument(
        "--dry-run",
        action="store_true",
        help="show where the paths go and what it would add; write nothing",
    )
    load.add_argument("--list", action="store_true", help="list the imports")
    load.add_argument("--undo", metavar="ID", help="take back the import ID, exactly")
    load.add_argument(
        "--max-expanded",
        type=_size,
        default=imports.MAX_EXPANDED,
        metavar="SIZE",
        help="refuse a compressed file (.gz, .zip) that expands to more than this (default: 2GiB)",
    )
    load.add_argument(
        "--json",
        action="store_true",
        help="progress and outcome as JSON lines (the default off a terminal)",
    )
    add_store_options(load, ("pages", "path_patterns", "unmatched_paths", "site_domains"))
    load.set_defaults(run=_run_import, parser=load)
