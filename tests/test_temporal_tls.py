"""Temporal over mutual TLS: the settings reach the real client, which talks to a real server.

The dev server speaks plain gRPC, so a TLS-terminating proxy on loopback stands in for a TLS
frontend (Temporal Cloud, or a self-hosted cluster with `tls.frontend` set): it demands a
client certificate signed by the test CA, offers h2 (gRPC's ALPN) and pipes bytes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from services import temporal

SERVER_NAME = "temporal.test"


def _issue(
    name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, *, ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class TlsFrontend:
    port: int
    ca: Path
    client_cert: Path
    client_key: Path
    client_names: list[str] = field(default_factory=list)


@pytest.fixture
async def frontend(temporal_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[TlsFrontend]:
    ca_cert, ca_key = _issue("wapi test CA", None, ca=True)
    ca_path, _ = _write(tmp_path, "ca", ca_cert, ca_key)
    server = _write(tmp_path, "server", *_issue(SERVER_NAME, (ca_cert.subject, ca_key)))
    client = _write(tmp_path, "client", *_issue("wapi-worker", (ca_cert.subject, ca_key)))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_path))
    context.load_cert_chain(*server)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    upstream_host, upstream_port = temporal_env.client.service_client.config.target_host.split(":")
    seen: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        seen.extend(
            value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"
        )
        up_reader, up_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = proxy.sockets[0].getsockname()[1]
    try:
        yield TlsFrontend(port, ca_path, client[0], client[1], seen)
    finally:
        proxy.close()


def _settings(frontend: TlsFrontend, **changes: object) -> Settings:
    fields: dict[str, object] = {
        "temporal_address": f"127.0.0.1:{frontend.port}",
        "temporal_tls_ca_file": frontend.ca,
        "temporal_tls_cert_file": frontend.client_cert,
        "temporal_tls_key_file": frontend.client_key,
        "temporal_tls_server_name": SERVER_NAME,
    }
    fields.update(changes)
    return Settings(**fields)  # type: ignore[arg-type]


async def test_the_client_connects_with_its_certificate_and_the_api_key(
    frontend: TlsFrontend,
) -> None:
    client = await temporal.connect(_settings(frontend, temporal_api_key="wapi-test-key"))
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version  # a real answer from the dev server, through TLS
    assert "wapi-worker" in frontend.client_names  # the server saw our client certificate
    assert client.api_key == "wapi-test-key"


async def test_without_a_client_certificate_the_frontend_refuses(frontend: TlsFrontend) -> None:
    settings = _settings(frontend, temporal_tls_cert_file=None, temporal_tls_key_file=None)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(temporal.connect(settings), 60)
    assert frontend.client_names == []


def test_certificate_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(temporal_tls_cert_file=tmp_path / "client.crt")


def test_tls_is_implied_by_an_api_key_and_off_by_default() -> None:
    assert temporal.tls_config(Settings()) is False
    assert temporal.tls_config(Settings(temporal_api_key="k")) is True
    assert temporal.tls_config(Settings(temporal_tls=True)) is True
