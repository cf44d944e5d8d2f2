"""Helpers for local-runtime tests: a runtime on the session's engine, plans, tick loops."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiodocker
import pytest

from models.plan import ContainerPlan, GroupPlan, RunPlan
from models.spec import Probe
from runtimes.base import LABEL_WORKLOAD, Observation, RestartPolicy, RuntimeEvent, Supervisor
from runtimes.local.runtime import LocalRuntime

# Fast restarts so crash loops end within seconds.
FAST_RESTARTS = RestartPolicy(
    backoff_initial_seconds=0.2, backoff_max_seconds=1.0, crash_loop_limit=3
)
TICK_SECONDS = 0.2


def probe(**fields: object) -> Probe:
    """A probe from API-style (camelCase) fields, with a 1 s period unless given."""
    return Probe.model_validate({"periodSeconds": 1, **fields})


def container(image: str, *command: str, **fields: object) -> ContainerPlan:
    defaults: dict[str, object] = {"name": "main", "primary": True, "port": 8080}
    return ContainerPlan.model_validate(
        {**defaults, "image": image, "command": list(command) or None, **fields}
    )


def plan(
    workload_id: str, *containers: ContainerPlan, replicas: int = 1, generation: int = 1
) -> RunPlan:
    group = GroupPlan(name="default", replicas=replicas, containers=list(containers))
    return RunPlan(workload_id=workload_id, generation=generation, groups=[group])


@dataclass
class Watch:
    """Everything seen while ticking: the last observation and every event, with times."""

    last: Observation | None = None
    events: list[tuple[float, RuntimeEvent]] = field(default_factory=list)

    def types(self) -> list[str]:
        return [event.type for _, event in self.events]

    def of(self, kind: str) -> list[tuple[float, RuntimeEvent]]:
        return [(at, event) for at, event in self.events if event.type == kind]


async def tick_until(
    supervisor: Supervisor,
    done: Callable[[Observation], bool],
    *,
    within: float = 20.0,
    watch: Watch | None = None,
) -> Watch:
    """Tick until `done(observation)`, waiting in between as the supervise activity does (at
    most 0.2 s); fail with the last observation on timeout."""
    watch = watch or Watch()
    deadline = time.monotonic() + within
    while True:
        observation = await supervisor.tick()
        now = time.monotonic()
        watch.last = observation
        watch.events.extend((now, event) for event in observation.events)
        if done(observation):
            return watch
        if now > deadline:
            pytest.fail(f"condition not reached in {within}s; last: {observation!r}")
        await supervisor.wait(TICK_SECONDS)


def ready(count: int = 1) -> Callable[[Observation], bool]:
    return lambda observation: sum(r.ready for r in observation.replicas) >= count


@pytest.fixture
def workload_id() -> str:
    return secrets.token_hex(12)


@pytest.fixture
async def runtime(docker_url: str, workload_id: str) -> AsyncIterator[LocalRuntime]:
    """A runtime with fast restarts; every container of `workload_id` is removed afterwards."""
    local = LocalRuntime(docker_url, restart_policy=FAST_RESTARTS, stop_grace_seconds=2)
    try:
        yield local
    finally:
        try:
            await local.remove(workload_id)
        finally:
            await local.close()


@pytest.fixture
async def docker(docker_url: str) -> AsyncIterator[aiodocker.Docker]:
    """A plain engine client, for acting on containers from outside the runtime."""
    async with aiodocker.Docker(url=docker_url) as client:
        yield client


async def containers_of(docker: aiodocker.Docker, workload_id: str) -> list[dict[str, Any]]:
    """The workload's containers as the engine lists them (running or not)."""
    filters = json.dumps({"label": [f"{LABEL_WORKLOAD}={workload_id}"]})
    rows: list[dict[str, Any]] = await docker._query_json(
        "containers/json", params={"all": "true", "filters": filters}
    )
    return rows


async def exec_in(docker: aiodocker.Docker, name: str, *command: str) -> str:
    """Run a command in a container from outside the runtime; return its output."""
    execution = await docker.containers.container(name).exec(list(command))
    output: list[bytes] = []
    async with execution.start(detach=False) as stream:
        while (message := await stream.read_out()) is not None:
            output.append(message.data)
    return b"".join(output).decode()
