"""Custom search attributes of the entity workflows, so operators can find workflows in the
Temporal UI or CLI by what they are about: `WapiStatus = "errored" AND WapiArtifactId = "..."`.

The API sets them when it starts a workflow (with a static summary, `user_metadata`), and the
workflow keeps the ones that change (status, a deployment's current workload, swap, rollout)
current on every transition. A Temporal server must have them registered (`wapi run` and the
test suite start the dev server with `--search-attribute`; a cluster: docs/operations.md). With
`WAPI_TEMPORAL_SEARCH_ATTRIBUTES=false` none are set, and a workflow started without them never
upserts any (`indexed`), so the same code runs against a server that lacks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair

# Added after the first release: histories recorded before it upsert nothing.
SEARCH_ATTRIBUTES_PATCH = "search-attributes"

WORKLOAD_ID = SearchAttributeKey.for_keyword("WapiWorkloadId")
DEPLOYMENT_ID = SearchAttributeKey.for_keyword("WapiDeploymentId")
NAME = SearchAttributeKey.for_keyword("WapiName")
STATUS = SearchAttributeKey.for_keyword("WapiStatus")
ARTIFACT_ID = SearchAttributeKey.for_keyword("WapiArtifactId")
COLLECTION_ID = SearchAttributeKey.for_keyword("WapiCollectionId")
OWNER = SearchAttributeKey.for_keyword("WapiOwner")
SWAP_STATUS = SearchAttributeKey.for_keyword("WapiSwapStatus")
# A deployment's rollout: its status and the candidate's weight (the step: the rollout query).
# The dev server's SQLite visibility takes at most 10 keyword attributes, hence an Int here.
ROLLOUT_STATUS = SearchAttributeKey.for_keyword("WapiRolloutStatus")
ROLLOUT_WEIGHT = SearchAttributeKey.for_int("WapiRolloutWeight")

ALL: tuple[SearchAttributeKey[str], ...] = (
    WORKLOAD_ID,
    DEPLOYMENT_ID,
    NAME,
    STATUS,
    ARTIFACT_ID,
    COLLECTION_ID,
    OWNER,
    SWAP_STATUS,
    ROLLOUT_STATUS,
)
INTS: tuple[SearchAttributeKey[int], ...] = (ROLLOUT_WEIGHT,)


def dev_server_args() -> list[str]:
    """`temporal server start-dev` arguments that register every attribute."""
    keywords = [f"{key.name}=Keyword" for key in ALL]
    ints = [f"{key.name}=Int" for key in INTS]
    return [arg for spec in (*keywords, *ints) for arg in ("--search-attribute", spec)]


def pairs(values: dict[SearchAttributeKey[str], str]) -> list[SearchAttributePair[str]]:
    return [SearchAttributePair(key, value) for key, value in values.items()]


def indexed() -> bool:
    """Whether this workflow was started with search attributes (so they are registered)."""
    return workflow.info().typed_search_attributes.get(STATUS) is not None


def upsert(values: Mapping[SearchAttributeKey[Any], str | int]) -> None:
    """Keep the attributes current, in workflows started with them (replay-safe by a patch).
    Values they already have are left out: an unchanged status adds no history event."""
    if not indexed():
        return
    current = workflow.info().typed_search_attributes
    changed = [key.value_set(value) for key, value in values.items() if current.get(key) != value]
    if changed and workflow.patched(SEARCH_ATTRIBUTES_PATCH):
        workflow.upsert_search_attributes(changed)
