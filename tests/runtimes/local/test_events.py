"""The engine's event stream on a real Podman: what a supervisor learns a container's changes
from, instead of listing its containers every tick."""

from __future__ import annotations

import asyncio
import time

import aiodocker

from runtimes.local.engine import Engine
from runtimes.local.events import EngineEvents
from runtimes.local.runtime import LocalRuntime
from tests.runtimes.local.conftest import container, plan, ready, tick_until


class Heard:
    def __init__(self) -> None:
        self.changed: list[str] = []
        self.resyncs = 0

    def container_changed(self, container_id: str, action: str) -> None:
        self.changed.append(container_id)

    def resync(self) -> None:
        self.resyncs += 1


async def test_a_container_killed_from_outside_is_heard_on_the_stream(
    runtime: LocalRuntime,
    workload_id: str,
    test_image: str,
    docker: aiodocker.Docker,
    docker_url: str,
) -> None:
    supervisor = runtime.supervisor(plan(workload_id, container(test_image, "serve")), {}, [])
    engine = Engine(docker_url)
    events = EngineEvents(engine)
    heard, other = Heard(), Heard()
    try:
        await tick_until(supervisor, ready())
        events.subscribe(workload_id, heard)
        events.subscribe("another-workload", other)
        name = f"wapi-{workload_id}-default-0-g1-main"
        container_id = (await docker.containers.container(name).show())["Id"]
        await asyncio.sleep(0.5)  # the stream is open (it replays 2 s back anyway)
        await docker.containers.container(name).kill()
        deadline = time.monotonic() + 60  # generous: a busy engine
        while container_id not in heard.changed:
            assert time.monotonic() < deadline, f"never heard of {container_id}: {heard.changed}"
            await asyncio.sleep(0.1)
        assert events.streaming
        assert set(heard.changed) == {container_id}  # only this workload's container
        assert other.changed == [] and heard.resyncs == 0  # no reconnect, nothing misrouted
    finally:
        await events.close()
        await engine.close()
        await supervisor.close()
