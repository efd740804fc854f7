"""Service metrics in Prometheus' text format, served by the ingress at ``GET /metrics``.

Why ``prometheus_client`` in the ingress rather than ``ray.util.metrics``:
Ray's metrics reach Prometheus through each node's metrics agent, on a port
of its own and after an export delay, so they cannot be read back from the
service itself; these are answered by the route, now, and are what the tests
read. Every request passes through the ingress, so request counts, latency,
tokens and validity are all known there. With several ingress replicas each
keeps its own counters and a scrape through the Serve proxy reaches one of
them: keep one ingress replica (the default; it does no heavy work) or scrape
replicas directly. Ray Serve's own ``ray_serve_*`` metrics (queues, replicas)
are exported by Ray as usual.

A private registry keeps these apart from anything else in the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docextract.results import ExtractionResult, Usage

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ServiceMetrics:
    """Counters and histograms for one ingress replica."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # no "*_created" series: they double the text and no dashboard reads them
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "docextract_requests",
            "HTTP requests answered, by route, model and status code.",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "docextract_request_duration_seconds",
            "Time to answer a request (to the last byte for streams).",
            ["route", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "docextract_tokens", "Tokens processed, by model and kind (prompt, completion).", ["model", "kind"],
            registry=self.registry,
        )  # fmt: skip
        self.outputs = Counter(
            "docextract_outputs",
            "Generated outputs checked against their schema, by model and validity.",
            ["model", "valid"],
            registry=self.registry,
        )
        self.validity = Gauge(
            "docextract_validity_ratio",
            "Share of generated outputs that conform to their schema, since start.",
            ["model"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "docextract_rejected",
            "Requests refused before or during generation, by reason (queue_full, timeout, unauthorized, too_large).",
            ["model", "reason"],
            registry=self.registry,
        )
        self._counts: dict[str, list[int]] = {}

    def observe_request(self, route: str, model: str, status: int, seconds: float) -> None:
        self.requests.labels(route, model, str(status)).inc()
        self.latency.labels(route, model).observe(seconds)

    def observe_output(self, model: str, valid: bool | None, usage: Usage) -> None:
        """One generation: its tokens, and its validity unless it is free text (``valid`` None)."""
        self.tokens.labels(model, "prompt").inc(usage.prompt_tokens)
        self.tokens.labels(model, "completion").inc(usage.completion_tokens)
        if valid is None:
            return
        self.outputs.labels(model, "true" if valid else "false").inc()
        counts = self._counts.setdefault(model, [0, 0])
        counts[0] += int(valid)
        counts[1] += 1
        self.validity.labels(model).set(counts[0] / counts[1])

    def observe_results(self, model: str, results: list[ExtractionResult]) -> None:
        for result in results:
            if result.error is None:  # no generation happened for an errored result
                self.observe_output(model, result.valid, result.usage)

    def reject(self, model: str, reason: str) -> None:
        self.rejected.labels(model, reason).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
