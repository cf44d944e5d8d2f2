"""Container logs through the local runtime: streams, tail, since, filters and follow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import cast

from runtimes.base import LogLine
from runtimes.local.runtime import LocalRuntime
from tests.runtimes.local.conftest import container, plan, ready, tick_until


def number(line: LogLine) -> int:
    return int(line.message.split()[1])


async def start_ticker(runtime: LocalRuntime, workload_id: str, test_image: str) -> None:
    """A primary printing 'tick N' (stdout) and 'tock N' (stderr) every 0.2 s, and a quiet
    sidecar that printed one line on each stream."""
    sidecar = container(
        test_image,
        "sh",
        "-c",
        "echo side-out; echo side-err >&2; exec sleep 3600",
        name="helper",
        primary=False,
        port=None,
    )
    main = container(test_image, "ticker", "0.2")
    supervisor = runtime.supervisor(plan(workload_id, main, sidecar), {}, [])
    try:
        await tick_until(supervisor, ready())
    finally:
        await supervisor.close()


async def test_logs_split_streams_filter_and_tail(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    await start_ticker(runtime, workload_id, test_image)
    await asyncio.sleep(1.0)

    side = [line async for line in runtime.logs(workload_id, container="helper")]
    assert [(line.stream, line.message) for line in side] == [
        ("stdout", "side-out"),
        ("stderr", "side-err"),
    ]
    assert side[0].replica == f"wapi-{workload_id}-default-0-g1"
    assert side[0].timestamp is not None and side[0].timestamp.tzinfo is not None

    main = [line async for line in runtime.logs(workload_id, container="main")]
    ticks = [line for line in main if line.message.startswith(("tick", "tock"))]
    assert len(ticks) >= 8
    for line in ticks:
        assert line.stream == ("stdout" if line.message.startswith("tick") else "stderr")

    last = [line async for line in runtime.logs(workload_id, container="main", tail=3)]
    assert len(last) == 3
    assert number(last[-1]) >= number(ticks[-1])
    assert [line async for line in runtime.logs(workload_id, replica="no-such-replica")] == []
    assert [line async for line in runtime.logs(workload_id, tail=0)] == []


async def test_logs_since_and_follow(
    runtime: LocalRuntime, workload_id: str, test_image: str
) -> None:
    await start_ticker(runtime, workload_id, test_image)
    await asyncio.sleep(0.6)
    before = [line async for line in runtime.logs(workload_id, container="main")]
    seen = max(number(line) for line in before if line.message.startswith("tick"))
    cut = datetime.now(UTC)
    await asyncio.sleep(0.8)

    since = [line async for line in runtime.logs(workload_id, container="main", since=cut)]
    assert since, "lines written after `since` are returned"
    assert all(number(line) > seen for line in since)

    followed: list[LogLine] = []
    async with asyncio.timeout(10):
        # An async generator: closing it ends the follow and its engine streams.
        stream = cast(
            AsyncGenerator[LogLine, None],
            runtime.logs(workload_id, container="main", tail=1, follow=True),
        )
        async for line in stream:
            followed.append(line)
            if sum(line.stream == "stdout" for line in followed) >= 4:
                break
        await stream.aclose()
    ticks = [number(line) for line in followed if line.stream == "stdout"]
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)
    # Followed lines are new ones: they go past what the snapshot after `cut` had.
    assert ticks[-1] > max(number(line) for line in since)
