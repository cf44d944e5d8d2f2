"""Pod logs as LogLines: one read per container, or live streams when following.

Kubernetes merges stdout and stderr into one log, so every line is reported as "stdout".
Following uses the client's streaming response in a dedicated daemon thread per container
(not the shared `to_thread` pool, which a long follow would starve) feeding an asyncio queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from typing import Any

import urllib3

from runtimes.base import LogLine
from runtimes.errors import LogsNotReadyError, RuntimeError_, RuntimeUnavailableError
from runtimes.kubernetes.client import ContainerWaiting, KubeApi, NotFound

# A followed stream that stays silent this long ends (the caller can follow again).
FOLLOW_IDLE_SECONDS = 3600.0
THREAD_PREFIX = "wapi-logs-"
_STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)? ?(.*)$")

Target = tuple[str, str]  # (pod, container)


def parse_line(raw: str, pod: str, container: str) -> LogLine:
    """A line requested with timestamps=true: 'RFC3339-with-nanoseconds message'."""
    match = _STAMPED.match(raw)
    if match is None:
        return LogLine(
            timestamp=None, replica=pod, container=container, stream="stdout", message=raw
        )
    base, fraction, zone, message = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")  # Python keeps microseconds, the kubelet nanos
    offset = "+00:00" if zone in (None, "Z") else zone
    stamp = datetime.fromisoformat(f"{base}.{micro}{offset}")
    return LogLine(
        timestamp=stamp, replica=pod, container=container, stream="stdout", message=message
    )


def query(tail: int | None, since: datetime | None) -> dict[str, Any]:
    params: dict[str, Any] = {"timestamps": True}
    if tail is not None:
        params["tail_lines"] = tail
    if since is not None:
        seconds = (datetime.now(UTC) - since).total_seconds()
        params["since_seconds"] = max(1, math.ceil(seconds))
    return params


async def read(
    api: KubeApi, targets: Sequence[Target], tail: int | None, since: datetime | None
) -> list[LogLine]:
    """All matching lines of all targets, oldest first. Raises `LogsNotReadyError` (with the
    API server's reason) when no line was read because every container is still waiting."""
    texts: dict[Target, str] = {}
    waiting: list[str] = []
    for pod, container in targets:
        try:
            texts[pod, container] = await api.read_log(pod, container, **query(tail, since))
        except NotFound:
            continue  # the pod went away between listing and reading
        except ContainerWaiting as exc:
            waiting.append(str(exc))  # still pulling its image, or waiting for init containers
    if waiting and not any(texts.values()):
        raise LogsNotReadyError("; ".join(waiting)[:1000])
    return merge(texts, tail, since)


def merge(texts: dict[Target, str], tail: int | None, since: datetime | None) -> list[LogLine]:
    """Timestamped log texts of several containers as one list, oldest first."""
    lines = [
        parse_line(raw, pod, container)
        for (pod, container), text in texts.items()
        for raw in text.splitlines()
    ]
    floor = datetime.min.replace(tzinfo=UTC)
    lines.sort(key=lambda line: line.timestamp or floor)  # stable: unstamped keep their order
    if since is not None:
        # since_seconds is whole seconds; trim what came before the exact instant asked for.
        lines = [line for line in lines if line.timestamp is None or line.timestamp >= since]
    if tail is not None:
        lines = lines[max(0, len(lines) - tail) :]  # not [-tail:]: [-0:] is everything
    return lines


async def follow(
    api: KubeApi, targets: Sequence[Target], tail: int | None, since: datetime | None
) -> AsyncGenerator[LogLine, None]:
    """Lines from every target as they come, until all streams end or the caller stops."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[LogLine | BaseException | None] = asyncio.Queue()
    stop = threading.Event()
    responses: list[Any] = []
    lock = threading.Lock()

    def put(item: LogLine | BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump(pod: str, container: str) -> None:
        try:
            response = api.open_log_stream(
                pod, container, idle_timeout=FOLLOW_IDLE_SECONDS, **query(tail, since)
            )
            with lock:
                responses.append(response)
            if stop.is_set():
                return
            for raw in response:
                if stop.is_set():
                    return
                text = raw.decode("utf-8", errors="replace").rstrip("\n")
                put(parse_line(text, pod, container))
        except (NotFound, ContainerWaiting):
            pass  # gone, or not started: nothing to follow (yet)
        except (RuntimeError_, urllib3.exceptions.HTTPError, OSError) as exc:
            if not stop.is_set() and not isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                put(exc if isinstance(exc, RuntimeError_) else _unavailable(exc))
        finally:
            put(None)

    for pod, container in targets:
        name = f"{THREAD_PREFIX}{pod}/{container}"
        threading.Thread(target=pump, args=(pod, container), name=name, daemon=True).start()
    remaining = len(targets)
    try:
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        with lock:
            for response in responses:
                _shutdown(response)


def _unavailable(exc: BaseException) -> RuntimeError_:
    return RuntimeUnavailableError(f"log stream broke: {exc}")


def _shutdown(response: Any) -> None:
    """Unblock the reading thread: shut the socket down, then give the connection back."""
    with contextlib.suppress(Exception):
        response.shutdown()
    with contextlib.suppress(Exception):
        response.release_conn()
