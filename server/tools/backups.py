"""`livecount backup` and `livecount restore`: the whole store to a file while nodes
serve, and that file into an empty store.

A backup is a livecount export (NDJSON, `core/exports.py`), taken once every node has
stored what it acknowledged before the backup began: a node answers a view once the
view is in its journal, before it is in DynamoDB. So the backup first writes a sync
request on the live feed, waits until every live node says it has stored what it held
(`core/syncs.py`), and only then reads the tables. It finds the store as the other
tools do (with a node serving `--data-dir`, the store that node recorded); with the
embedded store and no node running it starts DynamoDB Local itself, and no node can
hold anything.

A restore is the import of a backup (`livecount import`'s chunks, each applied once)
into a store that holds nothing, so that the reports come back exactly. Stopped half
way (Ctrl-C), it is undone as an import is, and says so; if even that is cut short,
the same command finishes the restore.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import IO

import uvloop
from livecount import config
from livecount.aws.store import Store
from livecount.aws.store_admin import Exports
from livecount.aws.store_imports import Begun, Imports, ImportUndo
from livecount.core import exports, feed, imports
from livecount.core.errors import ClientError, LivecountError
from livecount.core.import_chunks import ImportRecord
from livecount.core.syncs import Roll
from livecount.tools.admin import (
    ENV_NOTE,
    add_store_options,
    failed,
    opened,
    serving,
    store_config,
)
from livecount.tools.import_plan import ImportPlan
from livecount.tools.importer import in_flight
from livecount.tools.progress import STOPPED, ProgressReport
from livecount.tools.transfer import _output

LOOK_EVERY = 0.25  # seconds between two looks for the nodes' answers


# -- backup ---------------------------------------------------------------------------------
async def sync(store: Store, lease_time: float, within: float, shown: ProgressReport) -> list[str]:
    """Ask every live node to store what it acknowledged so far, and wait until each
    says it did (or is seen gone); the nodes that answered."""
    loop = asyncio.get_running_loop()
    began = time.time()
    cursor = int((began - lease_time) * 1e6) * 1000  # feed stamps: microseconds, times 1000
    roll = Roll(lease_time)
    request = uuid.uuid4().hex
    arn = await store.stream.stream_arn()
    asked = False
    deadline = loop.time() + within
    while True:
        # A shard read to its end says nothing of its owner: it keeps its last owner.
        leases = [i.lease for i in await store.stream.leases.items(arn) if not i.finished]
        items = await store.feed.read(feed.window_start(cursor))
        said = feed_nodes(items, request, roll)
        roll.seen(leases, said, loop.time())
        cursor = feed.next_cursor(cursor, (at for at, _ in items))
        if not roll.nodes:
            return []
        if not asked:
            now = time.time()
            stamp = feed.stamps(int(now * 1e6), zlib.crc32(request.encode()), 1)[0]
            await store.feed.write([(stamp, feed.sync(request))], int(now) + feed.TTL_SECONDS)
            asked = True
        waiting = roll.waiting(loop.time())
        shown.step("sync", len(roll.nodes) - len(waiting), len(roll.nodes))
        if gone := roll.failed():
            raise ClientError(
                "sync_failed",
                f"node {', '.join(gone)} could not store the "
                "views it holds in time: no backup written",
            )
        if not waiting:
            return sorted(roll.answers)
        if loop.time() > deadline:
            raise ClientError(
                "sync_timeout",
                (
                    f"node {', '.join(waiting)} did not say within {within:g} s that it stored "
                    "the views it holds: no backup written (is it stuck? --wait gives it longer)"
                ),
            )
        await asyncio.sleep(LOOK_EVERY)


def feed_nodes(items: list[tuple[int, str]], request: str, roll: Roll) -> list[tuple[str, int]]:
    """The answers to `request` among feed `items` (given to `roll`), and which nodes
    said their readers in them, when."""
    said: list[tuple[str, int]] = []
    for at, payload in items:
        value = feed.read(payload)
        if isinstance(value, feed.Synced) and value.request == request:
            roll.answered(value.node, value.stored)
        elif isinstance(value, feed.Said):
            said.append((value.node, at))
    return said


async def backup(
    cfg: config.Config, out: IO[str], within: float, shown: ProgressReport
) -> tuple[list[str], dict[str, int]]:
    """Sync the nodes, then write every record; the nodes synced and what was written."""
    written = {"count": 0, "timeline": 0, "referrer": 0}
    async with opened(cfg) as store:
        # The embedded store opened here: no node runs on it, none holds anything.
        synced = (
            []
            if cfg.dynamodb_endpoint == "embedded"
            else await sync(store, cfg.lease_time, within, shown)
        )
        out.write(exports.ndjson_head(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        async for record in Exports(store).records(lambda done, of: shown.step("read", done, of)):
            out.write(exports.ndjson_line(record))
            written[record.record] += 1
    return synced, written


def default_file() -> Path:
    return Path(time.strftime("livecount-backup-%Y%m%dT%H%M%SZ.ndjson", time.gmtime()))


def _run_backup(ns: argparse.Namespace) -> int:
    cfg = store_config(ns)
    path: Path = ns.file or default_file()
    shown = ProgressReport(
        "backup", ns.json, {"sync": "nodes storing what they hold", "read": "reading the tables"}
    )
    try:
        with shown, _output(path) as out:
            synced, written = uvloop.run(backup(cfg, out, ns.wait, shown))
    except KeyboardInterrupt:
        print(f"livecount: backup stopped: nothing written ({path} untouched)", file=sys.stderr)
        return STOPPED
    except LivecountError as exc:
        return failed(exc)
    except OSError as exc:
        print(f"livecount: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    nodes = (
        f"it holds every view that the running node{'s' * (len(synced) > 1)} "
        f"{', '.join(synced)} acknowledged before it began"
        if synced
        else "no node was running"
    )
    shown.outcome(
        f"Backed up to {path}: {written['count']:,} posts and pages, "
        f"{written['timeline']:,} hours, {written['referrer']:,} referrers; {nodes}.",
        file=str(path),
        counts=written["count"],
        hours=written["timeline"],
        referrers=written["referrer"],
        synced=synced,
    )
    return 0


# -- restore --------------------------------------------------------------------------------
async def restore(
    cfg: config.Config,
    plan: ImportPlan,
    fresh: ImportRecord,
    shown: ProgressReport,
    stopped: list[str],
) -> Begun:
    """The backup's import into the empty store; Ctrl-C takes it back (`stopped` says
    whether that left the store empty)."""
    async with opened(cfg, create=True, bulk=True) as store:
        done = Imports(store)
        if (held := await done.holds(fresh.id)) is not None:
            raise ClientError(
                "not_empty",
                (
                    f"the store of {cfg.data_dir} already holds {held}: restore writes into an "
                    "empty store only (give another --data-dir, or --table-prefix)"
                ),
            )
        try:
            begun, _ = await done.run(
                fresh,
                plan.chunks(),
                plan.targets(),
                lambda n, of: shown.step("write", n, of),
                in_flight(cfg),
            )
            return begun
        except asyncio.CancelledError:  # Ctrl-C: the store held nothing before
            if await done.record(fresh.id) is not None:
                await ImportUndo(store).undo(fresh.id, in_flight=in_flight(cfg))
            stopped.append("empty" if await done.holds() is None else "part")
            raise


def _run_restore(ns: argparse.Namespace) -> int:
    cfg = store_config(ns)
    if serving(cfg) is not None:
        print(
            f"livecount: a livecount serve is running on {cfg.data_dir}: restore writes "
            "into a store no node counts in; stop it first, or give another --data-dir",
            file=sys.stderr,
        )
        return 2
    shown = ProgressReport(
        "restore", ns.json, {"read": f"reading {ns.file.name}", "write": "writing the store"}
    )
    stopped: list[str] = []
    try:
        with ImportPlan.temporary() as plan, shown:
            reader = plan.read(
                ns.file,
                cfg.pages,
                (),
                imports.MAX_EXPANDED,
                lambda n, of: shown.step("read", n, of),
                parts=False,
            )
            if reader.format != "livecount":
                raise ClientError(
                    "not_a_backup",
                    f"{ns.file} is a {reader.format} export, "
                    "not a livecount backup: use livecount import",
                )
            fresh = plan.record(reader, ns.file.name)
            begun = uvloop.run(restore(cfg, plan, fresh, shown, stopped))
    except KeyboardInterrupt:
        if stopped == ["empty"]:
            print(
                "livecount: restore stopped: what it had written is taken back, the store is empty",
                file=sys.stderr,
            )
        else:
            print(
                f"livecount: restore stopped: the store holds part of {ns.file}; run "
                f"livecount restore {ns.file} again to finish it",
                file=sys.stderr,
            )
        return STOPPED
    except LivecountError as exc:
        return failed(exc)
    except OSError as exc:
        print(f"livecount: cannot read {ns.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    shown.outcome(
        f"Restored {fresh.posts + fresh.pages:,} posts and pages ({fresh.views:,} views), "
        f"{fresh.adds - fresh.posts - fresh.pages:,} report rows from {ns.file} into "
        f"{cfg.data_dir}.",
        file=str(ns.file),
        counts=fresh.posts + fresh.pages,
        rows=fresh.adds - fresh.posts - fresh.pages,
        views=fresh.views,
        resumed=begun.resumed,
        id=fresh.id,
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    save = commands.add_parser(
        "backup",
        help="write every count to a file, while nodes serve",
        description="Write every stored count (the export format, NDJSON) to FILE, whole or "
        "not at all, after every running node has stored the views it "
        "acknowledged: the file holds every view acknowledged before the backup "
        "began. With a node serving --data-dir, its store is used; that is the "
        "only option needed.",
        epilog=ENV_NOTE,
    )
    save.add_argument(
        "file",
        metavar="FILE",
        type=config.path,
        nargs="?",
        help="where to write (default: livecount-backup-<UTC time>.ndjson)",
    )
    save.add_argument(
        "--wait",
        type=config.positive(float),
        default=60.0,
        metavar="SECONDS",
        help="how long the nodes get to store what they hold (default: 60)",
    )
    save.add_argument(
        "--json",
        action="store_true",
        help="progress and outcome as JSON lines (the default off a terminal)",
    )
    add_store_options(save, ("lease_time",))
    save.set_defaults(run=_run_backup, parser=save)
    load = commands.add_parser(
        "restore",
        help="write a backup into an empty store",
        description="Write the backup FILE into the store of --data-dir (or --table-prefix, "
        "--dynamodb-endpoint), which must hold nothing: then /api/pages, the "
        "referrers and the timeline are those of the backup. Stopped with Ctrl-C, "
        "it takes back what it wrote (as import --undo does); run it again to finish a "
        "restore cut short.",
        epilog=ENV_NOTE,
    )
    load.add_argument("file", metavar="FILE", type=config.path, help="a livecount backup")
    load.add_argument(
        "--json",
        action="store_true",
        help="progress and outcome as JSON lines (the default off a terminal)",
    )
    add_store_options(load)
    load.set_defaults(run=_run_restore, parser=load)
