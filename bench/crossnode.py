"""Pushes across nodes (issue 7): views sent to node B, pages watching on node A.

Two `livecount serve` nodes on one DynamoDB Local; the load client sends views to B
and keeps its subscribers on A, so every push it times went writer table → stream
(read by whichever node holds the lease) → live feed → A → socket. Prints the load
client's JSON report with the command lines.

    python -m bench.crossnode [--duration 30] [--rate 100] [--subscribers 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import uvloop
from livecount.aws import local as dynamodb_local

from bench.run import loadtest, served


async def measure(duration: float, rate: float, subscribers: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="livecount-crossnode-"))
    async with (
        dynamodb_local.running(work / "ddb") as url,
        served(url, "xnode_", work / "a") as a,
        served(url, "xnode_", work / "b") as b,
    ):
        report, command = await loadtest(
            b.ws,
            "--connections",
            "8",
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--articles",
            "20",
            "--zipf",
            "1.1",
            "--subscribers",
            str(subscribers),
            "--subscribe-url",
            a.ws,
            "--seed",
            "7",
        )
    return {
        "report": report,
        "command": command,
        "nodes": "2 nodes (a: subscribers, b: views), one DynamoDB Local",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--subscribers", type=int, default=200)
    ns = p.parse_args()
    print(json.dumps(uvloop.run(measure(ns.duration, ns.rate, ns.subscribers)), indent=1))


if __name__ == "__main__":
    main()
