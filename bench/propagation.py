"""How long 3-D propagation takes over 30 slices of 512², printed as one JSON object.

    python bench/propagation.py [--backend default] [--repeats 3]

A synthetic 512² spine phantom (one vertebra 40 slices tall, so no side stops early) is
propagated 15 slices up and 15 down from its middle with the rules that suit the backend
(`propagation.rules_for`, as in the app: the prior-following rules for the learned default);
the time is the wall clock of `propagate`, slices set and segmented included. Target: ≤ 3 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spinalsam.phantom import make_spine_phantom  # noqa: E402
from spinalsam.propagation import PRIOR_FOLLOWING_RULES, propagate, rules_for  # noqa: E402
from spinalsam.segmenters.registry import create_segmenter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="default")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    volume, labels = make_spine_phantom(shape=(48, 512, 512), n_vertebrae=1)
    start = 24
    segmenter = create_segmenter(args.backend)
    times, counts = [], []
    for _ in range(args.repeats):
        began = time.perf_counter()
        result = propagate(
            volume,
            True,
            (0.7, 0.7, 1.0),
            "axial",
            start,
            labels[start] == 1,
            segmenter,
            max_slices=15,
        )
        times.append(time.perf_counter() - began)
        counts.append(result.n_slices - 1)
    print(
        json.dumps(
            {
                "backend": args.backend,
                "rules": (
                    "prior-following"
                    if rules_for(segmenter) == PRIOR_FOLLOWING_RULES
                    else "defaults"
                ),
                "slices": int(np.median(counts)),
                "seconds_median": round(float(np.median(times)), 2),
                "seconds_max": round(max(times), 2),
                "target_seconds": 3.0,
            }
        )
    )


if __name__ == "__main__":
    main()
