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
    # A copy, so the build's scratch folders never touch the checkout; plus a stand-in for the
    # model weights and assets other modules ship inside the package.
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", ".*cache"),
    )
    (source / "spinalsam" / "segmenters" / "weights").mkdir()
    (source / "spinalsam" / "segmenters" / "weights" / "model.onnx").write_bytes(b"onnx")
    (source / "spinalsam" / "assets.css").write_text("a {}")
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
    assert "spinalsam/segmenters/weights/model.onnx" in names
    assert "spinalsam/assets.css" in names and "spinalsam/settings.py" in names
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
