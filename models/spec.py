"""What to run: the container spec of an artifact (shapes and per-field limits).

Rules that span fields (one primary per group, ports, probe ports, type rules) live in
`services/spec_rules.py` so each can name the exact JSON path it refers to.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails

from models.common import InputModel

ArtifactType = Literal["generic", "agent", "model", "graph", "nim"]

# Docker distribution's reference grammar: [domain[:port]/]path[:tag][@digest].
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$"
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _image_reference(value: str) -> str:
    if len(value) > 512 or not IMAGE_REFERENCE.match(value):
        raise ValueError(
            "not a valid image reference; expected [registry[:port]/]name[:tag][@digest] "
            "with a lower-case name, e.g. 'registry.example.com/team/agent:1.4'"
        )
    return value


def _header_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not _HEADER_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid HTTP header name")
    return value


DnsLabel = Annotated[
    str,
    StringConstraints(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
    Field(description="Lower-case letters, digits and '-', at most 63 characters."),
]
EnvVarName = Annotated[
    str,
    StringConstraints(max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
    Field(
        description="Letters, digits and '_', not starting with a digit.", examples=["LOG_LEVEL"]
    ),
]
ImageUri = Annotated[
    str,
    AfterValidator(_image_reference),
    Field(examples=["registry.example.com/team/agent:1.4"]),
]
ContainerPort = Annotated[int, Field(ge=1024, le=65535, description="Port in 1024-65535.")]
AnyPort = Annotated[int, Field(ge=1, le=65535)]


class TcpSocketAction(InputModel):
    port: AnyPort | None = Field(None, description="Defaults to the container's port.")


class ExecAction(InputModel):
    command: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        min_length=1, max_length=64, examples=[["cat", "/tmp/ready"]]
    )


class Probe(InputModel):
    """A Kubernetes-style probe. Set `path` for HTTP GET, or `tcpSocket`, or `exec`."""

    path: Annotated[str, StringConstraints(pattern=r"^/", max_length=2048)] | None = Field(
        None, description="HTTP GET path; makes this an HTTP probe.", examples=["/healthz"]
    )
    port: AnyPort | None = Field(None, description="HTTP port; defaults to the container's port.")
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    http_headers: Annotated[dict[str, str], AfterValidator(_header_names)] = Field(
        default_factory=dict, max_length=32, description="Extra headers for the HTTP GET."
    )
    tcp_socket: TcpSocketAction | None = None
    exec_: ExecAction | None = Field(None, alias="exec")
    initial_delay_seconds: int = Field(0, ge=0, le=3600)
    period_seconds: int = Field(10, ge=1, le=3600)
    timeout_seconds: int = Field(1, ge=1, le=3600)
    success_threshold: int = Field(1, ge=1, le=100)
    failure_threshold: int = Field(3, ge=1, le=100)

    @property
    def kind(self) -> Literal["http", "tcp", "exec"] | None:
        handlers = self.handlers()
        return handlers[0] if len(handlers) == 1 else None

    def handlers(self) -> list[Literal["http", "tcp", "exec"]]:
        found: list[Literal["http", "tcp", "exec"]] = []
        if self.path is not None:
            found.append("http")
        if self.tcp_socket is not None:
            found.append("tcp")
        if self.exec_ is not None:
            found.append("exec")
        return found


class StringEnvVar(InputModel):
    """A literal value, stored with the artifact."""

    name: EnvVarName
    value: str = Field(max_length=32768)
    source: Literal["string"] = "string"


class SecretEnvVar(InputModel):
    """The value of a secret, read when a container starts; the artifact holds only its id."""

    name: EnvVarName
    source: Literal["secret"]
    secret_id: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ] = Field(
        description="The id of a secret (`/secrets/`).", examples=["65f1c0ffee65f1c0ffee65f1"]
    )


def _env_source(value: Any) -> str | None:
    # `source` may be left out for a literal value, as before secrets existed.
    if isinstance(value, dict):
        source = value.get("source", "string")
    else:
        source = getattr(value, "source", None)
    return source if isinstance(source, str) else None


def _untagged(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Pydantic puts the union tag into error locations (`environmentVars.0.secret.secretId`);
    take it out again, so every 422 names the field's real JSON path."""
    try:
        return handler(value)
    except ValidationError as error:
        errors = error.errors()
        if not all(e["loc"] and e["loc"][0] in ("string", "secret") for e in errors):
            raise
        details: list[InitErrorDetails] = [
            {"type": e["type"], "loc": e["loc"][1:], "input": e["input"], "ctx": e.get("ctx", {})}
            for e in errors
        ]
        try:
            untagged = ValidationError.from_exception_data(error.title, details)
        except (KeyError, TypeError):  # an error type pydantic cannot rebuild: keep the tag
            raise error from None
        raise untagged from None


EnvVar = Annotated[
    Annotated[StringEnvVar, Tag("string")] | Annotated[SecretEnvVar, Tag("secret")],
    Discriminator(
        _env_source,
        custom_error_type="env_var_source",
        custom_error_message="expected an object with 'source' 'string' (the default) or 'secret'",
    ),
    WrapValidator(_untagged),
]


Quantity = Annotated[
    str, StringConstraints(max_length=32, pattern=r"^\s*\d+(\.\d+)?\s*[A-Za-z]*\s*$")
]
# Memory as a whole number of bytes, or a quantity such as `512Mi`, `2Gi` or `1G`.
Memory = Annotated[int, Field(ge=1, le=2**50)] | Quantity


class ResourceRequest(InputModel):
    """What the container needs. The workload's resource bundle must hold it; the container
    is then limited to it (a workload's `resourceAllocation` for the container wins)."""

    cpu: float | None = Field(None, ge=0.01, le=512, description="CPU cores, fractions allowed.")
    memory: Memory | None = Field(
        None, description="Bytes (or a quantity such as `512Mi`); at least 6Mi.", examples=[2**29]
    )
    gpu: int | None = Field(
        None,
        ge=0,
        le=16,
        description="GPUs for this container. Without any request in its group, the primary "
        "container gets every GPU of the bundle.",
    )


class Container(InputModel):
    name: DnsLabel | None = Field(
        None,
        description="Unique in its group; defaults to 'main' for the primary, 'sidecar-N' else.",
    )
    description: str = Field("", max_length=2000)
    image_uri: ImageUri
    primary: bool | None = Field(
        None, description="Exactly one per group; a group's only container is primary by default."
    )
    port: ContainerPort | None = Field(
        None, description="The primary container must set it; other containers must not."
    )
    entrypoint: list[Annotated[str, StringConstraints(max_length=4096)]] | None = Field(
        None, max_length=64, description="Replaces the image's ENTRYPOINT."
    )
    command: list[Annotated[str, StringConstraints(max_length=4096)]] | None = Field(
        None, max_length=256, description="Replaces the image's CMD (arguments to the entrypoint)."
    )
    environment_vars: list[EnvVar] = Field(default_factory=list, max_length=256)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    resource_request: ResourceRequest | None = None

    def probes(self) -> dict[str, Probe]:
        named = {
            "readinessProbe": self.readiness_probe,
            "livenessProbe": self.liveness_probe,
            "startupProbe": self.startup_probe,
        }
        return {key: probe for key, probe in named.items() if probe is not None}


class ContainerGroup(InputModel):
    name: DnsLabel = "default"
    containers: list[Container] = Field(min_length=1, max_length=16)

    @property
    def primary(self) -> Container:
        return next(c for c in self.containers if c.primary)


class ArtifactSpec(InputModel):
    container_groups: list[ContainerGroup] = Field(min_length=1, max_length=16)

    def normalized(self) -> ArtifactSpec:
        """The defaults that depend on siblings filled in: the implied primary and container
        names. The server stores specs this way, and `wapi apply` compares them this way."""
        groups = []
        for group in self.container_groups:
            containers = list(group.containers)
            if len(containers) == 1 and containers[0].primary is None:
                containers[0] = containers[0].model_copy(update={"primary": True})
            named = []
            for index, container in enumerate(containers):
                update: dict[str, object] = {"primary": bool(container.primary)}
                if container.name is None:
                    update["name"] = "main" if container.primary else f"sidecar-{index}"
                named.append(container.model_copy(update=update))
            groups.append(group.model_copy(update={"containers": named}))
        return self.model_copy(update={"container_groups": groups})


SPEC_EXAMPLE = {
    "containerGroups": [
        {
            "name": "default",
            "containers": [
                {
                    "name": "main",
                    "imageUri": "registry.example.com/team/agent:1.4",
                    "primary": True,
                    "port": 8080,
                    "environmentVars": [{"name": "LOG_LEVEL", "value": "info"}],
                    "readinessProbe": {"path": "/healthz", "periodSeconds": 5},
                    "resourceRequest": {"cpu": 0.5, "memory": 536870912},
                }
            ],
        }
    ]
}
