"""Activities of a workload's in-place replacement: its catalog rows, the restart of the
workload on the new artifact, and the removal of the candidate workload.

A mixin of `DeploymentActivities` (the worker registers its methods with the rest; the
replacement workflow also calls that class's start / wait-until-running / analysis)."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from catalog.tables import Workload
from services import replacements
from services.errors import ConflictError, NotFoundError
from services.lifecycle import WorkloadLifecycle
from services.refs import WorkloadRef
from workflows.deployment_contract import WorkloadTargetInput
from workflows.replacement_contract import (
    ACTIVITY_DELETE_WORKLOAD,
    ACTIVITY_RECORD,
    ACTIVITY_RESTART_ON_ARTIFACT,
    ReplacementRecordInput,
    RestartInput,
)


class ReplacementActivities:
    sessions: async_sessionmaker[AsyncSession]
    lifecycle: WorkloadLifecycle
    poll_seconds: float

    @activity.defn(name=ACTIVITY_RECORD)
    async def record_replacement(self, input: ReplacementRecordInput) -> None:
        async with self.sessions() as session, session.begin():
            await replacements.record(
                session,
                replacement_id=input.replacement_id,
                status=input.status,
                step=input.step,
                weight=input.weight,
                event=input.event,
                message=input.message,
                actor=input.actor,
                reason=input.reason,
                switched=input.switched,
            )

    @activity.defn(name=ACTIVITY_RESTART_ON_ARTIFACT)
    async def restart_on_artifact(self, input: RestartInput) -> None:
        """Stop the workload (its calls go to the candidate now), wait until it is stopped,
        point it at the new artifact, start it. Each part is skipped once done, so a retry
        goes on where the last attempt stopped."""
        while True:
            row = await self._workload(input.workload_id)
            moved = row.artifact_id == input.artifact_id
            if moved and row.status != "stopped":
                return  # started on the new artifact (initializing or further)
            if row.status == "stopped":
                break
            if row.status != "stopping":
                with contextlib.suppress(ConflictError):  # a stop is under way already
                    await self.lifecycle.stop(WorkloadRef.of(row), input.actor)
            activity.heartbeat()
            await asyncio.sleep(self.poll_seconds)
        async with self.sessions() as session, session.begin():
            await replacements.hand_over(session, input.replacement_id)
        row = await self._workload(input.workload_id)
        with contextlib.suppress(ConflictError):  # started meanwhile
            await self.lifecycle.start(WorkloadRef.of(row), input.actor)

    @activity.defn(name=ACTIVITY_DELETE_WORKLOAD)
    async def delete_workload(self, input: WorkloadTargetInput) -> None:
        """Remove the candidate (its containers, workflow and rows); gone already is done."""
        try:
            row = await self._workload(input.workload_id)
        except NotFoundError:
            return
        with contextlib.suppress(ConflictError):  # being deleted already
            await self.lifecycle.delete(WorkloadRef.of(row), input.actor)

    async def _workload(self, workload_id: str) -> Workload:
        async with self.sessions() as session:
            row = await session.get(Workload, workload_id)
        if row is None:
            raise NotFoundError("workload", workload_id)
        return row
