"""Check a workload's runtime against its artifact and the bundle catalog, and build run plans."""

from __future__ import annotations

from collections.abc import Callable

from models.bundles import ResourceBundle
from models.plan import ContainerPlan, GroupPlan, RunPlan, SecretEnv
from models.spec import (
    ArtifactSpec,
    ArtifactType,
    Container,
    ResourceRequest,
    SecretEnvVar,
    StringEnvVar,
)
from models.workloads import ContainerOverride, GroupRuntime, ResourceAllocation, WorkloadRuntime
from services.autoscaling import normalized_group
from services.bundles import BundleCatalog
from services.errors import FieldProblem, InvalidInputError, Loc
from services.limits import Limits, checked_memory
from services.quantities import parse_bytes


def group_bundle(group: GroupRuntime, bundles: BundleCatalog) -> ResourceBundle:
    """The bundle a group runs on: its first known bundle, else the catalog's default."""
    for bundle_id in group.resource_bundles:
        if bundle_id in bundles:
            return bundles.get(bundle_id)
    return bundles.default


BundleLoc = Callable[[int | None], Loc]
NIM_NEEDS_GPU = "a nim artifact needs a GPU resource bundle"


def checked_runtime(
    runtime: WorkloadRuntime,
    spec: ArtifactSpec,
    artifact_type: ArtifactType,
    bundles: BundleCatalog,
    limits: Limits = Limits(),
    loc: Loc = ("body", "runtime"),
) -> WorkloadRuntime:
    """The runtime with one entry per artifact group (in artifact order), autoscaling in its
    stored shape; raises on any problem. The short form becomes the artifact's one group."""
    problems: list[FieldProblem] = []
    by_name = {group.name: group for group in spec.container_groups}
    given: dict[str, GroupRuntime] = {}
    for group, g_loc, bundle_loc in _groups(runtime, spec, loc):
        if group.name not in by_name:
            problems.append(
                FieldProblem(
                    (*g_loc, "name"), f"the artifact has no container group '{group.name}'"
                )
            )
            continue
        if group.name in given:
            problems.append(FieldProblem((*g_loc, "name"), f"group '{group.name}' is listed twice"))
        group, scaling_problems = normalized_group(group, g_loc)
        given[group.name] = group
        problems += scaling_problems
        problems += _group_problems(
            group, by_name[group.name].containers, artifact_type, bundles, limits, g_loc, bundle_loc
        )
    missing = [name for name in by_name if name not in given]
    if artifact_type == "nim" and not runtime.container_groups and not runtime.short_form:
        problems.append(FieldProblem((*loc, "containerGroups"), NIM_NEEDS_GPU))
    if problems:
        raise InvalidInputError(problems)
    filled = {**given, **{name: GroupRuntime(name=name) for name in missing}}
    return WorkloadRuntime(container_groups=[filled[name] for name in by_name])


def _groups(
    runtime: WorkloadRuntime, spec: ArtifactSpec, loc: Loc
) -> list[tuple[GroupRuntime, Loc, BundleLoc]]:
    """Each group's settings with the JSON path they came from and that of their bundles."""
    if not runtime.short_form:
        located = []
        for index, group in enumerate(runtime.container_groups):
            g_loc = (*loc, "containerGroups", index)
            located.append((group, g_loc, _bundle_path(g_loc, "resourceBundles")))
        return located
    problems = []
    if runtime.container_groups:
        problems.append(
            FieldProblem(
                (*loc, "containerGroups"),
                "give containerGroups or the short form (replicaCount, resources, autoscaling), "
                "not both",
            )
        )
    if len(spec.container_groups) != 1:
        problems.append(
            FieldProblem(
                loc,
                "the short form (replicaCount, resources, autoscaling) is for an artifact with one "
                f"container group; this one has {len(spec.container_groups)}: use containerGroups",
            )
        )
    if problems:
        raise InvalidInputError(problems)
    group = runtime.as_group(spec.container_groups[0].name)
    return [(group, loc, _bundle_path(loc, "resources", "resourceBundleId"))]


def _bundle_path(base: Loc, field: str, *inner: str) -> BundleLoc:
    """Where the bundle list (index None) or one of its bundles is, in the request."""

    def path(index: int | None) -> Loc:
        return (*base, field) if index is None else (*base, field, index, *inner)

    return path


def _group_problems(
    group: GroupRuntime,
    containers: list[Container],
    artifact_type: ArtifactType,
    bundles: BundleCatalog,
    limits: Limits,
    loc: Loc,
    bundle_loc: BundleLoc,
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for index, bundle_id in enumerate(group.resource_bundles):
        if bundle_id not in bundles:
            problems.append(FieldProblem(bundle_loc(index), f"no resource bundle '{bundle_id}'"))
    chosen = [bundles.get(b) for b in group.resource_bundles if b in bundles]
    if artifact_type == "nim" and not any(bundle.has_gpu for bundle in chosen):
        problems.append(FieldProblem(bundle_loc(None), NIM_NEEDS_GPU))
    names = {container.name for container in containers}
    bundle = group_bundle(group, bundles)
    if not limits.allow_above_bundle:
        problems += _request_problems(containers, bundle, bundle_loc(None))
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
        memory = checked_memory(allocation.memory, (*loc, "memory"))
        if isinstance(memory, FieldProblem):
            problems.append(memory)
        elif memory > bundle.memory_bytes and not limits.allow_above_bundle:
            problems.append(
                FieldProblem((*loc, "memory"), above.format(f"{bundle.memory_bytes} bytes"))
            )
    return problems


def _request_problems(
    containers: list[Container], bundle: ResourceBundle, loc: Loc
) -> list[FieldProblem]:
    """The bundle must hold what each container of the artifact requests (its
    `resourceRequest`), and every GPU the group's containers request together."""
    problems = []
    pick = f"pick a bundle that holds it (bundle '{bundle.id}' has {{}})"
    for container in containers:
        request = container.resource_request
        if request is None:
            continue
        asks = f"container '{container.name}' requests {{}}; "
        if request.cpu is not None and request.cpu > bundle.cpu_count:
            what = f"{request.cpu} CPU"
            problems.append(FieldProblem(loc, asks.format(what) + pick.format(bundle.cpu_count)))
        if request.memory is not None and parse_bytes(request.memory) > bundle.memory_bytes:
            what = f"{parse_bytes(request.memory)} bytes"
            problems.append(
                FieldProblem(loc, asks.format(what) + pick.format(f"{bundle.memory_bytes} bytes"))
            )
    gpus = sum((c.resource_request.gpu or 0) for c in containers if c.resource_request)
    if gpus > bundle.gpu_count:
        problems.append(
            FieldProblem(
                loc, f"the group's containers request {gpus} GPUs; " + pick.format(bundle.gpu_count)
            )
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
    artifact's `resourceRequest`, then by the workload's override; GPUs go to the containers
    that request them, else all to the primary container.
    """
    by_group = {group.name: group for group in runtime.container_groups}
    plans = []
    for group in spec.container_groups:
        settings = by_group.get(group.name, GroupRuntime(name=group.name))
        bundle = group_bundle(settings, bundles)
        overrides = {o.name: o for o in settings.containers}
        primary_port = next(c.port for c in group.containers if c.primary)
        gpus_requested = any(
            c.resource_request and c.resource_request.gpu is not None for c in group.containers
        )
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
            cpu, memory, gpus = _container_limits(container, override, bundle, gpus_requested)
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
                    gpu_count=gpus,
                    gpu_type=bundle.gpu_type_label if gpus else None,
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


def _container_limits(
    container: Container,
    override: ContainerOverride | None,
    bundle: ResourceBundle,
    gpus_requested: bool,
) -> tuple[float, int, int]:
    """CPU, memory bytes and GPUs of one container: the bundle's, lowered by what the artifact
    requests for it, then by the workload's allocation."""
    cpu, memory = bundle.cpu_count, bundle.memory_bytes
    gpus = bundle.gpu_count if container.primary else 0
    allocation = override.resource_allocation if override else None
    settings: list[ResourceRequest | ResourceAllocation | None] = [
        container.resource_request,
        allocation,
    ]
    for setting in settings:
        if setting is None:
            continue
        if setting.cpu is not None:
            cpu = setting.cpu
        if setting.memory is not None:
            memory = parse_bytes(setting.memory)
    if gpus_requested:
        request = container.resource_request
        gpus = (request.gpu or 0) if request else 0
    return cpu, memory, gpus
