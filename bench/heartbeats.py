"""What heartbeats cost: N long activities heartbeating, at several throttle intervals.

Every heartbeat a worker sends is a write to Temporal's persistence (and a billed action on
Temporal Cloud); the SDK sends at most one per activity per throttle interval, which is
0.8 x the heartbeat timeout unless `max_heartbeat_throttle_interval` is lower. This starts
the Temporal dev server on a SQLite file (as `wapi run` does), runs N activities that call
`heartbeat()` every second for a window at each interval, and prints the CPU the dev server
and the worker process used, per second and per 100 activities.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from _stack import process_cpu_seconds
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.support.processes import DevServer

# One activity per workflow, as a workload has: a heartbeat rewrites its workflow's state.
ACTIVITIES_PER_WORKFLOW = 1


@activity.defn(name="hold")
async def hold(seconds: float) -> None:
    """Heartbeat every second for `seconds`, as a supervising activity does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        activity.heartbeat()
        await asyncio.sleep(1)


@workflow.defn(name="Holder")
class Holder:
    @workflow.run
    async def run(self, count: int, seconds: float, heartbeat_timeout: float) -> None:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    "hold",
                    seconds,
                    start_to_close_timeout=timedelta(seconds=seconds + 60),
                    heartbeat_timeout=timedelta(seconds=heartbeat_timeout),
                )
                for _ in range(count)
            )
        )


async def measure(
    client: Client, server_pid: int, count: int, throttle: float, window: float
) -> tuple[float, float]:
    """CPU seconds per second of the server and of this (worker) process during `window`."""
    queue = f"heartbeats-{uuid.uuid4().hex[:6]}"
    ramp = 20.0  # starting N workflows is not what is measured
    heartbeat_timeout = max(throttle / 0.8, 10.0)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[Holder],
        activities=[hold],
        max_concurrent_activities=count,
        # The bench module imports test helpers the sandbox refuses; this workflow is trivial.
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_heartbeat_throttle_interval=timedelta(seconds=throttle),
    ):
        handles = [
            await client.start_workflow(
                Holder.run,
                args=[
                    min(ACTIVITIES_PER_WORKFLOW, count - start),
                    ramp + window + 5,
                    heartbeat_timeout,
                ],
                id=f"{queue}-{start}",
                task_queue=queue,
            )
            for start in range(0, count, ACTIVITIES_PER_WORKFLOW)
        ]
        await asyncio.sleep(ramp)
        server_before = process_cpu_seconds(server_pid)
        worker_before = time.process_time()
        started = time.monotonic()
        await asyncio.sleep(window)
        elapsed = time.monotonic() - started
        server = (process_cpu_seconds(server_pid) - server_before) / elapsed
        worker = (time.process_time() - worker_before) / elapsed
        for handle in handles:
            await handle.result()
    return server, worker


async def main(count: int, throttles: list[float], window: float) -> None:
    directory = Path(tempfile.mkdtemp(prefix="wapi-heartbeats-"))
    server = DevServer(directory / "temporal.db", directory / "temporal.log")
    server.start()
    try:
        client = await _connect(server.address)
        assert server.process is not None
        idle_before = process_cpu_seconds(server.process.pid)
        await asyncio.sleep(5)
        idle = (process_cpu_seconds(server.process.pid) - idle_before) / 5
        print(f"heartbeat cost: {count} activities heartbeating, {window:g} s per interval")
        print(f"  Temporal dev server on a SQLite file; idle it uses {idle * 100:.1f}% of a core")
        print("  throttle  heartbeats/s  server CPU  worker CPU  (% of one core)")
        for throttle in throttles:
            server_cpu, worker_cpu = await measure(
                client, server.process.pid, count, throttle, window
            )
            print(
                f"  {throttle:6g} s  {count / throttle:12.0f}  {server_cpu * 100:9.1f}%"
                f"  {worker_cpu * 100:9.1f}%"
            )
    finally:
        server.stop()


async def _connect(address: str) -> Client:
    for _ in range(60):
        try:
            return await Client.connect(address, data_converter=pydantic_data_converter)
        except RuntimeError:
            await asyncio.sleep(0.5)
    raise RuntimeError(f"Temporal at {address} did not answer")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--throttles", type=float, nargs="+", default=[1, 3, 8, 24])
    parser.add_argument("--window", type=float, default=30, help="seconds measured per interval")
    args = parser.parse_args()
    asyncio.run(main(args.activities, args.throttles, args.window))
