"""Console sessions: the signed-in API key, sealed in an HTTP-only cookie.

The cookie holds the key, the user's name and role and a CSRF token, encrypted and
authenticated with Fernet (AES-128-CBC and HMAC-SHA256) and stamped with its creation time,
so it can be neither read nor forged nor kept past its lifetime. The sealing key is a setting
(`WAPI_CONSOLE_SESSION_KEY`, the same on every API process) or, by default, a random key
created once in the state directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from config.settings import Settings
from models.api_keys import Role

COOKIE = "wapi_console"
LOGIN_COOKIE = "wapi_console_login"  # binds the sign-in form to this browser (login CSRF)


@dataclass(frozen=True)
class Session:
    api_key: str
    username: str
    role: Role
    csrf: str

    @classmethod
    def start(cls, api_key: str, username: str, role: Role) -> Session:
        return cls(api_key, username, role, secrets.token_urlsafe(24))


class SessionCodec:
    """Seals sessions into cookie values and opens them; the key is read on first use, so
    building an app (in a test, say) creates no file."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._fernet: Fernet | None = None
        self.max_age_seconds = int(settings.console_session_hours * 3600)

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(_fernet_key(self._settings))
        return self._fernet

    def seal(self, session: Session) -> str:
        return self.fernet.encrypt(json.dumps(asdict(session)).encode()).decode()

    def open(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            fields = json.loads(self.fernet.decrypt(value, ttl=self.max_age_seconds))
            return Session(**fields)
        except (InvalidToken, ValueError, TypeError):
            return None


def _fernet_key(settings: Settings) -> bytes:
    configured = settings.console_session_key
    secret = configured.get_secret_value().encode() if configured else _stored_key(settings)
    return base64.urlsafe_b64encode(hashlib.sha256(b"wapi-console-session\n" + secret).digest())


def _stored_key(settings: Settings) -> bytes:
    path: Path = settings.console_session_key_file
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(secrets.token_urlsafe(32).encode())
    try:  # link() is atomic and refuses to replace: of two processes, both keep the winner's
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_bytes().strip()
