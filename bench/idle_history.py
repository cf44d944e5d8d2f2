"""Idle cost: what running workloads and a deployment cost while nothing happens.

Starts K workloads (the demo image's `serve`, readiness probe every 1 s), a deployment in front
of the first (health check every 10 s, the default), the API, the worker with its restore
sweep, and the invoke gateway, all in this process on the production defaults; waits until
everything runs and has settled; then over an observation window counts the Temporal history
events each workflow adds, the catalog writes (INSERT/UPDATE/DELETE) of every part by table,
and the CPU of this process (API, worker, gateway), of the Temporal dev server and of Podman's
service.

Then it lists every periodic timer of the worker, the API and the gateway, from the constants
and settings in the code, and says which ones the window saw. The default window (330 s) is
longer than all of them but two, whose cost is reasoned from the code and printed as such:
the gateway's hourly deletion of old traffic rows, and the supervision activity's 24 h lease.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from _stack import (
    READY_PROBE,
    WORKLOADS,
    Stack,
    WriteCounter,
    process_cpu_seconds,
    running_stack,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.heartbeat import EVERY_SECONDS as TICK_HEARTBEAT
from api.gateway.traffic import PRUNE_EVERY
from models.deployments import HealthSettings
from services.autoscaler import WAKE_POLL
from services.demand import HEARTBEAT
from services.deployments import HEALTH_HISTORY
from tests.support.gateway import gateway_in_loop
from worker import _keep_restoring
from workflows.common import HEARTBEAT_TIMEOUT, LONG_ACTIVITY_LEASE
from workflows.deployment_contract import deployment_workflow_id
from workflows.workload_contract import workflow_id

SETTLE_SECONDS = 15.0  # after all run: the first health checks and the gateway's first prune
DEPLOYMENTS = "/api/v2/console/deployments/"


@dataclass
class Timer:
    part: str
    what: str
    seconds: float
    idle_effect: str


def timers(stack: Stack) -> list[Timer]:
    """Every periodic timer of the worker, the API and the gateway, as the code sets it."""
    settings = stack.settings
    audit_flush = 0.5  # services/audit_writer.py, api/gateway/invocation_audit.py defaults
    return [
        Timer("worker", "readiness probe (the workload's periodSeconds)", 1, "writes on change"),
        Timer("worker", "heartbeat while a supervision tick runs", TICK_HEARTBEAT, "none"),
        Timer(
            "worker",
            "supervision heartbeat (heartbeat timeout / 2)",
            HEARTBEAT_TIMEOUT.total_seconds() / 2,
            "Temporal RPC, no history event",
        ),
        Timer(
            "worker",
            "deployment health check (default interval)",
            HealthSettings().interval_seconds,
            "one health-check row",
        ),
        Timer("worker", "deployment monitor heartbeat", 1, "Temporal RPC, no history event"),
        Timer(
            "worker",
            "restore sweep (WAPI_RESTORE_INTERVAL_SECONDS)",
            settings.restore_interval_seconds,
            "reads; starts missing workflows only",
        ),
        Timer(
            "worker",
            "supervision lease (start-to-close of `supervise`)",
            LONG_ACTIVITY_LEASE.total_seconds(),
            "a new attempt: see below",
        ),
        Timer("API", "audit writer flush", audit_flush, "writes queued records only"),
        Timer("gateway", "route table refresh", audit_flush, "reads"),
        Timer("gateway", "sweep: timeouts, metrics file", 1, "no catalog access"),
        Timer("gateway", "invoke audit flush", audit_flush, "writes queued records only"),
        Timer(
            "gateway",
            "traffic flush (WAPI_GATEWAY_TRAFFIC_FLUSH_SECONDS)",
            settings.gateway_traffic_flush_seconds,
            "writes deployments with calls only",
        ),
        Timer("gateway", "old traffic deleted", PRUNE_EVERY, "one DELETE per gateway process"),
        Timer(
            "gateway",
            "demand heartbeat (services/demand.py)",
            HEARTBEAT,
            "one upsert per gateway process, whatever the workloads",
        ),
        Timer(
            "API",
            f"autoscaler reads the gateways' demand (every {WAKE_POLL:g} s while a group is at 0)",
            settings.autoscaler_tick_seconds,
            "reads",
        ),
    ]


async def histories(client: Client, workflow_ids: list[str]) -> dict[str, list[str]]:
    """Each workflow's history, as event type names."""
    found: dict[str, list[str]] = {}
    for wid in workflow_ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        found[wid] = [EventType.Name(event.event_type) for event in history.events]
    return found


def child_pid(*fragments: str) -> int | None:
    """A child process of this one whose command line holds every fragment."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and all(f in command for f in fragments):
            return int(entry)
    return None


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    return {name: process_cpu_seconds(pid) if pid else 0.0 for name, pid in pids.items()}


async def create_registered(stack: Stack, name: str) -> str:
    """A workload of an inline artifact registered as it is created (so it can be deployed)."""
    body = stack.body(name, READY_PROBE)
    body["artifact"]["status"] = "registered"
    answer = await stack.api.post(WORKLOADS, json=body)
    answer.raise_for_status()
    workload_id: str = answer.json()["id"]
    stack.created.add(workload_id)
    return workload_id


async def deploy(stack: Stack, workload_id: str) -> str:
    answer = await stack.api.post(DEPLOYMENTS, json={"name": "idle", "workloadId": workload_id})
    answer.raise_for_status()
    deployment_id: str = answer.json()["id"]
    deadline = time.monotonic() + 120
    while (await stack.api.get(f"{DEPLOYMENTS}{deployment_id}/")).json()["status"] != "running":
        if time.monotonic() > deadline:
            raise RuntimeError(f"deployment {deployment_id} not running after 120 s")
        await asyncio.sleep(0.5)
    return deployment_id


async def main(count: int, seconds: float) -> None:
    # Every engine of this process: the API's, the worker's and the gateway's.
    writes = WriteCounter()
    async with running_stack() as stack, gateway_in_loop(stack.settings):
        assert stack.temporal is not None
        sweep = asyncio.create_task(_keep_restoring(stack.temporal, stack.settings, stack.sessions))
        ids = [await create_registered(stack, f"idle-{index}") for index in range(count)]
        for workload_id in ids:
            await stack.wait_running(workload_id, poll=0.2)
        deployment = await deploy(stack, ids[0])
        await asyncio.sleep(SETTLE_SECONDS)
        workflows = [workflow_id(w) for w in ids] + [deployment_workflow_id(deployment)]
        pids = {
            "API, worker, gateway (this process)": os.getpid(),
            "Temporal dev server": child_pid("temporal", "start-dev"),
            "Podman service": child_pid("podman", "system", "service"),
        }
        before = await histories(stack.temporal, workflows)
        cpu_before, writes_before = cpu_seconds(pids), writes.by_table.copy()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        window = time.monotonic() - started
        cpu = {k: v - cpu_before[k] for k, v in cpu_seconds(pids).items()}
        written = writes.by_table - writes_before
        after = await histories(stack.temporal, workflows)
        statuses = sorted({(await stack.status(w))["status"] for w in ids})
        sweep.cancel()
        table = timers(stack)
    report(count, window, statuses, before, after, written, cpu, table)


def report(
    count: int,
    window: float,
    statuses: list[str],
    before: dict[str, list[str]],
    after: dict[str, list[str]],
    written: dict[str, int],
    cpu: dict[str, float],
    table: list[Timer],
) -> None:
    hours = window / 3600
    workflows = list(before)
    deployment = workflows[-1]
    added = {wid: after[wid][len(before[wid]) :] for wid in workflows}
    workload_events = sum(len(added[w]) for w in workflows[:-1])
    per_deployment = {"deployment_health_checks"}
    per_gateway = {"gateway_demand"}  # each process's heartbeat row, not a workload's cost
    workload_writes = sum(
        n for t, n in written.items() if t not in per_deployment and t not in per_gateway
    )
    gateway_writes = sum(n for t, n in written.items() if t in per_gateway)
    deployment_writes = sum(n for t, n in written.items() if t in per_deployment)
    startup = sum(len(before[w]) for w in workflows[:-1]) / count
    print("idle cost")
    print(
        f"  {count} running workloads (demo image `serve`, readiness probe GET /ready every 1 s),"
    )
    print("  1 deployment in front of the first (health check every 10 s), API, worker, restore")
    print(f"  sweep and gateway running; observed {window:.0f} s, {SETTLE_SECONDS:g} s after all")
    print(f"  were running; workload status at the end: {statuses}")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  load average at the end (1/5/15 min, 2 cores shared with other suites): {load}")
    print(f"  history length before: {[len(before[w]) for w in workflows]} (last: deployment)")
    print(f"  history length after:  {[len(after[w]) for w in workflows]}")
    for wid, new in added.items():
        if new:
            print(f"    {wid} added: {', '.join(new)}")
    print(
        f"  Temporal history events per idle workload per hour: "
        f"{workload_events / count / hours:.1f} (to get one running: {startup:.0f})"
    )
    print(
        "  Temporal history events per idle deployment per hour: "
        f"{len(added[deployment]) / hours:.1f}"
    )
    print(f"  catalog writes in the window, by table: {dict(sorted(written.items())) or 'none'}")
    print(f"  catalog writes per idle workload per hour: {workload_writes / count / hours:.1f}")
    print(f"  catalog writes per idle deployment per hour: {deployment_writes / hours:.1f}")
    print(f"  catalog writes per gateway process per hour (demand): {gateway_writes / hours:.1f}")
    for name, used in cpu.items():
        print(f"  CPU, {name}: {100 * used / window:.2f}% of one core")
    print("  periodic timers (from the code), and whether the window saw them:")
    for timer in sorted(table, key=lambda t: t.seconds):
        seen = "seen" if timer.seconds <= window else "longer than the window"
        print(
            f"    {timer.seconds:>8g} s  {timer.part:<7} {timer.what}: {timer.idle_effect} [{seen}]"
        )
    lease_hours = LONG_ACTIVITY_LEASE.total_seconds() / 3600
    checks_per_hour = 3600 / HealthSettings().interval_seconds
    print("  reasoned from the code, not observed:")
    print(
        f"    deployment: once it holds {HEALTH_HISTORY} checks (after "
        f"{HEALTH_HISTORY / checks_per_hour * 60:.0f} min), each check also deletes the oldest:"
        f"\n      {2 * checks_per_hour:.0f} catalog writes per idle deployment per hour from then"
    )
    print(
        f"    gateway: old traffic rows deleted every {PRUNE_EVERY / 3600:g} h: 1 DELETE per "
        "gateway process per hour,\n      whatever the number of workloads"
    )
    print(
        f"    worker: the `supervise` lease ends after {lease_hours:g} h; Temporal starts a new "
        "attempt (a retry adds no\n      history event), whose first report rewrites the replica "
        "rows (1 DELETE, 1 INSERT per replica)\n      and adds a `supervision_started` event "
        "row, and whose signal to the workflow adds 4 history\n      events (signaled, "
        "workflow task scheduled, started, completed): per 1-replica workload\n      "
        f"{3 / lease_hours:.3f} catalog writes and {4 / lease_hours:.3f} history events per hour"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", type=int, default=3, help="K workloads (default 3)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=330,
        help="observation window (default 330 s: longer than every timer but the two the "
        "report reasons about)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.workloads, args.seconds))
