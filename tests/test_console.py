"""The console without a browser: sessions, CSRF, what each role is offered, how API errors
come back, and the in-process transport it calls the API through. (The browser test, on real
containers, is tests/e2e/test_console_browser.py.)"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Mount, Route
from temporalio.client import Client

from api.app import create_app
from config.settings import Settings
from console.app import ROUTERS
from console.links import WORKFLOW_IDS
from console.session import COOKIE, Session, SessionCodec
from console.transport import InProcessTransport
from tests.conftest import ADMIN_KEY, client_for
from tests.factories import artifact
from tests.test_auth import make_key
from workflows import deployment_contract, workload_contract

SPEC_YAML = (
    "containerGroups:\n  - containers:\n      - imageUri: localhost/x:1\n        port: 8080\n"
)


@pytest.fixture
async def console_app(tmp_path: Path, unreachable_temporal: Client) -> AsyncIterator[FastAPI]:
    settings = Settings(
        state_dir=tmp_path / "state",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
        bootstrap_admin_key=ADMIN_KEY,
    )
    app = create_app(settings, temporal_client=unreachable_temporal)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def admin(console_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The API itself, with the admin key."""
    async with client_for(console_app, ADMIN_KEY) as client:
        yield client


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    page = await client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token
    return await client.post(
        "/console/login", data={"login_token": token.group(1), "api_key": key, "next": ""}
    )


async def test_pages_ask_to_sign_in_first(console_app: FastAPI) -> None:
    async with browser(console_app) as client:
        page = await client.get("/console/workloads?status=running")
        assert page.status_code == 303
        assert (
            page.headers["location"] == "/console/login?next=/console/workloads%3Fstatus%3Drunning"
        )
        part = await client.get(
            "/console/workloads/abc/live",
            headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/console/x"},
        )
        assert part.status_code == 204
        assert part.headers["HX-Redirect"] == "/console/login?next=/console/x"
        assert (await client.get("/console")).headers["location"] == "/console/"


async def test_a_session_holds_the_key_sealed_in_an_http_only_cookie(
    console_app: FastAPI,
) -> None:
    async with browser(console_app) as client:
        bad = await sign_in(client, "wapi_not-a-key")
        assert bad.status_code == 401
        assert "does not accept this key" in bad.text
        good = await sign_in(client, ADMIN_KEY)
        assert good.status_code == 303
        cookie = next(c for c in good.headers.get_list("set-cookie") if c.startswith(COOKIE))
        assert ADMIN_KEY not in cookie
        assert "HttpOnly" in cookie
        assert "Path=/console" in cookie
        assert "SameSite=lax" in cookie
        assert (await client.get("/console/workloads")).status_code == 200

        value = client.cookies[COOKIE]
        client.cookies.set(COOKIE, value[:-4] + "AAAA", path="/console")
        assert (await client.get("/console/workloads")).status_code == 303


async def test_a_sign_in_form_from_elsewhere_is_refused(console_app: FastAPI) -> None:
    async with browser(console_app) as client:
        forged = await client.post(
            "/console/login", data={"login_token": "made-up", "api_key": ADMIN_KEY}
        )
        assert forged.status_code == 303
        assert forged.headers["location"] == "/console/login"
        assert f"{COOKIE}=" not in forged.headers.get("set-cookie", "")


def test_sessions_expire_and_cannot_be_forged(tmp_path: Path) -> None:
    codec = SessionCodec(Settings(state_dir=tmp_path, console_session_hours=12))
    session = Session.start(ADMIN_KEY, "admin", "admin")
    assert codec.open(codec.seal(session)) == session
    old = codec.fernet.encrypt_at_time(b'{"api_key": "k"}', int(time.time()) - 13 * 3600)
    assert codec.open(old.decode()) is None
    other = SessionCodec(Settings(state_dir=tmp_path / "elsewhere"))
    assert other.open(codec.seal(session)) is None  # another key: another installation
    assert (tmp_path / "console-session.key").stat().st_mode & 0o077 == 0
    configured = Settings(state_dir=tmp_path / "a", console_session_key="shared-by-every-replica")
    same = Settings(state_dir=tmp_path / "b", console_session_key="shared-by-every-replica")
    assert SessionCodec(same).open(SessionCodec(configured).seal(session)) == session


async def test_every_form_that_changes_something_needs_the_sessions_token(
    console_app: FastAPI,
) -> None:
    posts = [
        route.path
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        and "POST" in (route.methods or ())
        and route.path != "/login"
    ]
    assert len(posts) >= 15
    async with browser(console_app) as client:
        await sign_in(client, ADMIN_KEY)
        token = csrf_of((await client.get("/console/artifacts/new")).text)
        for path in posts:
            url = "/console" + re.sub(r"\{[a-z_]+\}", "x", path)
            for data, headers in (
                ({}, {}),
                ({"csrf": "guess"}, {}),
                ({"csrf": token}, {"Origin": "https://elsewhere.example"}),
            ):
                answer = await client.post(url, data=data, headers=headers)
                assert answer.status_code == 403, (path, data, headers, answer.text[:200])
        created = await client.post(
            "/console/artifacts",
            data={"csrf": token, "name": "ok", "type": "generic", "spec": SPEC_YAML},
            headers={"Origin": "http://testserver"},
        )
        assert created.status_code == 303


async def test_actions_are_api_calls_of_the_signed_in_user(
    console_app: FastAPI, admin: httpx.AsyncClient
) -> None:
    editor_key = await make_key(admin, "editor")
    async with browser(console_app) as client:
        await sign_in(client, editor_key)
        token = csrf_of((await client.get("/console/artifacts/new")).text)
        created = await client.post(
            "/console/artifacts",
            data={"csrf": token, "name": "mine", "type": "generic", "spec": SPEC_YAML},
        )
        artifact_id = created.headers["location"].rsplit("/", 1)[1]
    await asyncio.sleep(0.1)
    record = (await admin.get("/api/v2/auditEvents/", params={"action": "artifact.create"})).json()[
        "data"
    ][-1]
    assert record["actor"] == "editor"
    assert record["resourceId"] == artifact_id
    assert record["statusCode"] == 201


async def test_api_refusals_come_back_to_the_page_that_asked(
    console_app: FastAPI, admin: httpx.AsyncClient
) -> None:
    made = (
        await admin.post("/api/v2/registry/artifacts/", json=artifact(status="registered"))
    ).json()
    page = f"/console/artifacts/{made['id']}"
    async with browser(console_app) as client:
        await sign_in(client, ADMIN_KEY)
        token = csrf_of((await client.get(page)).text)
        again = await client.post(f"{page}/register", data={"csrf": token, "back": page})
        assert again.status_code == 303
        assert again.headers["location"] == page
        shown = await client.get(page)
        assert 'class="flash error"' in shown.text
        assert "409" in shown.text

        invalid = await client.post(
            "/console/artifacts",
            data={"csrf": token, "name": "x", "type": "generic", "spec": "containerGroups: [{}]"},
        )
        assert invalid.status_code == 422
        assert "<code>spec.containerGroups.0.containers</code>" in invalid.text
        assert "containerGroups: [{}]" in invalid.text  # what was typed is kept

        missing = await client.get("/console/workloads/nope")
        assert missing.status_code == 404
        assert "404" in missing.text


async def test_drafts_are_edited_cloned_and_deleted_as_yaml(
    console_app: FastAPI, admin: httpx.AsyncClient
) -> None:
    draft = (await admin.post("/api/v2/registry/artifacts/", json=artifact(name="d"))).json()
    page = f"/console/artifacts/{draft['id']}"
    async with browser(console_app) as client:
        await sign_in(client, ADMIN_KEY)
        form = (await client.get(f"{page}/edit")).text
        assert "imageUri: registry.example.com/team/app:1" in form
        token = csrf_of(form)
        edited = SPEC_YAML.replace("localhost/x:1", "localhost/x:2")
        saved = await client.post(
            f"{page}/edit",
            data={
                "csrf": token,
                "name": "d",
                "type": "generic",
                "description": "v2",
                "spec": edited,
            },
        )
        assert saved.headers.get("location") == page, saved.text[-1500:]
        now = (await admin.get(f"/api/v2/registry/artifacts/{draft['id']}/")).json()
        assert now["description"] == "v2"
        assert now["spec"]["containerGroups"][0]["containers"][0]["imageUri"] == "localhost/x:2"

        cloned = await client.post(f"{page}/clone", data={"csrf": token, "name": "copy"})
        copy_id = cloned.headers["location"].rsplit("/", 1)[1]
        copy = (await admin.get(f"/api/v2/registry/artifacts/{copy_id}/")).json()
        assert (copy["name"], copy["status"]) == ("copy", "draft")

        deleted = await client.post(f"{page}/delete", data={"csrf": token})
        assert deleted.headers["location"] == "/console/artifacts"
        gone = await admin.get(f"/api/v2/registry/artifacts/{draft['id']}/")
        assert gone.status_code == 404


async def test_a_viewer_is_offered_nothing_that_changes_things(
    console_app: FastAPI, admin: httpx.AsyncClient
) -> None:
    made = (await admin.post("/api/v2/registry/artifacts/", json=artifact())).json()
    viewer = await make_key(admin, "viewer")
    pages = ["/console/workloads", "/console/artifacts", f"/console/artifacts/{made['id']}"]
    async with browser(console_app) as client:
        await sign_in(client, viewer)
        for url in [*pages, "/console/collections", "/console/deployments"]:
            html = (await client.get(url)).text
            assert 'class="action' not in html, url
            assert "Audit</a>" not in html
        assert (await client.get("/console/audit")).status_code == 403
    async with browser(console_app) as client:
        await sign_in(client, ADMIN_KEY)
        html = (await client.get(f"/console/artifacts/{made['id']}")).text
        assert html.count('class="action') >= 4  # edit is a link; register, clone, delete, run
        assert "Audit</a>" in html


async def test_a_revoked_key_ends_the_session(
    console_app: FastAPI, admin: httpx.AsyncClient
) -> None:
    made = (
        await admin.post(
            "/api/v2/apiKeys/", json={"name": "short", "username": "sam", "role": "editor"}
        )
    ).json()
    async with browser(console_app) as client:
        await sign_in(client, made["key"])
        assert (await client.get("/console/workloads")).status_code == 200
        await admin.delete(f"/api/v2/apiKeys/{made['id']}/")
        await asyncio.sleep(0.6)  # the credential cache remembers an answer for half a second
        gone = await client.get("/console/workloads")
        assert gone.status_code == 303
        assert gone.headers["location"].startswith("/console/login")
        assert f'{COOKIE}=""' in gone.headers.get("set-cookie", "")


async def test_pages_forbid_inline_scripts_and_framing(console_app: FastAPI) -> None:
    async with browser(console_app) as client:
        page = await client.get("/console/login")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["cache-control"] == "no-store"
        assert "<script>" not in page.text
        script = await client.get("/console/static/vendor/htmx-2.0.11.min.js")
        assert script.status_code == 200
        assert "no-store" not in script.headers.get("cache-control", "")


async def test_a_sign_in_only_returns_to_console_pages(console_app: FastAPI) -> None:
    for target, expected in (
        ("/console/deployments", "/console/deployments"),
        ("//evil.example/console/", "/console/workloads"),
        ("https://evil.example/console/x", "/console/workloads"),
        ("/elsewhere", "/console/workloads"),
        ("/console/\\evil", "/console/workloads"),
    ):
        async with browser(console_app) as client:
            page = await client.get("/console/login")
            token = re.search(r'name="login_token" value="([^"]+)"', page.text)
            assert token
            answer = await client.post(
                "/console/login",
                data={"login_token": token.group(1), "api_key": ADMIN_KEY, "next": target},
            )
            assert answer.headers["location"] == expected, target


def test_temporal_links_use_the_workflow_ids_the_api_gives() -> None:
    assert WORKFLOW_IDS["workload"].format(id="w1") == workload_contract.workflow_id("w1")
    assert WORKFLOW_IDS["deployment"].format(id="d1") == deployment_contract.deployment_workflow_id(
        "d1"
    )


async def test_the_transport_streams_and_tells_the_app_when_the_reader_left() -> None:
    left = asyncio.Event()

    async def endless(request: Request) -> StreamingResponse:
        async def lines() -> AsyncIterator[str]:
            try:
                for n in range(1_000_000):
                    yield f"line {n}\n"
                    await asyncio.sleep(0.01)
            finally:
                left.set()

        return StreamingResponse(lines())

    app = Starlette(routes=[Mount("/", routes=[Route("/stream", endless)])])
    transport = InProcessTransport(app, ("10.1.2.3", 4))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        async with client.stream("GET", "/stream") as response:
            seen = []
            async for line in response.aiter_lines():
                seen.append(line)
                if len(seen) == 3:
                    break
        assert seen == ["line 0", "line 1", "line 2"]
    await asyncio.wait_for(left.wait(), timeout=5)


async def test_the_transport_gives_the_api_the_browsers_address() -> None:
    async def peer(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            yield f"{request.client.host if request.client else '-'} {request.url.path}"

        return StreamingResponse(body())

    app = Starlette(routes=[Route("/a b", peer)])
    transport = InProcessTransport(app, ("192.0.2.7", 5))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/a%20b")).text == "192.0.2.7 /a b"
