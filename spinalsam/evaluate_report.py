"""One table over every labelled source: source × plane × prompt, clean/jittered/flipped, 2-D + 3-D.

    python -m spinalsam.evaluate_report [--quick] [--backend default,baseline] [--sources a,b]
        [--json] [--markdown FILE] [--no-3d] [--no-jitter] [--no-flip] [--seed 0]
        [--held-out COLUMN=SRC[+SRC...]] [--trained-on COLUMN=SRC[+SRC...]]
    python -m spinalsam.evaluate_report --merge run1.json run2.json ... [--markdown FILE]

Sources are those of spinalsam.evaluation.sources (../shared/data, and the fetched chest CT in
../shared-cache, skipped with a note when absent). `--quick` scores a few slices per source and
two vertebrae per volume in 3-D: run it before every change; the full run is for reports.
`--backend` takes registry names or learned:PATH (other weights, e.g. a model trained without
some sources), or COLUMN=NAME to name a column (e.g. holdout=learned:/tmp/holdB.onnx).
Leave-one-source-out: `--held-out loso=tptbox` scores that column on tptbox only; run once per
held-out source (with that source's model selected, e.g. through its environment variable),
print `--json`, and join the runs with `--merge`. `--trained-on learned=r1-sample+chest-ct`
marks the cells of sources a model saw in training with `*`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from spinalsam.evaluation.backends import check_backend_spec
from spinalsam.evaluation.report import (
    FULL,
    QUICK,
    Column,
    markdown_report,
    merge_reports,
    run_report,
)
from spinalsam.evaluation.runner import Modes
from spinalsam.evaluation.sources import CACHE_ROOT, DATA_ROOT, SOURCES, source_names
from spinalsam.segmenters.base import SegmenterError

__all__ = ["main"]


def _mapping(
    parser: argparse.ArgumentParser, items: Sequence[str], option: str
) -> dict[str, frozenset[str]]:
    """COLUMN=SRC+SRC entries → {column: sources}; unknown sources are an error."""
    out: dict[str, frozenset[str]] = {}
    for item in items:
        column, _, value = item.partition("=")
        sources = frozenset(s.strip() for s in value.split("+") if s.strip())
        unknown = sources - set(source_names())
        if not column.strip() or not sources or unknown:
            parser.error(
                f"{option} takes COLUMN=SOURCE[+SOURCE...] with sources from "
                f"{', '.join(source_names())}; got {item!r}"
            )
        out[column.strip()] = sources
    return out


def _columns(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Column]:
    held_out = _mapping(parser, args.held_out, "--held-out")
    trained_on = _mapping(parser, args.trained_on, "--trained-on")
    columns = []
    for entry in (e.strip() for e in args.backend.split(",") if e.strip()):
        name, _, backend = entry.rpartition("=")
        name = (name or backend).strip()
        try:
            backend = check_backend_spec(backend)
        except SegmenterError as exc:
            parser.error(str(exc))
        columns.append(
            Column(
                name, backend, held_out.get(name, frozenset()), trained_on.get(name, frozenset())
            )
        )
    names = [c.name for c in columns]
    if not columns or len(set(names)) != len(names):
        parser.error("--backend needs at least one backend and distinct column names")
    unused = (set(held_out) | set(trained_on)) - set(names)
    if unused:
        parser.error(f"--held-out/--trained-on name columns that --backend lacks: {sorted(unused)}")
    return columns


def _parse_args(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m spinalsam.evaluate_report",
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", default="default,baseline", help="NAME or COLUMN=NAME, ...")
    parser.add_argument("--sources", help=f"comma-separated subset of {', '.join(source_names())}")
    parser.add_argument("--quick", action="store_true", help="a few slices per source (~2 min)")
    parser.add_argument("--no-3d", action="store_true", help="skip 3-D propagation")
    parser.add_argument("--no-jitter", action="store_true", help="skip jittered prompts")
    parser.add_argument("--no-flip", action="store_true", help="skip mirrored slices")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter")
    parser.add_argument("--held-out", action="append", default=[], metavar="COLUMN=SRC[+SRC]")
    parser.add_argument("--trained-on", action="append", default=[], metavar="COLUMN=SRC[+SRC]")
    parser.add_argument("--data", type=Path, default=DATA_ROOT, help="root of the shared data")
    parser.add_argument("--cache", type=Path, default=CACHE_ROOT, help="root of fetched data")
    parser.add_argument("--merge", nargs="+", type=Path, help="join earlier --json outputs")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    return parser, parser.parse_args(argv)


def _selected_sources(parser: argparse.ArgumentParser, text: str | None) -> list:
    if text is None:
        return list(SOURCES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in source_names()]
    if not names or unknown:
        parser.error(f"unknown source {unknown or text!r}; valid: {', '.join(source_names())}")
    return [s for s in SOURCES if s.name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser, args = _parse_args(argv)
    if args.merge:
        try:
            report = merge_reports([json.loads(p.read_text()) for p in args.merge])
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"cannot merge: {exc}")
    else:
        columns = _columns(parser, args)
        sources = _selected_sources(parser, args.sources)
        modes = Modes(jitter=not args.no_jitter, flip=not args.no_flip, seed=args.seed)
        budget = QUICK if args.quick else FULL
        report = run_report(sources, columns, args.data, args.cache, budget, modes, not args.no_3d)
    table = markdown_report(report)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(json.dumps({**report, "table": table}) if args.json else table)
    print(f"report took {report['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
