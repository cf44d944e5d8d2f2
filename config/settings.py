"""The one settings class. Every value can be set with a `WAPI_`-prefixed environment variable."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of the API, the worker and the local stack."""

    model_config = SettingsConfigDict(env_prefix="WAPI_", env_ignore_empty=True, extra="ignore")

    state_dir: Path = Field(Path(".wapi"), description="Where the embedded stack keeps its data.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; default is a SQLite file in the state directory."
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "workload-api"
    temporal_ui_port: int = Field(8233, ge=1, le=65535)
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
    kubernetes_namespace: str = "workload-api"
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
        description="Where a worker serves Prometheus /metrics (on WAPI_API_HOST); unset: none.",
    )
    ready_timeout_seconds: float = Field(
        600, gt=0, description="A starting workload that is not ready by then is errored."
    )
    restart_backoff_seconds: float = Field(1.0, gt=0)
    restart_backoff_max_seconds: float = Field(60.0, gt=0)
    crash_loop_limit: int = Field(5, ge=1, description="Restarts in a row before errored.")
    gateway_timeout_seconds: float = Field(
        300, gt=0, description="How long the gateway waits for a workload's answer."
    )
    restore_interval_seconds: float = Field(
        300, gt=0, description="How often workers start workflows missing for catalog rows."
    )
    update_timeout_seconds: float = Field(
        20, gt=0, description="How long the API waits for a worker to accept a lifecycle change."
    )

    @cached_property
    def catalog_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.state_dir.resolve() / 'catalog.db'}"

    @property
    def admin_key_file(self) -> Path:
        return self.state_dir / "admin.key"

    @property
    def secrets_key_file(self) -> Path:
        return self.state_dir / "secrets.key"
