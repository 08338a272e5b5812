"""Prometheus metrics of one app, in its own registry (never the process-global default one).

What the HTTP layer observes itself: time to first token, inter-token latency, request latency, queue
time, running and waiting requests, generated tokens, snapshot bytes written and read through the API.
What it reads at scrape time: sessions resident and offloaded and their KV bytes (from
`SessionService.list()`, which asks the model for byte counts on the scraping thread: cheap for torch
tensors, and it never waits for the engine thread), and the KV budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from superlinear.core import SessionService, Usage

__all__ = ["Metrics", "TurnTimer", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_TTFT = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_ITL = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LATENCY = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_QUEUE = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


class _SessionCollector:
    """Read session counts and KV bytes from the session service when Prometheus scrapes."""

    def __init__(self, sessions: Callable[[], SessionService | None]):
        self._sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        service = self._sessions()
        infos = service.list() if service is not None else []
        resident = [i for i in infos if i.resident]
        yield GaugeMetricFamily("spl_sessions_resident", "Sessions whose state is in device memory",
                                value=len(resident))
        yield GaugeMetricFamily("spl_sessions_offloaded", "Sessions offloaded to snapshots on disk",
                                value=len(infos) - len(resident))
        yield GaugeMetricFamily("spl_kv_bytes_used", "Bytes of session state held in device memory",
                                value=sum(i.kv_bytes for i in resident))
        prefills = [i.prefill for i in infos if i.prefill is not None]
        yield GaugeMetricFamily("spl_prefill_tokens_done", "Tokens prefilled so far by the prefills under way",
                                value=sum(p.done for p in prefills))
        yield GaugeMetricFamily("spl_prefill_tokens_total", "Tokens the prefills under way will have prefilled",
                                value=sum(p.total for p in prefills))
        yield GaugeMetricFamily("spl_prefill_tokens_per_second", "Prefill rate of the prefills under way so far",
                                value=sum(p.tokens_per_second for p in prefills))
        if service is None:
            return
        yield CounterMetricFamily("spl_session_offloads", "Sessions offloaded to disk under the KV budget",
                                  value=service.memory.offloads)
        yield CounterMetricFamily("spl_session_restores", "Offloaded sessions brought back on use",
                                  value=service.memory.restores)
        cache = service.prefix_cache
        if cache is not None:
            yield CounterMetricFamily("spl_prefix_cache_hits", "Stateless requests resumed from a cached prefix",
                                      value=cache.hits)
            yield CounterMetricFamily("spl_prefix_cache_misses", "Stateless requests with no cached prefix",
                                      value=cache.misses)
            yield GaugeMetricFamily("spl_prefix_cache_bytes", "Bytes of state held by the stateless prefix cache",
                                    value=cache.nbytes())
        yield from _rank_metrics(service)
        if service.kv_budget is not None:
            yield GaugeMetricFamily("spl_kv_budget_bytes", "The KV budget (--kv-budget, else free memory after "
                                    "the weights less headroom)", value=service.kv_budget)

    def describe(self) -> list:
        # Describing without collecting keeps registration from calling list() before the model loads.
        return []


def _rank_metrics(service: SessionService) -> Iterator[GaugeMetricFamily]:
    """Per-rank gauges of a model sharded over ranks (--tensor-parallel); nothing otherwise."""
    ranks = getattr(service.model, "ranks_status", None)
    if ranks is None:
        return
    alive = GaugeMetricFamily("spl_rank_alive", "Whether each rank of the sharded model runs", labels=["rank"])
    weights = GaugeMetricFamily("spl_rank_weight_bytes", "Parameter bytes each rank holds", labels=["rank"])
    for row in ranks():
        alive.add_metric([str(row["rank"])], 1 if row["alive"] else 0)
        weights.add_metric([str(row["rank"])], row.get("weight_bytes", 0))
    yield alive
    yield weights


class Metrics:
    """Every metric of one app, and the text Prometheus scrapes."""

    def __init__(self, sessions: Callable[[], SessionService | None]):
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.ttft = Histogram("spl_time_to_first_token_seconds", "Request arrival to the first generated text",
                              buckets=_TTFT, registry=r)
        self.itl = Histogram("spl_inter_token_latency_seconds", "Time between successive text events of a turn",
                             buckets=_ITL, registry=r)
        self.latency = Histogram("spl_request_duration_seconds", "Chat completion requests, arrival to last byte",
                                 ["stream"], buckets=_LATENCY, registry=r)
        self.http = Histogram("spl_http_request_duration_seconds", "Any request, arrival to response headers",
                              ["method", "route", "status"], buckets=_LATENCY, registry=r)
        self.queue = Histogram("spl_queue_time_seconds", "Request arrival until its turn is handed to the engine "
                               "(validation, tokenization, session lock, state allocation)", buckets=_QUEUE,
                               registry=r)
        self.engine_queue = Histogram("spl_engine_queue_seconds", "Turn handed to the engine until the engine "
                                      "thread first steps it (other turns and calls ahead of it)",
                                      buckets=_QUEUE, registry=r)
        self.running = Gauge("spl_requests_running", "Turns handed to the engine and not finished", registry=r)
        self.waiting = Gauge("spl_requests_waiting", "Chat requests received and not yet handed to the engine",
                             registry=r)
        self.tokens = Counter("spl_tokens", "Tokens processed", ["kind"], registry=r)
        self.snapshot_written = Counter("spl_snapshot_written_bytes", "Snapshot bytes saved through the API",
                                        registry=r)
        self.snapshot_read = Counter("spl_snapshot_read_bytes", "Snapshot bytes loaded through the API", registry=r)
        self.finished = Counter("spl_requests_finished", "Chat requests by finish reason", ["reason"], registry=r)
        r.register(_SessionCollector(sessions))

    def render(self) -> bytes:
        """Return the exposition text of every metric."""
        return generate_latest(self.registry)

    def turn(self, arrived: float, stream: bool) -> TurnTimer:
        """Start timing a chat turn that arrived at `arrived` (time.perf_counter())."""
        return TurnTimer(self, arrived, stream)


class TurnTimer:
    """Observe one chat turn: admission, each text event, the end."""

    def __init__(self, metrics: Metrics, arrived: float, stream: bool):
        self._m = metrics
        self._arrived = arrived
        self._stream = "true" if stream else "false"
        self._last: float | None = None
        self._state = "new"
        metrics.waiting.inc()

    def admitted(self) -> None:
        """The turn was handed to the engine."""
        self._m.waiting.dec()
        self._m.running.inc()
        self._m.queue.observe(time.perf_counter() - self._arrived)
        self._state = "running"

    def engine_started(self, seconds: float | None) -> None:
        """The engine thread took the turn up after waiting `seconds`."""
        if seconds is not None:
            self._m.engine_queue.observe(seconds)

    def text(self) -> None:
        """A text event (reasoning or content) arrived."""
        now = time.perf_counter()
        if self._last is None:
            self._m.ttft.observe(now - self._arrived)
        else:
            self._m.itl.observe(now - self._last)
        self._last = now

    def end(self, reason: str, usage: Usage | None = None) -> None:
        """The turn ended (any way); safe to call more than once."""
        if self._state == "ended":
            return
        gauge = self._m.running if self._state == "running" else self._m.waiting
        gauge.dec()
        self._state = "ended"
        self._m.latency.labels(self._stream).observe(time.perf_counter() - self._arrived)
        self._m.finished.labels(reason).inc()
        if usage is not None:
            self._m.tokens.labels("prompt").inc(usage.prompt_tokens - usage.cached_tokens)
            self._m.tokens.labels("cached").inc(usage.cached_tokens)
            self._m.tokens.labels("completion").inc(usage.completion_tokens)
