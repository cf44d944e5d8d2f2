"""Links out of the console: a workload's or deployment's workflow in the Temporal UI."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from config.settings import Settings

# The workflow ids the API gives them (workflows/workload_contract.py, deployment_contract.py;
# tests/test_console.py checks that these agree).
WORKFLOW_IDS = {"workload": "workload-{id}", "deployment": "deployment-{id}"}


def workflow_url(settings: Settings, kind: Literal["workload", "deployment"], id: str) -> str:
    workflow = quote(WORKFLOW_IDS[kind].format(id=id), safe="")
    namespace = quote(settings.temporal_namespace, safe="")
    return f"{settings.temporal_ui}/namespaces/{namespace}/workflows/{workflow}"
