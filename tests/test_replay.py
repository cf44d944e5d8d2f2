"""Every committed workload history replays against the current workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workload_api.workflows.workload import WorkloadWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories" / "workload").glob("*.json"))
TEXTS = {path: path.read_text() for path in HISTORIES}


def test_histories_are_committed() -> None:
    assert len(HISTORIES) >= 4


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(f"workload-{path.stem}", TEXTS[path])
    replayer = Replayer(workflows=[WorkloadWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
