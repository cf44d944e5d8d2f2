"""API keys for the management API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from models.common import CamelModel, InputModel, UserRef

Role = Literal["admin", "editor", "viewer"]
Username = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
]


class ApiKeyCreate(InputModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        examples=["ci-pipeline"]
    )
    username: Username = Field(
        description="The person or system the key acts for.", examples=["bob"]
    )
    role: Role = Field(
        description="admin: everything incl. keys; editor: create and change; viewer: read only.",
        examples=["editor"],
    )


class ApiKeyPublic(CamelModel):
    id: str
    name: str
    username: str
    role: Role
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    creator: UserRef
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself. It is shown this once and never again.")
