"""The resource bundle catalog, loaded once from YAML."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from models.bundles import ResourceBundle
from services.errors import NotFoundError
from services.quantities import parse_bytes

PREFERRED_DEFAULT = "cpu.small"


class BundleCatalog:
    """Bundles by id, in the order the file lists them, and the default bundle: the one a
    container group runs on when it names none (every container runs with limits)."""

    def __init__(self, bundles: list[ResourceBundle], default: str | None = None) -> None:
        self._bundles = {bundle.id: bundle for bundle in bundles}
        if default is None:
            default = PREFERRED_DEFAULT if PREFERRED_DEFAULT in self._bundles else bundles[0].id
        if default not in self._bundles:
            raise ValueError(
                f"the default resource bundle '{default}' (WAPI_DEFAULT_RESOURCE_BUNDLE) is not "
                f"in the bundle catalog; it has {sorted(self._bundles)}"
            )
        self.default = self._bundles[default]

    @classmethod
    def load(cls, path: Path | None = None, *, default: str | None = None) -> BundleCatalog:
        """The catalog in `path` (else the shipped one); `default` names the default bundle
        (else `cpu.small` if the catalog has it, or its first bundle)."""
        if path is None:
            text = resources.files("config").joinpath("resource_bundles.yaml").read_text()
            source = "the shipped catalog"
        else:
            text = path.read_text()
            source = str(path)
        document = yaml.safe_load(text) or {}
        entries = document.get("bundles") if isinstance(document, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{source}: expected a non-empty 'bundles' list")
        bundles = [_bundle(entry, f"{source}: bundles[{i}]") for i, entry in enumerate(entries)]
        ids = [bundle.id for bundle in bundles]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"{source}: duplicate bundle ids {duplicates}")
        return cls(bundles, default)

    def all(self) -> list[ResourceBundle]:
        return list(self._bundles.values())

    def get(self, bundle_id: str) -> ResourceBundle:
        try:
            return self._bundles[bundle_id]
        except KeyError:
            raise NotFoundError("resource bundle", bundle_id) from None

    def __contains__(self, bundle_id: object) -> bool:
        return bundle_id in self._bundles


def _bundle(entry: Any, where: str) -> ResourceBundle:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping")
    try:
        gpu = entry.get("gpu") or {}
        return ResourceBundle(
            id=entry["id"],
            name=entry.get("name", entry["id"]),
            description=entry.get("description", ""),
            cpu_count=entry["cpu"],
            memory_bytes=parse_bytes(entry["memory"]),
            gpu_count=gpu.get("count", 0),
            gpu_maker=gpu.get("maker"),
            gpu_type_label=gpu.get("type"),
            gpu_memory_bytes=parse_bytes(gpu["memory"]) if "memory" in gpu else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
