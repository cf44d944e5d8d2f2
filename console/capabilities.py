"""What the signed-in user may do, so pages offer only that. The API decides in the end (every
action is an API call with the user's key); this only keeps impossible buttons off the page.

The key's global role comes from `GET /apiKeys/me/`; a deployment's answer carries the caller's
role on it. When other resources carry a role of their own, their checks belong here.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.api_keys import Role
from models.deployments import DeploymentPublic

RANK: dict[Role, int] = {"viewer": 0, "editor": 1, "admin": 2}


@dataclass(frozen=True)
class Capabilities:
    role: Role

    @property
    def edits(self) -> bool:
        """Create and change artifacts, workloads and deployments."""
        return RANK[self.role] >= RANK["editor"]

    @property
    def audits(self) -> bool:
        """Read and verify the audit log."""
        return self.role == "admin"

    def manages_deployment(self, deployment: DeploymentPublic) -> bool:
        """Edit, swap, delete, and hand out tokens and roles."""
        return self.edits and deployment.role == "owner"

    def invokes_deployment(self, deployment: DeploymentPublic) -> bool:
        """Any role on it may call it (consumers only call it: they cannot read it)."""
        return deployment.role is not None
