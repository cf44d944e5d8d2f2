"""deploy/container/Containerfile, linted: the build machines cannot pull a base image, so the
image is not built here (docs/operations.md). These checks keep it in step with the code and
the manifests: every package is copied, it runs as the uid the manifests require, it starts
`wapi`, and it follows the usual rules (tagged bases, no ADD, no root at run time)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())  # join continued lines
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_every_package_the_distribution_includes_is_copied() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*")
        for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    modules = set(project["tool"]["setuptools"]["py-modules"])
    copied = {
        word.removeprefix("./")
        for key, rest in instructions()
        if key == "COPY" and "--from" not in rest
        for word in rest.split()[:-1]  # the sources; the last word is the destination
    }
    assert packages <= copied
    assert {f"{module}.py" for module in modules} | {"pyproject.toml", "README.md"} <= copied


def test_bases_are_tagged_and_the_same_python() -> None:
    bases = [rest.split()[0] for key, rest in instructions() if key == "FROM"]
    assert len(bases) == 2 and len(set(bases)) == 1
    assert re.fullmatch(r"[\w./-]+:3\.11-slim-[a-z]+", bases[0])  # the Python pyproject targets
    assert not any(key == "ADD" for key, _ in instructions())


def test_it_runs_as_the_manifests_user_and_starts_wapi() -> None:
    users = [rest for key, rest in instructions() if key == "USER"]
    assert users == ["10001:10001"]
    api = yaml.safe_load(
        (ROOT / "deploy" / "kubernetes" / "base" / "api.yaml").read_text().split("\n---")[0]
    )
    context = api["spec"]["template"]["spec"]["securityContext"]
    assert f"{context['runAsUser']}:{context['runAsGroup']}" == users[0]
    assert ("ENTRYPOINT", '["wapi"]') in instructions()
    env = " ".join(rest for key, rest in instructions() if key == "ENV")
    assert "WAPI_STATE_DIR=/var/lib/wapi" in env
