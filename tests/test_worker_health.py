"""The worker's HTTP port: /metrics, /livez and /readyz, served for real on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge

from services.worker_health import WorkerHealth, serve
from tests.support.ports import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> WorkerHealth:
    return WorkerHealth(stale_after=60, clock=clock)


@pytest.fixture
def url(health: WorkerHealth) -> Iterator[str]:
    registry = CollectorRegistry()
    Gauge("wapi_worker_supervision_slots_total", "capacity", registry=registry).set(7)
    port = free_port()
    server = serve(port, "127.0.0.1", health, registry)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_are_served_beside_the_probes(url: str) -> None:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert "wapi_worker_supervision_slots_total 7.0" in response.text


def test_ready_only_while_polling(url: str, health: WorkerHealth) -> None:
    assert httpx.get(f"{url}/readyz").status_code == 503
    health.polling = True
    assert httpx.get(f"{url}/readyz").text == "polling"
    health.polling = False  # stopping: a rolling update waits for the next one
    response = httpx.get(f"{url}/readyz")
    assert (response.status_code, response.text) == (503, "not polling Temporal")


def test_not_alive_once_the_event_loop_stops_beating(
    url: str, health: WorkerHealth, clock: Clock
) -> None:
    assert httpx.get(f"{url}/livez").status_code == 200
    clock.now += 59
    assert httpx.get(f"{url}/livez").status_code == 200
    clock.now += 2
    response = httpx.get(f"{url}/livez")
    assert (response.status_code, response.text) == (503, "the event loop has not run for 61 s")
    health.beat()
    assert httpx.get(f"{url}/livez").status_code == 200


async def test_the_event_loop_beats(health: WorkerHealth, clock: Clock) -> None:
    clock.now += 120
    assert not health.liveness()[0]
    beating = asyncio.create_task(health.keep_beating(every=0.01))
    await asyncio.sleep(0.05)
    beating.cancel()
    assert health.liveness() == (True, "alive")
