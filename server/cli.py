"""The `livecount` command. Each subcommand's module registers its own parser.

A module adds a subcommand with `register(commands)`, setting `run` to a function
`(argparse.Namespace) -> int`; this file only lists the modules.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvloop
from livecount import config, logs
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store
from livecount.node import node as app
from livecount.node.journal import JournalBusy
from livecount.tools import loadtest
from livecount.tools import report as console


def _serve(ns: argparse.Namespace) -> int:
    cfg = _config(ns)
    uvloop.run(app.run(cfg))
    return 0


def _tables_create(ns: argparse.Namespace) -> int:
    cfg = _config(ns)

    async def create() -> None:
        async with dynamodb_local.endpoint_for(cfg.dynamodb_endpoint, cfg.data_dir) as url, \
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
    logs.setup(cfg.log_level, cfg.node_id)
    return cfg


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the WebSocket server")
    config.add_options(serve)
    serve.set_defaults(run=_serve, parser=serve)
    tables = commands.add_parser("tables", help="manage the DynamoDB tables")
    actions = tables.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create missing tables (idempotent)")
    config.add_options(create)
    create.set_defaults(run=_tables_create, parser=create)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="livecount", description="Realtime page-view counter.")
    commands = top.add_subparsers(dest="command", required=True)
    register(commands)
    loadtest.register(commands)
    console.register(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    try:
        code: int = ns.run(ns)
    except (dynamodb_local.EmbeddedError, JournalBusy, app.StoreRefused) as exc:
        print(f"livecount: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
