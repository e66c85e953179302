"""Store failures as livecount's error classes: through the real client, with DynamoDB
Local behind a proxy that answers with the errors AWS sends, and a bug left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from livecount.aws.store import Store
from livecount.aws.store_errors import ConditionFailed, answer, classify
from livecount.core.errors import StoreRefused, StoreRejected, StoreUnavailable
from livecount.core.ledger import Delta
from livecount.core.pages import Target
from livecount.core.tables import Tables

from tests.faults import FaultProxy
from tests.support import flush_of

A = Target("post", "a")


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "UpdateItem",
    )


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ThrottlingException", 400, StoreUnavailable),
        ("ProvisionedThroughputExceededException", 400, StoreUnavailable),
        ("RequestLimitExceeded", 400, StoreUnavailable),
        ("InternalServerError", 500, StoreUnavailable),
        ("ServiceUnavailable", 503, StoreUnavailable),
        ("SomethingNew", 502, StoreUnavailable),  # any 5xx
        ("ResourceNotFoundException", 400, StoreUnavailable),  # a table not there (yet)
        ("AccessDeniedException", 400, StoreRefused),
        ("UnrecognizedClientException", 400, StoreRefused),
        ("InvalidSignatureException", 400, StoreRefused),
        ("MissingAuthenticationTokenException", 403, StoreRefused),
        ("ValidationException", 400, StoreRejected),
        ("ItemCollectionSizeLimitExceededException", 400, StoreRejected),
        ("SerializationException", 400, StoreRejected),
        ("SomethingNew", 400, StoreRejected),  # any other 4xx
    ],
)
def test_answers_are_classified(code: str, status: int, kind: type[Exception]) -> None:
    assert classify(client_error(code, status)) is kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (EndpointConnectionError(endpoint_url="http://x"), StoreUnavailable),
        (ConnectTimeoutError(endpoint_url="http://x"), StoreUnavailable),
        (ReadTimeoutError(endpoint_url="http://x"), StoreUnavailable),
        (ParamValidationError(report="bad"), StoreRejected),  # checked before sending
    ],
)
def test_sdk_failures_are_classified(exc: Any, kind: type[Exception]) -> None:
    assert classify(exc) is kind


async def raising(exc: BaseException) -> Any:
    raise exc


async def test_a_translated_error_keeps_its_cause_and_a_bug_is_not_translated() -> None:
    with pytest.raises(StoreRejected, match="Referrer: ValidationException") as caught:
        await answer(raising(client_error("ValidationException", 400)), "Referrer")
    assert isinstance(caught.value.__cause__, ClientError)
    with pytest.raises(ConditionFailed):
        await answer(raising(client_error("ConditionalCheckFailedException", 400)), "t")
    with pytest.raises(TypeError):  # a bug in livecount stays a bug
        await answer(raising(TypeError("oops")), "t")


class BuggyClient:
    """A client whose writes hit a bug in livecount rather than a store failure."""

    async def update_item(self, **request: Any) -> Any:
        raise TypeError("a bug")


async def test_a_bug_during_a_flush_is_raised_not_reported_as_a_failed_write() -> None:
    store = Store(BuggyClient(), None, Tables.named("bug_"))
    with pytest.raises(ExceptionGroup) as caught:
        await store.flush(flush_of(targets={A: Delta(1, 1)}))
    assert caught.group_contains(TypeError)


@pytest_asyncio.fixture
async def proxied(
    dynamodb_local_url: str,
    prefix: str,
    local_store: Store,
) -> AsyncIterator[tuple[FaultProxy, Store]]:
    """A store on the test's tables, through a proxy that can answer for DynamoDB."""
    port = urlsplit(dynamodb_local_url).port
    assert port is not None
    proxy = await FaultProxy(port).start()
    async with Store.open(proxy.url, "us-east-1", prefix, attempts=1) as store:
        yield proxy, store
    await proxy.stop()


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("throttle", StoreUnavailable),
        ("error500", StoreUnavailable),
        ("refuse", StoreUnavailable),
        ("denied", StoreRefused),
    ],
)
async def test_the_store_raises_its_error_classes(
    proxied: tuple[FaultProxy, Store], mode: Any, kind: type[Exception]
) -> None:
    proxy, store = proxied
    await store.ping()
    proxy.set(mode)
    with pytest.raises(kind):
        await store.ping()
    with pytest.raises(kind):
        await store.read_counts([A])
    # In a flush, any of them is an unknown outcome, resent unchanged: never rejected.
    result = await store.flush(flush_of(targets={A: Delta(1, 1)}))
    assert result.failed_targets == {A} and not result.rejected_targets
    proxy.set("pass")
    assert (await store.flush(flush_of(targets={A: Delta(1, 1)}))).applied == {A: (1, 1)}


async def test_a_store_away_at_start_does_not_turn_batching_off(
    proxied: tuple[FaultProxy, Store],
) -> None:
    """A batch with no answer (a lost connection, a timeout) says nothing about PartiQL:
    only error answers count as the endpoint taking no batches, or a store briefly
    away at start would cost batching for good."""
    proxy, store = proxied
    proxy.set("cut", only="BatchExecuteStatement")  # applied, the answer lost
    for _ in range(5):
        result = await store.flush(flush_of(targets={A: Delta(1, 1)}))
        assert A in result.applied  # resent one a request: applied before
    assert store.batching
    proxy.set("pass")
    assert (await store.flush(flush_of(targets={A: Delta(1, 1)}))).applied[A][0] == 6
    assert store.batching
