"""Bounds on container output that leaves a runtime.

A container decides what it prints: one line may be megabytes. Its last lines travel in a
status reason, in events and in a Temporal payload (2 MB at most, and every byte is kept in
the history), so they are cut here, before anything else sees them.
"""

from __future__ import annotations

# Log lines returned by the logs API (Docker's own json-file driver splits at 16 KiB).
LOG_LINE_BYTES = 16 * 1024
# What a failure reason quotes of a container's output: the last lines, each cut short.
REASON_LINES = 5
REASON_LINE_BYTES = 200
# ... and all of them together (a long line repeated by each crash of a loop fills one).
REASON_LOG_CHARACTERS = 600
# Exec probe output kept for the probe's message.
EXEC_OUTPUT_BYTES = 4 * 1024


def clip(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def last_lines(lines: list[str]) -> str:
    """The last non-empty lines (each already cut to REASON_LINE_BYTES by its reader) as one
    string of at most about REASON_LOG_CHARACTERS, for a reason or an event: the newest lines
    are kept, the oldest dropped, and a last line that alone is too long is cut."""
    kept: list[str] = []
    room = REASON_LOG_CHARACTERS
    for line in reversed([line.strip() for line in lines if line.strip()][-REASON_LINES:]):
        if kept and len(line) + 3 > room:  # 3: the " | " that joins it
            break
        kept.append(clip(line, room) if not kept else line)
        room -= len(line) + 3
    return " | ".join(reversed(kept))
