"""One validated settings object: bad values stop start-up with a clear message, good ones reach
the layers that use them, the README documents every variable, and the default path stays
torch-free."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from sam_fixtures import settings_from

from spinalsam.launch import _router, launch_options
from spinalsam.limits import DEFAULT_BUDGET
from spinalsam.settings import ENV_VARS, SettingsError, settings_table

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray spinalsam.toml


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("SPINALSAM_CONCURRENCY", "two", "an integer from 1 to 16"),
        ("SPINALSAM_CONCURRENCY", "0", "an integer from 1 to 16"),
        ("SPINALSAM_BACKEND", "bogus", "`auto`"),
        ("DEEPSEEK_TIMEOUT", "abc", "seconds, a number > 0"),
        ("DEEPSEEK_TIMEOUT", "-1", "seconds, a number > 0"),
        ("DEEPSEEK_JSON_MODE", "maybe", "`auto`, `on`, `off`"),
        ("DEEPSEEK_BASE_URL", "ftp://x", "`https://` URL"),
        ("SPINALSAM_MAX_FILE_SIZE", "lots", "a size > 0"),
        ("SPINALSAM_MAX_IMAGE_MEMORY", "0", "a size > 0"),
        ("SPINALSAM_SHARE", "perhaps", "`1`/`true`"),
        ("SPINALSAM_ENCODER_OPT", "warp-drive", "methods joined by `+`"),
        ("SPINALSAM_ENCODER_OPT", "onnx+openvino", "methods joined by `+`"),
        ("SPINALSAM_EMBED_CACHE_MB", "-5", "an integer ≥ 0"),
        ("HF_HUB_OFFLINE", "sometimes", "`1`/`true`"),
        ("SPINALSAM_SESSION_TTL_S", "5", "seconds ≥ 10"),
        ("DEEPSEEK_THINKING", "deep", "`enabled`"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_is_allowed(
    variable: str, value: str, allowed: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from({variable: value})
    message = str(caught.value)
    assert f"{variable}={value!r}" in message and allowed in message


def test_secrets_never_appear_in_messages() -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from({"SPINALSAM_AUTH": "alice-without-password"})
    assert "alice" not in str(caught.value) and "SPINALSAM_AUTH=(hidden)" in str(caught.value)
    settings = settings_from({"DEEPSEEK_API_KEY": "sk-secret"})
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(settings)


def test_bad_setting_stops_app_start_up_with_the_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env |= {"SPINALSAM_CONCURRENCY": "two", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run(
        [sys.executable, str(REPO / "app.py")],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "SpinalSAM cannot start" in done.stderr and "SPINALSAM_CONCURRENCY='two'" in done.stderr
    assert "Traceback" not in done.stderr


def test_values_reach_the_layers_that_use_them(tmp_path: Path) -> None:
    settings = settings_from(
        {
            "SPINALSAM_MAX_FILE_SIZE": "2gib",
            "SPINALSAM_MAX_IMAGE_MEMORY": "3gib",
            "SPINALSAM_AUTH": "alice:pw1, bob:pw2",
            "SPINALSAM_SHARE": "yes",
            "SPINALSAM_CONCURRENCY": "3",
            "SPINALSAM_SESSION_TTL_S": "600",
            "SPINALSAM_CACHE": str(tmp_path / "exports"),
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "1",
            "SPINALSAM_DEVICE": "",  # empty means unset, as in a shell or the Spaces UI
        }
    )
    assert settings.budget.max_upload_bytes == 2 * 2**30
    assert settings.budget.max_decompressed_bytes == 2 * 2**30
    assert settings.budget.max_voxels == DEFAULT_BUDGET.max_voxels
    assert settings.budget.session_ttl_s == 600
    assert settings.max_image_memory == 3 * 2**30
    assert settings_from({}).max_image_memory == psutil.virtual_memory().total // 2
    options = launch_options(settings)
    assert options["max_file_size"] == 2 * 2**30 and options["share"] is True
    assert settings.auth_pairs == [("alice", "pw1"), ("bob", "pw2")]
    assert asyncio.run(options["auth"]("bob", "pw2")) is True
    assert settings.concurrency == 3
    sam = settings.sam
    assert sam.hf_cache_dir == str(tmp_path / "hf" / "hub") and sam.offline
    assert sam.export_cache_dir == str(tmp_path / "exports") and sam.device == "auto"
    # Only the SAM fields key the shared model: other settings do not split it.
    same = settings_from(
        {"SPINALSAM_CACHE": sam.export_cache_dir, "HF_HUB_CACHE": sam.hf_cache_dir}
    )
    assert hash(same.sam.model_copy(update={"offline": True})) == hash(sam)


def test_defaults_and_the_router_built_from_settings() -> None:
    settings = settings_from({})
    assert settings.backend == "auto" and settings.concurrency == 2
    assert settings.budget == DEFAULT_BUDGET
    assert "auth" not in launch_options(settings)
    assert _router(settings).llm is None
    configured = settings_from(
        {"DEEPSEEK_API_KEY": "sk-test", "DEEPSEEK_TIMEOUT": "5", "DEEPSEEK_JSON_MODE": "off"}
    )
    config = _router(configured).llm.config
    assert config.api_key == "sk-test" and config.timeout == 5.0 and config.json_mode == "off"
    assert config.model == "deepseek-v4-flash" and config.base_url == "https://api.deepseek.com"


def test_the_readme_table_documents_every_variable() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "regenerate the README table with settings_table()"
    for variable in ENV_VARS:
        assert len(re.findall(rf"`{variable}`", readme)) >= 1


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = []
    for path in (REPO / "spinalsam").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"os\.environ|getenv\(", text) and path.name != "settings.py":
            readers.append(str(path.relative_to(REPO)))
    # training/loop.py sets CUBLAS_WORKSPACE_CONFIG (a torch determinism switch, written, not
    # read) and training/publish.py falls back to HF_TOKEN for the command-line publisher.
    assert set(readers) <= {"spinalsam/training/loop.py", "spinalsam/training/publish.py"}


def test_choosing_the_default_backend_imports_no_heavy_stack(tmp_path: Path) -> None:
    """SAM wanted (`auto`) but no weights: the app is built without torch & co., and without
    the libraries only some requests need (the LLM client, plots, meshes, DICOM-SEG): each is
    imported where it is first used. (pydicom is still imported by io.py at start-up.)"""
    code = (
        "import sys\n"
        "from spinalsam.launch import create_demo\n"
        "from spinalsam.settings import load_settings\n"
        "create_demo(load_settings())\n"
        "heavy = ('torch', 'peft', 'segment_anything', 'openvino', 'transformers',\n"
        "         'openai', 'matplotlib', 'trimesh', 'highdicom')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env |= {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
