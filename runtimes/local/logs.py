"""Container logs of a workload: a snapshot (merged, oldest first) or a live follow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from runtimes.base import LogLine
from runtimes.local.engine import ContainerSummary, Engine
from runtimes.local.logstream import RawLine
from runtimes.local.naming import ContainerKey

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _log_line(row: ContainerSummary, raw: RawLine) -> LogLine:
    return LogLine(
        timestamp=raw.timestamp,
        replica=_key(row).replica.name,
        container=_key(row).container,
        stream=raw.stream,
        message=raw.text,
    )


def _key(row: ContainerSummary) -> ContainerKey:
    assert row.key is not None
    return row.key


async def _select(
    engine: Engine, workload_id: str, replica: str | None, container: str | None
) -> list[ContainerSummary]:
    rows = [row for row in await engine.list_containers(workload_id) if row.key is not None]
    selected = [
        row
        for row in rows
        if (replica is None or _key(row).replica.name == replica)
        and (container is None or _key(row).container == container)
    ]
    return sorted(selected, key=_key)


async def workload_logs(
    engine: Engine,
    workload_id: str,
    *,
    replica: str | None = None,
    container: str | None = None,
    tail: int | None = None,
    since: datetime | None = None,
    follow: bool = False,
) -> AsyncIterator[LogLine]:
    """Log lines of the workload's containers, filtered by replica name and container name.

    Without `follow`, the lines of all selected containers are merged by time (oldest first)
    and `tail` keeps the last lines of that merge. With `follow`, each container's last
    `tail` lines come first, then new lines as they are written, until the caller stops
    iterating or every selected container has stopped.
    """
    rows = await _select(engine, workload_id, replica, container)
    after = since.timestamp() if since else None
    if tail == 0 and not follow:
        return
    if not follow:
        lines: list[LogLine] = []
        for row in rows:
            async for raw in engine.log_lines(row.id, tail=tail, since=after):
                lines.append(_log_line(row, raw))
        # Stable sort: lines of one container keep their order within a timestamp.
        lines.sort(key=lambda line: line.timestamp or _EPOCH)
        for line in lines[-tail:] if tail else lines:
            yield line
        return
    async for line in _follow(engine, rows, tail, after):
        yield line


async def _follow(
    engine: Engine, rows: list[ContainerSummary], tail: int | None, since: float | None
) -> AsyncIterator[LogLine]:
    queue: asyncio.Queue[LogLine | BaseException | None] = asyncio.Queue(maxsize=1000)

    async def pump(row: ContainerSummary) -> None:
        # No `finally`: a cancelled pump must not block on a full queue.
        try:
            async for raw in engine.log_lines(row.id, tail=tail, since=since, follow=True):
                await queue.put(_log_line(row, raw))
        except Exception as error:  # handed to the reader, which raises it
            await queue.put(error)
            return
        await queue.put(None)

    tasks = [asyncio.create_task(pump(row)) for row in rows]
    open_streams = len(tasks)
    try:
        while open_streams:
            item = await queue.get()
            if item is None:
                open_streams -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
