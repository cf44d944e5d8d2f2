"""Lifecycle changes go to entity workflows as Updates; Temporal errors become domain errors
here, in one place: 409 for an invalid transition, 503 when nothing answers in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from services.errors import ConflictError, UnavailableError
from services.refs import DeploymentRef, WorkloadRef
from workflows.deployment import DeploymentWorkflow
from workflows.deployment_contract import (
    ActorInput,
    DeploymentInput,
    DeploymentResult,
    SwapInput,
    deployment_workflow_id,
)
from workflows.workload import INVALID_TRANSITION, WorkloadWorkflow
from workflows.workload_contract import (
    ScaleInput,
    TransitionInput,
    TransitionResult,
    WorkloadInput,
    WorkloadStatus,
    workflow_id,
)

T = TypeVar("T")


class WorkflowMissingError(UnavailableError):
    """Temporal has no running workflow for the entity."""


class TemporalCalls:
    """Bounded waits on Temporal, with its errors mapped to domain errors."""

    def __init__(self, client: Client, *, task_queue: str, timeout: float) -> None:
        self.client = client
        self.task_queue = task_queue
        self.timeout = timeout

    async def update(
        self,
        workflow: str,
        update: Any,
        arg: Any,
        *,
        what: str,
        restore: Callable[[], Awaitable[None]],
    ) -> Any:
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(workflow)
        try:
            try:
                return await self.call(lambda: handle.execute_update(update, arg))
            except WorkflowMissingError:
                # The catalog has the entity but Temporal lost its workflow (e.g. a fresh
                # Temporal database): restore it from the catalog, then retry once.
                await restore()
                return await self.call(lambda: handle.execute_update(update, arg))
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == INVALID_TRANSITION:
                raise ConflictError(f"{what}: {cause.message}") from None
            raise UnavailableError(f"the change could not be applied: {cause or error}") from None

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call()
        except TimeoutError:
            raise UnavailableError(
                f"no worker took the change within {self.timeout:g} s; it may still be applied, "
                "check the status"
            ) from None
        except RuntimeError as error:
            # The SDK reports a failed (lazy) connection as a plain RuntimeError.
            if "connect" not in str(error).lower():
                raise
            raise UnavailableError(f"Temporal is unreachable: {error}") from None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise WorkflowMissingError(error.message) from None
            raise UnavailableError(f"Temporal is unavailable: {error.message}") from None


class WorkloadLifecycle(TemporalCalls):
    """Start workload workflows and send them start/stop/scale/delete."""

    async def launch(
        self, workload_id: str, status: WorkloadStatus, replicas: dict[str, int]
    ) -> None:
        """Start the workload's workflow; a running one is kept (idempotent)."""
        await self.call(
            lambda: self.client.start_workflow(
                WorkloadWorkflow.run,
                WorkloadInput(workload_id=workload_id, status=status, replicas=replicas),
                id=workflow_id(workload_id),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        )

    async def start(self, workload: WorkloadRef, actor: str) -> TransitionResult:
        return await self._update(workload, WorkloadWorkflow.start, TransitionInput(actor=actor))

    async def stop(self, workload: WorkloadRef, actor: str) -> TransitionResult:
        return await self._update(workload, WorkloadWorkflow.stop, TransitionInput(actor=actor))

    async def scale(
        self, workload: WorkloadRef, actor: str, replicas: dict[str, int]
    ) -> TransitionResult:
        return await self._update(
            workload, WorkloadWorkflow.scale, ScaleInput(actor=actor, replicas=replicas)
        )

    async def delete(self, workload: WorkloadRef, actor: str) -> TransitionResult:
        return await self._update(workload, WorkloadWorkflow.delete, TransitionInput(actor=actor))

    async def _update(self, workload: WorkloadRef, update: Any, arg: Any) -> TransitionResult:
        result: TransitionResult = await self.update(
            workflow_id(workload.id),
            update,
            arg,
            what=f"workload '{workload.id}'",
            restore=lambda: self.launch(workload.id, workload.status, workload.replicas),
        )
        return result


class DeploymentLifecycle(TemporalCalls):
    """Start deployment workflows and send them swap/cancel/delete."""

    async def launch(self, deployment: DeploymentRef) -> None:
        await self.call(
            lambda: self.client.start_workflow(
                DeploymentWorkflow.run,
                DeploymentInput(
                    deployment_id=deployment.id,
                    workload_id=deployment.workload_id,
                    status=deployment.status,
                ),
                id=deployment_workflow_id(deployment.id),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        )

    async def swap(self, deployment: DeploymentRef, swap: SwapInput) -> DeploymentResult:
        return await self._update(deployment, DeploymentWorkflow.swap, swap)

    async def cancel_swap(self, deployment: DeploymentRef, actor: str) -> DeploymentResult:
        return await self._update(
            deployment, DeploymentWorkflow.cancel_swap, ActorInput(actor=actor)
        )

    async def delete(self, deployment: DeploymentRef, actor: str) -> DeploymentResult:
        return await self._update(deployment, DeploymentWorkflow.delete, ActorInput(actor=actor))

    async def _update(self, deployment: DeploymentRef, update: Any, arg: Any) -> DeploymentResult:
        result: DeploymentResult = await self.update(
            deployment_workflow_id(deployment.id),
            update,
            arg,
            what=f"deployment '{deployment.id}'",
            restore=lambda: self.launch(deployment),
        )
        return result
