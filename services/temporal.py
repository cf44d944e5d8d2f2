"""Connecting to Temporal the same way everywhere: the pydantic converter, our namespace, the
TLS and API-key settings, and tracing when it is configured (services/tracing.py). The API, the
worker and `wapi run` all connect through here."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from config.settings import Settings
from services.tracing import temporal_interceptors


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """A client for the configured server; `lazy` defers the dial until the first call."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls_config(settings),
        api_key=api_key,
        interceptors=temporal_interceptors(settings),
        lazy=lazy,
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """False for plain gRPC; True for TLS with the system roots; a TLSConfig with files."""
    files = (
        settings.temporal_tls_ca_file,
        settings.temporal_tls_cert_file,
        settings.temporal_tls_key_file,
    )
    if not any(files) and settings.temporal_tls_server_name is None:
        # Temporal Cloud takes API keys over TLS only.
        return settings.temporal_tls or settings.temporal_api_key is not None
    ca, cert, key = (_read(path) for path in files)
    return TLSConfig(
        server_root_ca_cert=ca,
        client_cert=cert,
        client_private_key=key,
        domain=settings.temporal_tls_server_name,
    )


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None
