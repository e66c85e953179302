"""Shared fixtures: one DynamoDB Local and one moto server per test session.

Each test gets its own table prefix, so tests share the servers but never data; a
module's read-only checks may share one server and prefix (`module_launch`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store

from tests.support import Launch, Served, free_port


@pytest_asyncio.fixture(scope="session")
async def dynamodb_local_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with dynamodb_local.running(Path(tmp_path_factory.mktemp("ddb"))) as url:
        yield url


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def fresh_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def prefix() -> str:
    return fresh_prefix()


async def open_store(url: str, prefix: str) -> AsyncIterator[Store]:
    async with Store.open(url, "us-east-1", prefix) as store:
        await store.create_tables()
        yield store


@pytest_asyncio.fixture
async def local_store(dynamodb_local_url: str, prefix: str) -> AsyncIterator[Store]:
    async for store in open_store(dynamodb_local_url, prefix):
        yield store


@pytest.fixture(params=["moto", "dynamodb_local"])
def any_url(request: pytest.FixtureRequest) -> str:
    """The store contract holds on moto (fast) and on DynamoDB Local (the real API)."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest_asyncio.fixture
async def any_store(any_url: str, prefix: str) -> AsyncIterator[Store]:
    async for store in open_store(any_url, prefix):
        yield store


@contextlib.asynccontextmanager
async def launcher(dynamodb_local_url: str, prefix: str, data: Path) -> AsyncIterator[Launch]:
    """Start `livecount serve` processes on the shared DynamoDB Local, own table prefix.

    Every process is the same node (one data dir, so one journal) unless it passes its
    own `--data-dir`. Tests send faster than a page does, so the per-socket rate limit
    is raised unless a test sets its own. Every report is public (`--public all`)
    unless the test says `private=True`: the tests of the credential
    (tests/e2e/test_auth.py, tests/browser/test_login.py) do, and choose their own
    `--public`.
    """
    started: list[Served] = []

    async def start(*args: str, shared: bool = True, private: bool = False) -> Served:
        store = (
            ["--dynamodb-endpoint", dynamodb_local_url, "--table-prefix", prefix] if shared else []
        )
        public = [] if private else ["--public", "all"]
        served = await Served(
            "--flush-interval",
            "0.2",
            "--report-interval",
            "0.2",
            "--data-dir",
            str(data / "node"),
            "--rate-limit",
            "100000",
            "--rate-burst",
            "100000",
            *store,
            *public,
            *args,
        ).start()
        started.append(served)
        return served

    try:
        yield start
    finally:
        for served in started:
            await served.kill()


@pytest_asyncio.fixture
async def launch(
    dynamodb_local_url: str,
    prefix: str,
    tmp_path: Path,
) -> AsyncIterator[Launch]:
    """`launcher` for one test: its servers stop when it ends."""
    async with launcher(dynamodb_local_url, prefix, tmp_path) as start:
        yield start


@pytest_asyncio.fixture(scope="module")
async def module_launch(
    dynamodb_local_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Launch]:
    """`launcher` for a module's read-only checks, on a table prefix of its own: one
    server for many tests, which stops when the module ends."""
    async with launcher(
        dynamodb_local_url, fresh_prefix(), tmp_path_factory.mktemp("node")
    ) as start:
        yield start


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, dynamodb_local_url: str, prefix: str) -> None:
    """The environment `livecount.aws.lambda_copy.handler` reads, pointed at DynamoDB Local."""
    from livecount.aws import lambda_copy as aws_lambda

    monkeypatch.setenv("LIVECOUNT_TABLE_PREFIX", prefix)
    monkeypatch.setenv("LIVECOUNT_DYNAMODB_ENDPOINT", dynamodb_local_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "livecount")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "livecount")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(aws_lambda, "_client", None)
