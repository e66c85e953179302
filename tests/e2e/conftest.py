from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio

from tests.support import Served

Launch = Callable[..., Awaitable[Served]]


@pytest_asyncio.fixture
async def launch(dynamodb_local_url: str, prefix: str) -> AsyncIterator[Launch]:
    """Start `livecount serve` processes on the shared DynamoDB Local, own table prefix."""
    started: list[Served] = []

    async def start(*args: str, shared: bool = True) -> Served:
        store = ["--dynamodb-endpoint", dynamodb_local_url, "--table-prefix", prefix] \
            if shared else []
        served = await Served("--flush-interval", "0.2", *store, *args).start()
        started.append(served)
        return served

    yield start
    for served in started:
        await served.kill()
