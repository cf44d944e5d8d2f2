"""Heartbeat while awaiting something that may outlast the heartbeat timeout.

A probe may time out after up to an hour and an image pull takes minutes, while our activities
declare a heartbeat timeout of seconds so that a dead worker is noticed quickly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")

EVERY_SECONDS = 1.0


async def heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating every second meanwhile."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=EVERY_SECONDS)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()  # a no-op once done; stops the work when the activity is cancelled
