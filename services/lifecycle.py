"""Lifecycle changes go to entity workflows as Updates, by name; Temporal errors become domain
errors here, in one place: 409 for an invalid transition, 503 when nothing answers in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Self, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from config.settings import Settings
from services.errors import ConflictError, UnavailableError
from services.refs import DeploymentRef, WorkloadRef
from workflows import deployment_contract as deployment
from workflows import replacement_contract as replacement
from workflows import search_attributes as attributes
from workflows import workload_contract as workload
from workflows.common import INVALID_TRANSITION

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)


class WorkflowMissingError(UnavailableError):
    """Temporal has no running workflow for the entity."""


class TemporalCalls:
    """Bounded waits on Temporal, with its errors mapped to domain errors."""

    def __init__(
        self, client: Client, *, task_queue: str, timeout: float, search_attributes: bool = True
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.timeout = timeout
        self.search_attributes = search_attributes

    @classmethod
    def from_settings(
        cls, client: Client, settings: Settings, task_queue: str | None = None
    ) -> Self:
        return cls(
            client,
            task_queue=task_queue or settings.temporal_task_queue,
            timeout=settings.update_timeout_seconds,
            search_attributes=settings.temporal_search_attributes,
        )

    def _indexed(self, values: dict[SearchAttributeKey[str], str]) -> TypedSearchAttributes:
        """The workflow's search attributes at start: none when the setting turns them off."""
        if not self.search_attributes:
            return TypedSearchAttributes.empty
        return TypedSearchAttributes(attributes.pairs({k: v for k, v in values.items() if v}))

    async def update(
        self,
        workflow_id: str,
        update: str,
        arg: BaseModel,
        result_type: type[R],
        *,
        what: str,
        restore: Callable[[], Awaitable[None]],
    ) -> R:
        handle: WorkflowHandle[object, object] = self.client.get_workflow_handle(workflow_id)

        async def send() -> R:
            result: R = await handle.execute_update(update, arg, result_type=result_type)
            return result

        try:
            try:
                return await self.call(send)
            except WorkflowMissingError:
                # The catalog has the entity but Temporal lost its workflow (e.g. a fresh
                # Temporal database): restore it from the catalog, then retry once.
                await restore()
                return await self.call(send)
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

    async def ensure_workflow(self, ref: WorkloadRef) -> None:
        """Start the workload's workflow in the catalog's status; a running one is kept."""
        await self.call(
            lambda: self.client.start_workflow(
                workload.WORKFLOW_TYPE,
                workload.WorkloadInput(workload_id=ref.id, status=ref.status),
                id=workload.workflow_id(ref.id),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=self._indexed(
                    {
                        attributes.WORKLOAD_ID: ref.id,
                        attributes.NAME: ref.name,
                        attributes.STATUS: ref.status,
                        attributes.ARTIFACT_ID: ref.artifact_id,
                        attributes.COLLECTION_ID: ref.collection_id,
                        attributes.OWNER: ref.owner,
                    }
                ),
                static_summary=f"workload {ref.name or ref.id}",
                static_details=f"The lifecycle of workload {ref.id} (artifact {ref.artifact_id}, "
                f"owner {ref.owner}): start, supervise, scale, stop, delete.",
            )
        )

    async def start(self, ref: WorkloadRef, actor: str) -> workload.TransitionResult:
        return await self._update(ref, workload.UPDATE_START, workload.TransitionInput(actor=actor))

    async def stop(self, ref: WorkloadRef, actor: str) -> workload.TransitionResult:
        return await self._update(ref, workload.UPDATE_STOP, workload.TransitionInput(actor=actor))

    async def scale(
        self, ref: WorkloadRef, actor: str, replicas: dict[str, int], reason: str | None = None
    ) -> workload.TransitionResult:
        return await self._update(
            ref,
            workload.UPDATE_SCALE,
            workload.ScaleInput(actor=actor, replicas=replicas, reason=reason),
        )

    async def delete(self, ref: WorkloadRef, actor: str) -> workload.TransitionResult:
        return await self._update(
            ref, workload.UPDATE_DELETE, workload.TransitionInput(actor=actor)
        )

    async def start_replacement(self, state: replacement.ReplacementState) -> None:
        """Start the replacement's workflow; one per workload at a time (409 otherwise)."""
        try:
            await self.call(
                lambda: self.client.start_workflow(
                    replacement.WORKFLOW_TYPE,
                    replacement.ReplacementInput(state=state),
                    id=replacement.replacement_workflow_id(state.workload_id),
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    search_attributes=self._indexed(
                        {attributes.WORKLOAD_ID: state.workload_id, attributes.OWNER: state.actor}
                    ),
                    static_summary=f"replacement {state.replacement_id} of workload "
                    f"{state.workload_id}",
                    static_details=f"Move workload {state.workload_id} onto artifact "
                    f"{state.artifact_id} in place; the new version runs as workload "
                    f"{state.candidate} until the workload takes it over.",
                )
            )
        except WorkflowAlreadyStartedError:
            raise ConflictError(
                f"workload '{state.workload_id}' has a replacement in progress"
            ) from None

    async def cancel_replacement(self, workload_id: str, actor: str) -> replacement.ReplacementView:
        async def restore() -> None:
            raise ConflictError(f"workload '{workload_id}' has no replacement in progress")

        return await self.update(
            replacement.replacement_workflow_id(workload_id),
            replacement.UPDATE_CANCEL,
            replacement.CancelInput(actor=actor),
            replacement.ReplacementView,
            what=f"the replacement of workload '{workload_id}'",
            restore=restore,
        )

    async def _update(
        self, ref: WorkloadRef, update: str, arg: BaseModel
    ) -> workload.TransitionResult:
        return await self.update(
            workload.workflow_id(ref.id),
            update,
            arg,
            workload.TransitionResult,
            what=f"workload '{ref.id}'",
            restore=lambda: self.ensure_workflow(ref),
        )


class DeploymentLifecycle(TemporalCalls):
    """Start deployment workflows and send them swap/cancel/delete."""

    async def ensure_workflow(self, ref: DeploymentRef) -> None:
        """Start the deployment's workflow in the catalog's state; a running one is kept."""
        await self.call(
            lambda: self.client.start_workflow(
                deployment.WORKFLOW_TYPE,
                deployment.DeploymentInput(
                    deployment_id=ref.id, workload_id=ref.workload_id, status=ref.health_status
                ),
                id=deployment.deployment_workflow_id(ref.id),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=self._indexed(
                    {
                        attributes.DEPLOYMENT_ID: ref.id,
                        attributes.NAME: ref.name,
                        attributes.STATUS: ref.health_status,
                        attributes.WORKLOAD_ID: ref.workload_id,
                        attributes.OWNER: ref.owner,
                    }
                ),
                static_summary=f"deployment {ref.name or ref.id}",
                static_details=f"Deployment {ref.id} (owner {ref.owner}): health monitoring and "
                "zero-downtime swaps of the workload it serves.",
            )
        )

    async def swap(
        self, ref: DeploymentRef, swap: deployment.SwapInput
    ) -> deployment.DeploymentResult:
        return await self._update(ref, deployment.UPDATE_SWAP, swap)

    async def cancel_swap(self, ref: DeploymentRef, actor: str) -> deployment.DeploymentResult:
        return await self._update(
            ref, deployment.UPDATE_CANCEL_SWAP, deployment.ActorInput(actor=actor)
        )

    async def delete(self, ref: DeploymentRef, actor: str) -> deployment.DeploymentResult:
        return await self._update(ref, deployment.UPDATE_DELETE, deployment.ActorInput(actor=actor))

    async def rollout(
        self, ref: DeploymentRef, rollout: deployment.RolloutInput
    ) -> deployment.RolloutView:
        return await self._rollout_update(ref, deployment.UPDATE_ROLLOUT, rollout)

    async def control_rollout(
        self, ref: DeploymentRef, update: str, control: deployment.RolloutControlInput
    ) -> deployment.RolloutView:
        """`promote`, `pause`, `resume` or `abort` (the contract's `UPDATE_` name)."""
        return await self._rollout_update(ref, update, control)

    async def _rollout_update(
        self, ref: DeploymentRef, update: str, arg: BaseModel
    ) -> deployment.RolloutView:
        return await self.update(
            deployment.deployment_workflow_id(ref.id),
            update,
            arg,
            deployment.RolloutView,
            what=f"deployment '{ref.id}'",
            restore=lambda: self.ensure_workflow(ref),
        )

    async def _update(
        self, ref: DeploymentRef, update: str, arg: BaseModel
    ) -> deployment.DeploymentResult:
        return await self.update(
            deployment.deployment_workflow_id(ref.id),
            update,
            arg,
            deployment.DeploymentResult,
            what=f"deployment '{ref.id}'",
            restore=lambda: self.ensure_workflow(ref),
        )
