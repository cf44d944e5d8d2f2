"""Waiting for a lifecycle to get somewhere: polls (soon at first, then every `interval`) with
a deadline, shared by both clients.

A condition looks at one reading and says whether it is there yet; it raises `WaitFailedError`
for a state the resource cannot leave by itself (an errored workload will not become running),
so a script learns at once instead of at the deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from client.errors import WaitFailedError, WaitTimeoutError
from models.deployments import DeploymentPublic, SwapPublic
from models.status import DeploymentStatus, SwapStatus, WorkloadStatus
from models.workloads import ReplicaPublic, WorkloadPublic

T = TypeVar("T")
Condition = Callable[[T], bool]
OnPoll = Callable[[T], None] | None

# A workload in one of these stays there until someone acts.
SETTLED_WORKLOAD: frozenset[WorkloadStatus] = frozenset({"running", "stopped", "errored"})
SETTLED_DEPLOYMENT: frozenset[DeploymentStatus] = frozenset({"running", "stopped", "errored"})
FINISHED_SWAP: frozenset[SwapStatus] = frozenset({"completed", "rolled_back", "cancelled"})


def workload_reaches(statuses: Iterable[WorkloadStatus]) -> Condition[WorkloadPublic]:
    wanted = frozenset(statuses)

    def check(workload: WorkloadPublic) -> bool:
        if workload.status in wanted:
            return True
        if workload.status in SETTLED_WORKLOAD:
            reason = f": {workload.status_reason}" if workload.status_reason else ""
            raise WaitFailedError(
                f"workload '{workload.name}' ({workload.id})",
                f"it is {workload.status}{reason}",
                workload,
            )
        return False

    return check


def all_ready(workload: WorkloadPublic, replicas: Sequence[ReplicaPublic]) -> bool:
    """Running, with as many ready replicas as its runtime asks for."""
    wanted = sum(group.replica_count for group in workload.runtime.container_groups)
    return workload.status == "running" and sum(r.ready for r in replicas) >= wanted


def deployment_reaches(statuses: Iterable[DeploymentStatus]) -> Condition[DeploymentPublic]:
    """As a workload's: a deployment settled elsewhere (its workload errored, say) fails,
    unless a swap in progress may still move it."""
    wanted = frozenset(statuses)

    def check(deployment: DeploymentPublic) -> bool:
        if deployment.status in wanted:
            return True
        if deployment.status in SETTLED_DEPLOYMENT and deployment.swap is None:
            reason = f": {deployment.status_reason}" if deployment.status_reason else ""
            raise WaitFailedError(
                f"deployment '{deployment.name}' ({deployment.id})",
                f"it is {deployment.status}{reason}",
                deployment,
            )
        return False

    return check


def swap_finishes(statuses: Iterable[SwapStatus]) -> Condition[SwapPublic]:
    """Done when the swap reaches one of `statuses`; a finished swap that did not fails."""
    wanted = frozenset(statuses)

    def check(swap: SwapPublic) -> bool:
        if swap.status in wanted:
            return True
        if swap.status in FINISHED_SWAP:
            reason = f": {swap.reason}" if swap.reason else ""
            raise WaitFailedError(f"swap {swap.id}", f"it {swap.status}{reason}", swap)
        return False

    return check


# The first look again comes this soon, and each pause is half as long again, up to the
# caller's interval. Why: a workload on a local engine runs about a quarter second after its
# POST; polling once a second from the start would make every wait take a second.
FIRST_PAUSE = 0.05
# The longest a reading may be held by the server (a workload's `waitSeconds` allows 30).
MAX_HOLD = 20.0

# A reading, given how long the server may hold it until there is news (0: answer at once).
# A fetch whose server cannot wait ignores it; the pause is then spent here instead.
Fetch = Callable[[float], T]


def pauses(interval: float) -> Iterator[float]:
    """The pauses between polls: FIRST_PAUSE, growing by half, at most `interval`."""
    pause = min(FIRST_PAUSE, interval)
    while True:
        yield pause
        pause = min(pause * 1.5, interval)


def _holds(deadline: float, interval: float, held: bool) -> Iterator[float]:
    """How long each reading may take: 0 for the first, then the pauses (all of `interval`
    when the server holds readings: it answers at once on news anyway), within the deadline."""
    yield 0.0
    longest = min(interval, MAX_HOLD)
    for pause in itertools.repeat(longest) if held else pauses(longest):
        yield max(0.0, min(pause, deadline - time.monotonic()))


def wait_sync(
    fetch: Fetch[T],
    done: Condition[T],
    what: str,
    timeout: float,
    interval: float,
    on_poll: OnPoll[T] = None,
    *,
    held: bool = False,
) -> T:
    """`held`: `fetch` has the server hold its reading until there is news."""
    deadline = time.monotonic() + timeout
    for hold in _holds(deadline, interval, held):
        asked = time.monotonic()
        value = fetch(hold)
        if on_poll is not None:
            on_poll(value)
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(what, timeout, value)
        # Readings at most one per `hold`: what the server did not wait, the client does.
        time.sleep(max(0.0, asked + hold - time.monotonic()))
    raise AssertionError("unreachable: the holds never end")


async def wait_async(
    fetch: Fetch[Awaitable[T]],
    done: Condition[T],
    what: str,
    timeout: float,
    interval: float,
    on_poll: OnPoll[T] = None,
    *,
    held: bool = False,
) -> T:
    deadline = time.monotonic() + timeout
    for hold in _holds(deadline, interval, held):
        asked = time.monotonic()
        value = await fetch(hold)
        if on_poll is not None:
            on_poll(value)
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(what, timeout, value)
        await asyncio.sleep(max(0.0, asked + hold - time.monotonic()))
    raise AssertionError("unreachable: the holds never end")
