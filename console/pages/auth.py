"""Signing in with an API key, and out."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from client import AuthenticationError
from console.session import COOKIE, LOGIN_COOKIE, Session
from console.visit import ActionDep, base_of, console_of, read_form, render, safe_target, see_other

router = APIRouter()


@router.get("/login")
async def sign_in_page(request: Request, next: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", login_token=token, next=next, problem=None)
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    target = safe_target(request, form.get("next"))
    if not expected or not hmac.compare_digest(form.get("login_token", ""), expected):
        return see_other(request, f"{base_of(request)}/login", error="reload the page and retry")
    key = form.get("api_key", "").strip()
    console = console_of(request)
    problem = None
    async with console.client(request, key) as api:
        try:
            me = await api.api_keys.me()
        except AuthenticationError:
            problem = "The API does not accept this key: it is wrong, revoked, or an invoke token."
    if problem:
        return render(
            request,
            "login.html",
            login_token=expected,
            next=form.get("next", ""),
            problem=problem,
            status=401,
        )
    session = Session.start(key, me.username, me.role)
    response = see_other(request, target)
    _set_cookie(
        request,
        response,
        COOKIE,
        console.codec.seal(session),
        max_age=console.codec.max_age_seconds,
    )
    response.delete_cookie(LOGIN_COOKIE, path=base_of(request) or "/")
    return response


@router.post("/logout")
async def sign_out(action: ActionDep) -> Response:
    request = action.visit.request
    response = see_other(request, f"{base_of(request)}/login", notice="Signed out.")
    response.delete_cookie(COOKIE, path=base_of(request) or "/")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=base_of(request) or "/",
        httponly=True,
        samesite="strict" if name == LOGIN_COOKIE else "lax",
        secure=request.url.scheme == "https",
    )
