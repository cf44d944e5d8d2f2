"""Check a workload's runtime against its artifact and the bundle catalog, and build run plans."""

from __future__ import annotations

from models.plan import ContainerPlan, GroupPlan, RunPlan, SecretEnv
from models.spec import (
    ArtifactSpec,
    ArtifactType,
    Container,
    SecretEnvVar,
    StringEnvVar,
)
from models.workloads import GroupRuntime, WorkloadRuntime
from services.bundles import BundleCatalog
from services.errors import FieldProblem, InvalidInputError, Loc
from services.quantities import parse_bytes


def checked_runtime(
    runtime: WorkloadRuntime,
    spec: ArtifactSpec,
    artifact_type: ArtifactType,
    bundles: BundleCatalog,
    loc: Loc = ("body", "runtime"),
) -> WorkloadRuntime:
    """The runtime with one entry per artifact group (in artifact order); raises on any problem."""
    problems: list[FieldProblem] = []
    groups_loc = (*loc, "containerGroups")
    by_name = {group.name: group for group in spec.container_groups}
    given: dict[str, GroupRuntime] = {}
    for index, group in enumerate(runtime.container_groups):
        g_loc = (*groups_loc, index)
        if group.name not in by_name:
            problems.append(
                FieldProblem(
                    (*g_loc, "name"), f"the artifact has no container group '{group.name}'"
                )
            )
            continue
        if group.name in given:
            problems.append(FieldProblem((*g_loc, "name"), f"group '{group.name}' is listed twice"))
        given[group.name] = group
        problems += _group_problems(
            group, by_name[group.name].containers, artifact_type, bundles, g_loc
        )
    missing = [name for name in by_name if name not in given]
    if artifact_type == "nim" and not runtime.container_groups:
        problems.append(FieldProblem(groups_loc, "a nim artifact needs a GPU resource bundle"))
    if problems:
        raise InvalidInputError(problems)
    filled = {**given, **{name: GroupRuntime(name=name) for name in missing}}
    return WorkloadRuntime(container_groups=[filled[name] for name in by_name])


def _group_problems(
    group: GroupRuntime,
    containers: list[Container],
    artifact_type: ArtifactType,
    bundles: BundleCatalog,
    loc: Loc,
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for index, bundle_id in enumerate(group.resource_bundles):
        if bundle_id not in bundles:
            problems.append(
                FieldProblem((*loc, "resourceBundles", index), f"no resource bundle '{bundle_id}'")
            )
    chosen = [bundles.get(b) for b in group.resource_bundles if b in bundles]
    if artifact_type == "nim" and not any(bundle.has_gpu for bundle in chosen):
        problems.append(
            FieldProblem((*loc, "resourceBundles"), "a nim artifact needs a GPU resource bundle")
        )
    names = {container.name for container in containers}
    for index, override in enumerate(group.containers):
        o_loc = (*loc, "containers", index)
        if override.name not in names:
            problems.append(
                FieldProblem(
                    (*o_loc, "name"), f"group '{group.name}' has no container '{override.name}'"
                )
            )
        memory = override.resource_allocation.memory if override.resource_allocation else None
        if memory is not None:
            try:
                parse_bytes(memory)
            except ValueError as exc:
                problems.append(FieldProblem((*o_loc, "resourceAllocation", "memory"), str(exc)))
    return problems


def build_plan(
    workload_id: str,
    generation: int,
    spec: ArtifactSpec,
    runtime: WorkloadRuntime,
    bundles: BundleCatalog,
) -> RunPlan:
    """What generation `generation` of the workload runs: the artifact as it is now, the runtime."""
    by_group = {group.name: group for group in runtime.container_groups}
    plans = []
    for group in spec.container_groups:
        settings = by_group.get(group.name, GroupRuntime(name=group.name))
        bundle = next((bundles.get(b) for b in settings.resource_bundles if b in bundles), None)
        overrides = {o.name: o for o in settings.containers}
        primary_port = next(c.port for c in group.containers if c.primary)
        containers = []
        for container in group.containers:
            assert container.name is not None  # names are filled in when the artifact is saved
            override = overrides.get(container.name)
            variables = {var.name: var for var in container.environment_vars}
            if override:
                variables.update({var.name: var for var in override.environment_vars})
            env = {n: v.value for n, v in variables.items() if isinstance(v, StringEnvVar)}
            env.update({"WORKLOAD_ID": workload_id, "PORT": str(primary_port)})
            # Secrets travel as ids: the plan is recorded in the workflow's history.
            secret_env = [
                SecretEnv(name=name, secret_id=var.secret_id)
                for name, var in variables.items()
                if isinstance(var, SecretEnvVar) and name not in env
            ]
            cpu = bundle.cpu_count if bundle and container.primary else None
            memory = bundle.memory_bytes if bundle and container.primary else None
            allocation = override.resource_allocation if override else None
            if allocation and allocation.cpu is not None:
                cpu = allocation.cpu
            if allocation and allocation.memory is not None:
                memory = parse_bytes(allocation.memory)
            containers.append(
                ContainerPlan(
                    name=container.name,
                    image=container.image_uri,
                    primary=bool(container.primary),
                    port=container.port,
                    entrypoint=container.entrypoint,
                    command=container.command,
                    env=env,
                    secret_env=secret_env,
                    cpu=cpu,
                    memory_bytes=memory,
                    gpu_count=bundle.gpu_count if bundle and container.primary else 0,
                    readiness_probe=container.readiness_probe,
                    liveness_probe=container.liveness_probe,
                    startup_probe=container.startup_probe,
                )
            )
        plans.append(
            GroupPlan(
                name=group.name,
                replicas=settings.replica_count,
                containers=containers,
            )
        )
    return RunPlan(workload_id=workload_id, generation=generation, groups=plans)
