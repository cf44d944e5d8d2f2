"""Encryption of secret values at rest: AES-256-GCM under a configured key.

A stored value reads `v1.<key id>.<base64url(nonce + ciphertext)>`. The key id (a hash prefix
of the key) says which key wrote it, so older keys can stay configured behind a new one until
every value has been rotated. The secret's id is bound in as associated data: a ciphertext
copied onto another secret's row does not decrypt.

Error messages name key ids and files, never a key or a value.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.settings import Settings

log = logging.getLogger(__name__)

FORMAT = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyringError(Exception):
    """The configured key is missing or malformed."""


class DecryptionError(Exception):
    """A stored value cannot be read with the configured keys."""


def generate_key() -> str:
    """A new key, in the form `WAPI_SECRETS_KEY` and `secrets.key` take."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def parse_keys(text: str, origin: str) -> list[bytes]:
    """Comma-separated base64 (standard or URL-safe) keys; the first one encrypts."""
    keys = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        padded = part.replace("+", "-").replace("/", "_") + "=" * (-len(part) % 4)
        try:
            raw = base64.b64decode(padded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise KeyringError(
                f"{origin}: each key must be {KEY_BYTES} random bytes, base64-encoded "
                "(e.g. `openssl rand -base64 32`)"
            )
        keys.append(raw)
    if not keys:
        raise KeyringError(f"{origin} holds no key")
    return keys


class Keyring:
    """Encrypts with the first key; decrypts with whichever key wrote the value."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one key")
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}
        self.current = key_id(keys[0])

    def __repr__(self) -> str:
        return f"Keyring(key_ids={list(self._ciphers)})"

    def encrypt(self, secret_id: str, value: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, value.encode(), _aad(secret_id))
        token = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{FORMAT}.{self.current}.{token}"

    def decrypt(self, secret_id: str, stored: str) -> str:
        version, kid, token = [*stored.split(".", 2), "", ""][:3]
        if version != FORMAT or not token:
            raise DecryptionError(f"secret '{secret_id}' is not in a format this version reads")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DecryptionError(
                f"secret '{secret_id}' was encrypted with key {kid}, which is not configured"
            )
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            plain = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(secret_id))
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionError(
                f"secret '{secret_id}' does not decrypt with key {kid}: its stored value was "
                "altered or belongs to another secret"
            ) from None
        return plain.decode()


def _aad(secret_id: str) -> bytes:
    return b"workload-api/secret/" + secret_id.encode()


def load_keyring(settings: Settings) -> Keyring:
    """The keys from `WAPI_SECRETS_KEY`, or else from `<state_dir>/secrets.key`, which is
    created (mode 0600) the first time; API and worker of one stack share that file."""
    if settings.secrets_key is not None:
        return Keyring(parse_keys(settings.secrets_key.get_secret_value(), "WAPI_SECRETS_KEY"))
    path = settings.secrets_key_file
    return Keyring(parse_keys(_read_or_create(path), str(path)))


def _read_or_create(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: `link` fails if another process (the API and the
    # worker start together) got there first, and a reader never sees a half-written file.
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(generate_key() + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
            log.warning(
                "created a key for secret values; back it up apart from the database",
                extra={"path": str(path)},
            )
    finally:
        draft.unlink()
    return path.read_text()
