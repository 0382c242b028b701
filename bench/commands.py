"""Benchmark the offline command parser on a corpus: accuracy, latency, and the misses.

    python bench/commands.py [--corpus PATH] [--repeat N]

Prints one JSON object: accuracy by the PROTOCOL.md rule, p50/p95 milliseconds per command
(each command timed `repeat` times), and every wrong line with what was produced.
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
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
