"""Path and query parameter types shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

_ID = {"pattern": r"^[A-Za-z0-9_-]+$", "max_length": 64, "examples": ["65f1c0ffee65f1c0ffee65f1"]}

ArtifactId = Annotated[str, Path(alias="artifactId", description="An artifact id.", **_ID)]
CollectionId = Annotated[str, Path(alias="collectionId", description="A collection id.", **_ID)]
BundleId = Annotated[
    str,
    Path(alias="bundleId", description="A bundle id.", pattern=r"^[A-Za-z0-9_.-]+$", max_length=64),
]
WorkloadId = Annotated[str, Path(alias="workloadId", description="A workload id.", **_ID)]
DeploymentId = Annotated[str, Path(alias="deploymentId", description="A deployment id.", **_ID)]
RolloutId = Annotated[str, Path(alias="rolloutId", description="A rollout id.", **_ID)]
TokenId = Annotated[str, Path(alias="tokenId", description="An invoke token id.", **_ID)]
KeyId = Annotated[str, Path(alias="keyId", description="An API key id.", **_ID)]
Search = Annotated[
    str | None,
    Query(
        max_length=100,
        pattern=r"^[^\x00]*$",
        description="Case-insensitive text to look for in names, descriptions and ids.",
    ),
]
