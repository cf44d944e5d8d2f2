"""Activities of the deployment workflow: catalog writes, health checks, and driving the
workflows of the workloads behind a deployment (start a candidate, stop a retired one).

A health check never holds a catalog transaction during its HTTP call: it reads what to
check in a read-only session (SQLite's write lock untouched), closes it, checks with a total
deadline, and only then writes the result in a short transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.replacements import ReplacementActivities
from activities.rollouts import RolloutActivities
from activities.slots import SupervisionSlots
from catalog.database import create_read_sessionmaker
from catalog.tables import (
    Artifact,
    Deployment,
    DeploymentSwap,
    HealthCheck,
    Workload,
    WorkloadReplica,
    utcnow,
)
from models.spec import ArtifactSpec
from models.status import HealthStatus
from runtimes import http_check
from services import deployments
from services.autoscaling import scales_to_zero
from services.errors import ConflictError
from services.lifecycle import WorkloadLifecycle
from services.refs import WorkloadRef
from workflows.deployment_contract import (
    ACTIVITY_BEGIN_SWAP,
    ACTIVITY_ENSURE_WORKLOAD_STARTED,
    ACTIVITY_FINISH_SWAP,
    ACTIVITY_FORGET_DEPLOYMENT,
    ACTIVITY_MONITOR,
    ACTIVITY_RECORD_EVENT,
    ACTIVITY_RECORD_STATUS,
    ACTIVITY_STOP_WORKLOAD,
    ACTIVITY_WAIT_RUNNING,
    BeginSwapInput,
    DeploymentEventInput,
    DeploymentIdInput,
    EnsureStartedResult,
    MonitorInput,
    MonitorResult,
    RecordDeploymentInput,
    SwapRecordInput,
    WaitRunningInput,
    WaitRunningResult,
    WorkloadTargetInput,
    current_verdict,
)


class DeploymentActivities(RolloutActivities, ReplacementActivities):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        lifecycle: WorkloadLifecycle,
        *,
        slots: SupervisionSlots | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self.reads = create_read_sessionmaker(sessions.kw["bind"])
        self.lifecycle = lifecycle
        self.slots = slots or SupervisionSlots(capacity=1000)
        self.poll_seconds = poll_seconds

    @activity.defn(name=ACTIVITY_RECORD_STATUS)
    async def record_status(self, input: RecordDeploymentInput) -> None:
        async with self.sessions() as session, session.begin():
            await deployments.record_health(
                session,
                input.deployment_id,
                current_verdict(input.status),
                input.reason,
                input.event,
                input.message,
                input.actor,
            )

    @activity.defn(name=ACTIVITY_RECORD_EVENT)
    async def record_event(self, input: DeploymentEventInput) -> None:
        async with self.sessions() as session, session.begin():
            await deployments.add_event(
                session, input.deployment_id, input.event, input.message, "system"
            )

    @activity.defn(name=ACTIVITY_BEGIN_SWAP)
    async def begin_swap(self, input: BeginSwapInput) -> None:
        async with self.sessions() as session, session.begin():
            if await session.get(DeploymentSwap, input.swap_id) is None:  # retried: written already
                session.add(
                    DeploymentSwap(
                        id=input.swap_id,
                        deployment_id=input.deployment_id,
                        from_workload_id=input.from_workload_id,
                        to_workload_id=input.to_workload_id,
                        status="starting",
                        options={
                            "readyTimeoutSeconds": input.ready_timeout_seconds,
                            "keepPreviousSeconds": input.keep_previous_seconds,
                        },
                        requested_by=input.actor,
                    )
                )
            # The health verdict stays that of the workload traffic goes to until it moves.
            await deployments.add_event(
                session,
                input.deployment_id,
                "swap_started",
                f"swap to workload {input.to_workload_id} requested by {input.actor}",
                input.actor,
                {"swapId": input.swap_id, "toWorkloadId": input.to_workload_id},
            )

    @activity.defn(name=ACTIVITY_FINISH_SWAP)
    async def finish_swap(self, input: SwapRecordInput) -> None:
        async with self.sessions() as session, session.begin():
            swap = await session.get(DeploymentSwap, input.swap_id)
            if swap is None:
                return
            swap.status = input.status
            swap.reason = input.reason
            now = utcnow()
            if input.status == "switched":
                swap.switched_at = now
                deployment = await session.get(Deployment, input.deployment_id)
                if deployment is not None and input.workload_id:
                    # The one write that moves traffic: every gateway reloads it within a second.
                    deployment.workload_id = input.workload_id
                    deployment.updated_at = now
            else:
                swap.finished_at = now

    @activity.defn(name=ACTIVITY_ENSURE_WORKLOAD_STARTED)
    async def ensure_workload_started(self, input: WorkloadTargetInput) -> EnsureStartedResult:
        try:
            ref = await self._ref(input.workload_id)
        except LookupError:
            return EnsureStartedResult(started=False)  # deleted: waiting for it says so
        if ref.status not in ("stopped", "errored"):
            return EnsureStartedResult(started=False)
        try:
            await self.lifecycle.start(ref, input.actor)
        except ConflictError:
            return EnsureStartedResult(started=False)  # someone started it meanwhile
        return EnsureStartedResult(started=True)

    @activity.defn(name=ACTIVITY_WAIT_RUNNING)
    async def wait_running(self, input: WaitRunningInput) -> WaitRunningResult:
        """Until the workload runs, fails, or the deadline passes; heartbeats while it waits."""
        while True:
            async with self.sessions() as session:
                workload = await session.get(Workload, input.workload_id)
            if workload is None:
                return WaitRunningResult(
                    running=False, reason=f"workload {input.workload_id} was deleted"
                )
            if workload.status == "running":
                return WaitRunningResult(running=True)
            if workload.status in ("errored", "stopped", "stopping"):
                why = f": {workload.status_reason}" if workload.status_reason else ""
                return WaitRunningResult(
                    running=False, reason=f"the candidate is {workload.status}{why}"
                )
            if datetime.now(UTC) >= input.deadline:
                return WaitRunningResult(
                    running=False,
                    reason=f"the candidate was not running in time (still {workload.status})",
                )
            activity.heartbeat()
            await asyncio.sleep(self.poll_seconds)

    @activity.defn(name=ACTIVITY_STOP_WORKLOAD)
    async def stop_workload(self, input: WorkloadTargetInput) -> None:
        try:
            ref = await self._ref(input.workload_id)
        except LookupError:
            return
        if ref.status in ("stopped", "stopping"):
            return
        with contextlib.suppress(ConflictError):  # stopped meanwhile
            await self.lifecycle.stop(ref, input.actor)

    @activity.defn(name=ACTIVITY_MONITOR)
    async def monitor(self, input: MonitorInput) -> MonitorResult:
        """Check health every interval along the route traffic takes (the deployment's current
        workload, its ready replicas); record each check; return when the verdict changes."""
        recorded = current_verdict(input.status)
        with self.slots.hold(input.deployment_id):
            turn = 0
            while True:
                # A check may outlast the heartbeat timeout (a timeout is up to 60 s).
                verdict, reason, interval = await heartbeating(
                    self._check(input.deployment_id, turn)
                )
                turn += 1
                if verdict is None:
                    return MonitorResult(status="unknown", reason="the deployment is gone")
                if verdict != recorded:
                    return MonitorResult(status=verdict, reason=reason)
                # Heartbeat through the wait: an interval may be longer than the timeout.
                deadline = time.monotonic() + interval
                while (left := deadline - time.monotonic()) > 0:
                    activity.heartbeat()
                    await asyncio.sleep(min(left, 1.0))

    @activity.defn(name=ACTIVITY_FORGET_DEPLOYMENT)
    async def forget_deployment(self, input: DeploymentIdInput) -> None:
        async with self.sessions() as session, session.begin():
            await deployments.forget_deployment(session, input.deployment_id)

    async def _check(
        self, deployment_id: str, turn: int
    ) -> tuple[HealthStatus | None, str | None, float]:
        async with self.reads() as session:
            deployment = await session.get(Deployment, deployment_id)
            if deployment is None:
                return None, None, 1.0
            verdict = deployment.health_status
            settings = deployments.health_settings(deployment)
            workload = await session.get(Workload, deployment.workload_id)
            if workload is None or workload.status != "running":
                state = workload.status if workload else "deleted"
                return (
                    "unknown",
                    f"not checked: workload {deployment.workload_id} is {state}",
                    settings.interval_seconds,
                )
            addresses = list(
                await session.scalars(
                    select(WorkloadReplica.address).where(
                        WorkloadReplica.workload_id == workload.id,
                        WorkloadReplica.ready.is_(True),
                        WorkloadReplica.address.is_not(None),
                    )
                )
            )
            if not addresses and scales_to_zero(workload.runtime):
                # Scaled to zero by its autoscaling (or starting from it): nothing to check,
                # and no failure; the gateway holds calls until a replica is ready.
                return verdict, deployment.health_reason, settings.interval_seconds
            path = settings.path or await self._default_path(session, workload)
        # No session is open here: the check may take its whole timeout.
        check = await _probe(addresses, turn, path, settings.timeout_seconds)
        check.deployment_id = deployment_id
        async with self.sessions() as session, session.begin():
            await deployments.add_health_check(session, check)
            recent = await deployments.recent_checks(
                session, deployment_id, settings.failure_threshold
            )
        failures = deployments.consecutive_failures(recent)
        if failures >= settings.failure_threshold:
            return (
                "degraded",
                f"{failures} health checks failed in a row: {check.message}",
                settings.interval_seconds,
            )
        if check.ok:
            return "healthy", None, settings.interval_seconds
        return verdict, deployment.health_reason, settings.interval_seconds

    async def _default_path(self, session: AsyncSession, workload: Workload) -> str:
        artifact = await session.get(Artifact, workload.artifact_id)
        if artifact is None:
            return "/"
        primary = ArtifactSpec.model_validate(artifact.spec).container_groups[0].primary
        probe = primary.readiness_probe
        return probe.path if probe is not None and probe.path else "/"

    async def _ref(self, workload_id: str) -> WorkloadRef:
        async with self.sessions() as session:
            workload = await session.get(Workload, workload_id)
        if workload is None:
            raise LookupError(workload_id)
        return WorkloadRef.of(workload)


async def _probe(addresses: list[str | None], turn: int, path: str, limit: float) -> HealthCheck:
    """GET `path` on one of the addresses (in turn), within `limit` seconds in all."""
    if not addresses:
        return HealthCheck(checked_at=utcnow(), ok=False, message="no ready replica")
    address = addresses[turn % len(addresses)] or ""
    host, _, port = address.rpartition(":")
    try:
        answer = await http_check.http_get(host, int(port), path, within=limit)
    except (http_check.HttpCheckError, ValueError) as error:
        return HealthCheck(checked_at=utcnow(), ok=False, message=f"GET {path} {error}")
    return HealthCheck(
        checked_at=utcnow(),
        ok=answer.status < 400,
        status_code=answer.status,
        latency_ms=round(answer.seconds * 1000, 2),
        message=f"GET {path}: {answer.status}",
    )
