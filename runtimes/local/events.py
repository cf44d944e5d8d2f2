"""One subscription to the engine's container events per process, fanned out by workload.

A supervisor learns that one of its containers started, died or vanished from here, instead
of listing its containers every tick: an idle workload costs the engine nothing. The stream
is opened with `since` a moment back, so events that happen while it (re)connects are
replayed, not lost; after a reconnect every listener is also told to list its containers
again, in case the engine's replay buffer (Docker keeps about a thousand) did not reach back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from runtimes.errors import RuntimeUnavailableError
from runtimes.local.engine import ContainerEvent, Engine

log = logging.getLogger(__name__)

# Engine actions that change what a supervisor must know about a container.
RELEVANT_ACTIONS = frozenset(
    {"start", "die", "stop", "kill", "oom", "pause", "unpause", "destroy", "remove", "restart"}
)
REPLAY_SECONDS = 2.0
RETRY_SECONDS = 1.0


class Listener(Protocol):
    def container_changed(self, container_id: str, action: str) -> None:
        """An event (`action`: start, die, ...) named this container of the listener's
        workload."""
        ...

    def resync(self) -> None:
        """Events may have been missed: look at every container again."""
        ...


class EngineEvents:
    """The process's subscription to `engine`'s events; started by the first listener."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._listeners: dict[str, set[Listener]] = {}
        self._task: asyncio.Task[None] | None = None
        self._streaming = False
        self._last_seen = 0.0  # engine time (epoch seconds) of the newest event seen

    @property
    def streaming(self) -> bool:
        """False while the stream is down: listeners must look for themselves meanwhile."""
        return self._streaming

    def subscribe(self, workload_id: str, listener: Listener) -> Callable[[], None]:
        """Tell `listener` about the workload's containers; returns the unsubscribe call."""
        self._listeners.setdefault(workload_id, set()).add(listener)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="engine-events")

        def unsubscribe() -> None:
            listeners = self._listeners.get(workload_id, set())
            listeners.discard(listener)
            if not listeners:
                self._listeners.pop(workload_id, None)

        return unsubscribe

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._streaming = False

    async def _run(self) -> None:
        self._last_seen = time.time()
        first = True
        while True:
            since = self._last_seen - REPLAY_SECONDS
            try:
                self._streaming = True
                if not first:
                    self._resync_all()
                first = False
                async for event in self._engine.events(since):
                    self._dispatch(event)
                log.info("the engine closed its event stream; reconnecting")
            except RuntimeUnavailableError as error:
                log.warning("engine event stream failed; retrying", extra={"error": str(error)})
            self._streaming = False
            await asyncio.sleep(RETRY_SECONDS)

    def _dispatch(self, event: ContainerEvent) -> None:
        self._last_seen = max(self._last_seen, event.time_nano / 1e9)
        if event.action not in RELEVANT_ACTIONS:
            return
        for listener in list(self._listeners.get(event.workload_id, ())):
            listener.container_changed(event.container_id, event.action)

    def _resync_all(self) -> None:
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.resync()
