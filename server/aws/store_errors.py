"""botocore's exceptions, turned into livecount's store errors at the store's edge.

Only what the SDK raises is translated (`ClientError`, `BotoCoreError`): a bug in
livecount (a TypeError, a KeyError) passes through untouched, so it is logged as a
bug and never disguised as the store being away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from livecount.core import errors
from livecount.core.errors import LivecountError, StoreUnavailable
from livecount.core.tables import CONDITION_FAILED, StoreErrorClass, error_class

T = TypeVar("T")
ATTEMPTS: Final = 20  # tries of a transaction that keeps meeting other writes
CHECK_FAILED: Final = "ConditionalCheckFailed"  # a transaction's cancellation reason


class ConditionFailed(Exception):
    """A conditional write found its condition false; `item` is what the store holds
    (when the request asked for it)."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__(CONDITION_FAILED)
        self.item = item


class Answered(Exception):
    """The store answered with an error code the caller said it handles itself."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def aws_code(exc: BaseException) -> str:
    """DynamoDB's error code (or botocore's exception name) behind a store error."""
    cause = exc.__cause__ if isinstance(exc, LivecountError) else exc
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", "Unknown"))
    return type(cause).__name__ if cause is not None else type(exc).__name__


def classify(exc: ClientError | BotoCoreError) -> StoreErrorClass:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_class(aws_code(exc), int(status or 0))
    if isinstance(exc, ParamValidationError):  # checked before sending: no retry helps
        return error_class("ParamValidationError", 400)
    return StoreUnavailable  # no connection, a timeout, a waiter that gave up, …


def translate(exc: ClientError | BotoCoreError, where: str) -> LivecountError:
    """The store error for `exc`, with the table or operation in its text."""
    return classify(exc)(f"{where}: {aws_code(exc)}: {exc}")


async def answer(call: Awaitable[T], where: str, expected: Collection[str] = ()) -> T:
    """Await one request. A refused condition raises `ConditionFailed`, a code in
    `expected` raises `Answered`; every other refusal or failure of the store raises
    StoreUnavailable, StoreRefused or StoreRejected, chained to botocore's exception."""
    try:
        return await call
    except ClientError as exc:
        code = aws_code(exc)
        if code == CONDITION_FAILED:
            raise ConditionFailed(dict(exc.response.get("Item", {}))) from None
        if code in expected:
            raise Answered(code) from None
        raise translate(exc, where) from exc
    except BotoCoreError as exc:
        raise translate(exc, where) from exc


async def transact(ddb: Any, actions: list[dict[str, Any]]) -> list[str] | None:
    """One TransactWriteItems: None when it applied, or each action's cancellation
    reason when a condition refused it. A conflict with another write in progress is
    tried again, a while; any other refusal or failure raises the store error (a
    run again reads what applied)."""
    for attempt in range(ATTEMPTS):
        try:
            await ddb.transact_write_items(TransactItems=actions)
            return None
        except ClientError as exc:
            codes = [r.get("Code", "") for r in exc.response.get("CancellationReasons", [])]
            if CHECK_FAILED in codes:
                return codes
            if "TransactionConflict" not in codes and aws_code(exc) not in (
                "TransactionConflictException",
                "TransactionInProgressException",
            ):
                raise translate(exc, "TransactWriteItems") from exc
            await asyncio.sleep(0.05 * (attempt + 1))  # another write in progress
        except BotoCoreError as exc:
            raise translate(exc, "TransactWriteItems") from exc
    raise errors.ClientError(
        "operation_contended",
        f"a transaction kept meeting other writes under {ATTEMPTS} tries; run it again",
    )
