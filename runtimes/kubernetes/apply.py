"""Applying one generation's plan to the cluster, idempotently, and telling drift from it.

Every write is a server-side apply as the field manager `workload-api`, with `force`: a
retried activity never duplicates anything, and it takes back whatever someone changed by
hand. Each object is read first: one that already matches the plan (same spec hash) is left
alone, one that is still being deleted is waited for (applying to it would "adopt" an object
about to vanish), one not managed by this workload is refused. The anchor (`wapi-W`) is
applied first, so everything applied after it names a live owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from models.plan import RunPlan
from runtimes.base import LABEL_MANAGED, LABEL_WORKLOAD
from runtimes.errors import RuntimeUnavailableError, StartFailedError
from runtimes.kubernetes import manifests
from runtimes.kubernetes.client import KubeApi, NotFound
from runtimes.kubernetes.gpu import ClusterOptions

# An object being deleted (finalizers, foreground deletion) is waited for this long per apply.
TERMINATING_WAIT_SECONDS = 30.0
_TERMINATING_POLL_SECONDS = 0.5
# The kinds whose drift is repaired (Secrets are immutable and named by their content).
REPAIRED_KINDS = ("Deployment", "Service")

Key = tuple[str, str]  # (kind, name)


class Applier:
    def __init__(
        self,
        api: KubeApi,
        plan: RunPlan,
        secrets: Mapping[str, str],
        options: ClusterOptions,
    ) -> None:
        self._api = api
        self._plan = plan
        # Held in memory only: the values go into the Secret object and nowhere else.
        self._secrets = dict(secrets)
        self._options = options
        self.secret_name: str | None = None
        # What the last apply made of the plan: what drift is repaired back to.
        self.desired: dict[Key, dict[str, Any]] = {}

    async def apply(self) -> dict[str, str]:
        """Bring the cluster objects to the plan; returns what happened to each object."""
        wid, namespace = self._plan.workload_id, self._api.namespace
        anchor = manifests.build_anchor(wid, namespace)
        live_anchor = await self._live(anchor)
        outcome = {f"ConfigMap/{anchor['metadata']['name']}": "unchanged"}
        if live_anchor is None:
            live_anchor = await self._api.apply(anchor)
            outcome[f"ConfigMap/{anchor['metadata']['name']}"] = "created"
        try:
            objects = manifests.manifests(
                self._plan, namespace, self._secrets, owner=live_anchor, options=self._options
            )
        except ValueError as exc:
            raise StartFailedError(str(exc)) from exc
        for manifest in objects:
            outcome[f"{manifest['kind']}/{manifest['metadata']['name']}"] = await self._ensure(
                manifest
            )
            if manifest["kind"] == "Secret":
                self.secret_name = manifest["metadata"]["name"]
        self.desired = {
            (manifest["kind"], manifest["metadata"]["name"]): manifest
            for manifest in objects
            if manifest["kind"] in REPAIRED_KINDS
        }
        # A previous generation may have had groups or ports this one lacks. (Its Secrets
        # stay until its pods are gone: they may restart meanwhile.)
        wanted = {(manifest["kind"], manifest["metadata"]["name"]) for manifest in objects}
        for kind in REPAIRED_KINDS:
            for item in await self._api.list(kind, manifests.workload_labels(wid)):
                name = item["metadata"]["name"]
                if (kind, name) not in wanted and await self._api.delete(kind, name):
                    outcome[f"{kind}/{name}"] = "deleted"
        return outcome

    def drift(self, live: Mapping[Key, dict[str, Any]]) -> dict[Key, str]:
        """Which objects of the last apply `live` (what a watch shows) has "deleted" or
        "changed". One being deleted is not drift yet: its deletion will be."""
        drifted = {}
        for key, manifest in self.desired.items():
            current = live.get(key)
            if current is None:
                drifted[key] = "deleted"
            elif not current["metadata"].get("deletionTimestamp") and not matches(
                manifest, current
            ):
                drifted[key] = "changed"
        return drifted

    async def _ensure(self, manifest: dict[str, Any]) -> str:
        live = await self._live(manifest)
        if live is not None and matches(manifest, live):
            return "unchanged"
        await self._api.apply(manifest)
        return "created" if live is None else "applied"

    async def _live(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """The live object (None if there is none), once it is not being deleted."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        deadline = time.monotonic() + TERMINATING_WAIT_SECONDS
        while True:
            try:
                live = await self._api.get(kind, name)
            except NotFound:
                return None
            if not live["metadata"].get("deletionTimestamp"):
                break
            if time.monotonic() > deadline:
                raise RuntimeUnavailableError(
                    f"{kind} {name} is still being deleted after "
                    f"{TERMINATING_WAIT_SECONDS:.0f} s (finalizers: "
                    f"{live['metadata'].get('finalizers') or 'none'}); will retry"
                )
            await asyncio.sleep(_TERMINATING_POLL_SECONDS)
        labels = live["metadata"].get("labels") or {}
        if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_WORKLOAD) != (
            self._plan.workload_id
        ):
            raise StartFailedError(f"{kind} {name} exists and is not managed by this workload")
        return live


def matches(desired: dict[str, Any], live: dict[str, Any]) -> bool:
    """The live object is what we would apply: same spec hash (and, for a Deployment, the
    same replica count: `halt()` and a `kubectl scale` change it without the hash)."""
    live_hash = (live["metadata"].get("annotations") or {}).get(manifests.ANNOTATION_SPEC_HASH)
    if live_hash != desired["metadata"]["annotations"][manifests.ANNOTATION_SPEC_HASH]:
        return False
    if desired["kind"] != "Deployment":
        return True
    return bool((live.get("spec") or {}).get("replicas") == desired["spec"]["replicas"])
