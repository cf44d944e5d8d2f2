"""Template filters: ages, times, YAML, and the CSS class of a status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import BaseModel

GOOD = {"running", "healthy", "registered", "completed", "ok"}
BUSY = {"submitted", "initializing", "stopping", "swapping", "starting", "switched", "draft"}
BAD = {"errored", "degraded", "rolled_back", "failed"}


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """`42s`, `5m`, `3h`, `2d`: how long ago."""
    if moment is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def stamp(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def as_yaml(value: Any) -> str:
    """YAML of a model as a person would write it: fields left at their defaults are omitted
    (reading it back gives the same model)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100)


def tone(status: str | None) -> str:
    """The badge colour of a status: good, busy, bad or plain."""
    if status in GOOD:
        return "good"
    if status in BUSY:
        return "busy"
    if status in BAD:
        return "bad"
    return "plain"


FILTERS = {"age": age, "stamp": stamp, "yaml": as_yaml, "tone": tone}
