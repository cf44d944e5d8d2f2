"""The README's quick tour runs verbatim against a live stack."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Stack

README = Path(__file__).parents[2] / "README.md"


def tour() -> str:
    match = re.search(
        r"<!-- tour:start -->\n```sh\n(.*?)```\n<!-- tour:end -->", README.read_text(), re.S
    )
    assert match, "the README lost its tour markers"
    return match.group(1)


async def test_readme_tour_runs(stack: Stack, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "API": f"{stack.url}/api/v2",
        "GATEWAY": f"{stack.gateway_url}/api/v2",
        "KEY": ADMIN_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", tour(),
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    text = output.decode()
    assert process.returncode == 0, text
    assert '"query":"name=world"' in text and "serving on port 8080" in text
    assert "via=deployment" in text and "deployment.invoke" in text
    assert text.rstrip().endswith("204")
