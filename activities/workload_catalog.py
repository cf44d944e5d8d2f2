"""Activities that write the workload read model and build run plans from the catalog."""

from __future__ import annotations

import asyncio

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from catalog.tables import Artifact, Workload, WorkloadReplica, utcnow
from models.plan import RunPlan
from models.spec import ArtifactSpec
from models.workloads import WorkloadRuntime
from services import workloads
from services.bundles import BundleCatalog
from services.errors import DomainError
from services.limits import Limits
from services.workload_runtime import build_plan
from workflows.common import WORKLOAD_FAILED
from workflows.workload_contract import (
    ACTIVITY_BEGIN_GENERATION,
    ACTIVITY_FORGET_WORKLOAD,
    ACTIVITY_PREPARE_PLAN,
    ACTIVITY_RECORD_SCALE,
    ACTIVITY_RECORD_STATUS,
    ACTIVITY_WITHDRAW_REPLICAS,
    BeginGenerationResult,
    PreparePlanInput,
    RecordScaleInput,
    RecordStatusInput,
    RecordStatusResult,
    WorkloadIdInput,
)

# As the workflow's drain before a stop: gateways reload their tables twice a second.
SCALE_DOWN_DRAIN_SECONDS = 2.0


class WorkloadCatalogActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bundles: BundleCatalog,
        limits: Limits = Limits(),
    ) -> None:
        self.sessions = sessions
        self.bundles = bundles
        self.limits = limits

    @activity.defn(name=ACTIVITY_RECORD_STATUS)
    async def record_status(self, input: RecordStatusInput) -> RecordStatusResult:
        async with self.sessions() as session, session.begin():
            exists = await _record(session, input)
        return RecordStatusResult(exists=exists)

    @activity.defn(name=ACTIVITY_RECORD_SCALE)
    async def record_scale(self, input: RecordScaleInput) -> None:
        async with self.sessions() as session, session.begin():
            workload = await session.get(Workload, input.workload_id)
            if workload is None:
                return
            runtime = WorkloadRuntime.model_validate(workload.runtime)
            withdrawn = 0
            for group in runtime.container_groups:
                count = input.replicas.get(group.name, group.replica_count)
                if count < group.replica_count:
                    # The replicas this removes leave the gateways' tables first.
                    result = await session.execute(
                        update(WorkloadReplica)
                        .where(
                            WorkloadReplica.workload_id == input.workload_id,
                            WorkloadReplica.group_name == group.name,
                            WorkloadReplica.replica_index >= count,
                            WorkloadReplica.ready.is_(True),
                        )
                        .values(ready=False, updated_at=utcnow())
                    )
                    withdrawn += result.rowcount or 0  # type: ignore[attr-defined]
                group.replica_count = count
            workload.runtime = runtime.model_dump(mode="json", by_alias=True, exclude_none=True)
            message = f"scaled to {input.replicas} by {input.actor}"
            details = {"replicas": str(input.replicas)}
            if input.reason:
                message += f": {input.reason}"
                details["reason"] = input.reason
            await workloads.add_event(
                session, input.workload_id, "scaled", message, input.actor, details
            )
        if withdrawn:
            # Gateways reload their tables twice a second: let them follow, and calls in
            # flight finish, before the supervisor removes the containers.
            await asyncio.sleep(SCALE_DOWN_DRAIN_SECONDS)

    @activity.defn(name=ACTIVITY_BEGIN_GENERATION)
    async def begin_generation(self, input: RecordStatusInput) -> BeginGenerationResult:
        """Record `initializing` (`input`) and plan that generation, in one transaction: one
        local activity on the way to the containers instead of two."""
        async with self.sessions() as session, session.begin():
            if not await _record(session, input):
                return BeginGenerationResult(exists=False)
            try:
                plan = await self._plan(session, input.workload_id, input.generation)
            except ApplicationError as error:  # the status stays recorded
                return BeginGenerationResult(exists=True, failure=error.message)
            except DomainError as error:  # a bundle no longer configured, say: no retry fixes it
                return BeginGenerationResult(exists=True, failure=str(error))
        return BeginGenerationResult(exists=True, plan=plan)

    @activity.defn(name=ACTIVITY_PREPARE_PLAN)
    async def prepare_plan(self, input: PreparePlanInput) -> RunPlan:
        """As recorded before `begin_generation`."""
        async with self.sessions() as session:
            return await self._plan(session, input.workload_id, input.generation)

    async def _plan(self, session: AsyncSession, workload_id: str, generation: int) -> RunPlan:
        """The artifact as it is now (a draft's latest edits), with the workload's runtime."""
        workload = await session.get(Workload, workload_id)
        artifact = await session.get(Artifact, workload.artifact_id) if workload else None
        if workload is None or artifact is None:
            raise ApplicationError(
                f"workload '{workload_id}' or its artifact no longer exists",
                type=WORKLOAD_FAILED,
                non_retryable=True,
            )
        spec = ArtifactSpec.model_validate(artifact.spec)
        refused = self.limits.image_problems(spec, ())
        if refused:  # the allow-list may have changed since the artifact was written
            raise ApplicationError(
                f"image {refused[0].msg}", type=WORKLOAD_FAILED, non_retryable=True
            )
        return build_plan(
            workload_id,
            generation,
            spec,
            WorkloadRuntime.model_validate(workload.runtime),
            self.bundles,
            self.limits,
        )

    @activity.defn(name=ACTIVITY_WITHDRAW_REPLICAS)
    async def withdraw_replicas(self, input: WorkloadIdInput) -> None:
        """Mark every replica not ready, so gateways stop sending it requests."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(WorkloadReplica)
                .where(WorkloadReplica.workload_id == input.workload_id)
                .values(ready=False, updated_at=utcnow())
            )

    @activity.defn(name=ACTIVITY_FORGET_WORKLOAD)
    async def forget_workload(self, input: WorkloadIdInput) -> None:
        async with self.sessions() as session, session.begin():
            await workloads.forget_workload(session, input.workload_id)


async def _record(session: AsyncSession, input: RecordStatusInput) -> bool:
    return await workloads.record_status(
        session,
        input.workload_id,
        status=input.status,
        generation=input.generation,
        reason=input.reason,
        event=input.event,
        message=input.message,
        actor=input.actor,
    )
