"""The repository's shape: the design card's top level, nothing shadowing an installed
distribution, and the names that callers use to reach workflows matching what the worker runs."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from temporalio import activity, workflow

from activities import activity_methods
from activities.deployments import DeploymentActivities
from activities.supervision import SupervisionActivities
from activities.workload_catalog import WorkloadCatalogActivities
from workflows import deployment_contract, replacement_contract, workload_contract
from workflows.deployment import DeploymentWorkflow
from workflows.replacement import ReplacementWorkflow
from workflows.workload import WorkloadWorkflow

ROOT = Path(__file__).resolve().parents[1]
CARD = [
    "pyproject.toml",
    "README.md",
    "api",
    "workflows",
    "activities",
    "worker.py",
    "deploy",
    "tests",
]


def test_the_top_level_is_the_design_cards() -> None:
    assert all((ROOT / name).exists() for name in CARD), [
        n for n in CARD if not (ROOT / n).exists()
    ]


def own_top_level_names() -> set[str]:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["packages"]["find"]["include"]
    return {p.rstrip("*") for p in patterns} | set(setuptools["py-modules"])


def test_no_top_level_name_shadows_an_installed_distribution() -> None:
    ours = own_top_level_names()
    owners = importlib.metadata.packages_distributions()
    clashes = {
        name: [d for d in owners[name] if d != "workload-api"]
        for name in ours
        if name in owners and set(owners[name]) - {"workload-api"}
    }
    assert clashes == {}, f"these top-level names are also installed by: {clashes}"


def test_every_top_level_package_is_installed() -> None:
    on_disk = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests"}
    assert own_top_level_names() >= on_disk


def names(module: object, prefix: str) -> set[str]:
    return {v for k, v in vars(module).items() if k.startswith(prefix) and isinstance(v, str)}


def test_callers_use_the_names_the_workflows_declare() -> None:
    for cls, contract in (
        (WorkloadWorkflow, workload_contract),
        (DeploymentWorkflow, deployment_contract),
        (ReplacementWorkflow, replacement_contract),
    ):
        definition = workflow._Definition.must_from_class(cls)
        assert definition.name == contract.WORKFLOW_TYPE
        assert set(definition.updates) == names(contract, "UPDATE_")
        assert set(definition.queries) == names(contract, "QUERY_")


def test_the_worker_registers_every_activity_the_contracts_name() -> None:
    classes = (WorkloadCatalogActivities, SupervisionActivities, DeploymentActivities)
    # Unbound: the same discovery the worker runs on its instances.
    instances = [cls.__new__(cls) for cls in classes]
    registered = {
        activity._Definition.must_from_callable(fn).name for fn in activity_methods(*instances)
    }
    wanted = (
        names(workload_contract, "ACTIVITY_")
        | names(deployment_contract, "ACTIVITY_")
        | names(replacement_contract, "ACTIVITY_")
    )
    assert registered == wanted
