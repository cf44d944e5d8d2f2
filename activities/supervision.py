"""Activities that run containers through a runtime: supervise a generation, release that
supervision at once, halt, remove."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.replica_recorder import ReplicaRecorder
from activities.slots import Claim, SupervisionSlots
from models.plan import RunPlan
from runtimes.base import Observation, Runtime, RuntimeEvent, Supervisor
from runtimes.errors import RuntimeUnavailableError, WorkloadFailedError
from services import secrets, workloads
from services.keyring import DecryptionError, Keyring
from workflows.common import WORKLOAD_FAILED
from workflows.workload_contract import (
    ACTIVITY_HALT_CONTAINERS,
    ACTIVITY_RELEASE_SUPERVISION,
    ACTIVITY_REMOVE_CONTAINERS,
    ACTIVITY_SUPERVISE,
    SIGNAL_SUPERVISED,
    SupervisedInput,
    SuperviseInput,
    SuperviseResult,
    WorkloadIdInput,
)

log = logging.getLogger(__name__)

# While starting, what a tick saw is written with the next tick's, unless that comes later
# than this: the first probe mostly passes within milliseconds of the start, and one
# transaction of both is one fewer on the way to `running`.
STORE_COALESCE_SECONDS = 0.1


def _store_by() -> float:
    return time.monotonic() + STORE_COALESCE_SECONDS


class SupervisionActivities:
    """Args:
    slots: The long activities of this worker; `release_supervision` ends them.
    worker: This worker's identity, and `worker_queue` the task queue only it polls: a
        supervision tells its workflow both, which then releases it there.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        runtime: Runtime,
        keyring: Keyring,
        *,
        slots: SupervisionSlots | None = None,
        worker: str = "",
        worker_queue: str = "",
        ready_timeout: timedelta = timedelta(minutes=10),
    ) -> None:
        self.sessions = sessions
        self.runtime = runtime
        self.keyring = keyring
        self.slots = slots or SupervisionSlots(capacity=1000)
        self.worker = worker
        self.worker_queue = worker_queue
        self.ready_timeout = ready_timeout

    @activity.defn(name=ACTIVITY_SUPERVISE)
    async def supervise(self, input: SuperviseInput) -> SuperviseResult:
        """Keep the generation's replicas running and probed; return only when the workflow
        must act: every replica ready (if asked to wait for that), the workload failed, or
        the supervision was released. Heartbeats carry no data, so a quiet workload adds
        nothing to its history."""
        plan = input.plan
        with self.slots.hold(plan.workload_id) as claim:
            recorder = ReplicaRecorder(self.sessions, plan.workload_id)
            supervisor = self.runtime.supervisor(
                plan, await self._secrets(plan), await recorder.previous()
            )
            try:
                return await self._supervise(input, supervisor, recorder, claim)
            finally:
                await supervisor.close()

    @activity.defn(name=ACTIVITY_RELEASE_SUPERVISION)
    async def release_supervision(self, input: WorkloadIdInput) -> int:
        """End this worker's supervision of the workload now; returns once nothing of it is
        under way (an image pull or a create finishes first), so the workflow may remove
        the containers without anything recreating them."""
        return await self.slots.release(input.workload_id)

    async def _supervise(
        self,
        input: SuperviseInput,
        supervisor: Supervisor,
        recorder: ReplicaRecorder,
        claim: Claim,
    ) -> SuperviseResult:
        plan = input.plan
        info = activity.info()
        deadline = (input.initializing_since or datetime.now(UTC)) + self.ready_timeout
        # A heartbeat twice per timeout; the SDK sends at most one per 0.8 x timeout.
        beat_every = (info.heartbeat_timeout or timedelta(seconds=2)).total_seconds() / 2
        started = RuntimeEvent(
            type="supervision_started",
            message=f"supervised by worker {self.worker or '?'} (attempt {info.attempt})",
            details={"worker": self.worker, "attempt": info.attempt},
        )
        pending: list[RuntimeEvent] = [started]
        released = asyncio.ensure_future(claim.released.wait())
        # A starting supervision announces itself after its first tick, so the containers
        # need not wait for the signal nor share the CPU with what it sets off; one of running
        # containers at once, so a stop right after `running` finds it (ANNOUNCE_WAIT).
        announcing = None if input.wait_for_ready else asyncio.create_task(self._announce())
        due = True
        store_by: float | None = None  # when a tick not yet stored must be (monotonic)
        try:
            while not claim.released.is_set():
                if due:
                    try:
                        # While starting, a tick (an image pull most of all) counts against
                        # the ready timeout: it is cut off at the deadline.
                        remaining = (deadline - datetime.now(UTC)).total_seconds()
                        async with asyncio.timeout(
                            max(remaining, 1.0) if input.wait_for_ready else None
                        ):
                            observation = await self._tick(plan, supervisor)
                    except TimeoutError:
                        return SuperviseResult(outcome="failed", reason=self._still_starting())
                    ready = (
                        input.wait_for_ready
                        and not observation.failure
                        and observation.all_ready(plan)
                    )
                    starting = input.wait_for_ready and not (ready or observation.failure)
                    if starting and time.monotonic() < (store_by := store_by or _store_by()):
                        pending += observation.events  # stored with the next tick's
                    else:
                        # `running` goes in with the ready replicas: a client waiting for it
                        # need not wait for the workflow to hear of it and record it.
                        recorded = await recorder.store(
                            observation, pending, running=plan.generation if ready else None
                        )
                        pending, store_by = [], None
                        if observation.failure:
                            return SuperviseResult(outcome="failed", reason=observation.failure)
                        if ready:
                            return SuperviseResult(outcome="ready", running_recorded=recorded)
                        announcing = announcing or asyncio.create_task(self._announce())
                if input.wait_for_ready and datetime.now(UTC) > deadline:
                    return SuperviseResult(outcome="failed", reason=self._not_ready(observation))
                activity.heartbeat()
                at_most = beat_every
                if input.wait_for_ready:
                    at_most = min(at_most, (deadline - datetime.now(UTC)).total_seconds())
                if store_by is not None:
                    at_most = min(at_most, store_by - time.monotonic())
                # Tick again only when the runtime has something new, not to heartbeat.
                waiting = asyncio.ensure_future(supervisor.wait(max(at_most, 0.0)))
                await asyncio.wait({waiting, released}, return_when=asyncio.FIRST_COMPLETED)
                due = (waiting.done() and waiting.result()) or (
                    store_by is not None and time.monotonic() >= store_by
                )
                waiting.cancel()
            if store_by is not None:  # released within the moment a tick was held
                await recorder.store(observation, pending)
        finally:
            released.cancel()
            if announcing is not None:
                announcing.cancel()  # long done, unless Temporal is away: it no longer matters
        return SuperviseResult(outcome="released")

    async def _announce(self) -> None:
        """Tell the workflow where this supervision runs, so it can release it there."""
        info = activity.info()
        signal = SupervisedInput(
            activity_id=info.activity_id,
            attempt=info.attempt,
            worker=self.worker,
            task_queue=self.worker_queue,
        )
        try:
            handle = activity.client().get_workflow_handle(info.workflow_id or "")
            await handle.signal(SIGNAL_SUPERVISED, signal)
        except Exception as error:  # the workflow then ends it by cancellation instead
            log.warning(
                "could not tell the workflow where it is supervised",
                extra={"workflow_id": info.workflow_id, "error": str(error)},
            )

    @activity.defn(name=ACTIVITY_HALT_CONTAINERS)
    async def halt_containers(self, input: WorkloadIdInput) -> None:
        await self.runtime.halt(input.workload_id)

    @activity.defn(name=ACTIVITY_REMOVE_CONTAINERS)
    async def remove_containers(self, input: WorkloadIdInput) -> int:
        return await self.runtime.remove(input.workload_id)

    async def _tick(self, plan: RunPlan, supervisor: Supervisor) -> Observation:
        tick = asyncio.ensure_future(supervisor.tick())
        try:
            # A tick may pull an image, which takes longer than the heartbeat timeout.
            return await heartbeating(asyncio.shield(tick))
        except asyncio.CancelledError:
            # An image pull stops here (the ready deadline cuts it); a create or an apply
            # already sent finishes first (the runtimes shield them), so nothing is made after
            # the workflow removed everything.
            tick.cancel()
            with contextlib.suppress(BaseException):
                await tick
            raise
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
