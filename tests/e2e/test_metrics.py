"""`GET /metrics` on a real node: the figures match what happened."""

from __future__ import annotations

import asyncio
import json

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.support import Launch, Served, eventually, http_get


async def scrape(served: Served) -> dict[str, float]:
    status, headers, body = await asyncio.to_thread(http_get, served.http + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_metrics_count_what_happened(launch: Launch):
    served = await launch("--node-id", "metered")
    async with connect(served.ws) as watcher, connect(served.ws) as ws:
        await watcher.send(json.dumps({"message": "subscribe", "articleIds": ["m"]}))
        await watcher.recv()
        for _ in range(3):
            await ws.send(json.dumps({"message": "views", "articleId": "m"}))
            await ws.recv()
        await ws.send("{not json")
        assert json.loads(await ws.recv())["error"] == "invalid_json"
        await watcher.recv()  # a push reached the watcher
        async with connect(served.ws, user_agent_header="Googlebot/2.1") as bot:
            await bot.send(json.dumps({"message": "views", "articleId": "m"}))
            await bot.recv()

        # The bot's socket closes on the server's side a moment after its own.
        metrics = await eventually(
            lambda: scrape(served),
            lambda m: (
                m.get("livecount_flush_seconds_count", 0) > 0
                and m.get("livecount_open_sockets") == 2
            ),
        )
        assert metrics["livecount_views_total"] == 3
        assert metrics["livecount_bot_views_total"] == 1
        assert metrics["livecount_rejected_total{reason=invalid_json}"] == 1
        assert metrics["livecount_pushes_total"] >= 1
        assert metrics["livecount_push_latency_seconds_count"] >= 1
        assert metrics["livecount_leases_held"] == 1
        assert metrics["livecount_node_info{node=metered}"] == 1
        assert any(k.startswith("livecount_stream_lag_seconds{shard=") for k in metrics)
    await eventually(
        lambda: scrape(served),
        lambda m: m["livecount_pending_views"] == 0 and m["livecount_open_sockets"] == 0,
    )
    assert served.logs and all(
        entry.get("node") == "metered" for entry in served.logs
    )  # logs say who
