"""The polling helpers of workloads and deployments, for each client: wait for a status or a
swap's end, and follow events as they happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

from client.console import Deployments, Workloads
from client.errors import WaitFailedError
from client.operations import Async, Sync
from client.waiting import (
    SETTLED_WORKLOAD,
    OnPoll,
    all_ready,
    deployment_reaches,
    swap_finishes,
    wait_async,
    wait_sync,
    workload_reaches,
)
from models.common import Page
from models.deployments import DeploymentEventPublic, DeploymentPublic, SwapPublic
from models.status import DeploymentStatus, SwapStatus, WorkloadStatus
from models.workloads import WorkloadEventPublic, WorkloadPublic

T = TypeVar("T")


def _follow(page_at: Callable[[int], Page[T]], interval: float) -> Iterator[T]:
    """Every item of an oldest-first list, then each new one as it is appended."""
    offset = 0
    while True:
        page = page_at(offset)
        yield from page.data
        offset += len(page.data)
        if page.next is None:
            time.sleep(interval)


async def _afollow(
    page_at: Callable[[int], Awaitable[Page[T]]], interval: float
) -> AsyncIterator[T]:
    offset = 0
    while True:
        page = await page_at(offset)
        for item in page.data:
            yield item
        offset += len(page.data)
        if page.next is None:
            await asyncio.sleep(interval)


def _swap_in(page: Page[SwapPublic], deployment_id: str, swap_id: str) -> SwapPublic:
    for swap in page.data:
        if swap.id == swap_id:
            return swap
    raise WaitFailedError(f"swap {swap_id}", f"not among deployment {deployment_id}'s swaps", None)


def _news(statuses: tuple[WorkloadStatus, ...]) -> list[WorkloadStatus]:
    """The statuses a held reading answers on: those waited for and those it cannot leave."""
    return sorted({*statuses, *SETTLED_WORKLOAD})


class SyncWorkloads(Workloads[Sync]):
    def wait_until(
        self,
        workload_id: str,
        *statuses: WorkloadStatus,
        timeout: float = 300,
        interval: float = 1.0,
        on_poll: OnPoll[WorkloadPublic] = None,
    ) -> WorkloadPublic:
        """Poll until the workload's status is one of `statuses` (default `running`); raises
        `WaitFailedError` when it settles elsewhere (errored, stopped) and `WaitTimeoutError`."""
        wanted = statuses or ("running",)
        what = f"workload {workload_id} to be {'/'.join(wanted)}"

        def fetch(hold: float) -> WorkloadPublic:
            return self.get(workload_id, _news(wanted), hold)

        return wait_sync(
            fetch, workload_reaches(wanted), what, timeout, interval, on_poll, held=True
        )

    def wait_until_ready(
        self,
        workload_id: str,
        *,
        timeout: float = 300,
        interval: float = 1.0,
        on_poll: OnPoll[WorkloadPublic] = None,
    ) -> WorkloadPublic:
        """Poll until the workload runs with every replica ready (after a scale, say)."""
        running = workload_reaches(("running",))

        def done(workload: WorkloadPublic) -> bool:
            return running(workload) and all_ready(workload, self.replicas(workload_id))

        def fetch(hold: float) -> WorkloadPublic:
            return self.get(workload_id, _news(("running",)), hold)

        what = f"every replica of workload {workload_id} to be ready"
        # Not `held`: replicas made ready by a scale are no status change; looks come soon.
        return wait_sync(fetch, done, what, timeout, interval, on_poll)

    def watch_events(
        self, workload_id: str, interval: float = 1.0
    ) -> Iterator[WorkloadEventPublic]:
        """Every event, oldest first, then new ones as they happen (until you stop iterating)."""
        return _follow(lambda offset: self.events(workload_id, offset=offset, limit=100), interval)


class AsyncWorkloads(Workloads[Async]):
    async def wait_until(
        self,
        workload_id: str,
        *statuses: WorkloadStatus,
        timeout: float = 300,
        interval: float = 1.0,
        on_poll: OnPoll[WorkloadPublic] = None,
    ) -> WorkloadPublic:
        wanted = statuses or ("running",)
        what = f"workload {workload_id} to be {'/'.join(wanted)}"

        async def fetch(hold: float) -> WorkloadPublic:
            return await self.get(workload_id, _news(wanted), hold)

        return await wait_async(
            fetch, workload_reaches(wanted), what, timeout, interval, on_poll, held=True
        )

    async def wait_until_ready(
        self,
        workload_id: str,
        *,
        timeout: float = 300,
        interval: float = 1.0,
        on_poll: OnPoll[WorkloadPublic] = None,
    ) -> WorkloadPublic:
        running = workload_reaches(("running",))

        async def fetch(hold: float) -> tuple[WorkloadPublic, bool]:
            workload = await self.get(workload_id, _news(("running",)), hold)
            ready = running(workload) and all_ready(workload, await self.replicas(workload_id))
            return workload, ready

        def seen(state: tuple[WorkloadPublic, bool]) -> None:
            if on_poll is not None:
                on_poll(state[0])

        what = f"every replica of workload {workload_id} to be ready"
        state = await wait_async(fetch, lambda s: s[1], what, timeout, interval, seen)
        return state[0]

    def watch_events(
        self, workload_id: str, interval: float = 1.0
    ) -> AsyncIterator[WorkloadEventPublic]:
        return _afollow(lambda offset: self.events(workload_id, offset=offset, limit=100), interval)


class SyncDeployments(Deployments[Sync]):
    def wait_until(
        self,
        deployment_id: str,
        *statuses: DeploymentStatus,
        timeout: float = 300,
        interval: float = 1.0,
        on_poll: OnPoll[DeploymentPublic] = None,
    ) -> DeploymentPublic:
        """Poll until the deployment's status is one of `statuses` (default `running`); raises
        `WaitFailedError` when it settles elsewhere (its workload errored or stopped)."""
        wanted = statuses or ("running",)
        what = f"deployment {deployment_id} to be {'/'.join(wanted)}"
        return wait_sync(
            lambda _hold: self.get(deployment_id),
            deployment_reaches(wanted),
            what,
            timeout,
            interval,
            on_poll,
        )

    def wait_for_swap(
        self,
        deployment_id: str,
        swap_id: str,
        *statuses: SwapStatus,
        timeout: float = 600,
        interval: float = 1.0,
        on_poll: OnPoll[SwapPublic] = None,
    ) -> SwapPublic:
        """Poll until the swap reaches one of `statuses` (default `completed`); raises
        `WaitFailedError` when it rolled back or was cancelled instead."""
        done = swap_finishes(statuses or ("completed",))
        return wait_sync(
            lambda _hold: _swap_in(self.swaps(deployment_id, limit=20), deployment_id, swap_id),
            done,
            f"swap {swap_id} of deployment {deployment_id}",
            timeout,
            interval,
            on_poll,
        )

    def watch_events(
        self, deployment_id: str, interval: float = 1.0
    ) -> Iterator[DeploymentEventPublic]:
        return _follow(
            lambda offset: self.events(deployment_id, offset=offset, limit=100), interval
        )


class AsyncDeployments(Deployments[Async]):
    async def wait_until(
        self,
        deployment_id: str,
        *statuses: DeploymentStatus,
        timeout: float = 300,
        interval: float = 1.0,
        on_poll: OnPoll[DeploymentPublic] = None,
    ) -> DeploymentPublic:
        wanted = statuses or ("running",)
        what = f"deployment {deployment_id} to be {'/'.join(wanted)}"
        return await wait_async(
            lambda _hold: self.get(deployment_id),
            deployment_reaches(wanted),
            what,
            timeout,
            interval,
            on_poll,
        )

    async def wait_for_swap(
        self,
        deployment_id: str,
        swap_id: str,
        *statuses: SwapStatus,
        timeout: float = 600,
        interval: float = 1.0,
        on_poll: OnPoll[SwapPublic] = None,
    ) -> SwapPublic:
        async def fetch(_hold: float) -> SwapPublic:
            return _swap_in(await self.swaps(deployment_id, limit=20), deployment_id, swap_id)

        done = swap_finishes(statuses or ("completed",))
        what = f"swap {swap_id} of deployment {deployment_id}"
        return await wait_async(fetch, done, what, timeout, interval, on_poll)

    def watch_events(
        self, deployment_id: str, interval: float = 1.0
    ) -> AsyncIterator[DeploymentEventPublic]:
        return _afollow(
            lambda offset: self.events(deployment_id, offset=offset, limit=100), interval
        )
