"""`pip wheel .` builds an installable package: only `spinalsam`, its data files, its CLI tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_the_package_its_data_and_entry_points(tmp_path: Path) -> None:
    source = tmp_path / "src"
    # A copy, so the build's scratch folders never touch the checkout.
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".gpujob", "__pycache__", "*.egg-info", "build", ".*cache"
        ),
    )
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run(
        [*pip, str(source), "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("spinalsam-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"spinalsam", wheel.name.split("-py3")[0] + ".dist-info"}
    # The embedded default's weights and the image panel's assets ship inside the package.
    assert {
        "spinalsam/segmenters/weights/default.onnx",
        "spinalsam/segmenters/weights/default.json",
        "spinalsam/assets/viewer.js",
        "spinalsam/assets/app.css",
        "spinalsam/settings.py",
    } <= set(names)
    scripts = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    for tool in (
        "spinalsam-evaluate",
        "spinalsam-evaluate3d",
        "spinalsam-train",
        "spinalsam-command",
    ):
        assert f"{tool} = spinalsam." in scripts
