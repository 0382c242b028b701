"""Lower layers never import higher ones: the package's layer order, checked on every import.

Each module belongs to the layer of the longest prefix listed in LAYERS; it may import modules of
its own layer and the ones below, never above — lazy imports inside functions included, since
they couple the layers just the same. The known exceptions are listed with the reason they still
exist; an exception that is no longer needed fails the test so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spinalsam"

# Lowest first. A module not matched by any prefix fails the test, so new modules get a place.
LAYERS: tuple[tuple[str, ...], ...] = (
    # 0. Pure building blocks: no spinalsam imports beyond each other.
    (
        "spinalsam",  # the package itself (__version__)
        "spinalsam.assets",
        "spinalsam.guards",
        "spinalsam.headers",
        "spinalsam.help_text",
        "spinalsam.ledger",
        "spinalsam.limits",
        "spinalsam.metrics",
        "spinalsam.numerals",
        "spinalsam.ops",
        "spinalsam.phantom",
        "spinalsam.plaintext",
        "spinalsam.vertebrae",
        "spinalsam.windowing",
    ),
    # 1. The image model: CT volumes, slices, labels, prompts, the segmenter interface, and how
    #    a slice is drawn (below the exports, which are files, not pictures).
    (
        "spinalsam.examples",
        "spinalsam.io",
        "spinalsam.labels",
        "spinalsam.measurements",
        "spinalsam.mesh",
        "spinalsam.planes",
        "spinalsam.prompts",
        "spinalsam.render",
        "spinalsam.segmenters",  # the package re-exports base; registry sits higher
        "spinalsam.segmenters.base",
        "spinalsam.segmenters.baseline",
        "spinalsam.segmenters.bounded",
        "spinalsam.segmenters.classical",
        "spinalsam.segmenters.morphology",
    ),
    # 2. What works on the model: SAM, propagation, drawing, files in and out; the LLM's
    #    connection settings (a plain config record that the settings object validates).
    (
        "spinalsam.bundle",
        "spinalsam.commands.llm_config",
        "spinalsam.crosscheck",  # the sagittal check of an axial propagation (used by it)
        "spinalsam.dicomseg",
        "spinalsam.export",
        "spinalsam.flags",
        "spinalsam.prefetch",  # embeds slices ahead through the segmenter interface
        "spinalsam.propagation",
        "spinalsam.sam",
    ),
    # 3. The one settings object (reads the sections of SAM and the LLM).
    ("spinalsam.settings",),
    # 4. Choosing and combining: the segmenter registry, the app backend, the session, training.
    (
        "spinalsam.backends",
        "spinalsam.segmenters.registry",
        "spinalsam.session",
        "spinalsam.training",
        "spinalsam.viewer",
    ),
    # 5. The chat: words → protocol operations (above the session, which never needs it).
    ("spinalsam.commands",),
    # 6. Command-line tools and the evaluation harness.
    (
        "spinalsam.commands.__main__",
        "spinalsam.evaluate",
        "spinalsam.evaluate3d",
        "spinalsam.evaluate_report",
        "spinalsam.evaluation",
        "spinalsam.train",
        "spinalsam.train_default",
    ),
    # 7. The web app.
    ("spinalsam.launch", "spinalsam.ui"),
)

# (importer, imported) pairs allowed against the order, each with why it is still there.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # Validation during fine-tuning scores with the evaluation harness's prompt derivation;
    # `derive_prompts` should move to a lower module (e.g. evaluation/protocol.py) — that file
    # belongs to the training branch, so the move waits for its merge.
    ("spinalsam.training.validate", "spinalsam.evaluate"): "derive_prompts lives in evaluate",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(module: str, path: Path) -> set[str]:
    """Every spinalsam module `module` imports, at any depth in the file (lazy ones too)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            # `from spinalsam import bundle` imports the module spinalsam.bundle.
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    return {name for name in found if name == "spinalsam" or name.startswith("spinalsam.")}


def _layer(module: str) -> int | None:
    """The layer of the longest listed prefix of `module` (a package's entry can be overridden)."""
    matches = [
        (len(prefix), level)
        for level, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        # The package itself holds no code but __version__: it is nobody's prefix.
        if module == prefix or (prefix != "spinalsam" and module.startswith(prefix + "."))
    ]
    return max(matches)[1] if matches else None


def _violations() -> set[tuple[str, str]]:
    bad = set()
    for module, path in MODULES.items():
        for target in _imported(module, path):
            target_layer = _layer(target)
            if target_layer is not None and target_layer > _layer(module):
                bad.add((module, target))
    return bad


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if _layer(m) is None] == []


def test_lower_layers_never_import_higher_ones() -> None:
    unexpected = sorted(_violations() - EXCEPTIONS.keys())
    assert unexpected == [], "import against the layer order (importer, imported): " + str(
        unexpected
    )


def test_every_listed_exception_is_still_needed() -> None:
    assert sorted(EXCEPTIONS.keys() - _violations()) == []


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("spinalsam.session", "spinalsam.commands"),
        ("spinalsam.labels", "spinalsam.commands"),
        ("spinalsam.render", "spinalsam.export"),
        ("spinalsam.training.validate", "spinalsam.evaluate"),
    ],
)
def test_the_check_sees_an_upward_import(module: str, target: str) -> None:
    """The checker itself: the upward imports this test was written against are reported."""
    assert _layer(target) > _layer(module)
