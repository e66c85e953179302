"""`make bench`'s imports section (issue 24): `livecount import` of a big blog's history
into DynamoDB Local on disk, as `livecount serve` runs it, and what DynamoDB Local's
write requests cost there, which is what the import's design follows.

- **write modes**: the same Timeline-like items written as UpdateItem (one item a
  request, 16 in flight: how imports wrote before), BatchWriteItem (25 puts), and
  TransactWriteItems (100 updates) with the items scattered over partitions or sorted by
  key; items/s, DynamoDB Local's CPU per item, and bytes it wrote to disk per item
  (`/proc/<pid>/io` write_bytes: SQLite's pages and journal).
- **imports**: `bench/history.py`'s NDJSON export (issue 24's 5,000 posts over 3 years)
  and a GoatCounter export drawn from it, each imported by `livecount import` in a
  process of its own into a fresh DynamoDB Local on disk: records/s, the importer's peak
  RSS (getrusage of a wrapper's only child), its CPU and DynamoDB Local's, bytes written,
  the database's size; and the same file read alone (`--dry-run`).

    python -m bench.imports --work DIR [--posts 5000 --views 2320000] [--skip-goatcounter]

runs the NDJSON (and GoatCounter) import alone and prints its figures as JSON; `make
bench` runs the whole section.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store

from bench import history

Log = Callable[[str], None]
Note = Callable[[str], list[str]]

# Runs the command in argv[2:], then writes its rusage (this process's only child) to argv[1].
WRAPPER = """
import json, resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
used = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "peak_rss_kib": used.ru_maxrss,
               "cpu_s": used.ru_utime + used.ru_stime}, out)
"""
GOAL_NDJSON = 5_000.0  # records/s
GOAL_GOATCOUNTER = 3_000.0  # views (lines)/s
GOAL_RSS_MIB = 200.0


@dataclass(frozen=True)
class ImportScale:
    posts: int = history.POSTS
    views: int = history.VIEWS
    goatcounter_views: int = 500_000
    mode_items: int = 10_000


QUICK_IMPORTS = ImportScale(posts=300, views=30_000, goatcounter_views=10_000, mode_items=1_000)


def java_of(data_dir: Path) -> int | None:
    """The DynamoDB Local keeping its files in `data_dir`."""
    tag = str((data_dir / "dynamodb").resolve()).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"DynamoDBLocal.jar" in (cmd := cmdline.read_bytes()) and tag in cmd:
                return int(cmdline.parent.name)
        except (OSError, ValueError):
            continue
    return None


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- write modes -------------------------------------------------------------------------------
def _key(i: int, run: int, ordered: bool) -> dict[str, Any]:
    """Item i of a run: 80 neighbours to a partition when `ordered`, else one partition of
    5,000 after the other, as a history's rows come when they are not sorted."""
    if ordered:
        return {"target": {"S": f"post#r{run}-{i // 80:06d}"}, "hour": {"S": f"h{i % 80:04d}"}}
    return {"target": {"S": f"post#r{run}-{i % 5000:06d}"}, "hour": {"S": f"h{i // 5000:04d}"}}


def _update(table: str, key: dict[str, Any]) -> dict[str, Any]:
    return {
        "TableName": table,
        "Key": key,
        "UpdateExpression": "ADD #a0 :a0, #a1 :a1",
        "ExpressionAttributeNames": {"#a0": "totalViews", "#a1": "uniqueViews"},
        "ExpressionAttributeValues": {":a0": {"N": "3"}, ":a1": {"N": "1"}},
    }


async def write_modes(work: Path, items: int, log: Log) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for wal in (True, False):
        shutil.rmtree(work / "ddb-modes", ignore_errors=True)
        async with (
            dynamodb_local.running(work / "ddb-modes", wal=wal) as url,
            Store.open(url, "us-east-1", "modes_", validate=False) as store,
        ):
            await store.create_tables()
            java = java_of(work / "ddb-modes")
            assert java is not None
            table = store.tables.timeline

            async def mode(
                name: str,
                count: int,
                per: int,
                in_flight: int,
                ordered: bool,
                send: Callable[[list[dict[str, Any]]], Awaitable[Any]],
                java: int = java,
            ) -> None:
                run = len(out)
                gate = asyncio.Semaphore(in_flight)

                async def one(k: int) -> None:
                    async with gate:
                        await send([_key(k * per + j, run, ordered) for j in range(per)])

                log(f"imports: write mode {name}")
                j0, w0, t0 = cpu_s(java), written(java), time.monotonic()
                await asyncio.gather(*(one(k) for k in range(count // per)))
                wall = time.monotonic() - t0
                out.append(
                    {
                        "mode": name,
                        "items": count,
                        "in_flight": in_flight,
                        "items_per_s": round(count / wall),
                        "java_us_per_item": round(1e6 * (cpu_s(java) - j0) / count),
                        "kib_written_per_item": round((written(java) - w0) / count / 1024, 2),
                        "load": round(os.getloadavg()[0], 1),
                    }
                )

            async def updates(keys: list[dict[str, Any]], table: str = table) -> None:
                await store.ddb.update_item(**_update(table, keys[0]))

            async def batch(keys: list[dict[str, Any]], table: str = table) -> None:
                items = [{"PutRequest": {"Item": k | {"totalViews": {"N": "3"}}}} for k in keys]
                await store.ddb.batch_write_item(RequestItems={table: items})

            async def transaction(keys: list[dict[str, Any]], table: str = table) -> None:
                await store.ddb.transact_write_items(
                    TransactItems=[{"Update": _update(table, k)} for k in keys]
                )

            if not wal:  # the rollback journal DynamoDB Local uses by itself
                await mode(
                    "TransactWriteItems x100, sorted, rollback journal",
                    items,
                    100,
                    1,
                    True,
                    transaction,
                )
                continue
            await mode("UpdateItem, scattered", items // 5, 1, 16, False, updates)
            await mode("BatchWriteItem x25 puts, sorted", items, 25, 4, True, batch)
            await mode("TransactWriteItems x100, scattered", items, 100, 4, False, transaction)
            await mode("TransactWriteItems x100, sorted", items, 100, 1, True, transaction)
            await mode("TransactWriteItems x100, sorted", items, 100, 4, True, transaction)
    return out


# -- imports -----------------------------------------------------------------------------------
def _argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "livecount", *args]


async def import_one(
    work: Path,
    name: str,
    file: Path,
    options: list[str],
    log: Log,
    dry: bool = True,
) -> dict[str, Any]:
    """`livecount import` of `file` into a fresh DynamoDB Local on disk (its database
    stays in `work/ddb-import-NAME`), then, with `dry`, the same file read alone
    (`--dry-run`)."""
    data = work / f"ddb-import-{name}"
    shutil.rmtree(data, ignore_errors=True)  # a fresh store: never one a past run filled
    usage = work / f"rusage-{name}.json"
    async with dynamodb_local.running(data) as url:
        java = java_of(data)
        assert java is not None
        argv = _argv(
            "import",
            str(file),
            "--dynamodb-endpoint",
            url,
            "--table-prefix",
            f"{name}_",
            "--json",
            *options,
        )
        log(f"imports: {' '.join(argv[2:])}")
        j0, w0, t0 = cpu_s(java), written(java), time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRAPPER,
            str(usage),
            *argv,
            limit=1 << 24,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        reading_ended: float | None = None
        assert proc.stdout is not None
        last = b""
        async for line in proc.stdout:  # JSON lines: progress, then the outcome
            if reading_ended is None and b'"phase":"write"' in line:
                reading_ended = time.monotonic()
            last = line
        await proc.wait()
        outcome = json.loads(last)
        if outcome.get("status") != "imported":
            raise RuntimeError(f"{file.name}: {outcome.get('status')}, not imported")
        wall = time.monotonic() - t0
        java_cpu, java_written = cpu_s(java) - j0, written(java) - w0
    used, db, file_bytes = _facts(usage, data / "dynamodb", file)
    dry_run = await _dry_run(work, name, file, options) if dry else None
    records = outcome["records"]
    return {
        "file": file.name,
        "file_bytes": file_bytes,
        "format": outcome["format"],
        "records": records,
        "items": outcome["items"],
        "chunks": outcome["chunks"],
        "wall_s": round(wall, 1),
        "reading_s": round(reading_ended - t0, 1) if reading_ended else None,
        "records_per_s": round(records / wall),
        "items_per_s": round(outcome["items"] / wall),
        "peak_rss_mib": round(used["peak_rss_kib"] / 1024, 1),
        "importer_cpu_s": round(used["cpu_s"], 1),
        "java_cpu_s": round(java_cpu, 1),
        "java_us_per_item": round(1e6 * java_cpu / outcome["items"]),
        "written_gb": round(java_written / 1e9, 2),
        "db_mb": round(db / 1e6, 1),
        "written_per_db_byte": round(java_written / db, 1) if db else None,
        "dry_run": dry_run,
        "command": " ".join(["livecount", *argv[3:]])
        .replace(url, "http://127.0.0.1:DDB")
        .replace(str(file.parent), "DIR"),
        "load": round(os.getloadavg()[0], 1),
    }


def _facts(usage: Path, db: Path, file: Path) -> tuple[dict[str, Any], int, int]:
    """The wrapper's rusage, the database's size, the file's."""
    return json.loads(usage.read_text()), size(db), file.stat().st_size


async def _dry_run(work: Path, name: str, file: Path, options: list[str]) -> dict[str, Any]:
    usage = work / f"rusage-{name}-dry.json"
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRAPPER,
        str(usage),
        *_argv("import", str(file), "--dry-run", "--json", *options),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
    wall = time.monotonic() - t0
    used, _, _ = _facts(usage, work / "none", file)
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(used["peak_rss_kib"] / 1024, 1),
        "cpu_s": round(used["cpu_s"], 1),
    }


def history_files(work: Path, scale: ImportScale, log: Log) -> tuple[Path, Path, dict[str, Any]]:
    """The history's NDJSON and GoatCounter files, written once per work dir (the
    reports section imports the same NDJSON)."""
    files = work / f"history-{scale.posts}-{scale.views}-{scale.goatcounter_views}"
    ndjson, goat = files / "history.ndjson", files / "goatcounter.csv.gz"
    if not goat.exists():
        files.mkdir(parents=True, exist_ok=True)
        log(f"writing the history ({scale.posts:,} posts, {scale.views:,} views)")
        posts = history.history(1, scale.posts, scale.views)
        made = history.write_ndjson(posts, ndjson)
        history.write_goatcounter(posts, goat, scale.goatcounter_views)
        (files / "made.json").write_text(json.dumps(made))
    return ndjson, goat, json.loads((files / "made.json").read_text())


async def measure(work: Path, scale: ImportScale, log: Log) -> dict[str, Any]:
    ndjson, goat, made = history_files(work, scale, log)
    modes = await write_modes(work, scale.mode_items, log)
    return {
        "history": made,
        "modes": modes,
        "scale": dataclasses.asdict(scale),
        "ndjson": await import_one(work, "ndjson", ndjson, [], log),
        "goatcounter": await import_one(
            work, "goatcounter", goat, ["--path-pattern", "/blog/{id}/"], log
        ),
    }


# -- rendering ---------------------------------------------------------------------------------
def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(r: dict[str, Any], note: Note) -> list[str]:
    h, n, g = r["history"], r["ndjson"], r["goatcounter"]
    out = [
        "## 7. Imports (issue 24)",
        "",
        f"`bench/history.py` (seed 1): {h['counts']:,} posts, {h['views']:,} views (the "
        f"top post {h['top']:,}), {h['timeline']:,} timeline and {h['referrer']:,} "
        f"referrer rows: {h['records']:,} records, {h['bytes'] / 1e6:.1f} MB of NDJSON; "
        f"and a GoatCounter export of {g['records']:,} of its views "
        f"({g['file_bytes'] / 1e6:.1f} MB gzipped). Each import runs alone into a fresh "
        "DynamoDB Local on disk (`livecount.aws.local`, as `livecount serve` starts it).",
        "",
        "| goal | measured | verdict |",
        "|---|---|---|",
        f"| NDJSON >= {GOAL_NDJSON:,.0f} records/s | {n['records_per_s']:,} records/s "
        f"({n['records']:,} in {n['wall_s']} s) | "
        f"{_verdict(n['records_per_s'] >= GOAL_NDJSON)} |",
        f"| GoatCounter >= {GOAL_GOATCOUNTER:,.0f} views/s | {g['records_per_s']:,} views/s "
        f"({g['records']:,} in {g['wall_s']} s) | "
        f"{_verdict(g['records_per_s'] >= GOAL_GOATCOUNTER)} |",
        f"| importer peak RSS <= {GOAL_RSS_MIB:.0f} MiB | {n['peak_rss_mib']} MiB (NDJSON), "
        f"{g['peak_rss_mib']} MiB (GoatCounter) | "
        f"{_verdict(max(n['peak_rss_mib'], g['peak_rss_mib']) <= GOAL_RSS_MIB)} |",
        "",
        "| import | records | items written | transactions | wall s (reading) | records/s "
        "| items/s | importer peak RSS MiB | importer CPU s | DynamoDB Local CPU s (µs/item) "
        "| written by DynamoDB Local | database | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, x in (("NDJSON", n), ("GoatCounter", g)):
        out.append(
            f"| {name} | {x['records']:,} | {x['items']:,} | {x['chunks']:,} | "
            f"{x['wall_s']} ({x['reading_s']}) | {x['records_per_s']:,} | "
            f"{x['items_per_s']:,} | {x['peak_rss_mib']} | {x['importer_cpu_s']} | "
            f"{x['java_cpu_s']} ({x['java_us_per_item']}) | {x['written_gb']} GB | "
            f"{x['db_mb']} MB ({x['written_per_db_byte']}x) | {x['load']} |"
        )
    out += [
        "",
        "Read alone (`--dry-run`: decompress, parse, sum on disk): "
        + "; ".join(
            f"{name} {x['dry_run']['wall_s']} s, {x['dry_run']['cpu_s']} s CPU, peak RSS "
            f"{x['dry_run']['peak_rss_mib']} MiB"
            for name, x in (("NDJSON", n), ("GoatCounter", g))
        )
        + ".",
        "",
        "DynamoDB Local's write requests, on disk (the same Timeline items; `scattered`: "
        "consecutive items in different partitions, `sorted`: neighbours; SQLite in "
        "write-ahead-log mode, as `livecount.aws.local` sets it, but the last row):",
        "",
        "| request | items | in flight | items/s | DynamoDB Local CPU µs/item | KiB written/item "
        "| load |",
        "|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {m['mode']} | {m['items']:,} | {m['in_flight']} | {m['items_per_s']:,} | "
        f"{m['java_us_per_item']} | {m['kib_written_per_item']} | {m['load']} |"
        for m in r["modes"]
    ]
    out += [
        "",
        "Commands (DDB: a DynamoDB Local on disk of its own):",
        "",
        "```sh",
        f"python -m bench.history --out DIR --posts {h['counts']} --views {h['views']} "
        f"--goatcounter-views {r['scale']['goatcounter_views']}",
        n["command"],
        g["command"],
        "```",
        "",
    ]
    return out + note("imports")


def main() -> None:
    """One history's imports alone, figures as JSON on stdout: before and after a change
    to the write path, without the rest of `make bench`."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--work", type=Path, required=True, help="the history and databases")
    p.add_argument("--posts", type=int, default=history.POSTS)
    p.add_argument("--views", type=int, default=history.VIEWS)
    p.add_argument("--goatcounter-views", type=int, default=ImportScale.goatcounter_views)
    p.add_argument("--skip-goatcounter", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="also read each file alone")
    args = p.parse_args()
    scale = ImportScale(args.posts, args.views, args.goatcounter_views)

    def log(text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    async def measured() -> dict[str, Any]:
        ndjson, goat, made = history_files(args.work, scale, log)
        out = {
            "history": made,
            "ndjson": await import_one(args.work, "ndjson", ndjson, [], log, args.dry_run),
        }
        if not args.skip_goatcounter:
            out["goatcounter"] = await import_one(
                args.work, "goatcounter", goat, ["--path-pattern", "/blog/{id}/"], log, args.dry_run
            )
        return out

    print(json.dumps(asyncio.run(measured()), indent=1))


if __name__ == "__main__":
    main()
