"""What every API command shares: the connection (flags, contexts, environment), the client,
and one mapping from failures to exit codes that scripts can rely on (docs/cli.md)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from client import Client
from client.contexts import ContextError, resolve
from client.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    TooManyRequestsError,
    UnavailableError,
    WaitFailedError,
    WaitTimeoutError,
    WapiError,
)

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # anything else, e.g. a 500
    USAGE = 2  # a bad command line
    NOT_FOUND = 3
    CONFLICT = 4  # 409/412, an ambiguous name, a change that cannot apply now
    INVALID = 5  # 422, or a stack file that is not valid
    DENIED = 6  # 401/403
    UNAVAILABLE = 7  # 503/502/504/429 after retries, or the API cannot be reached
    TIMEOUT = 8  # --wait ran out of time
    FAILED = 9  # --wait saw a failure: a workload errored, a swap rolled back
    CHANGES = 10  # `wapi diff`: the file and the API differ


class UserError(Exception):
    """A problem the user can fix, with the exit code it deserves."""

    def __init__(self, message: str, code: ExitCode = ExitCode.INVALID) -> None:
        super().__init__(message)
        self.code = code


_API_CODES: list[tuple[type[ApiError], ExitCode]] = [
    (NotFoundError, ExitCode.NOT_FOUND),
    (ConflictError, ExitCode.CONFLICT),
    (PreconditionFailedError, ExitCode.CONFLICT),
    (InvalidInputError, ExitCode.INVALID),
    (AuthenticationError, ExitCode.DENIED),
    (PermissionDeniedError, ExitCode.DENIED),
    (UnavailableError, ExitCode.UNAVAILABLE),
    (TooManyRequestsError, ExitCode.UNAVAILABLE),
]


def exit_code_for(error: Exception) -> ExitCode:
    if isinstance(error, UserError):
        return error.code
    for kind, code in _API_CODES:
        if isinstance(error, kind):
            return code
    if isinstance(error, ConnectionFailedError):
        return ExitCode.UNAVAILABLE
    if isinstance(error, WaitTimeoutError):
        return ExitCode.TIMEOUT
    if isinstance(error, WaitFailedError):
        return ExitCode.FAILED
    if isinstance(error, ContextError | ValidationError):
        return ExitCode.INVALID
    return ExitCode.ERROR


def make_console() -> Console:
    """Wide enough for tables when the output goes to a file or a pipe, not a terminal."""
    return Console(width=None if sys.stdout.isatty() else 200)


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command; a failure prints one line to stderr and exits with its code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (WapiError, ContextError, UserError, ValidationError) as error:
            SESSION.errors.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code_for(error)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        finally:
            SESSION.close()
            sys.stdout.flush()

    return run


@dataclass
class Session:
    """Set by the `wapi` callback from `--context` and `--api-url`; one client per command."""

    context: str | None = None
    api_url: str | None = None
    console: Console = field(default_factory=lambda: make_console())
    errors: Console = field(default_factory=lambda: Console(stderr=True))
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            connection = resolve(self.context, self.api_url)
            if not connection.api_key:
                raise UserError(
                    f"no API key for {connection.api_url}: set WAPI_API_KEY, add a context "
                    "(wapi config set-context), or run where `wapi run` keeps its state",
                    ExitCode.DENIED,
                )
            self._client = Client.connect(connection)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


SESSION = Session()


def reset(context: str | None, api_url: str | None) -> None:
    SESSION.close()
    SESSION.context, SESSION.api_url = context, api_url
    SESSION.console, SESSION.errors = make_console(), Console(stderr=True)
