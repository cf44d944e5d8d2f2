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

import asyncio
import bisect
import contextlib
import json
import logging
import os
import threading
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
STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")
# A series is one list: calls in flight, calls answered per status class, a count per latency
# bucket and +Inf, and the sum of latencies. One dict lookup and a few list updates per call.
IN_FLIGHT: Final = 0
ANSWERED: Final = 1  # 1xx..5xx at ANSWERED + 0..4
BUCKET: Final = ANSWERED + len(STATUS_CLASSES)  # BUCKETS and +Inf
SUM: Final = BUCKET + len(BUCKETS) + 1
# Where a status counts, by its hundreds: below 200 as 1xx, from 500 up as 5xx.
_ANSWERED_AT: Final = tuple(ANSWERED + min(max(hundreds, 1), 5) - 1 for hundreds in range(10))
COUNTERS: Final = ("kinds", "deployments", "failures", "audit")  # series hold a gauge too
GAUGES: Final = ("connections",)


def _series() -> list[float]:
    return [0.0] * (SUM + 1)


class GatewayMetrics:
    """One process's counters. Keys are strings so that a snapshot is plain JSON."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.kinds: dict[str, list[float]] = {}  # "workload" / "deployment" -> series
        self.deployments: dict[str, list[float]] = {}  # deployment id -> series
        self.failures: dict[str, float] = {}  # upstream failures and refusals, by reason
        # calls recorded / dropped, batches failed: all shown from the start, so that an alert
        # on them has a series to watch before the first failure
        self.audit: dict[str, float] = {"recorded": 0, "dropped": 0, "failed_writes": 0}
        self.connections: dict[str, float] = {"client": 0, "upstream": 0}
        self._saves = self._saved = 0
        self._writing = threading.Lock()

    # ---- the hot path ---------------------------------------------------------------------

    def started(self, kind: str, deployment: str | None) -> None:
        """A call whose target is known to exist goes upstream."""
        series = self.kinds.get(kind) or self.kinds.setdefault(kind, _series())
        series[IN_FLIGHT] += 1
        if deployment is not None:
            own = self.deployments.get(deployment) or self.deployments.setdefault(
                deployment, _series()
            )
            own[IN_FLIGHT] += 1

    def finished(
        self, kind: str, deployment: str | None, status: int, seconds: float, *, started: bool
    ) -> None:
        """A call answered; per-deployment series count it only if it was `started`, so an
        unknown caller cannot add deployment ids of its choosing to them."""
        answered = _ANSWERED_AT[status // 100] if status < 1000 else ANSWERED + 4
        bucket = BUCKET + bisect.bisect_left(BUCKETS, seconds)
        series = self.kinds.get(kind) or self.kinds.setdefault(kind, _series())
        series[answered] += 1
        series[bucket] += 1
        series[SUM] += seconds
        if not started:
            return
        series[IN_FLIGHT] -= 1
        if deployment is not None:
            own = self.deployments[deployment]
            own[IN_FLIGHT] -= 1
            own[answered] += 1
            own[bucket] += 1
            own[SUM] += seconds

    def count(self, table: dict[str, float], kind: str, amount: float = 1) -> None:
        table[kind] = table.get(kind, 0) + amount

    # ---- across processes -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*COUNTERS, *GAUGES)}

    def save(self) -> None:
        """Write this process's counters where the other processes read them (atomically)."""
        self._saves += 1
        self._write(json.dumps(self.snapshot()), self._saves)

    async def save_off_loop(self) -> None:
        """`save`, with the file written in a thread: a slow disk does not hold the loop."""
        self._saves += 1
        await asyncio.to_thread(self._write, json.dumps(self.snapshot()), self._saves)

    def _write(self, text: str, number: int) -> None:
        if self.directory is None:
            return
        with self._writing:  # a save still in its thread never replaces a newer one
            if number < self._saved:
                return
            self._saved = number
            path = self.directory / f"{os.getpid()}.json"
            temporary = path.with_suffix(".tmp")
            try:
                temporary.write_text(text)
                temporary.replace(path)
            except OSError as error:
                log.warning("could not save gateway metrics", extra={"error": str(error)})

    def merged(self) -> dict[str, Any]:
        """This process's live counters plus every other process's last saved ones (of a
        process that has exited: its counters, not its gauges)."""
        total: dict[str, Any] = json.loads(json.dumps(self.snapshot()))  # a copy to add to
        for pid, saved in self._others():
            alive = _alive(pid)
            for name in (*COUNTERS, *GAUGES) if alive else COUNTERS:
                _add(total[name], saved.get(name, {}), with_gauges=alive)
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


def _add(into: dict[str, Any], other: dict[str, Any], *, with_gauges: bool) -> None:
    for key, value in other.items():
        if isinstance(value, list):
            mine = into.setdefault(key, _series())
            for index, count in enumerate(value):
                if index != IN_FLIGHT or with_gauges:
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
        yield from _families(
            "wapi_gateway",
            "kind",
            values["kinds"],
            "Invoke calls, by kind (workload or deployment)",
        )
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
            yield from _families(
                "wapi_deployment", "deployment", values["deployments"], "Calls through a deployment"
            )


def _families(
    prefix: str, label: str, series: dict[str, list[float]], what: str
) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        f"{prefix}_requests",
        f"{what}, answered, by status class (2xx, 4xx, ...).",
        labels=[label, "status_class"],
    )
    latency = HistogramMetricFamily(
        f"{prefix}_request_duration_seconds",
        f"{what}: time from arrival to the end of the response.",
        labels=[label],
    )
    in_flight = GaugeMetricFamily(
        f"{prefix}_requests_in_flight", f"{what}, being served now.", labels=[label]
    )
    for key, row in sorted(series.items()):
        for index, status_class in enumerate(STATUS_CLASSES):
            if row[ANSWERED + index]:
                requests.add_metric([key, status_class], row[ANSWERED + index])
        cumulative, buckets = 0.0, []
        for index, bound in enumerate((*BUCKETS, float("inf"))):
            cumulative += row[BUCKET + index]
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        latency.add_metric([key], buckets, row[SUM])
        in_flight.add_metric([key], row[IN_FLIGHT])
    yield requests
    yield latency
    yield in_flight
