"""Time to running: the control plane against starting the same container directly.

Control plane: `POST /api/v2/console/workloads/` (inline artifact, the demo image's `serve`,
readiness probe `GET /ready`) until `GET` shows `running`, read two ways: polled (a `GET`,
then a pause of `--poll`), and held (one `GET` naming `waitForStatus`: the server answers
when the status is written, as it does for the client library's and `wapi`'s waits). Direct:
the same container through the Docker API (a bridge network of its own, then the create body
the local runtime sends: that network, published port, limits, environment, labels), started,
and `/ready` polled until 200. Runs rotate their order so drift hits all three alike. The API
runs in a process of its own, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

import aiodocker
import httpx
from _stack import READY_PROBE, Stack, running_stack, summary, timed

from models.plan import ContainerPlan, GroupPlan
from models.spec import Probe
from runtimes.local.containers import PUBLISH_HOST_IP, create_config
from runtimes.local.engine import inspected_ports
from runtimes.local.naming import ContainerKey, network_name

# (label, event type) in the order a workload passes them; offsets are from the POST.
SEEN = "seen"  # not an event: when the client's GET first showed `running`
PHASES = [
    ("catalog row written (API)", "created"),
    ("workflow recorded initializing", "starting"),
    ("container created+started", "replica_started"),
    ("readiness probe passed", "replica_ready"),
    ("`running` recorded", "running"),
    ("status running seen by the client", SEEN),
]


def _parse(timestamp: str) -> datetime:
    moment = datetime.fromisoformat(timestamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def control_plane_once(
    stack: Stack, poll: float, *, held: bool
) -> tuple[float, dict[str, float], float]:
    """Seconds until `running`, the offset of each lifecycle event from the POST, and the
    seconds the DELETE that cleans up took (not part of the measurement)."""
    posted_at = datetime.now(UTC)
    started = time.perf_counter()
    workload_id = await stack.create(f"ttr-{uuid.uuid4().hex[:6]}", READY_PROBE)
    await stack.wait_running(workload_id, poll=poll, held=held)
    elapsed = time.perf_counter() - started
    offsets = {SEEN: (datetime.now(UTC) - posted_at).total_seconds()}
    for event in await stack.events(workload_id):
        moment = (_parse(event["timestamp"]) - posted_at).total_seconds()
        offsets.setdefault(event["type"], moment)
    deleted = await timed(lambda: stack.delete(workload_id))
    return elapsed, offsets, deleted


async def direct_once(
    docker: aiodocker.Docker, http: httpx.AsyncClient, image: str, poll: float
) -> float:
    workload_id = f"bench-direct-{uuid.uuid4().hex[:8]}"
    main = ContainerPlan(
        name="main",
        image=image,
        primary=True,
        port=8080,
        command=["serve"],
        env={"WORKLOAD_ID": workload_id, "PORT": "8080"},
        readiness_probe=Probe.model_validate(READY_PROBE),
    )
    group = GroupPlan(name="default", replicas=1, containers=[main])
    key = ContainerKey(workload_id, 1, "default", 0, "main")
    config = create_config(main, key, group, {}, primary_id=None, stop_grace_seconds=10)
    started = time.perf_counter()
    # The create body puts the container on its workload's own network: make it first.
    network = await docker.networks.create({"Name": network_name(workload_id), "Driver": "bridge"})
    container = await docker.containers.create(config, name=key.name)
    try:
        await container.start()
        port = inspected_ports(await container.show())[8080]
        deadline = started + 60
        while time.perf_counter() < deadline:
            try:
                response = await http.get(f"http://{PUBLISH_HOST_IP}:{port}/ready")
                if response.status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            await asyncio.sleep(poll)
        raise RuntimeError("the directly started container never answered /ready")
    finally:
        await container.delete(force=True)
        await network.delete()


async def main(runs: int, poll: float) -> None:
    async with (
        running_stack(api_process=True) as stack,
        aiodocker.Docker(url=stack.docker_url) as docker,
        httpx.AsyncClient(trust_env=False, timeout=2) as http,
    ):
        version = (await docker.version()).get("Version", "?")
        await control_plane_once(stack, poll, held=True)  # warm-up: imports, cache, image
        await direct_once(docker, http, stack.image, poll)
        times: dict[str, list[float]] = {"polled": [], "held": [], "direct": []}
        offsets: dict[str, list[dict[str, float]]] = {"polled": [], "held": []}
        deletes: list[float] = []

        async def plane(held: bool) -> None:
            elapsed, seen, deleted = await control_plane_once(stack, poll, held=held)
            side = "held" if held else "polled"
            times[side].append(elapsed)
            offsets[side].append(seen)
            deletes.append(deleted)

        async def direct() -> None:
            times["direct"].append(await direct_once(docker, http, stack.image, poll))

        order = [lambda: plane(False), lambda: plane(True), direct]
        for index in range(runs):
            for run in order[index % 3 :] + order[: index % 3]:
                await run()

    print("time to running: control plane against the same container started directly")
    print(f"  engine: Podman {version} (Docker API service), image {stack.image}")
    print("  readiness probe GET /ready periodSeconds 1 (the API's minimum); the first probe")
    print("  runs when the engine reports the container started, and until it first passes a")
    print("  failure is retried sooner (50 ms, growing by half) within that first period")
    print(f"  polled every {poll:g} s, or held; {runs} runs of each after 1 discarded warm-up")
    print(f"  control plane, polled  {summary(times['polled'])}")
    print(f"  control plane, held    {summary(times['held'])}")
    print(f"  direct                 {summary(times['direct'])}")
    direct_median = statistics.median(times["direct"])
    for side in ("polled", "held"):
        ratio = statistics.median(times[side]) / direct_median
        print(f"  ratio control plane ({side})/direct (medians): {ratio:.2f}x")
    print("  where the control plane's time goes (median offset from the POST):")
    print(f"    {'':<34} {'polled':>17} {'held':>17}")
    previous = {"polled": 0.0, "held": 0.0}
    for label, kind in PHASES:
        cells = []
        for side in ("polled", "held"):
            at = statistics.median(o[kind] for o in offsets[side] if kind in o)
            cells.append(f"{at:6.3f} s (+{at - previous[side]:.3f})")
            previous[side] = at
        print(f"    {label:<34} {cells[0]:>17} {cells[1]:>17}")

    print(f"  aside, cleanup not measured above: DELETE of a running workload {summary(deletes)}")
    print(f"  containers left for the teardown to remove: {stack.leftovers} (expected 0)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (default 5)")
    parser.add_argument("--poll", type=float, default=0.05, help="client poll interval (s)")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.poll))
