"""A real `wapi worker` process serves what its Kubernetes probes ask (deploy/kubernetes/base/
worker.yaml): /readyz once it polls Temporal, /livez, and /metrics on the same port."""

from __future__ import annotations

from pathlib import Path

import httpx

from catalog import database
from tests.e2e.conftest import eventually, stack_settings
from tests.e2e.test_faults import connect
from tests.support.ports import free_port
from tests.support.processes import DevServer, WorkerProcess


async def test_a_worker_process_answers_its_probes(
    tmp_path: Path, docker_url: str, task_queue: str
) -> None:
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    port = free_port()
    settings = stack_settings(
        tmp_path, server.address, docker_url, task_queue, worker_metrics_port=port
    )
    engine = database.create_engine(settings.catalog_url)
    await database.migrate(engine)  # as the migrations Job does before workers start
    await engine.dispose()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    url = f"http://127.0.0.1:{port}"
    try:
        server.start()
        await connect(server)
        worker.start()
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:

            async def get(path: str) -> httpx.Response | None:
                try:
                    return await http.get(path)
                except httpx.TransportError:
                    return None  # not serving yet

            ready = await eventually(
                lambda: get("/readyz"),
                lambda r: r is not None and r.status_code == 200,
                90,
                f"the worker to be ready (log: {worker.log_file})",
            )
            assert ready.text == "polling"
            live = await http.get("/livez")
            assert (live.status_code, live.text) == (200, "alive")
            metrics = await http.get("/metrics")
            assert "wapi_worker_supervision_slots_total" in metrics.text
        worker.stop()
        assert worker.process is not None and worker.process.returncode == 0
    finally:
        worker.stop()
        server.stop()
