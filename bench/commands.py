"""Benchmark the offline command parser on a corpus: accuracy, latency, and the misses.

    python bench/commands.py [--corpus PATH] [--repeat N]

Prints one JSON object: accuracy by the PROTOCOL.md rule, p50/p95 milliseconds per command
(each command timed `repeat` times), every wrong line with what was produced, and
`chat_to_image`: chat message → parsed → applied by the session → view re-rendered, on a 512²
slice with the embedded default backend (the time a user waits, minus the browser round trip).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from spinalsam.commands import parse_offline
from spinalsam.commands.corpus import load_corpus, score

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "commands" / "dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    corpus = load_corpus(args.corpus)
    result = score(corpus, lambda text: parse_offline(text).operations)
    timings_ms = []
    for line in corpus:
        for _ in range(args.repeat):
            start = time.perf_counter()
            parse_offline(line.text)
            timings_ms.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(timings_ms, n=100)
    report = {
        "corpus": str(args.corpus),
        "commands": len(corpus),
        "accuracy": round(result.accuracy, 4),
        "p50_ms": round(cuts[49], 3),
        "p95_ms": round(cuts[94], 3),
        "max_ms": round(max(timings_ms), 3),
        "wrong": result.wrong,
    }
    report["chat_to_image"] = chat_to_image_ms(args.repeat)
    print(json.dumps(report, ensure_ascii=False, indent=2))


CHAT_SCRIPT = (
    "add a box from (150, 170) to (360, 350) and generate the box mask",
    "clear the mask",
    "add a point at (256, 240)",
    "generate point mask",
    "undo",
    "use the bone window",
    "next slice",
    "previous image",
)


def chat_to_image_ms(repeat: int) -> dict[str, object]:
    """What one chat message costs end to end in the app's process, per message kind."""
    import tempfile

    import SimpleITK as sitk

    from spinalsam.backends import DefaultBackend
    from spinalsam.phantom import make_spine_phantom
    from spinalsam.render import compose_view
    from spinalsam.session import Session

    folder = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    volume, _ = make_spine_phantom(shape=(9, 512, 512), n_vertebrae=1)
    sitk.WriteImage(sitk.GetImageFromArray(volume.astype("int16")), str(folder / "ct.nii.gz"))
    session = Session(DefaultBackend(), workdir=folder)
    session.open_files([folder / "ct.nii.gz"])
    per_message: dict[str, list[float]] = {text: [] for text in CHAT_SCRIPT}
    for _ in range(max(1, repeat // 4)):
        for text in CHAT_SCRIPT:
            start = time.perf_counter()
            results = session.apply(parse_offline(text).operations)
            image = session.slice_image()
            compose_view(image.display, session.label_slice(), session.prompts)
            per_message[text].append((time.perf_counter() - start) * 1000)
            assert all(r.ok for r in results), [r.message for r in results]
    every = [t for times in per_message.values() for t in times]
    cuts = statistics.quantiles(every, n=100)
    return {
        "slice": "512x512 HU phantom, embedded default backend",
        "p50_ms": round(cuts[49], 1),
        "p95_ms": round(cuts[94], 1),
        "max_ms": round(max(every), 1),
        "per_message_p50_ms": {k: round(statistics.median(v), 1) for k, v in per_message.items()},
    }


if __name__ == "__main__":
    main()
