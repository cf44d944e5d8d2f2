"""deploy/observability/ checked by Debian's promtool: the scrape configuration, the alert rules
and their unit tests (alerts.test.yml); the Grafana dashboard's shape."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.prometheus import (
    OBSERVABILITY,
    alert_rules,
    alert_signal,
    dashboard_queries,
    scrape_config,
)


def promtool(*arguments: str, cwd: Path = OBSERVABILITY) -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed (`make test` installs Debian's prometheus)"
    done = subprocess.run(
        [binary, *arguments], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_scrape_configuration_is_valid(tmp_path: Path) -> None:
    # As shipped, next to the token file an installation puts beside it.
    shutil.copytree(OBSERVABILITY, tmp_path, dirs_exist_ok=True)
    (tmp_path / "wapi-metrics-token").write_text("a token")
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    # And as the end-to-end test rewrites it.
    generated = scrape_config(
        tmp_path, {"wapi-api": "127.0.0.1:1", "wapi-gateway": "127.0.0.1:2"}, "token"
    )
    promtool("check", "config", str(generated))


def test_the_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def test_every_alert_the_issue_names_exists_and_is_tested() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "WapiDeploymentDegraded",
        "WapiWorkloadErrored",
        "WapiWorkloadCrashLooping",
        "WapiGateway5xxRate",
        "WapiAuditWriterFailing",
        "WapiGatewayAuditFailing",
    } <= names
    tested = (OBSERVABILITY / "alerts.test.yml").read_text()
    for name in names:
        assert f"alertname: {name}" in tested, f"{name} has no unit test"
    for rule in alert_rules():
        assert rule["annotations"]["summary"] and rule["labels"]["severity"]
        alert_signal(rule["expr"])  # ends in one comparison (the e2e test strips it)


@pytest.mark.parametrize("section", ["Control plane", "Invoke gateway", "Deployment $deployment"])
def test_the_dashboard_covers_the_control_plane_and_each_deployment(section: str) -> None:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    assert section in [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert variables == {"datasource", "deployment"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(expr.strip() for _, expr in dashboard_queries())
