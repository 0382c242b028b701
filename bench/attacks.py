"""Issue 12's attacks against a real `python app.py`: server RSS growth and answer time per attack.

    python bench/attacks.py [--quick] > attacks.json

Prints one JSON document: the budget, then per attack the message, seconds, RSS before / peak /
after (MiB), whether the session kept its work and whether a canary byte leaked; plus the
largest volume the budget admits, a 4096² slice segmentation, one session flooding the queue
while another works, a password-guessing run, and memory after many sessions expire. All hostile
files are built locally (tests/hostile_files.py); the server runs on a port in 7920-7939.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from attack_harness import (  # noqa: E402 — tests/ holds the shared attack code
    USERS,
    AttackServer,
    prepared_client,
    refused_jobs,
    run_upload_attack,
    session_intact,
)
from gradio_client import handle_file  # noqa: E402
from hostile_files import ATTACKS, Attack, huge_slice, write_canary  # noqa: E402

from spinalsam.limits import DEFAULT_BUDGET  # noqa: E402

MIB = 2**20


def largest_volume(tmp: Path, canary: Path) -> list[Path]:
    """Just within the voxel budget (512 × 512 × 640 int16): the heaviest upload admitted."""
    depth = DEFAULT_BUDGET.max_voxels // (512 * 512)
    vol = np.zeros((depth, 512, 512), np.int16)
    vol[:, 100:400, 100:400] = 300
    vol[0, 0, 0] = -1000
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(tmp / "largest.nii.gz"), True)
    return [tmp / "largest.nii.gz"]


def segment_huge_slice(server: AttackServer, tmp: Path) -> dict:
    path, (x, y) = huge_slice(tmp)
    client = server.client()
    before = server.rss()
    client.predict([handle_file(str(path))], api_name="/open_files")
    start = time.perf_counter()
    out = client.predict(f"add a positive point at ({x}, {y}) and segment", [], api_name="/chat")
    return {
        "name": "segment_4096x4096_slice",
        "message": out[5][-120:],
        "seconds": round(time.perf_counter() - start, 2),
        "rss_growth_mb": round((server.rss() - before) / MIB, 1),
    }


def flood(server: AttackServer) -> dict:
    """Session A queues 100 propagations; session B's latency for one segment is measured."""
    other = prepared_client(server)
    start = time.perf_counter()
    session_intact(other)
    alone = time.perf_counter() - start
    flooder = prepared_client(server)
    jobs = [flooder.submit(api_name="/propagate") for _ in range(100)]
    time.sleep(0.5)
    start = time.perf_counter()
    session_intact(other)
    during = time.perf_counter() - start
    refused = refused_jobs(jobs)
    return {
        "name": "one_session_queues_100_jobs",
        "other_session_seconds_alone": round(alone, 2),
        "other_session_seconds_during_flood": round(during, 2),
        "flood_jobs_refused": refused,
    }


def passwords(server: AttackServer, tries: int) -> dict:
    def login(password: str) -> int:
        form = {"username": "probe", "password": password}
        return httpx.post(server.url + "login", data=form, timeout=60).status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(login, [f"guess{i}" for i in range(tries)]))
    seconds = time.perf_counter() - start
    return {
        "name": f"{tries}_wrong_passwords_then_the_right_one",
        "wrong_accepted": sum(c == 200 for c in codes),
        "guesses_per_second": round(tries / seconds, 1),
        "right_password_accepted_after": login(USERS["probe"]) == 200,
    }


def expiry(server: AttackServer, tmp: Path, sessions: int) -> dict:
    vol = np.random.default_rng(0).integers(-1000, 1500, (80, 256, 256), dtype=np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(tmp / "vol.nii.gz"))
    time.sleep(server.session_ttl_s + 3)
    baseline = server.rss()
    for _ in range(sessions):
        server.client().predict([handle_file(str(tmp / "vol.nii.gz"))], api_name="/open_files")
    held = server.rss()
    start = time.monotonic()
    time.sleep(server.session_ttl_s)
    while (
        server.rss() - baseline > 60 * MIB and time.monotonic() - start < 4 * server.session_ttl_s
    ):
        time.sleep(2)
    return {
        "name": f"{sessions}_api_sessions_then_expiry",
        "rss_baseline_mb": round(baseline / MIB, 1),
        "rss_with_sessions_mb": round(held / MIB, 1),
        "rss_after_expiry_mb": round(server.rss() / MIB, 1),
        "seconds_to_baseline": round(time.monotonic() - start, 1),
        "leftover_folders": len(server.leftovers()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sessions and guesses")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spinalsam-bench-attacks-"))
    server = AttackServer(work, session_ttl_s=20).start()
    canary = write_canary(work)
    attacks = [
        *ATTACKS,
        Attack("largest_admitted_volume", largest_volume, r"512×512", accepted=True),
    ]
    results: dict = {"budget": DEFAULT_BUDGET.__dict__, "server_rss_at_start_mb": None}
    try:
        results["server_rss_at_start_mb"] = round(server.rss() / MIB, 1)
        results["uploads"] = [
            run_upload_attack(server, a, work / "files", canary).as_dict() for a in attacks
        ]
        results["segment"] = segment_huge_slice(server, work)
        results["queue"] = flood(server)
        results["login"] = passwords(server, 60 if args.quick else 300)
        results["expiry"] = expiry(server, work, 10 if args.quick else 50)
    finally:
        server.stop()
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
