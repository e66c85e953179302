"""The Lambda variant of the stream copy, fed with events recorded from DynamoDB
Local's real stream, in the shape Lambda delivers them."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from livecount.aws import lambda_copy as aws_lambda
from livecount.aws.store import Store
from livecount.core import feed
from livecount.core.ledger import Delta
from livecount.core.pages import Target

from tests.support import ROOT, flush_of


async def recorded_event(store: Store) -> dict[str, Any]:
    """Every record of the writer's stream so far, as a Lambda event."""
    arn = await store.stream.stream_arn()
    records: list[dict[str, Any]] = []
    for shard in await store.stream.shards(arn):
        batch = await store.stream.read(await store.stream.iterator(arn, shard.id, None))
        assert batch is not None
        for record in batch.records:
            change = dict(record["dynamodb"])
            change["ApproximateCreationDateTime"] = change[
                "ApproximateCreationDateTime"
            ].timestamp()
            records.append(
                {**record, "dynamodb": change, "eventSource": "aws:dynamodb", "eventSourceARN": arn}
            )
    return {"Records": records}


async def reader(store: Store) -> dict[str, tuple[int, int]]:
    items = (await store.ddb.scan(TableName=store.tables.reader, ConsistentRead=True))["Items"]
    return {
        i["articleId"]["S"]: (int(i["totalViews"]["N"]), int(i["uniqueViews"]["N"])) for i in items
    }


async def test_the_lambda_copies_writer_to_reader_and_feeds_live_counts(
    local_store: Store, lambda_env: None
):
    a, b = Target("post", "a"), Target("post", "b")
    await local_store.flush(flush_of(targets={a: Delta(2, 1), b: Delta(1, 1)}))
    await local_store.flush(flush_of(targets={a: Delta(3, 3)}))
    event = await recorded_event(local_store)
    assert len(event["Records"]) == 3

    answer = await asyncio.to_thread(aws_lambda.handler, event, None)
    assert answer == {"batchItemFailures": []}
    assert await reader(local_store) == {"a": (5, 4), "b": (1, 1)}
    items = await local_store.feed.read(0)
    assert [tuple(c) for _, payload in items for c in feed.decode(payload)] == [
        ("a", 5, 4),
        ("b", 1, 1),
    ]


async def test_replayed_and_reordered_events_change_nothing(local_store: Store, lambda_env: None):
    a = Target("post", "a")
    for _ in range(3):
        await local_store.flush(flush_of(targets={a: Delta(1, 1)}))
    event = await recorded_event(local_store)
    backwards = {"Records": list(reversed(event["Records"]))}
    await asyncio.to_thread(aws_lambda.handler, backwards, None)
    await asyncio.to_thread(aws_lambda.handler, event, None)
    assert await reader(local_store) == {"a": (3, 3)}


async def test_a_failed_copy_is_reported_for_retry(
    local_store: Store, lambda_env: None, monkeypatch: pytest.MonkeyPatch
):
    await local_store.flush(flush_of(targets={Target("post", "a"): Delta(1, 1)}))
    event = await recorded_event(local_store)
    monkeypatch.setenv("LIVECOUNT_TABLE_PREFIX", "missing_")  # no such reader table
    answer = await asyncio.to_thread(aws_lambda.handler, event, None)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]
    }


async def test_a_copy_refused_as_invalid_is_skipped_not_retried_forever(
    local_store: Store, lambda_env: None
):
    await local_store.flush(flush_of(targets={Target("post", "a"): Delta(2, 2)}))
    event = await recorded_event(local_store)
    good = event["Records"][0]
    poison = copy.deepcopy(good)  # a key over DynamoDB's 2,048 bytes: refused as invalid
    for image in ("Keys", "NewImage"):
        poison["dynamodb"][image]["articleId"] = {"S": "x" * 2100}
    poison["dynamodb"]["SequenceNumber"] = "0"
    answer = await asyncio.to_thread(aws_lambda.handler, {"Records": [poison, good]}, None)
    assert answer == {"batchItemFailures": []}
    assert await reader(local_store) == {"a": (2, 2)}


# -- the documented zip -------------------------------------------------------------------
# boto3 and what it needs: what the Lambda Python runtime provides besides the zip.
RUNTIME = ("boto3", "botocore", "jmespath", "s3transfer", "dateutil", "urllib3", "six")
HEAVY = (
    "aioboto3",
    "aiobotocore",
    "aiohttp",
    "websockets",
    "uvloop",
    "rich",
    "msgspec",
    "prometheus_client",
    "livecount.node",
    "livecount.tools",
    "livecount.aws.store",
)
RUN_HANDLER = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from livecount.aws import lambda_copy
class Context:
    aws_request_id = "test-request"
event = json.load(open(sys.argv[3]))
answer = lambda_copy.handler(event, Context())
print(json.dumps({"answer": answer, "file": lambda_copy.__file__, "modules": sorted(sys.modules)}))
"""


def documented_zip_commands() -> str:
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    found = re.search(r"<!-- lambda-zip:[^>]*-->\n```sh\n(.*?)```", text, re.DOTALL)
    assert found, "docs/DEPLOY.md lost its lambda-zip block"
    return found.group(1)


def runtime_dir(into: Path) -> Path:
    """A folder holding only boto3 and its dependencies, linked from this venv."""
    into.mkdir()
    for name in RUNTIME:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (into / source.name).symlink_to(source)
    return into


async def test_the_documented_zip_is_the_core_and_runs_with_only_boto3(
    local_store: Store, lambda_env: None, tmp_path: Path
):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "server", tree / "server", ignore=shutil.ignore_patterns("__pycache__"))
    await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", documented_zip_commands()],
        cwd=tree,
        check=True,
    )
    bundle = tree / "build" / "livecount-lambda.zip"
    with zipfile.ZipFile(bundle) as zipped:
        files = {n for n in zipped.namelist() if not n.endswith("/")}
    core = {f"livecount/core/{p.name}" for p in (ROOT / "server" / "core").glob("*.py")}
    assert files == core | {
        "livecount/__init__.py",
        "livecount/aws/__init__.py",
        "livecount/aws/lambda_copy.py",
    }

    await local_store.flush(flush_of(targets={Target("post", "a"): Delta(3, 2)}))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(await recorded_event(local_store)))
    # -I -S: no site-packages, no PYTHONPATH, no editable install: the zip and boto3 only.
    ran = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            RUN_HANDLER,
            str(bundle),
            str(runtime_dir(tmp_path / "runtime")),
            str(event),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["answer"] == {"batchItemFailures": []}
    assert result["file"].startswith(str(bundle))
    assert not [m for m in result["modules"] if m.split(".")[0] in HEAVY or m in HEAVY]
    assert await reader(local_store) == {"a": (3, 2)}
    items = await local_store.feed.read(0)
    assert [c for _, payload in items for c in feed.decode(payload)] == [("a", 3, 2)]
