"""The console's ASGI app, mounted by the API under `/console/`.

Pages are rendered on the server (Jinja2) and kept live by htmx (polled fragments, and
server-sent events for events and logs). Every read and action is a call of the management API
through the typed client, with the signed-in user's key: the console can do nothing the key
cannot, and everything it does is audited as that user's call.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from client import ApiError, AuthenticationError, WapiError
from config.settings import Settings
from console.pages import artifacts, audit, auth, deployments, sharing, workloads
from console.session import COOKIE
from console.visit import (
    Console,
    FormRefused,
    SignInRequired,
    base_of,
    is_fragment,
    render,
    safe_target,
    see_other,
    sign_in_url,
)

PREFIX = "/console"
ROUTERS = [m.router for m in (auth, artifacts, workloads, deployments, sharing, audit)]
STATIC = Path(str(files("console") / "static"))
# Scripts and styles come from the console's own files only; nothing inline, nothing evaluated.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


def mount(app: FastAPI, settings: Settings) -> None:
    """Serve the console under `/console/` of `app`, calling `app` itself for the API."""
    app.mount(PREFIX, create_console(app, settings), name="console")

    @app.get(PREFIX, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)


def create_console(api_app: ASGIApp, settings: Settings) -> ASGIApp:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.console = Console(settings, api_app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def start(request: Request) -> RedirectResponse:
        return RedirectResponse(base_of(request) + "/workloads", status_code=303)

    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(WapiError, _api_error)  # ApiError and connection failures
    app.add_exception_handler(FormRefused, _refused)
    return SecurityHeaders(app)


async def _sign_in(request: Request, error: Exception) -> Response:
    notice = error.notice if isinstance(error, SignInRequired) else None
    url = sign_in_url(request)
    response = see_other(request, url, error=notice)
    if notice:
        response.delete_cookie(COOKIE, path=base_of(request) or "/")
    return response


async def _api_error(request: Request, error: Exception) -> Response:
    """A refused or failed API call: back to the form with the reason, or an error page."""
    if isinstance(error, AuthenticationError):
        return await _sign_in(
            request, SignInRequired("the API no longer accepts your key; sign in again")
        )
    message = str(error)
    form: dict[str, str] | None = getattr(request.state, "form", None)
    if request.method == "POST" and form is not None and not is_fragment(request):
        return see_other(request, safe_target(request, form.get("back")), error=message)
    status = error.status if isinstance(error, ApiError) else 502
    if is_fragment(request):  # swapped in place of the part that failed (htmx swaps only 2xx)
        return render(request, "_error.html", error=error, message=message)
    return render(request, "error.html", error=error, message=message, status=status)


async def _refused(request: Request, error: Exception) -> Response:
    return render(request, "error.html", error=error, message=str(error), status=403)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(f"{scope.get('root_path', '')}/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
