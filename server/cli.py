"""The `livecount` command: `serve` and `tables create`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvloop

from . import app, config, dynamodb_local, logs
from .store import Store


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="livecount", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the WebSocket server")
    config.add_options(serve)
    tables = commands.add_parser("tables", help="manage the DynamoDB tables")
    actions = tables.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create missing tables (idempotent)")
    config.add_options(create)
    return top


async def _create_tables(cfg: config.Config) -> None:
    async with dynamodb_local.endpoint_for(cfg.dynamodb_endpoint, cfg.data_dir) as endpoint, \
            Store.open(endpoint, cfg.region, cfg.table_prefix) as store:
        made = await store.create_tables()
        logs.log("tables_ready", created=made, prefix=cfg.table_prefix)


def main(argv: Sequence[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    try:
        cfg = config.from_args(ns)
    except ValueError as exc:
        parser().error(str(exc))
    logs.setup(cfg.log_level)
    try:
        if ns.command == "serve":
            uvloop.run(app.run(cfg))
        elif ns.command == "tables":
            uvloop.run(_create_tables(cfg))
    except dynamodb_local.EmbeddedError as exc:
        print(f"livecount: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
