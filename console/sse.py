"""Server-sent events: the wire format, and a response that streams them.

The browser's EventSource reconnects by itself when a stream ends, sending the last `id` it
saw as `Last-Event-ID`, so each stream can resume where it stopped instead of repeating.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

RETRY_MS = 2000


def message(data: str, *, event: str | None = None, id: str | None = None) -> str:
    lines = [f"retry: {RETRY_MS}"]
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


class EventStream(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(self, messages: AsyncIterator[str]) -> None:
        super().__init__(messages, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
