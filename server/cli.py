"""The `livecount` command. Each subcommand's module registers its own parser.

A module adds a subcommand with `register(commands)`, setting `run` to a function
`(argparse.Namespace) -> int`; this file only lists the modules.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

import uvloop
from livecount import config, logs
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store
from livecount.core.errors import ClientError, StoreRefused, Unavailable
from livecount.node import claims, workers
from livecount.node import lifecycle as app
from livecount.node.banner import version
from livecount.node.journal import JournalBusy
from livecount.tools import admin, backups, importer, loadtest, transfer
from livecount.tools import report as console


def _serve(ns: argparse.Namespace) -> int:
    cfg = _config(ns)
    _fewer_collections()
    if cfg.workers > 1:
        return workers.serve(cfg)
    listener = claims.claim(cfg.host, cfg.port, share=False)  # before anything starts
    journal = claims.hold(cfg.data_dir)
    workers.refuse_strays(cfg)
    uvloop.run(app.run(cfg, sock=listener, journal=journal))
    return 0


def _fewer_collections() -> None:
    """A view allocates a few short-lived containers and makes no cycles: at the
    default threshold (700) the cyclic collector ran every few hundred views and took
    about a tenth of the loop (py-spy, issue 12). Freeze what start-up made, so full
    collections skip it, and collect the young generation 70x less often."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _tables_create(ns: argparse.Namespace) -> int:
    cfg = admin.with_node(_config(ns))  # a node serving --data-dir: its store

    async def create() -> None:
        async with admin.endpoint(cfg) as url, \
                Store.open(url, cfg.region, cfg.table_prefix) as store:
            made = await store.create_tables()
            logs.log("tables_ready", created=made, writer=store.tables.writer)

    uvloop.run(create())
    return 0


def _config(ns: argparse.Namespace) -> config.Config:
    try:
        cfg = config.from_args(ns)
    except ValueError as exc:
        ns.parser.error(str(exc))
    logs.setup(cfg.log_level, cfg.node_id, cfg.log_format)
    return cfg


_ENV_NOTE = (f"Every option also reads {config.ENV_PREFIX}<NAME> (--site-domain: "
             f"{config.ENV_PREFIX}SITE_DOMAIN, comma-separated when repeatable); "
             "a flag wins over the variable.")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="run the WebSocket server",
        description="Run a livecount node: the WebSocket endpoint (/ws), the report API "
                    "(/api), the dashboard (/) and the demo (/demo), counting into DynamoDB. "
                    "SIGINT or SIGTERM stops it after a final flush.",
        epilog=_ENV_NOTE)
    config.add_options(serve)
    serve.set_defaults(run=_serve, parser=serve)
    tables = commands.add_parser("tables", help="manage the DynamoDB tables",
                                 description="Manage the DynamoDB tables.")
    actions = tables.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="create missing tables (idempotent)",
        description="Create the tables that are missing, and return. serve does it on "
                    "start too; this is for deployments that create them ahead.",
        epilog=_ENV_NOTE)
    config.add_options(create)
    create.set_defaults(run=_tables_create, parser=create)


def parser() -> argparse.ArgumentParser:
    """Every subcommand's parser is a `config.Parser`: mistakes are one line, exit 2."""
    top: argparse.ArgumentParser = config.Parser(
        prog="livecount", description="Realtime page-view counter.",
        epilog="Each command has its own help: livecount serve --help, "
               "livecount report pages --help, …")
    top.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = top.add_subparsers(dest="command", required=True)
    register(commands)
    loadtest.register(commands)
    console.register(commands)
    admin.register(commands)
    transfer.register(commands)
    backups.register(commands)
    importer.register(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    try:
        code: int = ns.run(ns)
    except (dynamodb_local.EmbeddedError, JournalBusy, claims.PortBusy, StoreRefused,
            ClientError) as exc:
        print(f"livecount: {exc}", file=sys.stderr)
        return 2
    except Unavailable as exc:  # `tables create` against a store that does not answer
        print(f"livecount: DynamoDB did not answer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
