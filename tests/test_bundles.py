"""The resource bundle catalog: shipped defaults, overrides, and the read API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services.bundles import BundleCatalog
from services.quantities import parse_bytes


def test_shipped_catalog_has_cpu_and_gpu_bundles() -> None:
    bundles = BundleCatalog.load()
    assert bundles.get("cpu.small").memory_bytes == 2 * 2**30
    gpu = bundles.get("gpu.l4.small")
    assert gpu.has_gpu and gpu.gpu_type_label == "l4" and gpu.gpu_memory_bytes == 24 * 2**30
    assert not bundles.get("cpu.nano").has_gpu


def test_override_file(tmp_path: Path) -> None:
    path = tmp_path / "bundles.yaml"
    path.write_text("bundles:\n  - {id: tiny, cpu: 0.1, memory: 64Mi}\n")
    bundles = BundleCatalog.load(path)
    assert [b.id for b in bundles.all()] == ["tiny"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("bundles: []", "non-empty"),
        ("bundles:\n  - {id: a, cpu: 1}", "memory"),
        ("bundles:\n  - {id: a, cpu: 1, memory: 1Zi}", "quantity"),
        (
            "bundles:\n  - {id: a, cpu: 1, memory: 1Gi}\n  - {id: a, cpu: 1, memory: 1Gi}",
            "duplicate",
        ),
    ],
)
def test_bad_catalog_files_say_why(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bundles.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        BundleCatalog.load(path)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("512Mi", 512 * 2**20),
        ("2Gi", 2 * 2**30),
        ("16G", 16 * 10**9),
        ("1.5Gi", 3 * 2**29),
        (1024, 1024),
    ],
)
def test_quantities(quantity: str | int, expected: int) -> None:
    assert parse_bytes(quantity) == expected


async def test_bundles_api(api: httpx.AsyncClient) -> None:
    listed = (await api.get("/api/v2/resourceBundles/", params={"limit": 3})).json()
    assert listed["count"] == 3 and listed["totalCount"] == len(BundleCatalog.load().all())
    assert listed["next"] is not None
    one = await api.get("/api/v2/resourceBundles/gpu.t4.small/")
    assert one.json()["gpuCount"] == 1 and one.json()["gpuMaker"] == "nvidia"
    assert (await api.get("/api/v2/resourceBundles/nope/")).status_code == 404
