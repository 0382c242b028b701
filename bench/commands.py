"""Benchmark the offline command parser: accuracy per category and language, the off-topic result,
latency, and chat → updated image.

    python bench/commands.py [--corpus PATH ...] [--repeat N] [--no-chat]

By default it scores the shared dev corpus (../shared/commands/dev.jsonl) and every corpus of
our own in tests/commands/ (dev.jsonl was developed against; each heldout*.jsonl was committed
before it was first scored — their first scores are in the chat reports and docs/protocol.md).
Prints one JSON object: per corpus the accuracy by the PROTOCOL.md rule, per category and per
language, the off-topic lines that produced any operation, and every miss; then parse p50/p95
over all lines and `chat_to_image`: message → parsed → applied by the session → view
re-rendered, on a 512² slice with the embedded default backend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from spinalsam.commands import parse_offline
from spinalsam.commands.corpus import CorpusLine, load_corpus, matches
from spinalsam.ops import dump_operations

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = (
    REPO.parent / "shared" / "commands" / "dev.jsonl",
    *sorted((REPO / "tests" / "commands").glob("*.jsonl")),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, nargs="*", default=list(DEFAULT_CORPORA))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-chat", action="store_true", help="skip the chat → image timing")
    args = parser.parse_args()

    corpora = {str(path): load_corpus(path) for path in args.corpus if path.is_file()}
    report: dict[str, object] = {
        "corpora": {name: score_by_group(lines) for name, lines in corpora.items()}
    }
    report["parse_ms"] = parse_latency(
        [line for lines in corpora.values() for line in lines], args.repeat
    )
    if not args.no_chat:
        report["chat_to_image"] = chat_to_image_ms(args.repeat)
    print(json.dumps(report, ensure_ascii=False, indent=2))


def score_by_group(lines: list[CorpusLine]) -> dict[str, object]:
    """Accuracy overall, per category and per language; off-topic lines that acted; misses."""
    hits: dict[str, list[bool]] = defaultdict(list)
    wrong, acted = [], []
    for line in lines:
        got = dump_operations(parse_offline(line.text).operations)
        ok = matches(line.expect, got)
        for group in ("all", f"category:{line.category or '-'}", f"lang:{line.lang or '-'}"):
            hits[group].append(ok)
        if not line.expect and got:
            acted.append({"text": line.text[:80], "got": got})
        if not ok:
            wrong.append({"text": line.text, "expect": line.expect, "got": got})
    commands = [ok for line, ok in zip(lines, hits["all"], strict=True) if line.expect]
    return {
        "lines": len(lines),
        "accuracy": _rate(hits["all"]),
        "command_accuracy": _rate(commands),
        "groups": {k: f"{sum(v)}/{len(v)} ({_rate(v):.1%})" for k, v in sorted(hits.items())},
        "offtopic_lines": sum(not line.expect for line in lines),
        "offtopic_that_acted": acted,
        "wrong": wrong,
    }


def _rate(values: list[bool]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def parse_latency(lines: list[CorpusLine], repeat: int) -> dict[str, float]:
    timings_ms = []
    for line in lines:
        for _ in range(repeat):
            start = time.perf_counter()
            parse_offline(line.text)
            timings_ms.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(timings_ms, n=100)
    return {
        "lines": len(lines),
        "p50_ms": round(cuts[49], 3),
        "p95_ms": round(cuts[94], 3),
        "max_ms": round(max(timings_ms), 3),
    }


CHAT_SCRIPT = (
    "add a box from (150, 170) to (360, 350) and generate the box mask",
    "clear the mask",
    "add a point at (256, 240)",
    "generate point mask",
    "undo",
    "redo",
    "W1500 L300",
    "use the bone window",
    "go down 2 slices",
    "往上翻两层",
)


def chat_to_image_ms(repeat: int) -> dict[str, object]:
    """What one chat message costs end to end in the app's process, per message kind."""
    import tempfile

    import SimpleITK as sitk

    from spinalsam.backends import DefaultBackend
    from spinalsam.commands import Router
    from spinalsam.phantom import make_spine_phantom
    from spinalsam.render import compose_view
    from spinalsam.session import Session

    folder = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    volume, _ = make_spine_phantom(shape=(9, 512, 512), n_vertebrae=1)
    sitk.WriteImage(sitk.GetImageFromArray(volume.astype("int16")), str(folder / "ct.nii.gz"))
    session = Session(DefaultBackend(), workdir=folder)
    session.open_files([folder / "ct.nii.gz"])
    router = Router(None)
    per_message: dict[str, list[float]] = {text: [] for text in CHAT_SCRIPT}
    for _ in range(max(1, repeat // 4)):
        for text in CHAT_SCRIPT:
            start = time.perf_counter()
            result = router.parse(text, image_size=(512, 512))
            results = session.apply(result.operations)
            image = session.slice_image()
            compose_view(image.display, session.label_slice(), session.prompts)
            per_message[text].append((time.perf_counter() - start) * 1000)
            assert all(r.ok for r in results), [r.message for r in results]
    every = [t for times in per_message.values() for t in times]
    cuts = statistics.quantiles(every, n=100)
    return {
        "slice": "512x512 HU phantom, embedded default backend, offline router",
        "p50_ms": round(cuts[49], 1),
        "p95_ms": round(cuts[94], 1),
        "max_ms": round(max(every), 1),
        "per_message_p50_ms": {k: round(statistics.median(v), 1) for k, v in per_message.items()},
    }


if __name__ == "__main__":
    main()
