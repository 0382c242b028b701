"""Cold start: a fresh `python app.py` until its page answers over HTTP. Prints one JSON object.

    python bench/cold_start.py                          # default backend, 5 runs
    python bench/cold_start.py --runs 3 --env SPINALSAM_SAM_CHECKPOINT=/tmp/sam_vit_b.pth

Each run is a new process (nothing is warm but the OS file cache, as on a restarted Space), timed
from spawn to the first HTTP 200 on `/`, with the process's CPU seconds (user + system, all
threads) until then: on a shared machine the wall time depends on the other jobs, the CPU time
hardly does — on an idle 2-core machine the wall time is about the CPU time. The log line that
names the backend says which backend the header shows. One more run under
`python -X importtime` attributes the import time to top-level packages (the self time of each
package's modules).
Offline by default (`HF_HUB_OFFLINE=1`, an empty Hugging Face cache): pass `--env` to change it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PORTS = range(7960, 7980)  # this bench's port range on the shared machine
BACKEND_LINE = re.compile(r"segmentation backend: (?P<name>\S+)")
IMPORT_LINE = re.compile(r"import time:\s+(?P<self>\d+) \|\s+\d+ \| +(?P<mod>\S+)")


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def one_start(env: dict[str, str], timeout_s: float, python_flags: tuple[str, ...] = ()) -> dict:
    """Start the app once: seconds to the page, CPU seconds of the process, its backend and log."""
    port = _free_port()
    env = env | {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *python_flags, "app.py"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            page_s = _wait_for_page(f"http://127.0.0.1:{port}/", proc, started, timeout_s)
        finally:
            proc.terminate()
            # wait4 reaps the child and returns its CPU time, which (unlike wall time) barely
            # depends on the other jobs sharing the cores.
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = 0
        out.seek(0)
        log = out.read()
    match = BACKEND_LINE.search(log)
    cpu_s = usage.ru_utime + usage.ru_stime
    return {
        "page_s": page_s,
        "cpu_s": cpu_s,
        "backend": match["name"] if match else None,
        "log": log,
    }


def _wait_for_page(url: str, proc: subprocess.Popen, started: float, timeout_s: float) -> float:
    while time.perf_counter() - started < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no page at {url} after {timeout_s:.0f} s")


def import_breakdown(log: str, top: int) -> dict[str, float]:
    """Seconds of import time per top-level package: the self time of all its modules, so
    what `gradio` imports from `numpy` counts for numpy (from `-X importtime` output)."""
    totals: Counter[str] = Counter()
    for match in IMPORT_LINE.finditer(log):
        totals[match["mod"].split(".")[0]] += int(match["self"])
    return {name: round(us / 1e6, 2) for name, us in totals.most_common(top)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per start")
    parser.add_argument("--top", type=int, default=12, help="packages in the import breakdown")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as hf_home:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": hf_home,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DEEPSEEK_API_KEY", None)
        env |= dict(item.split("=", 1) for item in args.env)
        runs = [one_start(env, args.timeout) for _ in range(args.runs)]
        profiled = one_start(env, args.timeout, ("-X", "importtime"))
    times = [r["page_s"] for r in runs]
    result = {
        "what": "spawn of `python app.py` -> first HTTP 200 on /",
        "runs": args.runs,
        "backend": runs[0]["backend"],
        "page_s": [round(t, 2) for t in times],
        "p50_s": round(_percentile(times, 50), 2),
        "max_s": round(max(times), 2),
        "cpu_s": [round(r["cpu_s"], 2) for r in runs],
        "cpu_p50_s": round(_percentile([r["cpu_s"] for r in runs], 50), 2),
        "importtime_run_page_s": round(profiled["page_s"], 2),
        "import_s_by_package": import_breakdown(profiled["log"], args.top),
        "cpu_count": len(os.sched_getaffinity(0)),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "env": args.env,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
