"""The serverless stream copy: a Lambda handler for a DynamoDB Streams event source.

For those who keep the seed's serverless shape: run the nodes with
`--stream-consumer off` and let this function copy PostCountWriter's images to
PostCountReader. The rule is the in-process consumer's own (`replication.copy_for`
and its conditional request), so replays and reordering are harmless here too; it
also writes the live feed, so every node's pages keep getting pushes.

Configured by environment: `LIVECOUNT_TABLE_PREFIX`, and `LIVECOUNT_DYNAMODB_ENDPOINT`
(tests only; absent on AWS). Enable "report batch item failures" on the event source:
the handler names the first record it could not copy, and Lambda retries from there.
"""

from __future__ import annotations

import os
import time
import zlib
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from livecount.aws.store import Tables
from livecount.core import feed
from livecount.core.replication import copy_for, counts_of

_client: Any = None


def _ddb() -> Any:
    """One client per container, made on first use (Lambda reuses warm containers)."""
    global _client
    if _client is None:
        _client = boto3.client("dynamodb",
                               endpoint_url=os.environ.get("LIVECOUNT_DYNAMODB_ENDPOINT") or None)
    return _client


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    tables = Tables.named(os.environ.get("LIVECOUNT_TABLE_PREFIX", ""))
    ddb = _ddb()
    changes: dict[str, tuple[int, int]] = {}
    failures: list[dict[str, str]] = []
    for record in event.get("Records", []):
        copy = copy_for(record)
        if copy is None:
            continue
        try:
            if copy.action == "put":
                ddb.put_item(**copy.request(tables.reader))
            else:
                ddb.delete_item(**copy.request(tables.reader))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
                break  # later records of this shard wait for this one
            continue  # the reader already has this image or a newer one
        except BotoCoreError:
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
            break
        if copy.item is not None and (counts := counts_of(copy.item)) is not None:
            changes[counts[0]] = counts[1:]
    if changes:
        now = time.time()
        payloads = list(feed.chunks(changes))
        salt = zlib.crc32(getattr(context, "aws_request_id", "lambda").encode())
        for at, payload in zip(feed.stamps(int(now * 1e6), salt, len(payloads)), payloads,
                               strict=True):
            try:
                ddb.put_item(TableName=tables.feed,
                             Item=feed.item(at, payload, int(now) + feed.TTL_SECONDS))
            except (ClientError, BotoCoreError):
                break  # live pushes only: the reader table is already right
    return {"batchItemFailures": failures}
