"""Limits of supervision, end to end on real containers: a worker at its capacity says so
and another worker on the task queue takes the workload; a container whose output is huge
fails with a reason cut short."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest
from temporalio.testing import WorkflowEnvironment

from catalog import database
from runtimes.factory import build_runtime
from services import temporal
from services.bundles import BundleCatalog
from tests.e2e.conftest import WORKLOADS, Stack, eventually, open_stack
from tests.e2e.test_workload_lifecycle import READY
from worker import WorkerGroup, build_worker


@pytest.mark.timeout(300)
async def test_a_full_worker_says_so_and_another_worker_takes_the_workload(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    docker_url: str,
    test_image: str,
    task_queue: str,
) -> None:
    async with open_stack(
        tmp_path, temporal_env.client, docker_url, test_image, task_queue, supervision_capacity=1
    ) as stack:
        first = (await stack.create(name="first", readinessProbe=READY))["id"]
        await stack.wait_status(first, "running")
        group = stack.worker
        assert group is not None
        # Running, it is supervised again (no longer waiting to be ready): the one slot.
        await eventually(lambda: _used(group), lambda used: used == 1, 30, "the slot to fill")
        second = (await stack.create(name="second", readinessProbe=READY))["id"]

        waiting = await stack.wait_status(second, "initializing")
        waiting = await eventually(
            lambda: stack.get(second),
            lambda w: "WAPI_SUPERVISION_CAPACITY" in (w["statusReason"] or ""),
            90,
            "the workload to say that no worker has room",
        )
        assert waiting["status"] == "initializing"
        assert "supervision_waiting" in [e["type"] for e in await stack.events(second)]
        # The full worker's gauges, as Prometheus scrapes them.
        metrics = generate_latest(group.slots.registry).decode()
        assert "wapi_worker_supervision_slots_used 1.0" in metrics
        assert "wapi_worker_supervision_slots_total 1.0" in metrics

        # Another worker on the same task queue, with room: it takes the waiting workload.
        # (A client of its own: one client serves one worker per task queue.)
        client = await temporal.connect(stack.settings)
        runtime = build_runtime(stack.settings)
        assert runtime is not None
        engine = database.create_engine(stack.settings.catalog_url)
        try:
            other = build_worker(
                client,
                stack.settings.model_copy(update={"supervision_capacity": 5}),
                database.create_sessionmaker(engine),
                runtime,
                BundleCatalog.load(),
            )
            async with other:
                running = await stack.wait_status(second, "running", within=120)
                assert running["statusReason"] is None
                types = [e["type"] for e in await stack.events(second)]
                assert "supervision_resumed" in types
                events = await stack.events(second)
                started = [e for e in events if e["type"] == "supervision_started"]
                assert started[-1]["details"]["worker"] == other.identity
                assert other.slots.used == 1
                # Stopped while the second worker supervises it: released there at once.
                stopping = await stack.api.post(f"{WORKLOADS}{second}/stop/")
                assert stopping.status_code == 202
                await stack.wait_status(second, "stopped")
                assert other.slots.used == 0
        finally:
            await runtime.close()
            await engine.dispose()


async def _used(group: WorkerGroup) -> int:
    return group.slots.used


async def test_a_3_mb_line_errors_with_a_short_reason(stack: Stack) -> None:
    shout = "head -c 3000000 /dev/zero | tr '\\0' x; echo; exit 1"
    wid = (await stack.create(command=["sh", "-c", shout]))["id"]
    errored = await stack.wait_status(wid, "errored", within=60)
    reason = errored["statusReason"]
    assert "exited with code 1" in reason and len(reason) < 1000, reason[:2000]
    assert all(len(event["message"]) < 1000 for event in await stack.events(wid))
    # The logs API cuts such lines too (at 16 KiB each), and says how much it left out:
    # each run printed 3 MB, the answer stays small.
    logs = await stack.api.get(f"{WORKLOADS}{wid}/logs/")
    assert logs.status_code == 200 and "more bytes)" in logs.text, logs.text[:300]
    assert len(logs.text) < 200_000
