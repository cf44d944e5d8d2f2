"""Scale: N running workloads supervised by one worker, on real containers.

One worker process, one API process, the Temporal dev server on a SQLite file and a Podman
service, all on this machine (as `wapi run` starts them). For each N (cumulative: 100, then
200 more, then 700 more) it reports:

* how long until all N run (created in waves of `--wave`, each wave waited for);
* the worker's CPU and memory while they idle, per 100 workloads, with Temporal's and
  Podman's CPU beside it (idle means: readiness probes every `--period` seconds, nothing
  else happening);
* Temporal history events per idle workload-hour, and catalog rows written by the worker,
  over the idle window (a sample of the workloads' histories);
* a stop's latency (POST stop until the workload reads `stopped`) with N running, against
  the same with 1 running, measured first; and how much of it the engine took to remove the
  containers and network (the `remove_containers` activity, read from the workflow history);
  then how long a start takes until it runs again, against the same with 1 running.

The machine is shared: its load average is printed with the figures. If it cannot hold an
N, the run says what failed and stops there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _stack import (
    READY_PROBE,
    Stack,
    process_cpu_seconds,
    process_rss_bytes,
    running_stack,
)
from sqlalchemy import func, select
from temporalio.client import Client

from catalog.tables import WorkloadEvent, WorkloadReplica
from workflows.workload_contract import ACTIVITY_REMOVE_CONTAINERS, workflow_id

WORKLOADS = "/api/v2/console/workloads/"
Timings = tuple[float, float, float]  # a stop, the removal's part of it, the start after it
HISTORY_SAMPLE = 20


def podman_pid() -> int | None:
    """The pid of the Podman API service this bench started (the newest one)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"system" in command and b"service" in command and b"wapi-bench-" in b" ".join(command):
            found.append(int(entry))
    return max(found) if found else None


async def create_running(stack: Stack, count: int, wave: int, probe: dict[str, Any]) -> float:
    """Create `count` workloads in waves of `wave` (each waited for); seconds until all run."""
    started = time.monotonic()
    made = 0
    while made < count:
        size = min(wave, count - made)
        ids = await asyncio.gather(
            *(stack.create(f"scale-{len(stack.created)}-{i}", probe) for i in range(size))
        )
        made += size
        await asyncio.gather(*(stack.wait_running(w, poll=1.0, within=900) for w in ids))
    return time.monotonic() - started


async def stop_latency(stack: Stack, workload_id: str) -> Timings:
    """POST stop until `stopped`, and the removal's part of it; then POST start until it runs
    again."""
    started = time.monotonic()
    response = await stack.api.post(f"{WORKLOADS}{workload_id}/stop/")
    response.raise_for_status()
    while True:
        if (await stack.status(workload_id))["status"] == "stopped":
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    assert stack.temporal is not None
    removal = await last_removal_seconds(stack.temporal, workload_id)
    started = time.monotonic()
    (await stack.api.post(f"{WORKLOADS}{workload_id}/start/")).raise_for_status()
    await stack.wait_running(workload_id, poll=0.05)
    return elapsed, removal, time.monotonic() - started


async def last_removal_seconds(client: Client, workload_id: str) -> float:
    """How long the workflow's last `remove_containers` activity ran, scheduled to completed."""
    history = await client.get_workflow_handle(workflow_id(workload_id)).fetch_history()
    scheduled = {
        event.event_id: event.event_time.ToDatetime()
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name
        == ACTIVITY_REMOVE_CONTAINERS
    }
    durations = [
        (event.event_time.ToDatetime() - scheduled[completed.scheduled_event_id]).total_seconds()
        for event in history.events
        if event.HasField("activity_task_completed_event_attributes")
        and (completed := event.activity_task_completed_event_attributes).scheduled_event_id
        in scheduled
    ]
    return durations[-1]


async def history_lengths(client: Client, ids: list[str]) -> list[int]:
    lengths = []
    for workload_id in ids:
        history = await client.get_workflow_handle(workflow_id(workload_id)).fetch_history()
        lengths.append(len(history.events))
    return lengths


async def catalog_marks(stack: Stack) -> tuple[int, int]:
    """(newest event id, replica rows) to count what is written during a window."""
    async with stack.sessions() as session:
        newest = await session.scalar(select(func.max(WorkloadEvent.id))) or 0
        replicas = await session.scalar(select(func.count()).select_from(WorkloadReplica)) or 0
    return int(newest), int(replicas)


async def replicas_updated_since(stack: Stack, since: float) -> int:
    async with stack.sessions() as session:
        rows = await session.scalars(select(WorkloadReplica.updated_at))
        return sum(1 for stamp in rows if stamp.timestamp() >= since)


def cpu_percent(pid: int | None, before: float, seconds: float) -> float:
    return (process_cpu_seconds(pid) - before) / seconds * 100 if pid else float("nan")


async def main(counts: list[int], wave: int, window: float, period: int) -> None:
    probe = {**READY_PROBE, "periodSeconds": period}
    async with running_stack(api_process=True, worker_process=True) as stack:
        assert stack.temporal is not None and stack.worker_pid and stack.temporal_pid
        podman = podman_pid()
        first = await stack.create("scale-one", probe)
        await stack.wait_running(first, poll=0.2)
        stack.created.add(first)
        alone = [await stop_latency(stack, first) for _ in range(3)]
        # Each row is printed as soon as it is measured: a larger N may not finish.
        print_header(alone, window, period, wave)
        ids = [first]
        for target in counts:
            try:
                took = await create_running(stack, target - len(ids), wave, probe)
            except RuntimeError as error:
                print(f"  stopped early at N={target}: {error}", flush=True)
                break
            ids = sorted(stack.created)
            await asyncio.sleep(10)  # let the last waves' probes and writes settle
            row = await measure_idle(stack, ids, podman, window)
            row["until_all_run"] = took
            row["stop"] = [await stop_latency(stack, ids[index]) for index in (1, 2, 3)]
            row["load"] = os.getloadavg()
            print_row(row, alone)
        expected = len(stack.created)
    print(f"  containers removed at teardown: {stack.leftovers} (expected {expected})")


async def measure_idle(
    stack: Stack, ids: list[str], podman: int | None, window: float
) -> dict[str, Any]:
    """CPU, memory, history events and catalog writes while `ids` idle for `window` s."""
    assert stack.temporal is not None and stack.worker_pid and stack.temporal_pid
    sample = ids[:: max(1, len(ids) // HISTORY_SAMPLE)][:HISTORY_SAMPLE]
    histories_before = await history_lengths(stack.temporal, sample)
    events_before, _ = await catalog_marks(stack)
    cpu = {
        "worker": process_cpu_seconds(stack.worker_pid),
        "temporal": process_cpu_seconds(stack.temporal_pid),
        "podman": process_cpu_seconds(podman) if podman else 0.0,
    }
    wall, since = time.monotonic(), time.time()
    await asyncio.sleep(window)
    seconds = time.monotonic() - wall
    row: dict[str, Any] = {
        "n": len(ids),
        "worker_cpu": cpu_percent(stack.worker_pid, cpu["worker"], seconds),
        "temporal_cpu": cpu_percent(stack.temporal_pid, cpu["temporal"], seconds),
        "podman_cpu": cpu_percent(podman, cpu["podman"], seconds),
        "worker_rss": process_rss_bytes(stack.worker_pid),
    }
    histories_after = await history_lengths(stack.temporal, sample)
    events_after, _ = await catalog_marks(stack)
    added = sum(histories_after) - sum(histories_before)
    row["history_per_hour"] = added / len(sample) * 3600 / seconds
    row["catalog_rows"] = events_after - events_before + await replicas_updated_since(stack, since)
    return row


def neighbour_thresholds() -> str:
    base = Path("/proc/sys/net/ipv4/neigh/default")
    return "/".join((base / f"gc_thresh{level}").read_text().strip() for level in (1, 2, 3))


def print_header(alone: list[Timings], window: float, period: int, wave: int) -> None:
    print("scale: N running workloads, one worker process, real containers (Podman)")
    print(f"  readiness probe GET /ready every {period} s; created in waves of {wave};")
    print(f"  each N idles {window:.0f} s before it is measured; CPU is % of one core")
    print("  all run: from the first create of the step to the last workload running;")
    print("  hist ev/wl-h: Temporal history events per idle workload per hour, from a sample")
    print(f"  of {HISTORY_SAMPLE}; catalog rows: events and replica rows the worker wrote")
    # Each running workload's bridge holds a neighbour entry; past gc_thresh2 they overflow.
    print(f"  host neighbour table (gc_thresh1/2/3): {neighbour_thresholds()}")
    print(
        f"  a stop with 1 running: median {_median(alone, 0):.2f} s {_list(alone, 0)},"
        f" of which removing its containers and network {_median(alone, 1):.2f} s"
        f" {_list(alone, 1)};"
        f" starting it again: median {_median(alone, 2):.2f} s {_list(alone, 2)}"
    )
    print(
        "      N  all run   worker CPU  per 100  worker RSS  per 100  Temporal  Podman"
        "  hist ev/wl-h  catalog rows  stop (median)  vs 1 running  of it removing"
        "  start again  vs 1 running  load (1/5/15 min)",
        flush=True,
    )


def print_row(row: dict[str, Any], alone: list[Timings]) -> None:
    n = row["n"]
    per_100 = n / 100
    stop, start = _median(row["stop"], 0), _median(row["stop"], 2)
    print(
        f"  {n:5d}  {row['until_all_run']:6.0f} s  {row['worker_cpu']:9.1f}%"
        f"  {row['worker_cpu'] / per_100:6.2f}%  {row['worker_rss'] / 2**20:7.0f} MB"
        f"  {row['worker_rss'] / 2**20 / per_100:5.0f} MB  {row['temporal_cpu']:7.1f}%"
        f"  {row['podman_cpu']:5.1f}%  {row['history_per_hour']:12.1f}"
        f"  {row['catalog_rows']:12d}  {stop:10.2f} s  {stop / _median(alone, 0):9.2f}x"
        f"  {_median(row['stop'], 1):11.2f} s  {start:8.2f} s  {start / _median(alone, 2):9.2f}x"
        f"  {'/'.join(f'{value:.1f}' for value in row['load'])}",
        flush=True,
    )


def _median(pairs: list[Timings], index: int) -> float:
    return statistics.median(pair[index] for pair in pairs)


def _list(pairs: list[Timings], index: int) -> str:
    return "[" + ", ".join(f"{pair[index]:.2f}" for pair in pairs) + "]"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--wave", type=int, default=100, help="workloads created at once")
    parser.add_argument("--window", type=float, default=60, help="idle seconds measured per N")
    parser.add_argument("--period", type=int, default=10, help="readiness probe period (s)")
    args = parser.parse_args()
    asyncio.run(main(args.counts, args.wave, args.window, args.period))
