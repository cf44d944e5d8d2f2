"""Activities that run containers through a runtime: supervise a generation, halt, remove."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.replica_recorder import ReplicaRecorder
from models.plan import RunPlan
from runtimes.base import Observation, Runtime, Supervisor
from runtimes.errors import RuntimeUnavailableError, WorkloadFailedError
from services import secrets, workloads
from services.keyring import DecryptionError, Keyring
from workflows.common import WORKLOAD_FAILED
from workflows.workload_contract import (
    ACTIVITY_HALT_CONTAINERS,
    ACTIVITY_REMOVE_CONTAINERS,
    ACTIVITY_SUPERVISE,
    SuperviseInput,
    SuperviseResult,
    WorkloadIdInput,
)

STARTING_TICK_SECONDS = 0.2


class SupervisionActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        runtime: Runtime,
        keyring: Keyring,
        *,
        tick_seconds: float = 1.0,
        ready_timeout: timedelta = timedelta(minutes=10),
        refresh_seconds: float = 30.0,
    ) -> None:
        self.sessions = sessions
        self.runtime = runtime
        self.keyring = keyring
        self.tick_seconds = tick_seconds
        self.ready_timeout = ready_timeout
        self.refresh_seconds = refresh_seconds

    @activity.defn(name=ACTIVITY_SUPERVISE)
    async def supervise(self, input: SuperviseInput) -> SuperviseResult:
        """Keep the generation's replicas running and probed; return only when the workflow
        must act: every replica ready (if asked to wait for that) or the workload failed.
        Heartbeats carry no data, so a quiet workload adds nothing to its history."""
        plan = input.plan
        recorder = ReplicaRecorder(self.sessions, plan.workload_id, self.refresh_seconds)
        supervisor = self.runtime.supervisor(
            plan, await self._secrets(plan), await recorder.previous()
        )
        deadline = (input.initializing_since or datetime.now(UTC)) + self.ready_timeout
        try:
            while True:
                try:
                    # While starting, a tick (an image pull most of all) counts against the
                    # ready timeout: it is cut off at the deadline.
                    remaining = (deadline - datetime.now(UTC)).total_seconds()
                    async with asyncio.timeout(
                        max(remaining, 1.0) if input.wait_for_ready else None
                    ):
                        observation = await self._tick(plan, supervisor)
                except TimeoutError:
                    return SuperviseResult(outcome="failed", reason=self._still_starting())
                await recorder.store(observation)
                if observation.failure:
                    return SuperviseResult(outcome="failed", reason=observation.failure)
                if input.wait_for_ready:
                    if observation.all_ready(plan):
                        return SuperviseResult(outcome="ready")
                    if datetime.now(UTC) > deadline:
                        return SuperviseResult(
                            outcome="failed", reason=self._not_ready(observation)
                        )
                activity.heartbeat()
                # While starting, look often: a container that just started is probed on the
                # next tick, and that tick is most of the time to `running`.
                fast = input.wait_for_ready and self.tick_seconds > STARTING_TICK_SECONDS
                await asyncio.sleep(STARTING_TICK_SECONDS if fast else self.tick_seconds)
        finally:
            await supervisor.close()

    @activity.defn(name=ACTIVITY_HALT_CONTAINERS)
    async def halt_containers(self, input: WorkloadIdInput) -> None:
        await self.runtime.halt(input.workload_id)

    @activity.defn(name=ACTIVITY_REMOVE_CONTAINERS)
    async def remove_containers(self, input: WorkloadIdInput) -> int:
        return await self.runtime.remove(input.workload_id)

    async def _tick(self, plan: RunPlan, supervisor: Supervisor) -> Observation:
        try:
            # A tick may pull an image, which takes longer than the heartbeat timeout.
            return await heartbeating(supervisor.tick())
        except RuntimeUnavailableError as error:
            attempt = activity.info().attempt
            # One event when the outage starts and one every ten retries, not one per retry.
            if attempt == 1 or attempt % 10 == 0:
                async with self.sessions() as session, session.begin():
                    await workloads.add_event(
                        session,
                        plan.workload_id,
                        "runtime_unavailable",
                        f"the {self.runtime.name} runtime is unreachable; retrying: {error}",
                        "runtime",
                        {"attempt": attempt},
                    )
            raise
        except WorkloadFailedError as error:
            raise ApplicationError(str(error), type=WORKLOAD_FAILED, non_retryable=True) from error

    async def _secrets(self, plan: RunPlan) -> dict[str, str]:
        """Values of the secrets the plan names, resolved here so they never enter a history.

        Each run of `supervise` reads them afresh, so a new generation gets rotated values.
        A secret that no longer exists is left out: the runtime then fails the start, naming
        the variable that lacks its value."""
        variables = [
            variable
            for group in plan.groups
            for container in group.containers
            for variable in container.secret_env
        ]
        if not variables:
            return {}
        async with self.sessions() as session:
            try:
                return await secrets.resolve(
                    session, {v.secret_id for v in variables}, self.keyring
                )
            except DecryptionError as error:
                names = ", ".join(sorted({v.name for v in variables}))
                raise ApplicationError(
                    f"cannot read the secrets of environment variables {names}: {error}; "
                    "check the key (WAPI_SECRETS_KEY, or secrets.key in the state directory)",
                    type=WORKLOAD_FAILED,
                    non_retryable=True,
                ) from None

    def _still_starting(self) -> str:
        seconds = int(self.ready_timeout.total_seconds())
        return (
            f"not ready after {seconds} s: the runtime was still creating containers (pulling "
            "images counts against the ready timeout, WAPI_READY_TIMEOUT_SECONDS)"
        )

    def _not_ready(self, observation: Observation) -> str:
        seconds = int(self.ready_timeout.total_seconds())
        details = []
        for replica in observation.replicas:
            if replica.ready:
                continue
            failing = [
                f"{kind} probe: {result.message}"
                for kind, result in replica.probes.items()
                if not result.ok
            ]
            # The runtime's own reason (an image pull being retried, the scheduler's message).
            reasons = failing or ([replica.message] if replica.message else [])
            details.append(
                f"{replica.name} ({replica.state}{': ' + '; '.join(reasons) if reasons else ''})"
            )
        return f"not ready after {seconds} s: " + (", ".join(details) or "no replica reported")
