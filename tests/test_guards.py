"""Per-session job limit and login back-off (issue 12, item 10)."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from sam_fixtures import settings_from

from spinalsam.guards import LoginGuard, SessionJobLimit
from spinalsam.launch import launch_options


def test_session_job_limit_counts_queued_and_just_admitted_jobs() -> None:
    queued = {"a": 0}
    limit = SessionJobLimit(3, lambda s: queued.get(s, 0))
    assert [limit.admit("a") for _ in range(3)] == ["", "", ""]  # a burst, not queued yet
    assert "3 requests waiting" in limit.admit("a")
    assert limit.admit("b") == ""  # other sessions are not affected


def test_session_job_limit_frees_when_jobs_finish() -> None:
    queued = {"a": 4}
    limit = SessionJobLimit(4, lambda s: queued[s], window_s=0.0)
    assert limit.admit("a")
    queued["a"] = 1
    assert limit.admit("a") == ""


def test_login_locks_out_after_repeated_failures_even_with_the_right_password() -> None:
    guard = LoginGuard({"doc": "secret"}, max_failures=5, base_lockout_s=30)
    assert not any(guard.attempt("doc", f"guess{i}", now=float(i)) for i in range(300))
    assert not guard.attempt("doc", "secret", now=301.0)  # locked: the right password fails
    assert guard.attempt("doc", "secret", now=301.0 + 900.0)  # after the longest lockout


def test_login_accepts_the_right_password_and_resets() -> None:
    guard = LoginGuard({"doc": "secret"})
    assert not guard.attempt("doc", "nope", now=0.0)
    assert guard.attempt("doc", "secret", now=0.0)
    assert not guard.attempt("nobody", "secret", now=0.0)


def test_unknown_user_table_is_bounded() -> None:
    guard = LoginGuard({"doc": "secret"}, max_tracked=10)
    for i in range(100):
        guard.attempt(f"user{i}", "x", now=0.0)
    assert len(guard._failures) == 10


def test_auth_option_is_an_awaited_back_off_checker() -> None:
    auth = launch_options(settings_from({"SPINALSAM_AUTH": "doc:secret"}))["auth"]
    assert inspect.iscoroutinefunction(auth)  # Gradio awaits it; a sync call would block
    assert asyncio.run(auth("doc", "secret")) is True


def test_request_bodies_over_the_limit_are_refused_unread() -> None:
    """Gradio validates a whole JSON body before any handler: bodies are bounded before it."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from spinalsam.guards import RequestSizeLimit

    async def size(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    app = Starlette(
        routes=[
            Route("/gradio_api/queue/join", size, methods=["POST"]),
            Route("/gradio_api/upload", size, methods=["POST"]),
        ],
        middleware=[Middleware(RequestSizeLimit, max_bytes=1000)],
    )
    client = TestClient(app)
    assert client.post("/gradio_api/queue/join", content=b"x" * 1000).text == "1000"
    refused = client.post("/gradio_api/queue/join", content=b"x" * 1001)
    assert refused.status_code == 413 and "larger than" in refused.json()["error"]
    chunks = (b"x" * 300 for _ in range(4))  # no Content-Length: counted as it arrives
    assert client.post("/gradio_api/queue/join", content=chunks).status_code == 413
    assert client.post("/gradio_api/upload", content=b"x" * 5000).text == "5000"  # Gradio's own


def test_uploads_that_would_fill_the_disk_are_refused(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gradio keeps uploads for a session's lifetime with no quota per user: a reserve of free
    disk is kept for every session's exports and bundles."""
    from collections import namedtuple

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from spinalsam import guards

    async def size(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    usage = namedtuple("usage", "total used free")
    free = [1500]
    monkeypatch.setattr(guards.shutil, "disk_usage", lambda path: usage(0, 0, free[0]))
    folder = str(tmp_path / "not-made-yet")
    app = Starlette(
        routes=[
            Route("/gradio_api/upload", size, methods=["POST"]),
            Route("/gradio_api/queue/join", size, methods=["POST"]),
        ],
        middleware=[Middleware(guards.DiskReserve, folder=lambda: folder, min_free_bytes=1000)],
    )
    client = TestClient(app)
    assert client.post("/gradio_api/upload", content=b"x" * 400).text == "400"
    refused = client.post("/gradio_api/upload", content=b"x" * 600)  # would leave 900 free
    assert refused.status_code == 507 and "disk space" in refused.json()["error"]
    free[0] = 900
    assert client.post("/gradio_api/upload", content=b"x").status_code == 507
    assert client.post("/gradio_api/queue/join", content=b"x").text == "1"  # not an upload
