"""Secrets on the wire: a value goes in, only metadata ever comes out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, StringConstraints

from models.artifacts import Description
from models.common import CamelModel, InputModel, UserRef

MAX_VALUE_BYTES = 64 * 1024


def _storable(value: SecretStr) -> SecretStr:
    # SecretStr escapes InputModel's NUL check (it is not a str); an environment variable
    # cannot hold NUL either. The messages never quote the value.
    plain = value.get_secret_value()
    if not plain:
        raise ValueError("must not be empty")
    if "\x00" in plain:
        raise ValueError("must not contain NUL characters")
    if len(plain.encode()) > MAX_VALUE_BYTES:
        raise ValueError(f"must be at most {MAX_VALUE_BYTES} bytes (UTF-8)")
    return value


SecretName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
    ),
    Field(
        description="Unique; letters, digits, '.', '_' and '-', starting and ending with a letter "
        "or digit, at most 128 characters.",
        examples=["openai-api-key"],
    ),
]
SecretValue = Annotated[
    SecretStr,
    AfterValidator(_storable),
    Field(
        description=f"At most {MAX_VALUE_BYTES} bytes. Stored encrypted; never returned.",
        examples=["example-token-0123456789abcdef"],
    ),
]


class SecretCreate(InputModel):
    name: SecretName
    description: Description = ""
    value: SecretValue


class SecretRotate(InputModel):
    """A new value; workloads get it at their next start."""

    value: SecretValue


class SecretPublic(CamelModel):
    """A secret's metadata. The value is write-only."""

    id: str = Field(examples=["65f1c0ffee65f1c0ffee65f1"])
    name: str = Field(examples=["openai-api-key"])
    description: str
    version: int = Field(description="1 when created; each rotation adds one.", examples=[1])
    creator: UserRef
    created_at: datetime
    updated_at: datetime = Field(description="When the value was last set.")
