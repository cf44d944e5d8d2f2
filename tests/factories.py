"""Request bodies used across tests."""

from __future__ import annotations

from typing import Any


def spec(image: str = "registry.example.com/team/app:1", **container: Any) -> dict[str, Any]:
    return {
        "containerGroups": [
            {"containers": [{"imageUri": image, "port": 8080, **container}]},
        ]
    }


def artifact(name: str = "app", **fields: Any) -> dict[str, Any]:
    return {"name": name, "spec": spec(), **fields}
