"""Engine calls that must land whole once sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish_if_cancelled(call: Awaitable[T]) -> T:
    """Await `call`; if the caller is cancelled meanwhile, let `call` finish first and then
    pass the cancellation on. Why: a create or an apply already on its way to the engine
    would otherwise land after the caller's next step (removing everything) and be orphaned."""
    running = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await running
        raise
