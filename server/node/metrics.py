"""The operators' view: Prometheus metrics at `GET /metrics`.

One registry per node (not the library's global one), so tests and several nodes in
one process never mix figures. What the engine counts (views, bots, pushes, refusals)
it keeps in its `Tally`, read when scraped, as are the gauges that mirror state: they
cannot drift. The edges bump their own counters where things happen.
"""

from __future__ import annotations

from collections import Counter as Tallied
from collections.abc import Callable, Iterator, Mapping

from livecount.core.tally import Tally
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class _Tallies(Collector):
    """The engine's counts, and the refusals the edges made (a bad Origin)."""

    def __init__(self, tally: Callable[[], Tally], edge: Tallied[str]) -> None:
        self._tally = tally
        self._edge = edge

    def collect(self) -> Iterator[CounterMetricFamily]:
        tally = self._tally()
        yield CounterMetricFamily(
            "livecount_views", "Views accepted and counted", value=tally.views
        )
        yield CounterMetricFamily(
            "livecount_bot_views", "Bot views shown counts, not counted", value=tally.bots
        )
        yield CounterMetricFamily(
            "livecount_pushes", "Count messages pushed to sockets", value=tally.pushes
        )
        refused = CounterMetricFamily(
            "livecount_rejected", "Messages refused, by reason", labels=["reason"]
        )
        for reason, n in sorted((tally.refused + self._edge).items()):
            refused.add_metric([reason], n)
        yield refused


class _Lag(Collector):
    def __init__(self, lag: Callable[[], Mapping[str, float]]) -> None:
        self._lag = lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "livecount_stream_lag_seconds",
            "Age of the last stream record read, per shard held",
            labels=["shard"],
        )
        for shard, seconds in self._lag().items():
            family.add_metric([shard], seconds)
        yield family


class Metrics:
    def __init__(self, node_id: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._refused: Tallied[str] = Tallied()
        self.push_latency = Histogram(
            "livecount_push_latency_seconds",
            "From a count changing to its push",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )
        self.flush_seconds = Histogram(
            "livecount_flush_seconds",
            "Time to write one flush to DynamoDB",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.http_seconds = Histogram(
            "livecount_http_request_seconds",
            "Time to answer an HTTP request, by route "
            "(the route table's pattern; `(none)`: no route took it)",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.flush_failures = Counter(
            "livecount_flush_failures", "Writes whose outcome was unknown, to be resent", registry=r
        )
        self.dead_letters = Counter(
            "livecount_dead_letters",
            "Writes DynamoDB refused as invalid, set aside in DATA_DIR/dead-letters.ndjson",
            registry=r,
        )
        self.journal_healthy = Gauge(
            "livecount_journal_healthy",
            "1 while the journal writes; 0 while views are refused because it cannot",
            registry=r,
        )
        self.recovering = Gauge(
            "livecount_recovering",
            "1 while views replayed from the journal wait for the store",
            registry=r,
        )
        self.open_sockets = Gauge(
            "livecount_open_sockets", "Open WebSocket connections", registry=r
        )
        self.pending = Gauge("livecount_pending_views", "Views not yet stored", registry=r)
        self.leases = Gauge("livecount_leases_held", "Stream shard leases held", registry=r)
        Gauge("livecount_node_info", "This node", ["node"], registry=r).labels(node_id).set(1)

    def refused(self, reason: str) -> None:
        """A refusal the edge made (the engine tallies its own)."""
        self._refused[reason] += 1

    def watch(
        self,
        tally: Callable[[], Tally],
        sockets: Callable[[], int],
        pending: Callable[[], int],
        leases: Callable[[], int],
        lag: Callable[[], Mapping[str, float]],
        journal_healthy: Callable[[], bool],
        recovering: Callable[[], bool],
    ) -> None:
        """What is read from the node at scrape time."""
        self.registry.register(_Tallies(tally, self._refused))
        self.journal_healthy.set_function(lambda: float(journal_healthy()))
        self.recovering.set_function(lambda: float(recovering()))
        self.open_sockets.set_function(sockets)
        self.pending.set_function(pending)
        self.leases.set_function(leases)
        self.registry.register(_Lag(lag))

    def render(self) -> bytes:
        return generate_latest(self.registry)
