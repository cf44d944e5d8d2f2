"""Everything with side effects that the workflows ask for, as methods of classes that hold
their clients (catalog sessions, a runtime, the Temporal client)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity


def activity_methods(*instances: object) -> list[Callable[..., Any]]:
    """The `@activity.defn` methods of each instance, bound, for a worker to register."""
    return [
        getattr(instance, name)
        for instance in instances
        for name in dir(type(instance))
        if activity._Definition.from_callable(getattr(type(instance), name)) is not None
    ]
