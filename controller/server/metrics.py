"""Prometheus metrics in the text exposition format (version 0.0.4), without a client library.

Process metrics: a handful of counters and one latency histogram, updated from the event loop
thread (and the writer thread for batch sizes); increments are plain dict updates under the GIL.
Fleet metrics (`controller.runtime.fleet_metrics`) are computed from the store per tenant scope
and cached for `FLEET_CACHE_SECONDS` (`FleetCache`), so scrapes never load the database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.runtime import fleet_metrics

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, MutableMapping
    from datetime import datetime

    from controller.store import Store

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FLEET_CACHE_SECONDS = 15.0
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
            yield f"{self.name}{_labels(labels)} {_number(value)}"


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
    """A value read when rendered; `kind` "counter" for a count kept elsewhere that only grows."""

    name: str
    help: str
    value: Callable[[], float]
    kind: str = "gauge"

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        yield f"{self.name} {_number(self.value())}"


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
        self.fleet: FleetCache | None = None  # set by the app: fleet metrics for read tokens

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


def render_families(families: Iterable[fleet_metrics.Family]) -> str:
    """Families as exposition text: HELP and TYPE lines, then each sample."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        lines.extend(
            f"{family.name}{sample.suffix}{_labels(sample.labels)} {_number(sample.value)}"
            for sample in family.samples
        )
    return "\n".join(lines) + "\n" if lines else ""


class FleetCache:
    """Fleet metrics text per tenant scope, computed at most once per `ttl` seconds per scope.

    One lock serialises the computations, so concurrent scrapes wait for the one in progress
    and then read its result instead of querying the store again.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        ttl: float = FLEET_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}

    def render(self, scope: str) -> str:
        """The fleet metrics of tenant `scope` (blocking: call it off the event loop)."""
        with self._lock:
            hit = self._cache.get(scope)
            if hit is not None and hit[1] > self.monotonic():
                return hit[0]
            with self.store.read() as conn:
                families = fleet_metrics.collect(conn, scope=scope, now=self.clock())
            text = render_families(families)
            self._cache[scope] = (text, self.monotonic() + self.ttl)
            return text


def _number(value: float) -> str:
    if value != value:  # noqa: PLR0124 - NaN is the one value unequal to itself
        return "NaN"
    if value in {float("inf"), float("-inf")}:
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


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
