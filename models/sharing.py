"""Sharing on the wire: who holds which role on a resource (`.../{id}/sharedRoles/`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from models.api_keys import Username
from models.common import CamelModel, InputModel

ShareRole = Literal["owner", "user", "consumer"]
ResourceType = Literal["artifact", "collection", "workload", "secret", "deployment"]
RecipientType = Literal["user"]


class RoleChange(InputModel):
    username: Username
    role: ShareRole | None = Field(description="null removes the user's role.")
    share_recipient_type: RecipientType = Field(
        "user", description="Who receives the role; only users exist so far (no groups)."
    )


class RolesUpdate(InputModel):
    """Grant, change or remove the listed users' roles; users not listed keep theirs."""

    operation: Literal["updateRoles"] = "updateRoles"
    roles: list[RoleChange] = Field(
        min_length=1,
        max_length=100,
        examples=[[{"username": "bob", "role": "consumer"}, {"username": "carol", "role": None}]],
    )


class SharedRole(CamelModel):
    id: str = Field(description="The recipient's id: its username.")
    name: str = Field(description="The recipient's name: its username.")
    username: str
    role: ShareRole
    share_recipient_type: RecipientType
    granted_by: str
    granted_at: datetime
