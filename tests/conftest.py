"""Shared fixtures: the evaluation data beside the repo, skipped cleanly when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory):
    """`python app.py` on a loopback port, offline, as a user would start it."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    workdir = tmp_path_factory.mktemp("app")
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(workdir / "hf"),
        "SPINALSAM_BACKEND": os.environ.get("SPINALSAM_TEST_BACKEND", "default"),
        "SPINALSAM_FLAG_DIR": str(workdir / "flagged"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DEEPSEEK_API_KEY", None)
    log = open(workdir / "server.log", "w")  # noqa: SIM115 — closed in the finaliser below
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited: {(workdir / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
