"""The one settings class. Every value can be set with a `WAPI_`-prefixed environment variable."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of the API, the worker and the local stack."""

    model_config = SettingsConfigDict(env_prefix="WAPI_", env_ignore_empty=True, extra="ignore")

    state_dir: Path = Field(Path(".wapi"), description="Where the embedded stack keeps its data.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL. Unset: built from the WAPI_DATABASE_HOST... parts if "
        "WAPI_DATABASE_HOST is set, else a SQLite file in the state directory.",
    )
    # The URL in parts, as database operators write them into Secrets (host, port, dbname,
    # user, password), so a Deployment can read each key with secretKeyRef.
    database_host: str | None = None
    database_port: int = Field(5432, ge=1, le=65535)
    database_name: str = "wapi"
    database_user: str | None = None
    database_password: SecretStr | None = None
    database_driver: str = Field("postgresql+asyncpg", description="SQLAlchemy dialect+driver.")
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "workload-api"
    temporal_tls: bool = Field(
        False,
        description="Connect to Temporal over TLS (implied by any other WAPI_TEMPORAL_TLS_* "
        "setting or an API key). Without a CA file the system's trusted roots verify the server.",
    )
    temporal_tls_ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the Temporal frontend's certificate."
    )
    temporal_tls_cert_file: Path | None = Field(
        None, description="PEM client certificate for mutual TLS (with WAPI_TEMPORAL_TLS_KEY_FILE)."
    )
    temporal_tls_key_file: Path | None = Field(
        None, description="PEM key of the client certificate."
    )
    temporal_tls_server_name: str | None = Field(
        None, description="Name to verify the server's certificate against, if not its address."
    )
    temporal_api_key: SecretStr | None = Field(
        None, description="API key sent as a bearer token on every Temporal call (Temporal Cloud)."
    )
    temporal_ui_port: int = Field(8233, ge=1, le=65535)
    otlp_endpoint: str | None = Field(
        None,
        description="An OTLP/HTTP collector (e.g. http://127.0.0.1:4318) that receives traces "
        "of API requests, workflows, activities, engine calls and invokes. Unset: no tracing.",
    )
    temporal_search_attributes: bool = Field(
        True,
        description="Give workflows the Wapi* search attributes (docs/operations.md). Turn off "
        "for a Temporal server where they are not registered.",
    )
    temporal_ui_url: str | None = Field(
        None,
        description="The Temporal UI's URL, for the console's links to workflows. Unset: "
        "http://<temporal host>:<temporal_ui_port>.",
    )
    console_session_key: SecretStr | None = Field(
        None,
        description="Key that encrypts the console's session cookies (any long random string; "
        "the same on every API process). Unset: one is created once in the state directory "
        "(`console-session.key`).",
    )
    console_session_hours: float = Field(
        12, gt=0, le=24 * 30, description="How long a console sign-in lasts."
    )
    bootstrap_admin_key: SecretStr | None = Field(
        None, description="If set, this key becomes the first admin key."
    )
    secrets_key: SecretStr | None = Field(
        None,
        description="Key that encrypts secret values: 32 random bytes, base64-encoded. Older keys "
        "may follow, comma-separated, to read values written with them. Unset: a key is created "
        "once in the state directory (`secrets.key`).",
    )
    resource_bundles_file: Path | None = Field(
        None, description="YAML file replacing the shipped resource bundle catalog."
    )
    log_level: str = "INFO"

    runtime: Literal["local", "kubernetes"] = Field(
        "local", description="Where containers run: a Docker-API engine, or a Kubernetes cluster."
    )
    docker_url: str | None = Field(
        None,
        description="Docker Engine API URL (unix:///run/docker.sock, tcp://...). Unset: `wapi run` "
        "starts a Podman API service of its own and sets it.",
    )
    publish_port_range: str = Field(
        "20000-32767",
        pattern=r"^\d{4,5}-\d{4,5}$",
        description="Host ports (low-high) for containers' published ports on the local runtime; "
        "keep it outside the kernel's ephemeral range (net.ipv4.ip_local_port_range).",
    )
    kubernetes_namespace: str = "workload-api"
    kubernetes_gpu_product_label: str = Field(
        "nvidia.com/gpu.product",
        description="Node label naming each node's GPU product (NVIDIA GPU feature discovery's); "
        "GPU bundles only schedule onto nodes whose label matches the bundle's GPU type.",
    )
    kubernetes_gpu_products: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Bundle GPU type -> the product label values that count as it, e.g. "
        '`{"h100": ["NVIDIA-H100-80GB-HBM3"]}`. A type not listed must equal the label value.',
    )
    kubernetes_gpu_runtime_class: str | None = Field(
        None, description="runtimeClassName for GPU pods (e.g. `nvidia`), if the cluster needs one."
    )
    supervision_capacity: int = Field(
        1000,
        ge=1,
        description="Long activities (workload supervisions, deployment health monitors) one "
        "worker runs at once. More wait for a worker with room, and their workloads say so.",
    )
    worker_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Where a worker serves Prometheus /metrics and its probes /livez and "
        "/readyz (on WAPI_API_HOST); unset: none.",
    )

    @model_validator(mode="after")
    def _client_certificate_and_key_together(self) -> Settings:
        if (self.temporal_tls_cert_file is None) != (self.temporal_tls_key_file is None):
            raise ValueError(
                "WAPI_TEMPORAL_TLS_CERT_FILE and WAPI_TEMPORAL_TLS_KEY_FILE go together"
            )
        return self

    @field_validator("publish_port_range")
    @classmethod
    def _ordered_port_range(cls, value: str) -> str:
        low, high = (int(part) for part in value.split("-"))
        if not 1024 <= low < high <= 65535:
            raise ValueError("must be low-high with 1024 <= low < high <= 65535")
        return value

    ready_timeout_seconds: float = Field(
        600, gt=0, description="A starting workload that is not ready by then is errored."
    )
    restart_backoff_seconds: float = Field(1.0, gt=0)
    restart_backoff_max_seconds: float = Field(60.0, gt=0)
    crash_loop_limit: int = Field(5, ge=1, description="Restarts in a row before errored.")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(8081, ge=1, le=65535)
    gateway_processes: int = Field(
        1, ge=1, le=256, description="Gateway processes `wapi gateway` starts on the port."
    )
    gateway_url: str | None = Field(
        None,
        description="The invoke gateway's public base URL, used in `endpoint` fields; default "
        "http://WAPI_GATEWAY_HOST:WAPI_GATEWAY_PORT.",
    )
    gateway_timeout_seconds: float = Field(
        300, gt=0, description="Longest gap the gateway waits between bytes of an answer."
    )
    gateway_max_body_bytes: int = Field(
        100 * 1024 * 1024,
        ge=0,
        description="Largest invoke request body (a deployment may set its own); over: 413.",
    )
    gateway_max_calls_per_caller: int = Field(
        1000, ge=1, description="Concurrent calls of one caller per gateway process; over: 429."
    )
    gateway_max_connections_per_replica: int = Field(
        1000, ge=1, description="Connections a gateway process opens to one replica."
    )
    gateway_acquire_timeout_seconds: float = Field(
        5, gt=0, description="How long a call waits for a connection to a full replica; then 503."
    )
    gateway_websocket_idle_seconds: float = Field(
        300, gt=0, description="A WebSocket session with no traffic either way is closed."
    )
    gateway_traffic_flush_seconds: float = Field(
        5,
        gt=0,
        le=60,
        description="How often each gateway process writes its per-minute traffic of each "
        "deployment (calls, errors, latency histogram) to the catalog, for deployment stats.",
    )
    traffic_retention_days: int = Field(
        90, ge=1, description="Per-minute deployment traffic older than this is deleted."
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="A bearer token that shows the series naming deployments and workloads on "
        "the gateway's and the API's /metrics (admin API keys do too; anonymous scrapes get "
        "totals only).",
    )
    restore_interval_seconds: float = Field(
        300, gt=0, description="How often workers start workflows missing for catalog rows."
    )
    update_timeout_seconds: float = Field(
        20, gt=0, description="How long the API waits for a worker to accept a lifecycle change."
    )

    # The autoscaler (services/autoscaler.py, services/kpa.py): one API process decides.
    autoscaler_enabled: bool = Field(
        True, description="Run the autoscaler in this API process (one process decides at a time)."
    )
    autoscaler_tick_seconds: float = Field(
        1, gt=0, le=60, description="How often the autoscaler samples the load and decides."
    )
    autoscaler_stable_window_seconds: float = Field(
        60, ge=2, le=3600, description="The window whose average load sets the replica count."
    )
    autoscaler_panic_window_percent: float = Field(
        10, ge=1, le=100, description="The panic window, in percent of the stable window."
    )
    autoscaler_panic_threshold: float = Field(
        2.0,
        gt=1,
        le=100,
        description="Panic (scale on the panic window, never down) when it asks for this many "
        "times the ready replicas.",
    )
    autoscaler_max_scale_up_rate: float = Field(
        1000, gt=1, description="One step adds at most this many times the ready replicas."
    )
    autoscaler_max_scale_down_rate: float = Field(
        2, gt=1, description="One step keeps at least the ready replicas divided by this."
    )
    autoscaler_scale_down_delay_seconds: float = Field(
        0, ge=0, le=3600, description="Scale down only to the highest count asked for this long."
    )
    autoscaler_idle_seconds: float = Field(
        30,
        ge=0,
        le=86400,
        description="A group with minReplicaCount 0 scales to zero after this long without calls.",
    )
    gateway_cold_start_timeout_seconds: float = Field(
        60,
        gt=0,
        le=3600,
        description="How long the gateway holds a call to a workload scaled to zero while a "
        "replica starts; then 503 with Retry-After.",
    )

    # Limits every workload runs under, whatever its request says (services/limits.py).
    default_resource_bundle: str | None = Field(
        None,
        description="The bundle of a container group that names none; unset: `cpu.small` if "
        "the catalog has it, else the catalog's first bundle.",
    )
    allow_allocation_above_bundle: bool = Field(
        False, description="Let `resourceAllocation` overrides exceed the group's bundle."
    )
    container_pids_limit: int = Field(
        1024, ge=16, le=1_000_000, description="Processes and threads per container."
    )
    container_read_only_root: bool = Field(
        False, description="Run containers with a read-only root filesystem (a tmpfs on /tmp)."
    )
    allowed_registries: list[str] = Field(
        default_factory=list,
        description="If set, images must come from these registries or registry paths, e.g. "
        '`["registry.example.com", "localhost"]` (Docker Hub is `docker.io`).',
    )
    max_spec_bytes: int = Field(
        256 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest spec (plus a workload's runtime) in JSON bytes; run plans travel "
        "through Temporal, whose payloads are limited to 2 MB.",
    )
    max_request_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest management API request body."
    )
    metrics_deployment_labels: bool = Field(
        False,
        description="Show the series naming deployments and workloads on the unauthenticated "
        "/metrics of the gateway and the API; without it only the metrics token and admin "
        "keys see them.",
    )

    @cached_property
    def catalog_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.database_host:
            # Quoted as SQLAlchemy parses URLs: a password may hold '@', '/' or ':'.
            credentials = quote(self.database_user or "", safe="")
            if self.database_password is not None:
                credentials += ":" + quote(self.database_password.get_secret_value(), safe="")
            host = f"{self.database_host}:{self.database_port}"
            at = f"{credentials}@" if credentials else ""
            return f"{self.database_driver}://{at}{host}/{quote(self.database_name, safe='')}"
        return f"sqlite+aiosqlite:///{self.state_dir.resolve() / 'catalog.db'}"

    @property
    def publish_ports(self) -> tuple[int, int]:
        low, high = self.publish_port_range.split("-")
        return int(low), int(high)

    @property
    def public_gateway_url(self) -> str:
        return (self.gateway_url or f"http://{self.gateway_host}:{self.gateway_port}").rstrip("/")

    @property
    def gateway_metrics_dir(self) -> Path:
        """Where gateway processes on this machine share their counters (see metrics.py)."""
        return self.state_dir / "gateway-metrics"

    @property
    def admin_key_file(self) -> Path:
        return self.state_dir / "admin.key"

    @property
    def secrets_key_file(self) -> Path:
        return self.state_dir / "secrets.key"

    @property
    def console_session_key_file(self) -> Path:
        return self.state_dir / "console-session.key"

    @property
    def temporal_ui(self) -> str:
        host = self.temporal_address.rsplit(":", 1)[0]
        return (self.temporal_ui_url or f"http://{host}:{self.temporal_ui_port}").rstrip("/")
