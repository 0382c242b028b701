"""Drive the issue-12 attacks through a real `python app.py` and measure each one.

Shared by tests/test_attacks.py (asserts) and bench/attacks.py (prints JSON). One `AttackServer`
runs the app on a port in 7920-7939 (or `ATTACK_PORTS`) with its own temp folder (so leftover
files are countable), a short session lifetime and a login; `run_upload_attack` sends one
hostile upload from a session that already holds an image, prompts and a mask, and reports the
message, time, server RSS growth, whether the session kept its work and whether the canary's
bytes came back.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hostile_files import CANARY_SECRET, Attack
from PIL import Image

__all__ = ["CT_SMALL", "USERS", "AttackServer", "Outcome", "prepared_client", "run_upload_attack"]

ROOT = Path(__file__).resolve().parents[1]
CT_SMALL = "CT vertebra slice (pydicom CT_small.dcm, HU)"
USERS = {"doc": "secret-doc", "probe": "secret-probe"}
# Parallel runs on one machine each get their own range: ATTACK_PORTS=7900-7919.
_LOW, _HIGH = (int(p) for p in os.environ.get("ATTACK_PORTS", "7920-7939").split("-"))
PORTS = range(_LOW, _HIGH + 1)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_LOW}-{_HIGH}")


@dataclass
class AttackServer:
    """`python app.py` on a loopback port with its own TMPDIR and Gradio cache."""

    workdir: Path
    session_ttl_s: int = 20
    image_memory: str = "8gib"  # SPINALSAM_MAX_IMAGE_MEMORY: the cap of all sessions' images
    proc: subprocess.Popen | None = None
    url: str = ""

    @property
    def tmp(self) -> Path:
        return self.workdir / "tmp"

    def start(self) -> AttackServer:
        self.tmp.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        env = {
            **os.environ,
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(self.tmp / "gradio"),
            "TMPDIR": str(self.tmp),
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(self.workdir / "hf"),
            "SPINALSAM_BACKEND": "default",
            "SPINALSAM_FLAG_DIR": str(self.workdir / "flagged"),
            "SPINALSAM_SESSION_TTL_S": str(self.session_ttl_s),
            "SPINALSAM_MAX_IMAGE_MEMORY": self.image_memory,
            "SPINALSAM_AUTH": ",".join(f"{u}:{p}" for u, p in USERS.items()),
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DEEPSEEK_API_KEY", None)
        log = (self.workdir / "server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "server.log").read_text()[-3000:])
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url, timeout=2)
                # Gradio's template Session for the page config makes no folder (made on first use).
                assert not self.leftovers()
                return self
            if time.monotonic() > deadline:
                raise TimeoutError("app.py did not start")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def rss(self) -> int:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss

    def client(self, user: str = "doc") -> Client:
        return Client(
            self.url,
            auth=(user, USERS[user]),
            verbose=False,
            download_files=False,
            httpx_kwargs={"timeout": 120},  # the shared CI machine can be slow to answer
        )

    def leftovers(self) -> list[Path]:
        """Session folders and unpacked archives still on disk."""
        return [p for p in self.tmp.glob("spinalsam-*") if p.is_dir()]


def prepared_client(server: AttackServer) -> Client:
    """A session holding an image, a box prompt and a mask: what a refused input must not lose."""
    client = server.client()
    client.predict(CT_SMALL, api_name="/load_example")
    out = client.predict(
        "add a box from (30, 30) to (100, 100) and generate the box mask", [], api_name="/chat"
    )
    assert "Segmented" in out[5], out[5]
    return client


def _path(value: object) -> Path | None:
    """A file output's path: a path, a FileData dict, or the first of a list of them."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("path")
    return Path(value) if value else None


def view_pixels(payload: object) -> np.ndarray:
    """The picture the browser got: the image panel's payload carries it as a PNG data URL."""
    if not isinstance(payload, dict) or not str(payload.get("src", "")).startswith("data:"):
        return np.zeros((0, 0))
    data = base64.b64decode(str(payload["src"]).split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


def refused_jobs(jobs: list) -> int:
    """How many submitted jobs the per-session limit turned away (the others ran)."""
    refused = 0
    for job in jobs:
        try:
            job.result()
        except Exception as exc:
            refused += "requests waiting" in str(exc)
    return refused


def session_intact(client: Client) -> bool:
    """The CT_small image, its box prompt and its mask are all still there."""
    measured = client.predict(api_name="/measure")[3]
    segmented = client.predict(api_name="/segment_box")[3]
    return "CT_small" in segmented and "Segmented" in segmented and "Measurements" in measured


@dataclass
class Outcome:
    name: str
    message: str
    seconds: float
    rss_before_mb: float
    rss_after_mb: float
    rss_peak_mb: float
    matched: bool  # the message says what the attack expects
    kept_session: bool  # refused inputs: image, prompts and mask survived
    leaked: bool  # the canary's bytes came back in the view or the saved bundle
    view_side_px: int  # the longest side of the image the browser got

    def as_dict(self) -> dict:
        return asdict(self)


def run_upload_attack(server: AttackServer, attack: Attack, folder: Path, canary: Path) -> Outcome:
    """Upload `attack`'s files from a prepared session, then check the session and the leak."""
    upload = folder / attack.name
    upload.mkdir(parents=True, exist_ok=True)
    paths = attack.build(upload, canary)  # first: building may take longer than a session lives
    client = prepared_client(server)
    before = server.rss()
    peak = before
    result: list = []
    start = time.perf_counter()

    def call() -> None:
        try:
            result.append(
                client.predict([handle_file(str(p)) for p in paths], api_name="/open_files")
            )
        except AppError as exc:
            result.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    while worker.is_alive():  # sample the server's RSS while it works on the upload
        peak = max(peak, server.rss())
        worker.join(0.05)
    seconds = time.perf_counter() - start
    after = server.rss()
    out = result[0]
    message = str(out) if isinstance(out, AppError) else out[3]
    view = np.zeros((0, 0)) if isinstance(out, AppError) else view_pixels(out[0])
    leaked = CANARY_SECRET[:24] in view.tobytes()
    if attack.accepted:
        kept = True  # a valid (if odd) volume replaces the image, as any upload does
    else:
        kept = session_intact(client)
        bundle = _path(client.predict(api_name="/save_session")[1])
        leaked |= bool(bundle and CANARY_SECRET[:24] in bundle.read_bytes())
    return Outcome(
        name=attack.name,
        message=message[:300],
        seconds=round(seconds, 2),
        rss_before_mb=round(before / 2**20, 1),
        rss_after_mb=round(after / 2**20, 1),
        rss_peak_mb=round(peak / 2**20, 1),
        matched=bool(re.search(attack.message, message)),
        kept_session=kept,
        leaked=leaked,
        view_side_px=max(view.shape[:2]) if view.size else 0,
    )
