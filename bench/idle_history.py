"""Idle cost per running workload: Temporal history events (and catalog writes) per hour.

Starts K workloads, waits until all are running and their workflows have settled, then counts
each workflow's history events before and after an observation window, and the catalog
writes (INSERT/UPDATE/DELETE) the worker made meanwhile. Supervision is one long activity whose
heartbeats carry no data, and replica status is written only when it changes, so an idle
workload should add no history events and no catalog writes. The default window is longer
than every periodic timer of the worker (the restore sweep every 300 s included).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _stack import READY_PROBE, running_stack
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from workflows.workload_contract import workflow_id

SETTLE_SECONDS = 3.0  # after `running`: the workflow schedules the next supervise activity


async def histories(client: Client, ids: list[str]) -> dict[str, list[str]]:
    """Each workflow's history, as event type names."""
    found: dict[str, list[str]] = {}
    for workload_id in ids:
        history = await client.get_workflow_handle(workflow_id(workload_id)).fetch_history()
        found[workload_id] = [EventType.Name(event.event_type) for event in history.events]
    return found


async def main(count: int, seconds: float) -> None:
    async with running_stack() as stack:
        assert stack.temporal is not None and stack.worker_writes is not None
        ids = [await stack.create(f"idle-{index}", READY_PROBE) for index in range(count)]
        for workload_id in ids:
            await stack.wait_running(workload_id, poll=0.2)
        await asyncio.sleep(SETTLE_SECONDS)
        before = await histories(stack.temporal, ids)
        writes_before, started = stack.worker_writes.count, time.monotonic()
        await asyncio.sleep(seconds)
        after = await histories(stack.temporal, ids)
        writes = stack.worker_writes.count - writes_before
        window = time.monotonic() - started
        statuses = [(await stack.status(workload_id))["status"] for workload_id in ids]
        restore = stack.settings.restore_interval_seconds

    added = {wid: after[wid][len(before[wid]) :] for wid in ids}
    events_per_hour = sum(len(new) for new in added.values()) / count * 3600 / window
    writes_per_hour = writes / count * 3600 / window
    startup = sum(len(h) for h in before.values()) / count
    print("idle cost per running workload")
    print(f"  {count} workloads (demo image `serve`, readiness probe GET /ready every 1 s),")
    print(f"  restore sweep every {restore:g} s (production default), observed {window:.0f} s from")
    print(
        f"  {SETTLE_SECONDS:g} s after all were running; status at the end: {sorted(set(statuses))}"
    )
    print(f"  history length before: {[len(before[w]) for w in ids]}")
    print(f"  history length after:  {[len(after[w]) for w in ids]}")
    for wid, new in added.items():
        if new:
            print(f"    {wid} added: {', '.join(new)}")
    print(f"  Temporal history events per idle workload per hour: {events_per_hour:.1f}")
    print(f"  history events to get a workload to running: {startup:.1f}")
    print(f"  ratio idle hour/startup (history events): {events_per_hour / startup:.3f}")
    print(
        f"  catalog writes by the worker: {writes} in the window = "
        f"{writes_per_hour:.0f} per workload per hour (replica status is written on changes only)"
    )
    print(f"  containers removed at teardown: {stack.leftovers} (expected {count})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", type=int, default=3, help="K workloads (default 3)")
    parser.add_argument("--seconds", type=float, default=330, help="observation window (s)")
    args = parser.parse_args()
    asyncio.run(main(args.workloads, args.seconds))
