"""The README's CLI tour runs verbatim against a live stack: `wapi apply -f` makes an artifact,
a workload and a deployment, a second apply changes nothing, a new image rolls the deployment."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from cli.devstack import tag_tour_images
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Stack

README = Path(__file__).parents[2] / "README.md"


def cli_tour() -> str:
    match = re.search(
        r"<!-- cli-tour:start -->\n```sh\n(.*?)```\n<!-- cli-tour:end -->", README.read_text(), re.S
    )
    assert match, "the README lost its CLI tour markers"
    return match.group(1)


@pytest.mark.timeout(420)
async def test_readme_cli_tour_runs(stack: Stack, docker_url: str, tmp_path: Path) -> None:
    await tag_tour_images(docker_url, stack.image)  # as `wapi run` does
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "WAPI_API_URL": stack.url,
        "WAPI_API_KEY": ADMIN_KEY,
        "WAPI_GATEWAY_URL": stack.gateway_url,
        "WAPI_CONFIG": str(tmp_path / "no-config.yaml"),
    }
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", cli_tour(),
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=400)
    text = output.decode()
    assert process.returncode == 0, text
    first, rest = text.split("applied: 3 create\n", 1)
    assert (
        "artifact/hello: registered v1" in first and "workload/hello: running  2/2 ready" in first
    )
    second = rest.split("NAME", 1)[0]  # up to `wapi get workloads`
    assert second.count("unchanged") == 3 and second.rstrip().endswith("no changes")
    assert '"query":"via=cli"' in text and "serving on port 8080" in text
    roll = text[text.index("dry run, nothing applied") :]
    assert "artifact/hello: registered v2" in roll
    assert "deployment/hello-prod swap: completed" in roll
    assert "workload/hello: deleted the old workload" in roll
    assert "swap_switched" in roll
    assert text.rstrip().endswith("done: 2 delete, 1 kept")
    assert (await stack.api.get("/api/v2/console/workloads/")).json()["totalCount"] == 0
