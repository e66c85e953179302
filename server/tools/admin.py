"""`livecount admin rename|delete|title`: move or remove every count of a post or a
page (or of every id with a prefix), or title a post.

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
import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import shlex
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import IO

import uvloop
from livecount import config, logs
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store
from livecount.aws.store_admin import BulkDeletes, Deleted, Moved, Operations
from livecount.aws.store_errors import Answered, answer
from livecount.aws.store_rollups import Difference, Rollups
from livecount.core import pages, sizes
from livecount.core.errors import ClientError, LivecountError
from livecount.core.ledger import ZERO, Counts
from livecount.core.moves import Plan
from livecount.core.pages import Target
from livecount.node import claims, store_record
from livecount.node.store_record import StoreRecord
from livecount.tools.progress import STOPPED, ProgressReport

PROGRESS_EVERY = 50  # moves between two `admin_moved` log lines
NEVER_COUNTED = 1  # exit code: the id has no counts at all, as `livecount report` says
ROLLUPS_SHOWN = 20  # differing rollup rows printed, at most

ENV_NOTE = (
    f"Store options also read {config.ENV_PREFIX}<NAME>, as serve's do; a flag "
    "wins over the variable."
)


# The options of `serve` these commands read: where the store is, and how paths map.
STORE_OPTIONS = ("data_dir", "dynamodb_endpoint", "region", "table_prefix", "node_id", "log_level")


def add_store_options(parser: argparse.ArgumentParser, extra: tuple[str, ...] = ()) -> None:
    """`serve`'s options that say where the store is (and `extra` ones); the others
    keep their defaults, so that `config.from_args` reads a whole `Config`."""
    wanted = STORE_OPTIONS + extra
    config.add_options(parser, [o for o in config.OPTIONS if o.dest in wanted])
    parser.set_defaults(**{o.dest: o.default for o in config.OPTIONS if o.dest not in wanted})


def article_id(value: str, limit: sizes.TextLimit = sizes.ID) -> str:
    if (wrong := sizes.problem(value, limit)) is not None:
        raise argparse.ArgumentTypeError(f"an article id {wrong}, got {value[:60]!r}")
    return value


def stored_id(value: str) -> str:
    """The id of a row to rename away or delete: whatever a key held, so that one
    stored before a rule of `sizes.ID` came in can still go."""
    return article_id(value, sizes.STORED_ID)


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
    return dataclasses.replace(
        cfg,
        dynamodb_endpoint=node.endpoint,
        region=node.region,
        table_prefix=node.table_prefix,
        lease_time=node.lease_time,
    )


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
                raise ClientError(
                    "store_in_use",
                    (
                        f"{cfg.data_dir} is held by another livecount (a serve still starting, "
                        "or another command), and only one process may open the embedded "
                        "store's files: try again once it serves or has finished"
                    ),
                ) from None
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
async def opened(
    cfg: config.Config,
    create: bool = False,
    bulk: bool = False,
) -> AsyncIterator[Store]:
    """The store of `cfg`'s options; its tables must exist unless `create`. `bulk`
    (an import): requests go unchecked by the SDK (`Store.open`)."""
    async with (
        endpoint(cfg) as url,
        Store.open(url, cfg.region, cfg.table_prefix, cfg.node_id, validate=not bulk) as store,
    ):
        if create:
            await store.create_tables()
        else:
            await _tables_exist(store)
        yield store


async def _tables_exist(store: Store) -> None:
    try:
        await answer(
            store.ddb.describe_table(TableName=store.tables.writer),
            store.tables.writer,
            expected=["ResourceNotFoundException"],
        )
    except Answered:
        raise ClientError(
            "no_tables",
            f"there is no table {store.tables.writer}: check "
            "--dynamodb-endpoint and --table-prefix",
        ) from None


def progress(done: int, of: int) -> None:
    if done % PROGRESS_EVERY == 0 or done == of:
        logs.log("admin_moved", done=done, of=of)


async def operate(cfg: config.Config, plan: Plan, purge: bool) -> Moved:
    async with opened(cfg) as store:
        operations = Operations(store)
        try:
            return await operations.run(plan, progress, purge)
        except ClientError as exc:
            if exc.code != "never_counted" or plan.kind != "post":
                raise
            page = Target("page", plan.id)
            if not (await operations.counts([page])).get(page, (ZERO, ""))[0].total:
                raise
            ids = " ".join(shlex.quote(i) for i in (plan.id, plan.to) if i is not None)
            raise ClientError(
                "never_counted",
                (
                    f"no post {plan.id!r} has views, but a page of that name does: livecount "
                    f"admin {plan.op} --page {ids}"
                ),
            ) from None


def named(plan: Plan) -> str:
    return repr(plan.id) if plan.kind == "post" else f"the page {plan.id!r}"


def report(moved: Moved) -> str:
    plan = moved.plan
    lines = [f"Resumed the unfinished {plan.describe()}."] if moved.resumed else []
    views = f"{moved.views.total:,} views ({moved.views.unique:,} unique)"
    if plan.to is None:
        lines.append(
            f"Deleted {named(plan)}: {moved.items:,} items emptied, {views} "
            "taken out of the site's totals."
        )
        if moved.purged:
            lines.append(f"Purged {moved.purged:,} emptied items.")
    else:
        assert moved.now is not None
        lines.append(
            f"Renamed {named(plan)} to {plan.to!r}: {moved.items:,} items moved, "
            f"{views} added to {plan.to!r}, which now has {moved.now.total:,} views "
            f"({moved.now.unique:,} unique)."
        )
        lines.append(
            f"Views still sent for {plan.id!r} count under it: run this again to move them."
        )
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


def _kind(ns: argparse.Namespace) -> pages.Kind:
    return "page" if ns.page else "post"


def _rename(ns: argparse.Namespace) -> int:
    if ns.old == ns.new:
        ns.parser.error("OLD and NEW are the same id")
    return _run(ns, Plan(ns.old, ns.new, _kind(ns)))


def _delete(ns: argparse.Namespace) -> int:
    if (ns.article is None) == (ns.prefix is None):
        ns.parser.error("give one ID, or --prefix, not both")
    if ns.prefix is None:
        if ns.dry_run or ns.json:
            ns.parser.error("--dry-run and --json go with --prefix")
        return _run(ns, Plan(ns.article, None, _kind(ns)), ns.purge)
    if ns.page:
        ns.parser.error("--prefix deletes posts and pages alike: leave out --page")
    return _delete_prefix(ns)


# -- every id with a prefix -----------------------------------------------------------------
async def delete_prefixed(
    cfg: config.Config,
    prefix: str,
    deleted: Deleted,
    shown: ProgressReport,
    purge: bool = False,
    dry_run: bool = False,
) -> dict[Target, Counts]:
    """The posts and pages whose id starts with `prefix` (`BulkDeletes.matching`), each
    deleted exactly once as `delete ID` is (unless `dry_run`), into `deleted`. Cancelled
    (Ctrl-C), it begins no other id and finishes those under way: each id is then
    deleted whole or untouched (a second Ctrl-C stops even those: their next run
    finishes them)."""
    async with opened(cfg) as store:
        operations = BulkDeletes(store)
        found = await operations.matching(prefix)
        deleted.targets = list(found)
        if dry_run or not found:
            return found
        shown.step("delete", 0, len(found))
        stop = asyncio.Event()
        work = asyncio.ensure_future(
            operations.delete_all(
                deleted, stop, lambda done, of: shown.step("delete", done, of), purge
            )
        )
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            await work
            raise
        return found


def _delete_prefix(ns: argparse.Namespace) -> int:
    cfg = store_config(ns)
    prefix: str = ns.prefix
    shown = ProgressReport("delete", ns.json, {"delete": f"deleting ids starting with {prefix}"})
    deleted = Deleted([])
    try:
        with shown:
            found = uvloop.run(delete_prefixed(cfg, prefix, deleted, shown, ns.purge, ns.dry_run))
    except KeyboardInterrupt:
        part, views = sorted(deleted.under_way), deleted.views
        text = (
            f"Stopped: {len(deleted.done):,} of {len(deleted.targets):,} ids starting with "
            f"{prefix!r} deleted whole ({views.total:,} views taken out), "
        )
        text += (
            f"{', '.join(repr(t.id) for t in part)} part way, the others untouched"
            if part
            else "the others untouched"
        )
        shown.outcome(
            f"{text}: run the same command again to delete the rest.",
            prefix=prefix,
            stopped=True,
            deleted=_ids(m.plan.target for m in deleted.done),
            totalViews=views.total,
            uniqueViews=views.unique,
            partWay=_ids(part),
            left=_ids(deleted.left),
        )
        return STOPPED
    except LivecountError as exc:
        return failed(exc)
    viewed = {t: c for t, c in found.items() if c.total}
    if not (viewed if ns.dry_run else deleted.done or deleted.refused):
        print(
            f"livecount: no post or page with views has an id starting with {prefix!r}",
            file=sys.stderr,
        )
        return NEVER_COUNTED
    if ns.dry_run:
        views = Counts(
            sum(c.total for c in viewed.values()), sum(c.unique for c in viewed.values())
        )
        lines = [
            f"{t.kind}  {t.id}  {c.total:,} views ({c.unique:,} unique)" for t, c in viewed.items()
        ]
        shown.outcome(
            "\n".join(
                [
                    *lines,
                    f"Would delete {_counted(viewed)} starting with "
                    f"{prefix!r}: {views.total:,} views ({views.unique:,} "
                    "unique). Nothing was written.",
                ]
            ),
            prefix=prefix,
            dryRun=True,
            ids=[
                t.named | {"totalViews": c.total, "uniqueViews": c.unique}
                for t, c in viewed.items()
            ],
            totalViews=views.total,
            uniqueViews=views.unique,
        )
        return 0
    views = deleted.views
    lines = [
        f"Deleted {_counted(m.plan.target for m in deleted.done)} starting with "
        f"{prefix!r}: {views.total:,} views ({views.unique:,} unique) taken out of the "
        "site's totals."
    ]
    purged = sum(m.purged for m in deleted.done)
    if purged:
        lines.append(f"Purged {purged:,} emptied items.")
    for target, why in deleted.refused.items():
        lines.append(f"Not deleted: {target.kind} {target.id!r}: {why}.")
    shown.outcome(
        "\n".join(lines),
        prefix=prefix,
        deleted=_ids(m.plan.target for m in deleted.done),
        totalViews=views.total,
        uniqueViews=views.unique,
        items=sum(m.items for m in deleted.done),
        purged=purged,
        refused=[t.named | {"detail": why} for t, why in deleted.refused.items()],
    )
    return 2 if deleted.refused else 0


def _ids(targets: Iterable[Target]) -> list[dict[str, str]]:
    return [t.named for t in targets]


def _counted(targets: Iterable[Target]) -> str:
    """`3 posts and 1 page`: how many of each kind."""
    kinds = Counter(t.kind for t in targets)
    parts = [f"{n:,} {kind}{'s' * (n != 1)}" for kind in ("post", "page") if (n := kinds[kind])]
    return " and ".join(parts) or "no ids"


# -- titles ---------------------------------------------------------------------------------
def title(value: str) -> str:
    """A title as the protocol takes one, and not blank: it is what the reports show."""
    if (wrong := sizes.problem(value, sizes.TITLE)) is not None or not sizes.shows(value):
        raise argparse.ArgumentTypeError(
            f"a title {wrong or 'must show something'}, got {value[:60]!r}"
        )
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
        print(
            f"{row.target} {row.sort}: {stored.total} views ({stored.unique} unique), "
            f"its hours sum to {expected.total} ({expected.unique})"
        )
    if len(found) > ROLLUPS_SHOWN:
        print(f"… and {len(found) - ROLLUPS_SHOWN:,} more")
    if ns.check:
        print(
            f"{len(found):,} rollup rows differ from their hours"
            if found
            else "Every rollup row is the sum of its hours."
        )
        return 1 if found else 0
    print(
        f"Rebuilt {fixed:,} rollup rows from their hours."
        if found
        else "Every rollup row is the sum of its hours: nothing to rebuild."
    )
    if changed:
        print(
            f"{changed:,} rows changed while this ran (a node is serving): stop every "
            "node and run it again."
        )
    return 1 if changed else 0


PAGE_HELP = "the ids name pages (such as Home_Page, or a path's own page such as /about), not posts"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser(
        "admin",
        help="rename or delete the counts of a post or page, or title a post; "
        "check or rebuild rollups",
        description="Operations on the stored counts of posts and pages, straight on the "
        "store, while nodes serve. Each is resumable: run it again to finish one "
        "that stopped.",
        epilog="Each has its own help: livecount admin rename --help, …",
    )
    actions = admin.add_subparsers(dest="action", required=True)
    rename = actions.add_parser(
        "rename",
        help="move every count of OLD onto NEW (merging)",
        description="Move every count of the post (or with --page, the page) OLD onto NEW: "
        "totals and unique views, every hour of its timeline, every referrer, and "
        "its place in the page listing. NEW's own counts stay; OLD's add to them. "
        "Views sent for OLD afterwards count under OLD: run it again to move them. "
        "An id that starts with - goes after --: rename [options] -- -old NEW.",
        epilog=ENV_NOTE,
    )
    rename.add_argument("old", metavar="OLD", type=stored_id, help="the id it had")
    rename.add_argument("new", metavar="NEW", type=article_id, help="the id it has now")
    rename.add_argument("--page", action="store_true", help=PAGE_HELP)
    add_store_options(rename)
    rename.set_defaults(
        run=_rename, parser=rename, ids_hint="livecount admin rename [options] -- -old-id -new-id"
    )
    delete = actions.add_parser(
        "delete",
        help="remove every count of a post or page, or of every id with a prefix",
        description="Remove every count of the post ID (or with --page, the page ID), or of "
        "every post and page whose id starts with --prefix: totals, timeline and "
        "referrers, also from the site's totals, and the place in the page "
        "listing. Emptied items stay, at zero, so that a node's resent write "
        "cannot count twice; --purge removes them too.",
        epilog=ENV_NOTE,
    )
    delete.add_argument(
        "article",
        metavar="ID",
        type=stored_id,
        nargs="?",
        help="the post's id, or with --page the page's name",
    )
    delete.add_argument("--page", action="store_true", help=PAGE_HELP)
    delete.add_argument(
        "--prefix",
        type=article_id,
        help="instead of one ID, every post and page whose id starts with "
        "this: --prefix loadtest- removes what a load test counted. "
        "Ctrl-C stops it cleanly: each id is deleted whole or untouched",
    )
    delete.add_argument(
        "--dry-run",
        action="store_true",
        help="with --prefix: list the ids and views it would delete, and write nothing",
    )
    delete.add_argument(
        "--json",
        action="store_true",
        help="with --prefix: progress and outcome as JSON lines (the default off a terminal)",
    )
    delete.add_argument(
        "--purge",
        action="store_true",
        help="also remove the emptied items; only when no node may still "
        "resend a write of these ids (all stopped cleanly)",
    )
    add_store_options(delete)
    delete.set_defaults(
        run=_delete, parser=delete, ids_hint="livecount admin delete [options] -- -the-id"
    )
    retitle = actions.add_parser(
        "title",
        help="give a post the title reports show",
        description="Give the post ID this TITLE. A post keeps the first title a view "
        "gave it (any client can send views, so no view renames a post); "
        "this is how the operator changes it.",
        epilog=ENV_NOTE,
    )
    retitle.add_argument("article", metavar="ID", type=article_id, help="the article id")
    retitle.add_argument("title", metavar="TITLE", type=title, help="its title")
    add_store_options(retitle)
    retitle.set_defaults(
        run=_title, parser=retitle, ids_hint="livecount admin title [options] -- -the-id TITLE"
    )
    rollups = actions.add_parser(
        "rollups",
        help="check the report rollups against the hours, or rebuild them",
        description="Every rollup row (a page's views in an hour, day, month or all time, "
        "which period reports read) is the sum of its hour rows. Check that "
        "they are, or make them so: once after upgrading from a version "
        "without rollups, with every node stopped (a node writes a view's "
        "hour and rollups one after the other). Exit code 1 when rows "
        "differ (--check) or changed meanwhile.",
        epilog=ENV_NOTE,
    )
    rollups.add_argument(
        "--check", action="store_true", help="only say which rows differ; change nothing"
    )
    add_store_options(rollups)
    rollups.set_defaults(run=_rollups, parser=rollups)
