"""Lifecycle changes of workloads go to their workflows as Updates; Temporal errors become
domain errors here (409 for an invalid transition, 503 when nothing answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from workload_api.errors import ConflictError, UnavailableError
from workload_api.payloads.workloads import (
    ScaleInput,
    TransitionInput,
    TransitionResult,
    WorkloadInput,
    WorkloadStatus,
    workflow_id,
)
from workload_api.workflows.workload import INVALID_TRANSITION, WorkloadWorkflow

T = TypeVar("T")


@dataclass(frozen=True)
class WorkloadRef:
    """What is needed to reach, or restore, a workload's workflow."""

    id: str
    status: WorkloadStatus
    replicas: dict[str, int]


class WorkflowMissingError(UnavailableError):
    """Temporal has no running workflow for the workload."""


class WorkloadLifecycle:
    """Start workflows and send them start/stop/scale/delete, with bounded waits."""

    def __init__(self, client: Client, *, task_queue: str, timeout: float) -> None:
        self.client = client
        self.task_queue = task_queue
        self.timeout = timeout

    async def launch(
        self, workload_id: str, status: WorkloadStatus, replicas: dict[str, int]
    ) -> None:
        """Start the workload's workflow; a running one is kept (idempotent)."""
        await self._call(
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
        workload_id = workload.id
        handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(workflow_id(workload_id))
        try:
            try:
                result: TransitionResult = await self._call(
                    lambda: handle.execute_update(update, arg)
                )
            except WorkflowMissingError:
                # The catalog has the workload but Temporal lost its workflow (e.g. a fresh
                # Temporal database): restore it from the catalog's status, then retry once.
                await self.launch(workload_id, workload.status, workload.replicas)
                result = await self._call(lambda: handle.execute_update(update, arg))
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == INVALID_TRANSITION:
                raise ConflictError(f"workload '{workload_id}': {cause.message}") from None
            raise UnavailableError(f"the change could not be applied: {cause or error}") from None
        return result

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call()
        except TimeoutError:
            raise UnavailableError(
                f"no worker took the change within {self.timeout:g} s; it may still be applied, "
                "check the workload's status"
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
