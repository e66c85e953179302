"""The serverless stream copy: a Lambda handler for a DynamoDB Streams event source.

For those who keep the seed's serverless shape: run the nodes with
`--stream-consumer off` and let this function copy PostCountWriter's images to
PostCountReader. It does the in-process consumer's own work
(`core.stream_copy.copy_and_feed`: the conditional copies, then the live feed), so
replays and reordering are harmless here too, and every node's pages keep getting
pushes.

It ships as the core plus boto3 (docs/DEPLOY.md builds that zip): it imports only the
standard library, boto3 and `livecount.core` (an import contract checks it).

Configured by environment: `LIVECOUNT_TABLE_PREFIX`, and `LIVECOUNT_DYNAMODB_ENDPOINT`
(tests only; absent on AWS). Enable "report batch item failures" on the event source:
the handler names the first record it could not copy, and Lambda retries from there.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from livecount.core.errors import StoreRejected
from livecount.core.stream_copy import copy_and_feed
from livecount.core.tables import CONDITION_FAILED, Tables, error_class

_client: Any = None


def _ddb() -> Any:
    """One client per container, made on first use (Lambda reuses warm containers)."""
    global _client
    if _client is None:
        _client = boto3.client(
            "dynamodb", endpoint_url=os.environ.get("LIVECOUNT_DYNAMODB_ENDPOINT") or None
        )
    return _client


def _log(event: str, **fields: Any) -> None:
    """One JSON line, as the nodes log; Lambda sends stdout to CloudWatch Logs."""
    print(json.dumps({"level": "warning", "event": event, **fields}), flush=True)


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    tables = Tables.named(os.environ.get("LIVECOUNT_TABLE_PREFIX", ""))
    ddb = _ddb()
    writer = str(getattr(context, "aws_request_id", "lambda"))
    work = copy_and_feed(event.get("Records", []), tables, writer, time.time())
    for write in work.writes:
        try:
            if write.action == "put":
                ddb.put_item(**write.request)
            else:
                ddb.delete_item(**write.request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == CONDITION_FAILED:
                continue  # the reader already has this image or a newer one
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if error_class(code, status) is StoreRejected:
                # No retry can copy it; retrying would block the shard for good.
                _log("copy_rejected", sequence=write.sequence, code=code, error=str(exc))
                continue
            _log("copy_failed", sequence=write.sequence, code=code, error=str(exc))
            return {"batchItemFailures": [{"itemIdentifier": write.sequence}]}
        except BotoCoreError as exc:
            _log("copy_failed", sequence=write.sequence, code=type(exc).__name__, error=str(exc))
            # Later records of this shard wait for this one; the retry writes the feed.
            return {"batchItemFailures": [{"itemIdentifier": write.sequence}]}
    for put in work.feed:
        try:
            ddb.put_item(**put)
        except (ClientError, BotoCoreError) as exc:
            _log("feed_failed", error=str(exc))
            break  # live pushes only: the reader table is already right
    return {"batchItemFailures": []}
