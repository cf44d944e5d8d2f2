"""The replay corpus: `WAPI_UPDATE_HISTORIES=1` saves recorded workflow histories under
tests/histories/<workflow>/, where `tests/test_replay.py` replays each on every run."""

from __future__ import annotations

import os
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.deployment import DeploymentWorkflow
from workflows.workload import WorkloadWorkflow

HISTORIES = Path(__file__).parents[1] / "histories"


def keep(history: WorkflowHistory, kind: str, name: str) -> WorkflowHistory:
    if os.environ.get("WAPI_UPDATE_HISTORIES"):
        (HISTORIES / kind).mkdir(parents=True, exist_ok=True)
        (HISTORIES / kind / f"{name}.json").write_text(history.to_json())
    return history


async def replay(history: WorkflowHistory) -> None:
    """Under the full sandbox, as the corpus is replayed."""
    replayer = Replayer(
        workflows=[WorkloadWorkflow, DeploymentWorkflow], data_converter=pydantic_data_converter
    )
    await replayer.replay_workflow(history)
