"""`wapi apply` on real containers: replace, restart of an edited draft, a roll without --wait
that the next apply finishes, and the exit codes of waits that fail or run out of time; the
actions on a live deployment: revoking a token, cancelling a swap."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner, Result

from cli import app as wapi_app
from cli.session import ExitCode
from client import AsyncClient
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Stack
from tests.e2e.test_deployments import deploy, running_workload
from tests.e2e.test_workload_lifecycle import READY

ARTIFACT = """
kind: Artifact
name: {name}
status: {status}
spec:
  containerGroups:
    - containers:
        - imageUri: {image}
          port: 8080
          command: {command}
          environmentVars: [{{name: GREETING, value: {greeting}}}]
          readinessProbe: {{path: /ready, periodSeconds: 1}}
---
kind: Workload
name: {name}
artifact: {name}
"""
DEPLOYMENT = """---
kind: Deployment
name: {name}-prod
workload: {name}
"""


async def wapi(stack: Stack, tmp_path: Path, *args: str) -> Result:
    """The CLI in a thread: the stack's worker shares this test's event loop."""
    env = {
        "WAPI_API_URL": stack.url,
        "WAPI_API_KEY": ADMIN_KEY,
        "WAPI_CONFIG": str(tmp_path / "none.yaml"),
    }
    return await asyncio.to_thread(CliRunner().invoke, wapi_app, list(args), env=env)


def write(
    tmp_path: Path,
    stack: Stack,
    name: str = "svc",
    status: str = "registered",
    greeting: str = "hi",
    command: str = "[serve]",
    deployed: bool = False,
) -> str:
    text = ARTIFACT.format(
        name=name, status=status, image=stack.image, command=command, greeting=greeting
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(text + (DEPLOYMENT.format(name=name) if deployed else ""))
    return str(path)


async def test_an_undeployed_workload_is_replaced_and_an_edited_draft_restarts_it(
    stack: Stack, tmp_path: Path
) -> None:
    path = write(tmp_path, stack)
    assert (await wapi(stack, tmp_path, "apply", "-f", path, "--wait")).exit_code == 0
    before = (await stack.api.get("/api/v2/console/workloads/")).json()["data"][0]["id"]

    write(tmp_path, stack, greeting="hello")
    replaced = await wapi(stack, tmp_path, "apply", "-f", path)
    assert replaced.exit_code == 0, replaced.output
    assert "replace" in replaced.output and f"deleted the old workload {before}" in replaced.output
    after = (await stack.api.get("/api/v2/console/workloads/")).json()["data"]
    assert [w["status"] for w in after] == ["running"] and after[0]["id"] != before

    draft = write(tmp_path, stack, name="scratch", status="draft")
    assert (await wapi(stack, tmp_path, "apply", "-f", draft, "--wait")).exit_code == 0
    write(tmp_path, stack, name="scratch", status="draft", greeting="edited")
    edited = await wapi(stack, tmp_path, "apply", "-f", draft, "--wait")
    assert edited.exit_code == 0, edited.output
    assert "artifact/scratch" in edited.output and "restart" in edited.output
    assert "workload/scratch: running  1/1 ready" in edited.output
    assert (await wapi(stack, tmp_path, "delete", "-f", draft)).exit_code == 0
    assert (await wapi(stack, tmp_path, "delete", "-f", path)).exit_code == 0


async def test_a_roll_without_wait_is_finished_by_the_next_apply(
    stack: Stack, tmp_path: Path
) -> None:
    path = write(tmp_path, stack, deployed=True)
    first = await wapi(stack, tmp_path, "apply", "-f", path, "--wait")
    assert first.exit_code == 0, first.output
    write(tmp_path, stack, greeting="v2", deployed=True)
    rolled = await wapi(stack, tmp_path, "apply", "-f", path)
    assert rolled.exit_code == 0 and "the next apply deletes" in rolled.output
    during = await wapi(stack, tmp_path, "apply", "-f", path)  # while it swaps: 4, else done
    assert during.exit_code in (0, ExitCode.CONFLICT), during.output

    async with AsyncClient(stack.url, ADMIN_KEY) as client:
        deployment = (await client.deployments.list()).data[0]
        swap = (await client.deployments.swaps(deployment.id)).data[0]
        await client.deployments.wait_for_swap(deployment.id, swap.id, timeout=90, interval=0.3)
        old = swap.from_workload_id
        await client.workloads.wait_until(old, "stopped", timeout=60, interval=0.3)

    cleanup = await wapi(stack, tmp_path, "apply", "-f", path)
    assert cleanup.exit_code == 0, cleanup.output
    if during.exit_code == ExitCode.CONFLICT:
        assert "is swapping" in during.output
        assert f"deleted leftover {old}" in cleanup.output
    final = await wapi(stack, tmp_path, "apply", "-f", path)
    assert final.output.rstrip().endswith("no changes")
    assert (await wapi(stack, tmp_path, "delete", "-f", path)).exit_code == 0


async def test_waits_exit_9_when_the_workload_errors_and_8_when_time_runs_out(
    stack: Stack, tmp_path: Path
) -> None:
    crash = write(tmp_path, stack, name="crashy", status="draft", command="[crash]")
    errored = await wapi(stack, tmp_path, "apply", "-f", crash, "--wait")
    assert errored.exit_code == ExitCode.FAILED, errored.output
    assert "it is errored" in errored.output and "crashing on purpose" in errored.output

    slow = write(tmp_path, stack, name="slow", status="draft", command="[never-ready]")
    late = await wapi(stack, tmp_path, "apply", "-f", slow, "--wait", "--timeout", "2")
    assert late.exit_code == ExitCode.TIMEOUT, late.output
    assert "timed out after 2 s" in late.output


async def test_revoke_a_token_and_cancel_a_swap(stack: Stack, tmp_path: Path) -> None:
    v1, collection = await running_workload(stack, "1")
    deployment = await deploy(stack, v1)
    made = await wapi(stack, tmp_path, "create", "token", "prod", "app")
    assert made.exit_code == 0, made.output
    revoked = await wapi(stack, tmp_path, "revoke", "token", "prod", "app")
    assert revoked.exit_code == 0 and "revoked" in revoked.output, revoked.output
    async with AsyncClient(stack.url, ADMIN_KEY) as client:
        tokens = await client.deployments.tokens(deployment["id"])
    assert [t.revoked_at is not None for t in tokens] == [True]
    missing = await wapi(stack, tmp_path, "revoke", "token", "prod", "other")
    assert missing.exit_code == ExitCode.NOT_FOUND, missing.output

    artifact = await stack.registered(
        "slow", collection, command=["slow-start", "60"], readinessProbe=READY
    )
    await stack.workload_of(artifact["id"], name="slow")
    started = await wapi(stack, tmp_path, "swap", "prod", "--to", "slow")
    assert started.exit_code == 0, started.output
    cancelled = await wapi(stack, tmp_path, "cancel-swap", "prod")
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancelled" in cancelled.output and f"traffic stays on {v1}" in cancelled.output
    again = await wapi(stack, tmp_path, "cancel-swap", "prod")
    assert again.exit_code == ExitCode.CONFLICT, again.output
