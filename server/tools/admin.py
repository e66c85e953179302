"""`livecount admin rename|delete`: move or remove every count of an article.

They work on the store directly, with the same store options as `serve`, so they run
with or without a server. Running servers keep counting meanwhile; see
`aws/store_admin.py` for why each step applies once. A run stopped anywhere (Ctrl-C,
a kill, DynamoDB away) is finished by running the same command again.

With a `livecount serve` running on `--data-dir`, the commands use the store it
recorded there (`node/store_record.py`: its endpoint, region and table prefix), the
embedded DynamoDB Local included. Without one, they open the store of their options;
with the embedded store they start DynamoDB Local themselves, holding the data dir
meanwhile as a node does.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import IO

import uvloop
from livecount import config, logs
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store
from livecount.aws.store_admin import Moved, Operations
from livecount.aws.store_errors import Answered, answer
from livecount.aws.store_rollups import Difference, Rollups
from livecount.core import sizes
from livecount.core.errors import ClientError, LivecountError
from livecount.core.moves import Plan
from livecount.node import claims, store_record
from livecount.node.store_record import StoreRecord

PROGRESS_EVERY = 50  # moves between two `admin_moved` log lines
NEVER_COUNTED = 1  # exit code: the id has no counts at all, as `livecount report` says
ROLLUPS_SHOWN = 20  # differing rollup rows printed, at most

ENV_NOTE = (f"Store options also read {config.ENV_PREFIX}<NAME>, as serve's do; a flag "
            "wins over the variable.")


# The options of `serve` these commands read: where the store is, and how paths map.
STORE_OPTIONS = ("data_dir", "dynamodb_endpoint", "region", "table_prefix", "node_id",
                 "log_level")


def add_store_options(parser: argparse.ArgumentParser, extra: tuple[str, ...] = ()) -> None:
    """`serve`'s options that say where the store is (and `extra` ones); the others
    keep their defaults, so that `config.from_args` reads a whole `Config`."""
    wanted = STORE_OPTIONS + extra
    config.add_options(parser, [o for o in config.OPTIONS if o.dest in wanted])
    parser.set_defaults(**{o.dest: o.default for o in config.OPTIONS if o.dest not in wanted})


def article_id(value: str) -> str:
    if (wrong := sizes.problem(value, sizes.ID)) is not None:
        raise argparse.ArgumentTypeError(f"an article id {wrong}, got {value[:60]!r}")
    return value


def store_config(ns: argparse.Namespace) -> config.Config:
    """The store options, checked, or the store of the node serving `--data-dir`; logs
    go to stderr, so stdout is the command's own."""
    try:
        cfg = config.from_args(ns)
    except ValueError as exc:
        ns.parser.error(str(exc))
    logs.setup(cfg.log_level, cfg.node_id)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    return with_node(cfg)


def with_node(cfg: config.Config) -> config.Config:
    """`cfg`, or with the store of the node serving `cfg.data_dir` if one does."""
    if (node := serving(cfg)) is None:
        return cfg
    return dataclasses.replace(cfg, dynamodb_endpoint=node.endpoint, region=node.region,
                               table_prefix=node.table_prefix, lease_time=node.lease_time)


def serving(cfg: config.Config) -> StoreRecord | None:
    """The store recorded by the `livecount serve` running on `cfg.data_dir`, if any."""
    if not claims.in_use(cfg.data_dir) or (node := store_record.read(cfg.data_dir)) is None:
        return None
    try:
        os.kill(node.pid, 0)
    except ProcessLookupError:  # left by a node that died; the lock is an admin tool's
        return None
    except PermissionError:  # alive, another user's
        pass
    return node


@contextlib.contextmanager
def _embedded_free(cfg: config.Config) -> Iterator[None]:
    """With the embedded store, hold the data dir as a node does (its journal locks),
    so that no server opens the same DynamoDB Local files meanwhile."""
    if cfg.dynamodb_endpoint != "embedded":
        yield
        return
    held: list[IO[str]] = []
    try:
        for journal in [cfg.data_dir / "journal", *sorted(cfg.data_dir.glob("worker-*/journal"))]:
            journal.mkdir(parents=True, exist_ok=True)
            lock: IO[str] = (journal / "lock").open("a")
            held.append(lock)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ClientError("store_in_use", (
                    f"{cfg.data_dir} is held by another livecount (a serve still starting, "
                    "or another command), and only one process may open the embedded "
                    "store's files: try again once it serves or has finished")) from None
        yield
    finally:
        for lock in held:
            lock.close()


@contextlib.asynccontextmanager
async def endpoint(cfg: config.Config) -> AsyncIterator[str]:
    """The URL of `cfg`'s store; the embedded one started for the duration, the data dir
    held meanwhile as a node holds it."""
    with _embedded_free(cfg):
        async with dynamodb_local.endpoint_for(cfg.dynamodb_endpoint, cfg.data_dir) as url:
            yield url


@contextlib.asynccontextmanager
async def opened(cfg: config.Config, create: bool = False, bulk: bool = False,
                 ) -> AsyncIterator[Store]:
    """The store of `cfg`'s options; its tables must exist unless `create`. `bulk`
    (an import): requests go unchecked by the SDK (`Store.open`)."""
    async with endpoint(cfg) as url, Store.open(
            url, cfg.region, cfg.table_prefix, cfg.node_id, validate=not bulk) as store:
        if create:
            await store.create_tables()
        else:
            await _tables_exist(store)
        yield store


async def _tables_exist(store: Store) -> None:
    try:
        await answer(store.ddb.describe_table(TableName=store.tables.writer),
                     store.tables.writer, expected=["ResourceNotFoundException"])
    except Answered:
        raise ClientError("no_tables", f"there is no table {store.tables.writer}: check "
                                       "--dynamodb-endpoint and --table-prefix") from None


def progress(done: int, of: int) -> None:
    if done % PROGRESS_EVERY == 0 or done == of:
        logs.log("admin_moved", done=done, of=of)


async def operate(cfg: config.Config, plan: Plan, purge: bool) -> Moved:
    async with opened(cfg) as store:
        return await Operations(store).run(plan, progress, purge)


def report(moved: Moved) -> str:
    plan = moved.plan
    lines = [f"Resumed the unfinished {plan.describe()}."] if moved.resumed else []
    views = f"{moved.views.total:,} views ({moved.views.unique:,} unique)"
    if plan.to is None:
        lines.append(f"Deleted {plan.article!r}: {moved.items:,} items emptied, {views} "
                     "taken out of the site's totals.")
        if moved.purged:
            lines.append(f"Purged {moved.purged:,} emptied items.")
    else:
        assert moved.now is not None
        lines.append(f"Renamed {plan.article!r} to {plan.to!r}: {moved.items:,} items moved, "
                     f"{views} added to {plan.to!r}, which now has {moved.now.total:,} views "
                     f"({moved.now.unique:,} unique).")
        lines.append(f"Views still sent for {plan.article!r} count under it: run this again "
                     "to move them.")
    return "\n".join(lines)


def failed(exc: LivecountError) -> int:
    """One line on stderr for what the store or the input refused, as exit code 2 (1
    for an id never counted, as `livecount report` says): a rerun finishes the rest."""
    print(f"livecount: {exc.detail}", file=sys.stderr)
    return NEVER_COUNTED if exc.code == "never_counted" else 2


def _run(ns: argparse.Namespace, plan: Plan, purge: bool = False) -> int:
    cfg = store_config(ns)
    try:
        moved = uvloop.run(operate(cfg, plan, purge))
    except LivecountError as exc:
        return failed(exc)
    print(report(moved))
    return 0


def _rename(ns: argparse.Namespace) -> int:
    if ns.old == ns.new:
        ns.parser.error("OLD and NEW are the same id")
    return _run(ns, Plan(ns.old, ns.new))


def _delete(ns: argparse.Namespace) -> int:
    if (ns.article is None) == (ns.prefix is None):
        ns.parser.error("give one article ID, or --prefix, not both")
    if ns.article is not None:
        return _run(ns, Plan(ns.article), ns.purge)
    cfg = store_config(ns)
    try:
        done = uvloop.run(_delete_prefixed(cfg, ns.prefix, ns.purge))
    except LivecountError as exc:
        return failed(exc)
    if not done:
        print(f"livecount: no counted article id starts with {ns.prefix!r}", file=sys.stderr)
        return NEVER_COUNTED
    for moved in done:
        print(report(moved))
    print(f"Deleted {len(done):,} articles whose id starts with {ns.prefix!r}.")
    return 0


def title(value: str) -> str:
    """A title as the protocol takes one, and not blank: it is what the reports show."""
    if (wrong := sizes.problem(value, sizes.TITLE)) is not None or not sizes.shows(value):
        raise argparse.ArgumentTypeError(f"a title {wrong or 'must show something'}, got "
                                         f"{value[:60]!r}")
    return value


def _title(ns: argparse.Namespace) -> int:
    cfg = store_config(ns)

    async def retitle() -> None:
        async with opened(cfg) as store:
            await Operations(store).retitle(ns.article, ns.title)

    try:
        uvloop.run(retitle())
    except LivecountError as exc:
        return failed(exc)
    print(f"{ns.article!r} is titled {ns.title!r}: views keep this title from now on.")
    return 0


def _rollups(ns: argparse.Namespace) -> int:
    cfg = store_config(ns)

    async def rollups() -> tuple[list[Difference], tuple[int, int]]:
        async with opened(cfg) as store:
            found = await Rollups(store).check()
            return found, (0, 0) if ns.check or not found else await Rollups(store).rebuild()

    try:
        found, (fixed, changed) = uvloop.run(rollups())
    except LivecountError as exc:
        return failed(exc)
    for row, stored, expected in found[:ROLLUPS_SHOWN]:
        print(f"{row.target} {row.sort}: {stored.total} views ({stored.unique} unique), "
              f"its hours sum to {expected.total} ({expected.unique})")
    if len(found) > ROLLUPS_SHOWN:
        print(f"… and {len(found) - ROLLUPS_SHOWN:,} more")
    if ns.check:
        print(f"{len(found):,} rollup rows differ from their hours" if found
              else "Every rollup row is the sum of its hours.")
        return 1 if found else 0
    print(f"Rebuilt {fixed:,} rollup rows from their hours." if found
          else "Every rollup row is the sum of its hours: nothing to rebuild.")
    if changed:
        print(f"{changed:,} rows changed while this ran (a node is serving): stop every "
              "node and run it again.")
    return 1 if changed else 0


async def _delete_prefixed(cfg: config.Config, prefix: str, purge: bool) -> list[Moved]:
    async with opened(cfg) as store:
        return await delete_prefixed(store, prefix, purge)


async def delete_prefixed(store: Store, prefix: str, purge: bool = False) -> list[Moved]:
    """Every counted post whose id starts with `prefix` (a load test's `loadtest-`),
    deleted one after the other, each exactly once as `delete ID` is."""
    operations = Operations(store)
    found = [t.id for t in await store.tracked()
             if t.kind == "post" and t.id.startswith(prefix)]
    return [await operations.run(Plan(article), progress, purge) for article in found]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser(
        "admin", help="rename, delete or title an article; check or rebuild rollups",
        description="Operations on the stored counts of one article, straight on the "
                    "store. Each is resumable: run it again to finish one that stopped.",
        epilog="Each has its own help: livecount admin rename --help, …")
    actions = admin.add_subparsers(dest="action", required=True)
    rename = actions.add_parser(
        "rename", help="move every count of OLD onto NEW (merging)",
        description="Move every count of the article OLD onto NEW: totals and unique views, "
                    "every hour of its timeline, every referrer, and its place in the page "
                    "listing. NEW's own counts stay; OLD's add to them. Views sent for OLD "
                    "afterwards count under OLD: run it again to move them. An id that "
                    "starts with - goes after --: rename [options] -- -old NEW.",
        epilog=ENV_NOTE)
    rename.add_argument("old", metavar="OLD", type=article_id, help="the article id it had")
    rename.add_argument("new", metavar="NEW", type=article_id, help="the article id it has now")
    add_store_options(rename)
    rename.set_defaults(run=_rename, parser=rename,
                        ids_hint="livecount admin rename [options] -- -old-id -new-id")
    delete = actions.add_parser(
        "delete", help="remove every count of an article",
        description="Remove every count of the article ID: its totals, timeline and "
                    "referrers, also from the site's totals, and its place in the page "
                    "listing. Emptied items stay, at zero, so that a node's resent write "
                    "cannot count twice; --purge removes them too.",
        epilog=ENV_NOTE)
    delete.add_argument("article", metavar="ID", type=article_id, nargs="?",
                        help="the article id")
    delete.add_argument("--prefix", type=article_id,
                        help="instead of one ID, every article whose id starts with this: "
                             "--prefix loadtest- removes what a load test counted")
    delete.add_argument("--purge", action="store_true",
                        help="also remove the emptied items; only when no node may still "
                             "resend a write of this article (all stopped cleanly)")
    add_store_options(delete)
    delete.set_defaults(run=_delete, parser=delete,
                        ids_hint="livecount admin delete [options] -- -the-id")
    retitle = actions.add_parser(
        "title", help="give a post the title reports show",
        description="Give the post ID this TITLE. A post keeps the first title a view "
                    "gave it (any client can send views, so no view renames a post); "
                    "this is how the operator changes it.", epilog=ENV_NOTE)
    retitle.add_argument("article", metavar="ID", type=article_id, help="the article id")
    retitle.add_argument("title", metavar="TITLE", type=title, help="its title")
    add_store_options(retitle)
    retitle.set_defaults(run=_title, parser=retitle,
                         ids_hint="livecount admin title [options] -- -the-id TITLE")
    rollups = actions.add_parser(
        "rollups", help="check the report rollups against the hours, or rebuild them",
        description="Every rollup row (a page's views in an hour, day, month or all time, "
                    "which period reports read) is the sum of its hour rows. Check that "
                    "they are, or make them so: once after upgrading from a version "
                    "without rollups, with every node stopped (a node writes a view's "
                    "hour and rollups one after the other). Exit code 1 when rows "
                    "differ (--check) or changed meanwhile.", epilog=ENV_NOTE)
    rollups.add_argument("--check", action="store_true",
                         help="only say which rows differ; change nothing")
    add_store_options(rollups)
    rollups.set_defaults(run=_rollups, parser=rollups)

