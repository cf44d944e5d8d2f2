"""Limits that apply to every workload, whatever its request says.

* Every container (sidecars included) runs with a CPU, memory and pids limit: its group's
  resource bundle, or the catalog's default bundle when the group names none
  (`BundleCatalog.default`); an override may lower a container's limits, never raise them
  above the bundle (unless the installation allows it).
* A spec (and a workload's spec plus runtime) stays well under Temporal's payload limit: the
  run plan built from them travels through workflow histories.
* Images come only from the allowed registries, when a list is configured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from models.spec import ArtifactSpec
from services.errors import FieldProblem, Loc
from services.quantities import parse_bytes

# Docker refuses less than 6 MiB of memory and 0.01 of a CPU.
MIN_MEMORY_BYTES = 6 * 2**20


def checked_memory(value: int | str, loc: Loc) -> int | FieldProblem:
    """Memory as bytes (a number or a quantity), or the problem with it at `loc`."""
    try:
        memory = parse_bytes(value)
    except ValueError as exc:
        return FieldProblem(loc, str(exc))
    return memory if memory >= MIN_MEMORY_BYTES else FieldProblem(loc, "must be at least 6Mi")


@dataclass(frozen=True)
class Limits:
    """The installation's limits (`Settings`), in the form the services use."""

    allow_above_bundle: bool = False
    pids: int = 1024
    read_only_root: bool = False
    registries: tuple[str, ...] = ()
    max_spec_bytes: int = 256 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            allow_above_bundle=settings.allow_allocation_above_bundle,
            pids=settings.container_pids_limit,
            read_only_root=settings.container_read_only_root,
            registries=tuple(settings.allowed_registries),
            max_spec_bytes=settings.max_spec_bytes,
        )

    def size_problems(self, loc: Loc, *documents: Any) -> list[FieldProblem]:
        """A problem at `loc` if the documents' JSON together exceed `max_spec_bytes`."""
        size = sum(len(json.dumps(document, separators=(",", ":"))) for document in documents)
        if size <= self.max_spec_bytes:
            return []
        return [
            FieldProblem(
                loc,
                f"is {size} bytes of JSON; a spec (with a workload's runtime) may hold at most "
                f"{self.max_spec_bytes} (WAPI_MAX_SPEC_BYTES)",
            )
        ]

    def image_problems(self, spec: ArtifactSpec, loc: Loc) -> list[FieldProblem]:
        """A problem at each `imageUri` that no allowed registry serves."""
        if not self.registries:
            return []
        return [
            FieldProblem(
                (*loc, "containerGroups", g, "containers", c, "imageUri"),
                f"'{container.image_uri}' is not from an allowed registry "
                f"({', '.join(self.registries)})",
            )
            for g, group in enumerate(spec.container_groups)
            for c, container in enumerate(group.containers)
            if not image_allowed(container.image_uri, self.registries)
        ]


def qualified(image: str) -> str:
    """`image` with its registry spelled out, as an engine resolves it: a first component with
    a '.' or ':' (or `localhost`) is a registry; anything else is on Docker Hub."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if rest else f"docker.io/library/{image}"


def image_allowed(image: str, registries: tuple[str, ...]) -> bool:
    """Whether `image` is under one of `registries` (a registry, or a registry path prefix
    such as `registry.example.com/team`)."""
    name = qualified(image)
    return any(name.startswith(entry.rstrip("/") + "/") for entry in registries)
