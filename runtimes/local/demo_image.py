"""The demo image (deploy/local/demo-image), built offline through the Docker API.

A busybox HTTP service with switchable behaviours (serve, crash, slow start, never ready...):
the README's tour runs it, and so do the tests and benchmarks. The tag is a hash of the build
context, so it is rebuilt only when a file of it (or the busybox binary) changes; it is also
tagged `latest` for people typing commands.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import aiodocker

IMAGE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "local" / "demo-image"
REPOSITORY = "localhost/wapi-demo"
LATEST = f"{REPOSITORY}:latest"
_BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def _busybox() -> Path:
    for candidate in (*_BUSYBOX_PATHS, shutil.which("busybox") or ""):
        path = Path(candidate)
        if candidate and path.is_file():
            return path.resolve()
    raise RuntimeError(
        "busybox is missing; the demo image needs Debian's busybox-static (`make run` installs it)"
    )


def context_files() -> dict[str, tuple[bytes, int]]:
    """Build-context files: name -> (content, mode)."""
    files = {
        path.relative_to(IMAGE_DIR).as_posix(): (path.read_bytes(), path.stat().st_mode & 0o777)
        for path in sorted(IMAGE_DIR.rglob("*"))
        if path.is_file() and path.name != "README.md"
    }
    busybox = _busybox()
    files["busybox"] = (busybox.read_bytes(), 0o755)
    return files


def image_reference(files: dict[str, tuple[bytes, int]] | None = None) -> str:
    digest = hashlib.sha256()
    for name, (content, mode) in sorted((files or context_files()).items()):
        digest.update(f"{name}\0{mode:o}\0{len(content)}\0".encode())
        digest.update(content)
    return f"{REPOSITORY}:{digest.hexdigest()[:12]}"


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), mode
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


async def build_demo_image(docker_url: str) -> str:
    """Build the demo image on the engine at `docker_url` unless it exists; return its reference."""
    files = context_files()
    reference = image_reference(files)
    async with aiodocker.Docker(url=docker_url) as docker:
        try:
            await docker.images.inspect(reference)
            return reference
        except aiodocker.DockerError as error:
            if error.status != 404:
                raise
        await docker.images.build(
            fileobj=io.BytesIO(_tar(files)),
            encoding="identity",
            path_dockerfile="Containerfile",
            tag=reference,
        )
        await docker.images.inspect(reference)  # a failed build must fail here, not later
        repository, tag = LATEST.rsplit(":", 1)
        await docker.images.tag(reference, repository, tag=tag)
    return reference
