"""Prometheus metrics of one app: request counts, latency, batch sizes, model load time.

With ``canon serve --workers N`` each uvicorn worker is a process of its own: there
prometheus_client runs in its multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which
``run_server`` sets before the workers start), every worker writes its values to files in
that directory, and ``/metrics`` adds up all the workers' files, whichever worker answers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

# Latency buckets from 0.5 ms (a small model on loopback) to 10 s.
_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The server's metrics in their own registry (no process-global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "canon_requests",
            "Inference requests by model and HTTP status.",
            ["model", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "canon_request_latency_seconds",
            "Inference request latency, from the body's arrival to the response.",
            ["model"],
            buckets=_LATENCY,
            registry=self.registry,
        )
        self._batch = Histogram(
            "canon_batch_size",
            "Samples per ONNX Runtime call.",
            ["model"],
            buckets=_BATCH,
            registry=self.registry,
        )
        self._load = Gauge(
            "canon_model_load_seconds",
            "Time to create a model's ONNX Runtime session and run it once.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="max",  # over the workers: the slowest load
        )
        # In multiprocess mode prometheus_client keeps the values in files (it chose when it
        # was imported); a scrape then reads every process's files, not this registry.
        self._scraped = self.registry
        if getattr(values.ValueClass, "_multiprocess", False):
            self._scraped = CollectorRegistry()
            MultiProcessCollector(self._scraped)
        # labels() takes a lock and builds a key on every call; the hot path reuses children.
        self._counts: dict[tuple[str, str], Counter] = {}
        self._latencies: dict[str, Histogram] = {}
        self._batches: dict[str, Histogram] = {}

    def observe(self, model: str, status: int, seconds: float) -> None:
        """Count one inference request (``model`` is "" when the name is not served)."""
        key = (model, str(status))
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = self._requests.labels(*key)
        count.inc()
        if model:
            latency = self._latencies.get(model)
            if latency is None:
                latency = self._latencies[model] = self._latency.labels(model)
            latency.observe(seconds)

    def batch(self, model: str, size: int) -> None:
        histogram = self._batches.get(model)
        if histogram is None:
            histogram = self._batches[model] = self._batch.labels(model)
        histogram.observe(size)

    def loaded(self, model: str, seconds: float) -> None:
        self._load.labels(model).set(seconds)

    def render(self) -> bytes:
        return generate_latest(self._scraped)
