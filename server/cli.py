"""The `livecount` command. Each subcommand's module registers its own parser.

A module adds a subcommand with `register(commands)`, setting `run` to a function
`(argparse.Namespace) -> int`; this file only lists the modules.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence

from livecount import config, logs

# Each command and the module that registers it. Only the module of the command asked
# for is imported: the others bring the AWS SDK, uvloop or rich, and `livecount
# --version` took 0.6 s when every one was imported first.
COMMANDS: dict[str, str] = {
    "serve": __name__,
    "tables": __name__,
    "loadtest": "livecount.tools.loadtest",
    "report": "livecount.tools.report",
    "admin": "livecount.tools.admin",
    "export": "livecount.tools.transfer",
    "import": "livecount.tools.importer",
    "backup": "livecount.tools.backups",
    "restore": "livecount.tools.backups",
}


def _serve(ns: argparse.Namespace) -> int:
    import uvloop
    from livecount.node import claims, workers
    from livecount.node import lifecycle as app

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
    import uvloop
    from livecount.aws.store import Store
    from livecount.tools import admin

    cfg = admin.with_node(_config(ns))  # a node serving --data-dir: its store

    async def create() -> None:
        async with (
            admin.endpoint(cfg) as url,
            Store.open(url, cfg.region, cfg.table_prefix) as store,
        ):
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


_ENV_NOTE = (
    f"Every option also reads {config.ENV_PREFIX}<NAME> (--site-domain: "
    f"{config.ENV_PREFIX}SITE_DOMAIN, comma-separated when repeatable); "
    "a flag wins over the variable."
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the WebSocket server",
        description="Run a livecount node: the WebSocket endpoint (/ws), the report API "
        "(/api), the dashboard (/) and, with --demo on, the demo (/demo), "
        "counting into DynamoDB. SIGINT or SIGTERM stops it after a final flush.",
        epilog=_ENV_NOTE,
    )
    config.add_options(serve)
    serve.set_defaults(run=_serve, parser=serve)
    tables = commands.add_parser(
        "tables", help="manage the DynamoDB tables", description="Manage the DynamoDB tables."
    )
    actions = tables.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create",
        help="create missing tables (idempotent)",
        description="Create the tables that are missing, and return. serve does it on "
        "start too; this is for deployments that create them ahead.",
        epilog=_ENV_NOTE,
    )
    config.add_options(create)
    create.set_defaults(run=_tables_create, parser=create)


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand's parser is a `config.Parser`: mistakes are one line, exit 2.
    With `command`, only its module registers; without (or for one that is no command:
    the help, or the error, lists them all) every module does."""
    top: argparse.ArgumentParser = config.Parser(
        prog="livecount",
        description="Realtime page-view counter.",
        epilog="Each command has its own help: livecount serve --help, "
        "livecount report pages --help, …",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {config.version()}")
    commands = top.add_subparsers(dest="command", required=True)
    if command != "--version":
        chosen = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
        for module in dict.fromkeys(chosen):
            importlib.import_module(module).register(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ns = parser(args[0] if args else None).parse_args(args)
    try:
        code: int = ns.run(ns)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from livecount.aws.local import EmbeddedError
        from livecount.core.errors import ClientError, StoreRefused, Unavailable
        from livecount.node.claims import PortBusy
        from livecount.node.journal import JournalBusy

        if isinstance(exc, EmbeddedError | JournalBusy | PortBusy | StoreRefused | ClientError):
            print(f"livecount: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, Unavailable):  # `tables create` against a store that is down
            print(f"livecount: DynamoDB did not answer: {exc}", file=sys.stderr)
            return 1
        raise
    return code
