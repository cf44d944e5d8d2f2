"""Connecting to Temporal the same way everywhere: the pydantic converter, our namespace,
tracing when it is configured (services/tracing.py)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config.settings import Settings
from services.tracing import temporal_interceptors


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """A client for the configured server; `lazy` defers the dial until the first call."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=temporal_interceptors(settings),
        lazy=lazy,
    )
