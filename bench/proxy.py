"""A counting HTTP proxy on loopback between a DynamoDB client and DynamoDB Local.

It counts what AWS bills: requests per operation and table, and the capacity units
DynamoDB reports. It asks for them by adding `ReturnConsumedCapacity: TOTAL` to each
request that takes it (DynamoDB Local ignores SigV4 signatures, so editing the body is
harmless there; never point this at AWS). Responses pass through untouched, so their
CRC32 still checks. A conditional write that fails is billed on AWS though no
capacity comes back: it is counted as one WCU (every item here is under 1 KB).

PartiQL (`ExecuteStatement`, `BatchExecuteStatement`, `ExecuteTransaction`): DynamoDB
Local takes `ReturnConsumedCapacity` there but returns no capacity, so each statement
is estimated as AWS bills an item under 1 KB: one unit (two in a transaction), also
when its condition fails or its INSERT finds the item there, none when it is refused
as invalid. Estimates are kept apart (`Tally.estimated`) so a reader can see them.
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

CAPACITY_OPS = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchGetItem",
    "BatchWriteItem",
    "Query",
    "Scan",
    "TransactWriteItems",
    "TransactGetItems",
}
PARTIQL_OPS = {"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}
CAPACITY_OPS |= PARTIQL_OPS
# PartiQL requests count as writes: livecount sends it only to write
WRITE_OPS = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    *PARTIQL_OPS,
}
STREAM_OPS = ("GetRecords", "GetShardIterator", "DescribeStream", "ListStreams")
_STATEMENT_TABLE = re.compile(
    r"^\s*(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM|SELECT\s.*?\sFROM|EXISTS\s*\(.*?\sFROM)\s+"
    r'"?([A-Za-z0-9_.-]+)"?',
    re.I | re.S,
)
# a statement whose condition fails is billed as a write: an UPDATE's WHERE, an INSERT's
# "item exists" (DuplicateItem)
BILLED_FAILURES = {"ConditionalCheckFailed", "DuplicateItem"}
HOP_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}


@dataclass
class Tally:
    """Requests by (operation, table) and capacity units by table; a snapshot can be diffed."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    wcu: Counter[str] = field(default_factory=Counter)  # float units in an int-typed Counter
    rcu: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    estimated: Counter[str] = field(default_factory=Counter)  # units, by "op table"

    def copy(self) -> Tally:
        return Tally(
            Counter(self.requests),
            Counter(self.wcu),
            Counter(self.rcu),
            Counter(self.errors),
            Counter(self.estimated),
        )

    def __sub__(self, before: Tally) -> Tally:
        return Tally(
            self.requests - before.requests,
            self.wcu - before.wcu,
            self.rcu - before.rcu,
            self.errors - before.errors,
            self.estimated - before.estimated,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": {f"{op} {table}": n for (op, table), n in sorted(self.requests.items())},
            "wcu": dict(sorted(self.wcu.items())),
            "rcu": dict(sorted(self.rcu.items())),
            "errors": dict(self.errors),
            "estimated": dict(sorted(self.estimated.items())),
        }

    def ops(self, *names: str) -> int:
        return sum(n for (op, _), n in self.requests.items() if op in names)


def _statements(op: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    if op == "ExecuteStatement":
        return [body]
    key = "Statements" if op == "BatchExecuteStatement" else "TransactStatements"
    found = body.get(key, [])
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


def _statement_table(statement: dict[str, Any]) -> str:
    found = _STATEMENT_TABLE.match(str(statement.get("Statement", "")))
    return found.group(1) if found else "-"


def _is_read(statement: dict[str, Any]) -> bool:
    return str(statement.get("Statement", "")).lstrip()[:6].upper() in ("SELECT", "EXISTS")


def _table_of(op: str, body: dict[str, Any]) -> str:
    if op in PARTIQL_OPS:
        return ",".join(sorted({_statement_table(s) for s in _statements(op, body)})) or "-"
    if "TableName" in body:
        return str(body["TableName"])
    if "StreamArn" in body:  # arn:aws:dynamodb:…:table/NAME/stream/…
        return str(body["StreamArn"]).split(":table/", 1)[-1].split("/", 1)[0]
    if "RequestItems" in body:
        return ",".join(sorted(body["RequestItems"]))
    return "streams" if op in ("GetRecords", "GetShardIterator") else "-"


class CountingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.tally = Tally()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256), auto_decompress=False
        )
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        raw = await request.read()
        op = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1] or request.method
        body: dict[str, Any] = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
        if op in CAPACITY_OPS and "ReturnConsumedCapacity" not in body:
            body["ReturnConsumedCapacity"] = "TOTAL"
            raw = json.dumps(body).encode()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=raw, headers=headers
        ) as answer:
            payload = await answer.read()
            status = answer.status
            out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        self._count(op, body, status, payload)
        return web.Response(body=payload, status=status, headers=out_headers)

    def _count(self, op: str, body: dict[str, Any], status: int, payload: bytes) -> None:
        table = _table_of(op, body)
        self.tally.requests[(op, table)] += 1
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:
            answer = {}
        if status != 200:
            kind = str(answer.get("__type", status)).rsplit("#", 1)[-1]
            self.tally.errors[f"{op} {kind}"] += 1
            if kind == "ConditionalCheckFailedException":
                self.tally.wcu[table] += 1
            return
        if op in PARTIQL_OPS and not answer.get("ConsumedCapacity"):
            self._estimate(op, body, answer)
            return
        if op == "BatchGetItem":  # AWS bills every key read, found or not; Local says 0
            for table_name, spec in body.get("RequestItems", {}).items():
                unit = 1.0 if spec.get("ConsistentRead") else 0.5
                missing = len(spec.get("Keys", [])) * unit - sum(
                    float(e.get("CapacityUnits", 0.0))
                    for e in answer.get("ConsumedCapacity", [])
                    if e.get("TableName") == table_name
                )
                if missing > 0:
                    extra: Any = missing
                    self.tally.rcu[table_name] += extra
        consumed = answer.get("ConsumedCapacity")
        for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            name = str(entry.get("TableName", table))
            units: Any = float(entry.get("CapacityUnits", 0.0))
            (self.tally.wcu if op in WRITE_OPS else self.tally.rcu)[name] += units

    def _estimate(self, op: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        """Units of a PartiQL request DynamoDB Local did not report (see the module doc)."""
        statements = _statements(op, body)
        responses = answer.get("Responses")
        outcomes = (
            responses
            if op == "BatchExecuteStatement" and isinstance(responses, list)
            else [{}] * len(statements)
        )
        unit = 2.0 if op == "ExecuteTransaction" else 1.0
        for statement, outcome in zip(statements, outcomes, strict=False):
            error = outcome.get("Error") if isinstance(outcome, dict) else None
            if error and error.get("Code") not in BILLED_FAILURES:
                continue  # refused as invalid: not billed
            table = _statement_table(statement)
            units: Any = unit
            if _is_read(statement):
                units = (
                    unit
                    if statement.get("ConsistentRead") or body.get("ConsistentRead")
                    else unit / 2
                )
                self.tally.rcu[table] += units
            else:
                self.tally.wcu[table] += units
            self.tally.estimated[f"{op} {table}"] += units
