"""Debian's Prometheus for tests: the repository's scrape configuration and alert rules, pointed
at the test's own processes, served on loopback only."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.ports import free_port

OBSERVABILITY = Path(__file__).parents[2] / "deploy" / "observability"
COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[0-9.]+\s*$")


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def alert_signal(expr: str) -> str:
    """The expression without its final comparison: the series the alert watches."""
    signal, found = COMPARISON.subn("", expr.strip())
    assert found == 1, f"an alert must end in one comparison with a number: {expr}"
    return signal


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel of the Grafana dashboard."""
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def grafana_to_promql(expr: str, deployment: str) -> str:
    """What Grafana sends for a query: its variables filled in."""
    return expr.replace("$__rate_interval", "1m").replace("$deployment", deployment)


def scrape_config(directory: Path, targets: dict[str, str], token: str) -> Path:
    """The repository's prometheus.yml with the test's targets, a 1 s interval, and the rule
    file by absolute path."""
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(OBSERVABILITY / rule) for rule in config["rule_files"]]
    (directory / "wapi-metrics-token").write_text(token)
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
        job["authorization"]["credentials_file"] = str(directory / "wapi-metrics-token")
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def prometheus_server(directory: Path, config: Path) -> Iterator[str]:
    """`prometheus` on a free loopback port; yields its base URL once it is ready."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (`make test` installs Debian's package)"
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with (directory / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (directory / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
