"""Cross-field rules of an artifact spec and the rules of each artifact type.

Every problem names its JSON path, so a 422 tells the user exactly which field to fix.
"""

from __future__ import annotations

from models.spec import ArtifactSpec, ArtifactType, Container, ContainerGroup
from services.errors import FieldProblem, InvalidInputError, Loc
from services.limits import checked_memory

# Variables the platform sets on every container; an artifact may not override them.
PLATFORM_ENV_VARS = frozenset({"WORKLOAD_ID", "WORKLOAD_REPLICA", "WORKLOAD_ENDPOINT", "PORT"})

NEEDS_READINESS: frozenset[ArtifactType] = frozenset({"agent", "model", "nim"})


def normalized(spec: ArtifactSpec) -> ArtifactSpec:
    """Fill in the defaults that depend on siblings: the implied primary and container names."""
    return spec.normalized()


def spec_problems(spec: ArtifactSpec, artifact_type: ArtifactType, loc: Loc) -> list[FieldProblem]:
    """All rule violations of a normalized spec, each at its JSON path under `loc`."""
    problems: list[FieldProblem] = []
    groups_loc = (*loc, "containerGroups")
    groups = spec.container_groups

    if artifact_type == "graph" and len(groups) < 2:
        problems.append(
            FieldProblem(groups_loc, "a graph artifact needs two or more container groups")
        )
    if artifact_type != "graph" and len(groups) != 1:
        problems.append(
            FieldProblem(groups_loc, f"a {artifact_type} artifact has exactly one container group")
        )
    for index, group in enumerate(groups):
        if group.name in (g.name for g in groups[:index]):
            problems.append(
                FieldProblem((*groups_loc, index, "name"), f"duplicate group name '{group.name}'")
            )
        problems += _group_problems(group, artifact_type, (*groups_loc, index))
    return problems


def _group_problems(
    group: ContainerGroup, artifact_type: ArtifactType, loc: Loc
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    containers_loc = (*loc, "containers")
    primaries = [c for c in group.containers if c.primary]
    if len(primaries) != 1:
        problems.append(
            FieldProblem(
                containers_loc,
                f"exactly one container must be primary, found {len(primaries)}",
            )
        )
    for index, container in enumerate(group.containers):
        c_loc = (*containers_loc, index)
        if container.name in (c.name for c in group.containers[:index]):
            problems.append(
                FieldProblem((*c_loc, "name"), f"duplicate container name '{container.name}'")
            )
        problems += _container_problems(container, artifact_type, c_loc)
    return problems


def _container_problems(
    container: Container, artifact_type: ArtifactType, loc: Loc
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if container.primary and container.port is None:
        problems.append(
            FieldProblem((*loc, "port"), "the primary container needs a port (1024-65535)")
        )
    if not container.primary and container.port is not None:
        problems.append(
            FieldProblem(
                (*loc, "port"),
                "only the primary container has a port; sidecars share its network",
            )
        )
    if container.primary and artifact_type in NEEDS_READINESS and container.readiness_probe is None:
        problems.append(
            FieldProblem(
                (*loc, "readinessProbe"),
                f"the primary container of a {artifact_type} artifact needs a readiness probe",
            )
        )

    request = container.resource_request
    if request is not None and request.memory is not None:
        memory = checked_memory(request.memory, (*loc, "resourceRequest", "memory"))
        if isinstance(memory, FieldProblem):
            problems.append(memory)

    names = [v.name for v in container.environment_vars]
    for index, name in enumerate(names):
        var_loc = (*loc, "environmentVars", index, "name")
        if name in PLATFORM_ENV_VARS:
            problems.append(FieldProblem(var_loc, f"'{name}' is set by the platform"))
        elif name in names[:index]:
            problems.append(FieldProblem(var_loc, f"duplicate environment variable '{name}'"))

    for key, probe in container.probes().items():
        p_loc = (*loc, key)
        handlers = probe.handlers()
        if len(handlers) != 1:
            problems.append(
                FieldProblem(p_loc, "set exactly one of 'path' (HTTP GET), 'tcpSocket' or 'exec'")
            )
        needs_port = (handlers == ["http"] and probe.port is None) or (
            handlers == ["tcp"] and probe.tcp_socket is not None and probe.tcp_socket.port is None
        )
        if needs_port and container.port is None:
            problems.append(
                FieldProblem(p_loc, "this container has no port, so the probe must name one")
            )
        if key != "readinessProbe" and probe.success_threshold != 1:
            problems.append(FieldProblem((*p_loc, "successThreshold"), f"must be 1 for a {key}"))
    return problems


def checked_spec(spec: ArtifactSpec, artifact_type: ArtifactType, loc: Loc) -> ArtifactSpec:
    """Normalize a spec and raise `InvalidInputError` listing every rule it breaks."""
    spec = normalized(spec)
    problems = spec_problems(spec, artifact_type, loc)
    if problems:
        raise InvalidInputError(problems)
    return spec
