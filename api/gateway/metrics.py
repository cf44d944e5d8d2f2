"""The gateway's metrics: plain counters per process, merged across processes on scrape.

`prometheus_client`'s `labels(...).inc()` takes a lock and a label lookup (2-4 us, three per
request); here a request adds to dicts owned by its process (an event loop needs no lock), and
the Prometheus families are built only when `/metrics` is scraped.

Processes that share a port (`wapi gateway --processes N`, or several gateways started side by
side) share a directory too: each writes its counters there once a second, and a scrape, which
any of them may answer, adds up its own live counters and the others' files. Counters of a
process that has exited stay in the sum, so totals never go backwards; its gauges are left out.

Anonymous scrapes see gateway-wide series only. The per-deployment series name deployment
ids, so they are shown to an admin API key or the metrics token (`WAPI_METRICS_TOKEN`).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
STATUS_CLASSES: Final = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")  # index: status // 100
COUNTERS: Final = (
    "requests",
    "latency",
    "deployment_requests",
    "deployment_latency",
    "failures",
    "audit",
)
GAUGES: Final = ("in_flight", "deployment_in_flight", "connections")


def _histogram() -> list[float]:
    return [0.0] * (len(BUCKETS) + 2)  # one count per bucket, +Inf, then the sum


class GatewayMetrics:
    """One process's counters. Keys are strings so that a snapshot is plain JSON."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.requests: dict[str, float] = {}  # "kind status_class" -> count
        self.latency: dict[str, list[float]] = {}  # kind -> histogram
        self.deployment_requests: dict[str, float] = {}  # "deployment status_class" -> count
        self.deployment_latency: dict[str, list[float]] = {}  # deployment -> histogram
        self.in_flight: dict[str, float] = {}  # kind -> now
        self.deployment_in_flight: dict[str, float] = {}  # deployment -> now
        self.failures: dict[str, float] = {}  # upstream failures and refusals, by kind
        self.audit: dict[str, float] = {}  # calls recorded / dropped, batches failed
        self.connections: dict[str, float] = {"client": 0, "upstream": 0}

    # ---- the hot path ---------------------------------------------------------------------

    def started(self, kind: str, deployment: str | None) -> None:
        """A call whose target is known to exist goes upstream."""
        self.in_flight[kind] = self.in_flight.get(kind, 0) + 1
        if deployment is not None:
            self.deployment_in_flight[deployment] = self.deployment_in_flight.get(deployment, 0) + 1

    def finished(
        self, kind: str, deployment: str | None, status: int, seconds: float, *, started: bool
    ) -> None:
        """A call answered; per-deployment series count it only if it was `started`, so an
        unknown caller cannot add deployment ids of its choosing to them."""
        status_class = STATUS_CLASSES[min(status // 100, 5)]
        key = f"{kind} {status_class}"
        self.requests[key] = self.requests.get(key, 0) + 1
        _observe(self.latency, kind, seconds)
        if not started:
            return
        self.in_flight[kind] -= 1
        if deployment is not None:
            self.deployment_in_flight[deployment] -= 1
            key = f"{deployment} {status_class}"
            self.deployment_requests[key] = self.deployment_requests.get(key, 0) + 1
            _observe(self.deployment_latency, deployment, seconds)

    def count(self, table: dict[str, float], kind: str, amount: float = 1) -> None:
        table[kind] = table.get(kind, 0) + amount

    # ---- across processes -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*COUNTERS, *GAUGES)}

    def save(self) -> None:
        """Write this process's counters where the other processes read them (atomically)."""
        if self.directory is None:
            return
        path = self.directory / f"{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(self.snapshot()))
            temporary.replace(path)
        except OSError as error:
            log.warning("could not save gateway metrics", extra={"error": str(error)})

    def merged(self) -> dict[str, Any]:
        """This process's live counters plus every other process's last saved ones."""
        total: dict[str, Any] = json.loads(json.dumps(self.snapshot()))  # a copy to add to
        for pid, saved in self._others():
            names = COUNTERS if not _alive(pid) else (*COUNTERS, *GAUGES)
            for name in names:
                _add(total[name], saved.get(name, {}))
        return total

    def _others(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if self.directory is None:
            return
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(path.stem)
                if pid != os.getpid():
                    yield pid, json.loads(path.read_text())

    def exposition(self, *, per_deployment: bool) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(self.merged(), per_deployment))
        return generate_latest(registry)


def forget_exited(directory: Path) -> None:
    """Drop the files of processes that are gone (called when a gateway starts): their counts
    would otherwise stay in the sums forever."""
    for path in directory.glob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            if not _alive(int(path.stem)):
                path.unlink()


def _observe(histograms: dict[str, list[float]], key: str, seconds: float) -> None:
    counts = histograms.get(key)
    if counts is None:
        counts = histograms[key] = _histogram()
    counts[bisect.bisect_left(BUCKETS, seconds)] += 1
    counts[-1] += seconds


def _add(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, list):
            mine = into.setdefault(key, [0.0] * len(value))
            for index, count in enumerate(value):
                mine[index] += count
        else:
            into[key] = into.get(key, 0) + value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Families(Collector):
    def __init__(self, values: dict[str, Any], per_deployment: bool) -> None:
        self.values = values
        self.per_deployment = per_deployment

    def collect(self) -> Iterable[Metric]:
        values = self.values
        requests = CounterMetricFamily(
            "wapi_gateway_requests",
            "Invoke calls answered, by kind (workload or deployment) and status class.",
            labels=["kind", "status_class"],
        )
        for key, count in sorted(values["requests"].items()):
            requests.add_metric(key.split(" "), count)
        yield requests
        yield _histograms(
            "wapi_gateway_request_duration_seconds",
            "Time from a call's arrival to the end of its response, by kind.",
            "kind",
            values["latency"],
        )
        in_flight = GaugeMetricFamily(
            "wapi_gateway_requests_in_flight", "Calls being served now, by kind.", labels=["kind"]
        )
        for kind, count in sorted(values["in_flight"].items()):
            in_flight.add_metric([kind], count)
        yield in_flight
        failures = CounterMetricFamily(
            "wapi_gateway_failures",
            "Calls the gateway could not forward or refused for a limit, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(values["failures"].items()):
            failures.add_metric([reason], count)
        yield failures
        connections = GaugeMetricFamily(
            "wapi_gateway_connections", "Open connections, by side.", labels=["side"]
        )
        for side, count in sorted(values["connections"].items()):
            connections.add_metric([side], count)
        yield connections
        audit = CounterMetricFamily(
            "wapi_gateway_audit",
            "Invoke calls recorded in the audit log, dropped (queue full or write failed), "
            "and failed batch writes.",
            labels=["outcome"],
        )
        for outcome, count in sorted(values["audit"].items()):
            audit.add_metric([outcome], count)
        yield audit
        if self.per_deployment:
            yield from self._per_deployment()

    def _per_deployment(self) -> Iterator[Metric]:
        values = self.values
        requests = CounterMetricFamily(
            "wapi_deployment_requests",
            "Requests through a deployment's gateway route, by status class (2xx, 4xx, ...).",
            labels=["deployment", "status_class"],
        )
        for key, count in sorted(values["deployment_requests"].items()):
            requests.add_metric(key.split(" "), count)
        yield requests
        yield _histograms(
            "wapi_deployment_request_duration_seconds",
            "Time from a deployment request's arrival to the end of its response.",
            "deployment",
            values["deployment_latency"],
        )
        in_flight = GaugeMetricFamily(
            "wapi_deployment_requests_in_flight",
            "Requests a deployment's gateway route is serving now.",
            labels=["deployment"],
        )
        for deployment, count in sorted(values["deployment_in_flight"].items()):
            in_flight.add_metric([deployment], count)
        yield in_flight


def _histograms(
    name: str, documentation: str, label: str, values: dict[str, list[float]]
) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for key, counts in sorted(values.items()):
        cumulative, buckets = 0.0, []
        for bound, count in zip((*BUCKETS, float("inf")), counts[:-1], strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        family.add_metric([key], buckets, counts[-1])
    return family
