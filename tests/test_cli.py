"""`wapi` against the real API (no containers needed here): stack files, apply of artifacts,
get/describe, exit codes, contexts. Workloads and deployments: `tests/e2e/test_cli_apply.py`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from cli import app as wapi_app
from cli.session import ExitCode, exit_code_for
from cli.stack import parse
from client.contexts import resolve
from client.errors import ApiError, ConnectionFailedError, error_from_response
from tests.conftest import ADMIN_KEY
from tests.support.live_server import serve

ARTIFACT = """
kind: Artifact
name: tool
status: {status}
spec:
  containerGroups:
    - containers:
        - imageUri: registry.example.com/team/tool:{tag}
          port: 8080
"""


@pytest.fixture
def api_url(app: FastAPI) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture
def env(api_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "WAPI_API_URL": f"{api_url}/api/v2",
        "WAPI_API_KEY": ADMIN_KEY,
        "WAPI_CONFIG": str(tmp_path / "config.yaml"),
        "WAPI_CONTEXT": "",
    }


def wapi(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(wapi_app, list(args), env=env, input=stdin)


def stack_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return str(path)


def test_a_registered_artifact_gets_a_new_version_only_when_it_changes(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = stack_file(tmp_path, ARTIFACT.format(status="registered", tag="1"))
    first = wapi(env, "apply", "-f", path)
    assert first.exit_code == 0, first.output
    assert "artifact/tool: registered v1" in first.output

    again = wapi(env, "apply", "-f", path)
    assert again.exit_code == 0 and "unchanged" in again.output
    assert again.output.rstrip().endswith("no changes")
    assert wapi(env, "diff", "-f", path).exit_code == 0

    stack_file(tmp_path, ARTIFACT.format(status="registered", tag="2"))
    diff = wapi(env, "diff", "-f", path)
    assert diff.exit_code == ExitCode.CHANGES
    assert "v1 -> v2" in diff.output and "team/tool:1' -> 'registry" in diff.output
    dry = wapi(env, "apply", "-f", path, "--dry-run")
    assert dry.exit_code == 0 and "dry run, nothing applied: 1 new version" in dry.output
    assert "registered v2" in wapi(env, "apply", "-f", path).output

    listed = json.loads(wapi(env, "get", "artifacts", "-o", "json").output)
    assert sorted(a["version"] for a in listed) == [1, 2]
    assert len({a["collectionId"] for a in listed}) == 1
    kept = wapi(env, "delete", "-f", path)
    assert "kept" in kept.output and kept.exit_code == 0


def test_a_draft_is_edited_in_place(env: dict[str, str], tmp_path: Path) -> None:
    path = stack_file(tmp_path, ARTIFACT.format(status="draft", tag="1"))
    assert wapi(env, "apply", "-f", path).exit_code == 0
    stack_file(tmp_path, ARTIFACT.format(status="draft", tag="2"))
    edit = wapi(env, "apply", "-f", path)
    assert edit.exit_code == 0 and "artifact/tool" in edit.output and "update" in edit.output
    drafts = json.loads(wapi(env, "get", "artifacts", "--status", "draft", "-o", "json").output)
    assert [d["spec"]["containerGroups"][0]["containers"][0]["imageUri"] for d in drafts] == [
        "registry.example.com/team/tool:2"
    ]
    assert "deleted draft" in wapi(env, "delete", "-f", path).output
    assert wapi(env, "get", "artifact", "tool").exit_code == ExitCode.NOT_FOUND


def test_a_bad_stack_file_names_every_problem_and_changes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = stack_file(
        tmp_path,
        ARTIFACT.format(status="registered", tag="1")
        + "extra: 1\n---\nkind: Workload\nname: w\nartifact: tool\n"
        "runtime: {containerGroups: [{replicaCount: 0}]}\n---\nkind: Gizmo\nname: g\n",
    )
    result = wapi(env, "apply", "-f", path)
    assert result.exit_code == ExitCode.INVALID
    assert "document 1 (Artifact 'tool'): extra: Extra inputs are not permitted" in result.output
    assert "document 2 (Workload 'w'): runtime.containerGroups.0.replicaCount" in result.output
    assert "document 3" in result.output and "Gizmo" in result.output
    assert json.loads(wapi(env, "get", "artifacts", "-o", "json").output) == []


def test_a_deployment_of_a_draft_workload_is_refused_before_anything_changes(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = stack_file(
        tmp_path,
        ARTIFACT.format(status="draft", tag="1") + "---\nkind: Workload\nname: w\nartifact: tool\n"
        "---\nkind: Deployment\nname: d\nworkload: w\n",
    )
    result = wapi(env, "apply", "-f", path)
    assert result.exit_code == ExitCode.INVALID
    assert "deployment 'd': workload 'w' runs a draft artifact" in result.output
    assert json.loads(wapi(env, "get", "artifacts", "-o", "json").output) == []


def test_duplicate_names_and_unknown_references(env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(Exception, match="more than one Artifact named 'tool'"):
        parse("---".join([ARTIFACT.format(status="draft", tag="1")] * 2), "s")
    path = stack_file(tmp_path, "kind: Deployment\nname: d\nworkload: missing\n")
    result = wapi(env, "apply", "-f", path)
    assert result.exit_code == ExitCode.NOT_FOUND and "missing" in result.output


def test_get_and_describe(env: dict[str, str]) -> None:
    bundles = wapi(env, "get", "bundles")
    assert bundles.exit_code == 0 and "cpu.small" in bundles.output and "2Gi" in bundles.output
    one = json.loads(wapi(env, "get", "bundle", "cpu.small", "-o", "json").output)
    assert one["cpuCount"] == 1.0
    assert wapi(env, "get", "bundles", "--status", "x").exit_code == ExitCode.USAGE
    assert wapi(env, "get", "gizmos").exit_code == ExitCode.USAGE
    whoami = wapi(env, "whoami")
    assert "admin" in whoami.output
    wapi(env, "create", "secret", "api-token", "--from-file", "-", stdin="s3cr3t-value\n")
    described = wapi(env, "describe", "secret", "api-token")
    assert described.exit_code == 0 and "api-token" in described.output
    assert "s3cr3t" not in described.output
    assert wapi(env, "delete", "secret", "api-token").exit_code == 0


def test_exit_codes_for_keys_and_reachability(env: dict[str, str]) -> None:
    bad_key = wapi({**env, "WAPI_API_KEY": "wapi_not-a-key"}, "get", "workloads")
    assert bad_key.exit_code == ExitCode.DENIED and "401" in bad_key.output
    away = wapi({**env, "WAPI_API_URL": "http://127.0.0.1:9"}, "get", "workloads")
    assert away.exit_code == ExitCode.UNAVAILABLE and "cannot reach" in away.output


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, ExitCode.NOT_FOUND),
        (409, ExitCode.CONFLICT),
        (412, ExitCode.CONFLICT),
        (422, ExitCode.INVALID),
        (401, ExitCode.DENIED),
        (403, ExitCode.DENIED),
        (503, ExitCode.UNAVAILABLE),
        (500, ExitCode.ERROR),
    ],
)
def test_each_error_status_has_its_exit_code(status: int, code: ExitCode) -> None:
    request = httpx.Request("GET", "http://wapi/")
    error: ApiError = error_from_response(httpx.Response(status, request=request))
    assert exit_code_for(error) == code
    unreachable = ConnectionFailedError("http://wapi", httpx.ConnectError("refused"))
    assert exit_code_for(unreachable) == ExitCode.UNAVAILABLE


def test_contexts_and_their_precedence(tmp_path: Path, env: dict[str, str]) -> None:
    key_file = tmp_path / "prod.key"
    key_file.write_text("prod-key\n")
    config = {"WAPI_CONFIG": env["WAPI_CONFIG"], "WAPI_CONTEXT": ""}
    made = wapi(
        config, "config", "set-context", "prod",
        "--api-url", "https://prod.example/api/v2", "--api-key-file", str(key_file),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    wapi(config, "config", "set-context", "dev", "--api-url", "http://dev", "--api-key-stdin",
         stdin="dev-key")  # fmt: skip
    assert (Path(env["WAPI_CONFIG"]).stat().st_mode & 0o777) == 0o600
    assert "* prod" in wapi(config, "config", "get-contexts").output  # the first one is current
    assert "dev-key" not in wapi(config, "config", "view").output

    file_only = {"WAPI_CONFIG": env["WAPI_CONFIG"]}
    current = resolve(env=file_only)
    assert (current.api_url, current.api_key, current.context) == (
        "https://prod.example",
        "prod-key",
        "prod",
    )
    environment = resolve(env={**file_only, "WAPI_API_URL": "http://env", "WAPI_API_KEY": "k"})
    assert (environment.api_url, environment.api_key) == ("http://env", "k")
    named = resolve("dev", env={**file_only, "WAPI_API_URL": "http://env"})
    assert (named.api_url, named.api_key) == ("http://dev", "dev-key")
    flag = resolve("dev", "http://flag/api/v2/", env=file_only)
    assert (flag.api_url, flag.api_key) == ("http://flag", "dev-key")
    assert wapi(config, "config", "use-context", "nope").exit_code == ExitCode.NOT_FOUND
    unknown = wapi({**config, "WAPI_CONTEXT": "nope"}, "get", "workloads")
    assert unknown.exit_code == ExitCode.INVALID and "no context 'nope'" in unknown.output


def test_share_rotate_and_clone(env: dict[str, str], tmp_path: Path) -> None:
    path = stack_file(tmp_path, ARTIFACT.format(status="registered", tag="1"))
    assert wapi(env, "apply", "-f", path).exit_code == 0
    shared = wapi(env, "share", "artifact", "tool", "-r", "bob=consumer", "-r", "carol=user")
    assert shared.exit_code == 0, shared.output
    roles = json.loads(wapi(env, "share", "art", "tool", "-o", "json").output)
    assert {r["username"]: r["role"] for r in roles} == {
        "admin": "owner",
        "bob": "consumer",
        "carol": "user",
    }
    assert "carol" not in wapi(env, "share", "artifact", "tool", "-r", "carol=none").output
    bad = wapi(env, "share", "artifact", "tool", "-r", "dave=boss")
    assert bad.exit_code == ExitCode.USAGE and "USER=ROLE" in bad.output
    assert wapi(env, "share", "bundle", "cpu.small").exit_code == ExitCode.USAGE

    copy = wapi(env, "clone", "tool", "--name", "tool-next")
    assert copy.exit_code == 0 and "artifact/tool-next: draft" in copy.output, copy.output
    cloned = json.loads(wapi(env, "get", "artifact", "tool-next", "-o", "json").output)
    assert cloned["status"] == "draft" and cloned["spec"]["containerGroups"][0]["containers"][0][
        "imageUri"
    ] == ("registry.example.com/team/tool:1")

    wapi(env, "create", "secret", "db-password", "--from-file", "-", stdin="first\n")
    rotated = wapi(env, "rotate", "db-password", "--from-file", "-", stdin="second-value\n")
    assert rotated.exit_code == 0 and "version 2" in rotated.output, rotated.output
    assert "second-value" not in rotated.output
    assert wapi(env, "rotate", "nope", "--from-file", "-", stdin="x").exit_code == (
        ExitCode.NOT_FOUND
    )
