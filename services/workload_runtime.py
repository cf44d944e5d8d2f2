"""Check a workload's runtime against its artifact and the bundle catalog, and build run plans."""

from __future__ import annotations

from models.bundles import ResourceBundle
from models.plan import ContainerPlan, GroupPlan, RunPlan, SecretEnv
from models.spec import (
    ArtifactSpec,
    ArtifactType,
    Container,
    SecretEnvVar,
    StringEnvVar,
)
from models.workloads import ContainerOverride, GroupRuntime, WorkloadRuntime
from services.bundles import BundleCatalog
from services.errors import FieldProblem, InvalidInputError, Loc
from services.limits import MIN_MEMORY_BYTES, Limits
from services.quantities import parse_bytes


def group_bundle(group: GroupRuntime, bundles: BundleCatalog) -> ResourceBundle:
    """The bundle a group runs on: its first known bundle, else the catalog's default."""
    for bundle_id in group.resource_bundles:
        if bundle_id in bundles:
            return bundles.get(bundle_id)
    return bundles.default


def checked_runtime(
    runtime: WorkloadRuntime,
    spec: ArtifactSpec,
    artifact_type: ArtifactType,
    bundles: BundleCatalog,
    limits: Limits = Limits(),
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
            group, by_name[group.name].containers, artifact_type, bundles, limits, g_loc
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
    limits: Limits,
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
    bundle = group_bundle(group, bundles)
    for index, override in enumerate(group.containers):
        o_loc = (*loc, "containers", index)
        if override.name not in names:
            problems.append(
                FieldProblem(
                    (*o_loc, "name"), f"group '{group.name}' has no container '{override.name}'"
                )
            )
        problems += _allocation_problems(override, bundle, limits, (*o_loc, "resourceAllocation"))
    return problems


def _allocation_problems(
    override: ContainerOverride, bundle: ResourceBundle, limits: Limits, loc: Loc
) -> list[FieldProblem]:
    """An override may lower a container's limits, not raise them above the bundle."""
    allocation = override.resource_allocation
    if allocation is None:
        return []
    problems = []
    above = f"is above the bundle '{bundle.id}' ({{}}); pick a larger bundle"
    cpu = allocation.cpu
    if cpu is not None and cpu > bundle.cpu_count and not limits.allow_above_bundle:
        problems.append(FieldProblem((*loc, "cpu"), above.format(f"{bundle.cpu_count} CPU")))
    if allocation.memory is not None:
        try:
            memory = parse_bytes(allocation.memory)
        except ValueError as exc:
            return [*problems, FieldProblem((*loc, "memory"), str(exc))]
        if memory < MIN_MEMORY_BYTES:
            problems.append(FieldProblem((*loc, "memory"), "must be at least 6Mi"))
        elif memory > bundle.memory_bytes and not limits.allow_above_bundle:
            problems.append(
                FieldProblem((*loc, "memory"), above.format(f"{bundle.memory_bytes} bytes"))
            )
    return problems


def build_plan(
    workload_id: str,
    generation: int,
    spec: ArtifactSpec,
    runtime: WorkloadRuntime,
    bundles: BundleCatalog,
    limits: Limits = Limits(),
) -> RunPlan:
    """What generation `generation` of the workload runs: the artifact as it is now, the runtime.

    Every container is limited: to the group's bundle (or the default bundle), lowered by its
    override; GPUs go to the primary container only.
    """
    by_group = {group.name: group for group in runtime.container_groups}
    plans = []
    for group in spec.container_groups:
        settings = by_group.get(group.name, GroupRuntime(name=group.name))
        bundle = group_bundle(settings, bundles)
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
            cpu, memory = bundle.cpu_count, bundle.memory_bytes
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
                    pids_limit=limits.pids,
                    read_only_root=limits.read_only_root,
                    gpu_count=bundle.gpu_count if container.primary else 0,
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
