"""Every committed workflow history replays against the current workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.deployment import DeploymentWorkflow
from workflows.replacement import ReplacementWorkflow
from workflows.workload import WorkloadWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))
TEXTS = {path: path.read_text() for path in HISTORIES}


def test_histories_are_committed() -> None:
    kinds = {path.parent.name for path in HISTORIES}
    assert kinds == {"workload", "deployment", "replacement"}
    assert len(HISTORIES) >= 5


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(f"{path.parent.name}-{path.stem}", TEXTS[path])
    replayer = Replayer(
        workflows=[WorkloadWorkflow, DeploymentWorkflow, ReplacementWorkflow],
        data_converter=pydantic_data_converter,
    )
    await replayer.replay_workflow(history)
