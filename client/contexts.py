"""Where the API is and which key to use: flags, named contexts in a config file, environment.

Precedence, field by field: an explicit URL; the context asked for by name (`--context` or
`WAPI_CONTEXT`); `WAPI_API_URL`, `WAPI_API_KEY` and `WAPI_GATEWAY_URL`; the config file's
current context; and last the local stack `wapi run` starts (its address from `WAPI_API_HOST`
and `WAPI_API_PORT`, its admin key from the state directory).

The config file is `WAPI_CONFIG`, else `$XDG_CONFIG_HOME/wapi/config.yaml` (`~/.config/...`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field

from config.settings import Settings
from models.common import CamelModel


class ContextEntry(CamelModel):
    name: str = Field(min_length=1)
    api_url: str = Field(description="The API's root URL (`/api/v2` may be included).")
    api_key: str | None = Field(None, description="The key itself; prefer `apiKeyFile`.")
    api_key_file: str | None = Field(
        None, description="A file holding the key; relative paths are from the config file."
    )
    gateway_url: str | None = Field(None, description="Invoke gateway root, if not the API's.")


class ConfigFile(CamelModel):
    current_context: str | None = None
    contexts: list[ContextEntry] = Field(default_factory=list)

    def find(self, name: str) -> ContextEntry | None:
        return next((c for c in self.contexts if c.name == name), None)

    def put(self, entry: ContextEntry) -> None:
        self.contexts = [c for c in self.contexts if c.name != entry.name] + [entry]


class ContextError(ValueError):
    """The configuration asked for cannot be used (unknown context, unreadable key file)."""


@dataclass(frozen=True)
class Connection:
    api_url: str
    api_key: str | None
    gateway_url: str | None = None
    context: str | None = None


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    if explicit := env.get("WAPI_CONFIG"):
        return Path(explicit)
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wapi" / "config.yaml"


def load_config(path: Path) -> ConfigFile:
    if not path.exists():
        return ConfigFile()
    try:
        return ConfigFile.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValueError) as error:
        raise ContextError(f"{path} is not a valid wapi config file: {error}") from None


def save_config(path: Path, config: ConfigFile) -> None:
    """Written readable by its owner only: it may hold keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config.model_dump(by_alias=True, exclude_none=True), sort_keys=False)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def api_root(url: str) -> str:
    """`http://host:8080/api/v2/` and `http://host:8080` name the same API."""
    return url.rstrip("/").removesuffix("/api/v2")


def _key_of(entry: ContextEntry, base: Path) -> str | None:
    if entry.api_key:
        return entry.api_key
    if entry.api_key_file:
        path = Path(entry.api_key_file).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            return path.read_text().strip()
        except OSError as error:
            raise ContextError(f"context '{entry.name}': cannot read {path}: {error}") from None
    return None


def resolve(
    context: str | None = None,
    api_url: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Connection:
    path = config_path(env)
    config = load_config(path)
    asked = context or env.get("WAPI_CONTEXT")
    entry = config.find(asked) if asked else None
    if asked and entry is None:
        known = ", ".join(c.name for c in config.contexts) or "none"
        raise ContextError(f"no context '{asked}' in {path} (known: {known})")
    current = None if asked or not config.current_context else config.find(config.current_context)
    settings = Settings()
    local_key = (
        settings.admin_key_file.read_text().strip() if settings.admin_key_file.exists() else None
    )
    layers: list[tuple[str | None, str | None, str | None]] = [
        (api_url, None, None),
        (entry.api_url, _key_of(entry, path.parent), entry.gateway_url) if entry else (None,) * 3,
        (env.get("WAPI_API_URL"), env.get("WAPI_API_KEY"), env.get("WAPI_GATEWAY_URL")),
        (current.api_url, _key_of(current, path.parent), current.gateway_url)
        if current
        else (None,) * 3,
        (f"http://{settings.api_host}:{settings.api_port}", local_key, settings.public_gateway_url),
    ]
    url = next(layer[0] for layer in layers if layer[0])
    key = next((layer[1] for layer in layers if layer[1]), None)
    gateway = next((layer[2] for layer in layers if layer[2]), None)
    name = entry.name if entry else (current.name if current else None)
    return Connection(api_root(url), key, api_root(gateway) if gateway else None, name)
