"""Prometheus metrics in the text exposition format (version 0.0.4), without a client library.

A handful of counters and one latency histogram, updated from the event loop thread (and the
writer thread for batch sizes); increments are plain dict updates under the GIL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
Labels = tuple[tuple[str, str], ...]


@dataclass
class Counter:
    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(labels)} {value:g}"


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: dict[Labels, list[int]] = field(default_factory=dict)
    sums: dict[Labels, float] = field(default_factory=dict)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0] * (len(self.buckets) + 1)
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                counts[index] += 1
                break
        else:
            counts[-1] += 1
        self.sums[key] = self.sums.get(key, 0.0) + value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, counts in sorted(self.counts.items()):
            running = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                yield f"{self.name}_bucket{_labels((*labels, ('le', le)))} {running}"
            yield f"{self.name}_sum{_labels(labels)} {self.sums[labels]:.6f}"
            yield f"{self.name}_count{_labels(labels)} {running}"


@dataclass
class Gauge:
    name: str
    help: str
    value: Callable[[], float]

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        yield f"{self.name} {self.value():g}"


class Metrics:
    """The service's metrics."""

    def __init__(self) -> None:
        self.requests = Counter(
            "patchctl_http_requests_total", "HTTP requests by route and status."
        )
        self.latency = Histogram(
            "patchctl_http_request_duration_seconds", "HTTP request latency by route."
        )
        self.reports = Counter("patchctl_reports_total", "Agent reports by scan outcome.")
        self.enrolments = Counter("patchctl_enrolments_total", "Enrolments (new or re-enrolment).")
        self.job_events = Counter("patchctl_job_events_total", "Job events by state and status.")
        self.gauges: list[Gauge] = []

    def render(self) -> str:
        parts: list[Iterable[str]] = [
            self.requests.render(),
            self.latency.render(),
            self.reports.render(),
            self.enrolments.render(),
            self.job_events.render(),
        ]
        parts.extend(gauge.render() for gauge in self.gauges)
        return "\n".join(line for part in parts for line in part) + "\n"


def _labels(labels: Iterable[tuple[str, str]]) -> str:
    pairs = [f'{k}="{_escape(v)}"' for k, v in labels]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class RequestMetrics:
    """ASGI middleware: count requests by route template and status, and time them."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.inc(method=scope["method"], route=path, status=str(status))
            self.metrics.latency.observe(time.perf_counter() - started, route=path)
