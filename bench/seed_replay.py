"""The seed's DynamoDB traffic for the same views, replayed against the same store.

The serverless seed wrote one `UpdateItem` per view to PostCountWriter, one write per
view with an external referrer to Referrer, answered each view with a read of
PostCountReader, and a stream-triggered Lambda copied every writer change to the
reader with a `PutItem`. This replays exactly that for a `ViewMix` (same generator,
same seed as the load client), so a counting proxy in front of DynamoDB Local can
count both schemes the same way.

Run alone: `python -m bench.seed_replay --endpoint URL --views 10000 --articles 1`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from typing import Any

import uvloop
from livecount.aws.store import Store
from livecount.tools.loadtest import REFERRER_HOSTS, ViewMix

LAMBDA_STREAM_BATCH = 100  # the seed's stream trigger: up to 100 records per invocation


async def replay(
    endpoint: str,
    prefix: str,
    views: int,
    articles: int,
    zipf: float,
    referrer_ratio: float,
    refreshed_ratio: float = 0.0,
    seed: int = 1,
    concurrency: int = 32,
) -> dict[str, Any]:
    """Send the seed's requests for `views` views; returns what it sent, by kind."""
    started = time.monotonic()
    mix = ViewMix(articles, zipf, refreshed_ratio, referrer_ratio, seed=seed)
    sent: dict[str, Any] = {
        "views": views,
        "writer_updates": 0,
        "referrer_writes": 0,
        "reader_reads": 0,
        "copies": 0,
        "stream_batches": 0,
    }
    async with Store.open(endpoint, "us-east-1", prefix) as store:
        await store.create_tables()
        ddb, tables = store.ddb, store.tables
        limit = asyncio.Semaphore(concurrency)

        async def one(rank: int, refreshed: bool, referrer: int | None) -> None:
            article = mix.ids[rank]
            async with limit:
                await ddb.update_item(
                    TableName=tables.writer,
                    Key={"articleId": {"S": article}},
                    UpdateExpression="ADD totalViews :t, uniqueViews :u, #v :one "
                    "SET articleTitle = :title",
                    ExpressionAttributeNames={"#v": "version"},
                    ExpressionAttributeValues={
                        ":t": {"N": "1"},
                        ":u": {"N": "0" if refreshed else "1"},
                        ":one": {"N": "1"},
                        ":title": {"S": f"Load test {article}"},
                    },
                )
                sent["writer_updates"] += 1
                if referrer is not None:
                    await ddb.update_item(
                        TableName=tables.referrers,
                        Key={
                            "target": {"S": f"post#{article}"},
                            "host": {"S": f"ref{referrer % REFERRER_HOSTS}.example"},
                        },
                        UpdateExpression="ADD #n :n",
                        ExpressionAttributeNames={"#n": "views"},
                        ExpressionAttributeValues={":n": {"N": "1"}},
                    )
                    sent["referrer_writes"] += 1
                await ddb.get_item(TableName=tables.reader, Key={"articleId": {"S": article}})
                sent["reader_reads"] += 1

        batch = 2000  # bounded fan-out of tasks
        for start in range(0, views, batch):
            await asyncio.gather(*(one(*mix.draw()) for _ in range(min(batch, views - start))))

        # The stream trigger: every record copied with one PutItem.
        arn = (await ddb.describe_table(TableName=tables.writer))["Table"]["LatestStreamArn"]
        shards = (await store.streams.describe_stream(StreamArn=arn))["StreamDescription"]
        for shard in shards["Shards"]:
            it = (
                await store.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )
            )["ShardIterator"]
            empty = 0
            while it is not None and sent["copies"] < sent["writer_updates"] and empty < 40:
                page = await store.streams.get_records(ShardIterator=it, Limit=LAMBDA_STREAM_BATCH)
                records = page.get("Records", [])
                it = page.get("NextShardIterator")
                if not records:  # an empty page mid-stream is allowed; give it a moment
                    empty += 1
                    await asyncio.sleep(0.05)
                    continue
                empty = 0
                sent["stream_batches"] += 1
                for record in records:
                    image = record["dynamodb"].get("NewImage")
                    if image:
                        async with limit:
                            await ddb.put_item(TableName=tables.reader, Item=image)
                        sent["copies"] += 1
    sent["lambda_stream_invocations"] = math.ceil(sent["copies"] / LAMBDA_STREAM_BATCH)
    sent["elapsed_s"] = round(time.monotonic() - started, 1)  # DynamoDB Local's own pace
    return sent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True, help="DynamoDB URL (DynamoDB Local only)")
    p.add_argument("--prefix", default="seed_")
    p.add_argument("--views", type=int, default=10_000)
    p.add_argument("--articles", type=int, default=1)
    p.add_argument("--zipf", type=float, default=1.1)
    p.add_argument("--referrer-ratio", type=float, default=0.2)
    p.add_argument("--refreshed-ratio", type=float, default=0.2)
    args = p.parse_args()
    out = uvloop.run(
        replay(
            args.endpoint,
            args.prefix,
            args.views,
            args.articles,
            args.zipf,
            args.referrer_ratio,
            args.refreshed_ratio,
        )
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
