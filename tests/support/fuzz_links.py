"""The state an operation of the fuzz run (tests/test_api_fuzz.py) needs before a generated
call of it can succeed, made through the API: the part OpenAPI links play in schemathesis's
stateful testing. A swap needs a deployment and a second registered workload, cancelling one
needs a swap in progress (steering a rollout, a rollout in progress), revoking a token needs a
token, deleting a workload one that no deployment routes to, starting one a stopped workload,
replacing one's artifact a running workload (reading or cancelling it, a replacement).

Every call here is checked for a 5xx like the fuzz's own; its answers are not coverage.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

ARTIFACTS = "/api/v2/registry/artifacts/"
WORKLOADS = "/api/v2/console/workloads/"
DEPLOYMENTS = "/api/v2/console/deployments/"
READY = {"path": "/ready", "periodSeconds": 1}


class Links:
    """Fresh resources for one operation's path parameters and body references; each answer
    that creates one is passed to `created` (path, JSON body)."""

    def __init__(
        self, client: httpx.Client, image: str, created: Callable[[str, Any], None]
    ) -> None:
        self.client = client
        self.image = image
        self.created = created

    def for_operation(self, method: str, path: str) -> dict[str, str]:
        """Ids by parameter name (`artifactId`, `workloadId`, ...) for a call of
        `method path` that can answer 2xx."""
        made: dict[str, str] = {}
        if "{artifactId}" in path:
            made["artifactId"] = self._artifact("draft")["id"]
        if "{collectionId}" in path:
            made["collectionId"] = self._artifact("registered")["collectionId"]
        if "{workloadId}" in path:
            made["workloadId"] = self._workload()
            if path.endswith("/start/"):
                self._stopped(made["workloadId"])
        if "{deploymentId}" in path:
            made["deploymentId"] = self.deployment()
        if "{tokenId}" in path:
            made["tokenId"] = self._post(
                f"{DEPLOYMENTS}{made['deploymentId']}/tokens/", {"name": "t"}
            )
        if path.endswith("/swap/") and method == "post":
            made["workloadId"] = self._workload()
        if path.endswith("/swap/") and method == "delete":
            # A candidate that takes a minute to get ready keeps the swap in progress.
            slow = self._workload(command=["slow-start", "60"])
            self._post(f"{DEPLOYMENTS}{made['deploymentId']}/swap/", {"workloadId": slow})
        if "{rolloutId}" in path:
            # As for a swap: a slow candidate keeps the rollout in progress; resuming needs
            # it paused.
            slow = self._workload(command=["slow-start", "60"])
            rollouts = f"{DEPLOYMENTS}{made['deploymentId']}/rollouts/"
            steps = [{"setWeight": 10}, {"pause": {}}]
            made["rolloutId"] = self._post(rollouts, {"workloadId": slow, "steps": steps})
            if path.endswith("/resume/"):
                self._checked(self.client.post(f"{rollouts}{made['rolloutId']}/pause/"))
        if path.endswith("/rollouts/") and method == "post":
            made["workloadId"] = self._workload()
        if path.endswith("/replacement/"):
            # A running workload, and a new version that takes a minute to get ready (so
            # the replacement stays in progress for reading and cancelling).
            made["workloadId"] = self._workload()
            self._wait(made["workloadId"], {"running"})
            made["artifactId"] = self._artifact("registered", command=["slow-start", "60"])["id"]
            if method != "post":
                body = {"artifactId": made["artifactId"], "strategy": "rolling"}
                self._checked(
                    self.client.post(f"{WORKLOADS}{made['workloadId']}/replacement/", json=body)
                )
        if "{keyId}" in path:
            body = {"name": "k", "username": f"u{uuid.uuid4().hex[:8]}", "role": "viewer"}
            made["keyId"] = self._post("/api/v2/apiKeys/", body)
        if "{secretId}" in path:
            body = {"name": f"s{uuid.uuid4().hex[:12]}", "value": "v"}
            made["secretId"] = self._post("/api/v2/secrets/", body)
        if "{bundleId}" in path:
            made["bundleId"] = self._get("/api/v2/resourceBundles/")["data"][0]["id"]
        if path == WORKLOADS and method == "post":
            made["artifactId"] = self._artifact("registered")["id"]
        if path == DEPLOYMENTS and method == "post":
            made["workloadId"] = self._workload()
        return made

    def _artifact(self, status: str, **container: Any) -> dict[str, Any]:
        container = {"imageUri": self.image, "port": 8080, "readinessProbe": READY, **container}
        spec = {"containerGroups": [{"containers": [container]}]}
        body = {"name": "link", "status": status, "spec": spec}
        answer = self._checked(self.client.post(ARTIFACTS, json=body)).json()
        self.created(ARTIFACTS, answer)
        return dict(answer)

    def _workload(self, **container: Any) -> str:
        artifact = self._artifact("registered", **container)["id"]
        return self._post(WORKLOADS, {"name": "link", "artifactId": artifact})

    def deployment(self) -> str:
        """A deployment in front of a workload of a registered artifact."""
        return self._post(DEPLOYMENTS, {"name": "link", "workloadId": self._workload()})

    def _stopped(self, workload_id: str) -> None:
        self._checked(self.client.post(f"{WORKLOADS}{workload_id}/stop/"))
        self._wait(workload_id, {"stopped", "errored"})

    def _wait(self, workload_id: str, statuses: set[str]) -> None:
        deadline = time.monotonic() + 120  # generous: a busy 2-core machine
        while self._get(f"{WORKLOADS}{workload_id}/")["status"] not in statuses:
            assert time.monotonic() < deadline, f"workload {workload_id} never {statuses}"
            time.sleep(0.5)

    def _post(self, path: str, body: dict[str, Any]) -> str:
        answer = self._checked(self.client.post(path, json=body)).json()
        self.created(path, answer)
        return str(answer["id"])

    def _get(self, path: str) -> dict[str, Any]:
        return dict(self._checked(self.client.get(path)).json())

    @staticmethod
    def _checked(answer: httpx.Response) -> httpx.Response:
        assert answer.is_success, f"{answer.request.method} {answer.request.url}: {answer.text}"
        return answer
