"""Base models, list envelopes and the error body shared by every resource."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

T = TypeVar("T")


class CamelModel(BaseModel):
    """Output models: snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class InputModel(CamelModel):
    """Request bodies: unknown fields are an error, so a typo never passes silently.

    Every string is checked for NUL characters, which PostgreSQL cannot store.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _strings_without_nul(cls, value: Any) -> Any:
        _check_nul(value)
        return value


def _check_nul(value: Any) -> None:
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_nul(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_nul(key)
            _check_nul(item)


class UserRef(CamelModel):
    """Who did something: the user an API key belongs to. Users are known by their username,
    which is also their `id`; no email is kept (empty)."""

    id: str = Field("", description="The user's id: their username.", examples=["alice"])
    username: str = Field(examples=["alice"])
    email: str = Field("", description="Empty: no email is kept.")

    @model_validator(mode="after")
    def _id_is_the_username(self) -> UserRef:
        if not self.id:
            self.id = self.username
        return self


class Page(CamelModel, Generic[T]):
    """One page of a list; follow `next` until it is null."""

    count: int = Field(description="Number of items on this page.", examples=[1])
    total_count: int = Field(description="Number of items matching the query.", examples=[1])
    next: str | None = Field(description="Absolute URL of the next page, or null.")
    previous: str | None = Field(description="Absolute URL of the previous page, or null.")
    data: list[T]


class ErrorDetail(CamelModel):
    loc: list[str | int] = Field(
        description="JSON path of the problem: `body`, `query`, `path` or `header`, then keys.",
        examples=[["body", "spec", "containerGroups", 0, "containers", 0, "port"]],
    )
    msg: str = Field(examples=["the primary container needs a port"])
    type: str = Field(examples=["value_error"])


class ErrorBody(CamelModel):
    """The one error shape: a summary, a machine-readable code and the problems found."""

    code: str = Field(examples=["conflict"])
    message: str = Field(examples=["artifact 'a1b2' is registered and cannot be changed"])
    detail: list[ErrorDetail] = Field(default_factory=list)
    request_id: str | None = Field(None, examples=["0f6c2c1e9b7d4f0a"])
