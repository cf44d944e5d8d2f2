"""One console request: who is signed in, an API client acting with their key, and how pages
answer (rendered templates, redirects with a notice, checked forms)."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.types import ASGIApp

from client import AsyncClient
from client.transport import NO_RETRIES
from config.settings import Settings
from console.capabilities import Capabilities
from console.formatting import FILTERS
from console.links import workflow_url
from console.session import COOKIE, Session, SessionCodec
from console.transport import InProcessTransport

Option = TypeVar("Option", bound=str)
FLASH_COOKIE = "wapi_console_flash"
MAX_FORM_BYTES = 512 * 1024


class SignInRequired(Exception):
    """No session, or one that has expired: the user signs in (again)."""

    def __init__(self, notice: str | None = None) -> None:
        super().__init__(notice or "sign in")
        self.notice = notice


class FormRefused(Exception):
    """A state-changing form without this session's CSRF token, or sent from another site."""


@dataclass
class Console:
    """What every console request shares: settings, the session sealer, the API app the
    typed client calls into, and the templates."""

    settings: Settings
    api_app: ASGIApp
    codec: SessionCodec = field(init=False)
    templates: Jinja2Templates = field(init=False)

    def __post_init__(self) -> None:
        self.codec = SessionCodec(self.settings)
        env = Environment(
            loader=PackageLoader("console", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(FILTERS)
        self.templates = Jinja2Templates(env=env)

    def client(self, request: Request, api_key: str) -> AsyncClient:
        """The typed client, calling the API in this process with `api_key`, as the browser:
        the answers' URLs name the host the browser used, and audit records its address."""
        peer = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 0)
        return AsyncClient(
            f"{request.url.scheme}://{request.url.netloc}",
            api_key,
            gateway_url=self.settings.public_gateway_url,
            retry=NO_RETRIES,  # a page shows what happened now; the user can retry
            transport=InProcessTransport(self.api_app, peer),
        )


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def base_of(request: Request) -> str:
    """Where the console is mounted (`/console`)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def is_fragment(request: Request) -> bool:
    """A request htmx made for part of a page."""
    return request.headers.get("HX-Request") == "true"


@dataclass
class Visit:
    request: Request
    session: Session
    api: AsyncClient
    can: Capabilities

    @property
    def base(self) -> str:
        return base_of(self.request)


async def visit(request: Request) -> AsyncIterator[Visit]:
    console = console_of(request)
    session = console.codec.open(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    api = console.client(request, session.api_key)
    try:
        yield Visit(request, session, api, Capabilities(session.role))
    finally:
        await api.aclose()


VisitDep = Annotated[Visit, Depends(visit)]


@dataclass
class Action:
    """A state-changing form, checked: same origin and this session's CSRF token."""

    visit: Visit
    form: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.form.get(name, default).strip()

    def number(self, name: str, default: str = "") -> int | str:
        """A whole number, or the text as typed (for the API's 422 to name)."""
        text = self.get(name, default)
        return int(text) if text.isdigit() else text

    @property
    def back(self) -> str:
        """Where the form was sent from, to return to."""
        return safe_target(self.visit.request, self.form.get("back"))

    def done(self, notice: str, to: str | None = None) -> Response:
        """Redirect to `to` (a path in the console), or back to the form's page."""
        target = self.visit.base + to if to else self.back
        return see_other(self.visit.request, target, notice=notice)


async def read_form(request: Request) -> dict[str, str]:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise FormRefused("the form is too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormRefused("the form is too large")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    request.state.form = form
    return form


def same_origin(request: Request) -> bool:
    """No `Origin` (not a browser, or an old one: the CSRF token still decides), or this host.
    Only hosts are compared: behind a TLS proxy the browser's scheme is not the one seen here."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.url.netloc


async def action(current: VisitDep) -> Action:
    request = current.request
    form = await read_form(request)
    token = form.get("csrf") or request.headers.get("X-CSRF-Token", "")
    if not same_origin(request) or not hmac.compare_digest(token, current.session.csrf):
        raise FormRefused("the form is stale or was not sent from this console; reload the page")
    return Action(current, form)


ActionDep = Annotated[Action, Depends(action)]


def safe_target(request: Request, target: str | None) -> str:
    """`target` if it is a console page, else the console's start page."""
    base = base_of(request)
    if (
        target
        and target.startswith(base + "/")
        and not target.startswith("//")
        and "\\" not in target
        and urlsplit(target).netloc == ""
    ):
        return target
    return base + "/workloads"


def render(
    request: Request,
    template: str,
    current: Visit | None = None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    console = console_of(request)
    flash = _read_flash(request)
    response = console.templates.TemplateResponse(
        request,
        template,
        {
            "base": base_of(request),
            "section": "",
            "visit": current,
            "session": current.session if current else None,
            "can": current.can if current else None,
            "csrf": current.session.csrf if current else "",
            "here": page_address(request),
            "flash": flash,
            "workflow_url": partial(workflow_url, console.settings),
            **context,
        },
        status_code=status,
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path=base_of(request) or "/")
    return response


def see_other(
    request: Request, url: str, *, notice: str | None = None, error: str | None = None
) -> Response:
    """Redirect after a form, with a one-time message for the next page. htmx requests get
    `HX-Redirect`, which htmx follows with a full page load."""
    if is_fragment(request):
        response: Response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if notice or error:
        text = error or notice or ""
        value = json.dumps({"kind": "error" if error else "notice", "text": text[:500]})
        response.set_cookie(
            FLASH_COOKIE,
            base64.urlsafe_b64encode(value.encode()).decode(),
            path=base_of(request) or "/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    try:
        flash = json.loads(base64.urlsafe_b64decode(value.encode()))
        return {"kind": str(flash["kind"]), "text": str(flash["text"])}
    except (ValueError, KeyError, TypeError):
        return None


def page_address(request: Request) -> str:
    """The page the browser shows: for an htmx request, the page that made it."""
    if is_fragment(request) and (current := request.headers.get("HX-Current-URL")):
        parts = urlsplit(current)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def sign_in_url(request: Request) -> str:
    return f"{base_of(request)}/login?next={quote(page_address(request), safe='/')}"


def fragment(request: Request, template: str, **context: Any) -> str:
    """A template rendered to a string (for server-sent events)."""
    console = console_of(request)
    html: str = console.templates.get_template(template).render(
        base=base_of(request), request=request, **context
    )
    return html


def choice(value: str, allowed: tuple[Option, ...]) -> Option | None:
    """`value` if it is one of `allowed` (a filter from the address bar), else None."""
    return next((option for option in allowed if option == value), None)
