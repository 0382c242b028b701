"""`python -m spinalsam.train_default`: build the data and train the embedded default segmenter.

    # 1. packs of every labelled source (SimpleITK; labels resampled by physical position)
    python -m spinalsam.train_default build-data --data ../shared/data \
        --chest ../shared-cache/chest-ct --out runs/default-data
    # 2. train (CPU config of the shipped weights; see docs in the weights' JSON for the GPU run)
    python -m spinalsam.train_default train --packs runs/default-data --out runs/default \
        [--samples 60000] [--steps 6000] [--batch 64] [--widths 16,32,64,128] [--device cpu]
        [--loso --sweep "16,32,64,128;32,64,128,256" --fold-steps 2000]
    # 3. ONNX + JSON into the package
    python -m spinalsam.train_default export --run runs/default \
        --out spinalsam/segmenters/weights/default.onnx

`--loso` trains one network per held-out source (and per architecture in `--sweep`), scores it
on that source only, and picks the architecture with the best mean held-out Dice; the final
network is then trained on every source. Everything is seeded (`--seed`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _widths(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spinalsam.train_default",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build-data", help="write one .npz pack per labelled source")
    build.add_argument("--data", type=Path, default=Path("../shared/data"))
    build.add_argument("--chest", type=Path, default=Path("../shared-cache/chest-ct"))
    build.add_argument("--out", type=Path, required=True)
    train = sub.add_parser("train", help="train (optionally leave-one-source-out first)")
    train.add_argument("--packs", type=Path, required=True)
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--samples", type=int, default=60000)
    train.add_argument("--steps", type=int, default=6000)
    train.add_argument("--batch", type=int, default=64)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--widths", type=_widths, default=(16, 32, 64, 128))
    train.add_argument("--size", type=int, default=64, help="network crop side (pixels)")
    train.add_argument(
        "--seconds", type=float, default=0.0, help="train for this long instead of --steps"
    )
    train.add_argument("--device", default="cpu")
    train.add_argument("--workers", type=int, default=1)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--crops", type=Path, help="cache of the generated crops (.npz)")
    train.add_argument("--init", type=Path, help="start from this run's model.pt (same widths)")
    train.add_argument(
        "--holdout",
        default="",
        help="sources left out of training and scored (e.g. tptbox,totalseg)",
    )
    train.add_argument("--loso", action="store_true", help="leave-one-source-out first")
    train.add_argument("--sweep", default="", help="architectures for --loso, ';'-separated")
    train.add_argument("--fold-steps", type=int, default=2000)
    train.add_argument("--val-per-plane", type=int, default=40)
    train.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="wall-clock budget: the final run's steps shrink to fit it (0: no limit)",
    )
    export = sub.add_parser("export", help="ONNX + JSON of a trained run")
    export.add_argument("--run", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def _load_packs(folder: Path) -> dict[str, Any]:
    from spinalsam.training.default_sampler import load_pack

    return {p.stem: load_pack(p) for p in sorted(folder.glob("*.npz"))}


Job = tuple[dict[str, Any], tuple[int, ...], str, int, int]


def _job(model: Any, widths: tuple[int, ...], pack: Path, args: argparse.Namespace) -> Job:
    """What a validation process needs: the weights as arrays, the pack and the protocol."""
    return (_state(model), widths, str(pack), args.val_per_plane, args.seed)


def _validate_job(job: Job) -> dict[str, Any]:
    """One held-out source scored by one network (in a spawned process, one thread)."""
    import torch

    torch.set_num_threads(1)
    from spinalsam.training.default_loop import learned, torch_runner, validate
    from spinalsam.training.default_model import UNet
    from spinalsam.training.default_sampler import load_pack

    state, widths, pack, per_plane, seed = job
    model = UNet(widths)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return validate(learned(torch_runner(model)), load_pack(Path(pack)), per_plane, seed)


def _state(model: Any) -> dict[str, Any]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def _train(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from spinalsam.training.default_loop import FitConfig, fit, generate, resize_crops

    args.out.mkdir(parents=True, exist_ok=True)
    log_file = (args.out / "log.txt").open("a")

    def log(text: str) -> None:
        print(text, flush=True)
        log_file.write(text + "\n")
        log_file.flush()

    started = time.perf_counter()
    packs = _load_packs(args.packs)
    if args.crops is not None and args.crops.exists():
        with np.load(args.crops) as cached:
            data = {k[2:]: (cached[k], cached["y_" + k[2:]]) for k in cached.files if k[:2] == "x_"}
    else:
        data = generate(packs, args.samples, args.seed, args.workers)
        if args.crops is not None:
            np.savez(
                args.crops,
                **{f"x_{k}": x for k, (x, _) in data.items()},
                **{f"y_{k}": y for k, (_, y) in data.items()},
            )
    data = {k: resize_crops(x, y, args.size) for k, (x, y) in data.items()}
    log(
        f"generated {sum(len(x) for x, _ in data.values())} crops "
        f"({ {k: len(x) for k, (x, _) in data.items()} }) in {time.perf_counter() - started:.0f}s"
    )

    held_out = [s for s in args.holdout.split(",") if s.strip()]

    def pooled(skip: str | None) -> tuple[np.ndarray, np.ndarray]:
        keep = [k for k in sorted(data) if k != skip and k not in held_out]
        return np.concatenate([data[k][0] for k in keep]), np.concatenate(
            [data[k][1] for k in keep]
        )

    loso: dict[str, Any] = {}
    step_times: dict[tuple[int, ...], list[float]] = {}
    widths = args.widths
    if args.loso:
        sweep = [_widths(s) for s in args.sweep.split(";") if s.strip()] or [args.widths]
        ctx = mp.get_context("spawn")
        with ctx.Pool(max(1, min(16, (os.cpu_count() or 2) - 1))) as pool:
            pending = []
            for arch in sweep:
                for source in sorted(data):
                    xs, ys = pooled(source)
                    config = FitConfig(arch, args.fold_steps, args.batch, args.lr, seed=args.seed)
                    log(f"LOSO {arch} without {source}: {len(xs)} crops")
                    model = fit(xs, ys, config, args.device, log)
                    step_times.setdefault(arch, []).append(model.seconds_per_step)
                    job = _job(model, arch, args.packs / f"{source}.npz", args)
                    pending.append((arch, source, pool.apply_async(_validate_job, (job,))))
            for arch, source, result in pending:
                loso.setdefault(",".join(map(str, arch)), {})[source] = result.get()
                log(f"LOSO {arch} {source}: {json.dumps(loso[','.join(map(str, arch))][source])}")

        def mean_score(by_source: dict[str, Any]) -> float:
            return float(
                np.mean(
                    [
                        v
                        for planes in by_source.values()
                        for kinds in planes.values()
                        for k, v in kinds.items()
                        if k != "n"
                    ]
                )
            )

        ranked = sorted(loso, key=lambda a: mean_score(loso[a]), reverse=True)
        widths = _widths(ranked[0])
        log(f"chosen {widths}: " + ", ".join(f"{a}={mean_score(loso[a]):.4f}" for a in ranked))
    xs, ys = pooled(None)
    steps = args.steps
    if args.budget_s and args.loso:
        left = args.budget_s - (time.perf_counter() - started) - 15
        per_step = max(m for m in step_times.get(widths, [0.0])) * 1.1
        if per_step > 0:
            steps = max(500, min(steps, int(left / per_step)))
        log(f"final steps {steps} ({per_step * 1000:.1f} ms/step, {left:.0f}s left)")
    config = FitConfig(widths, steps, args.batch, args.lr, seed=args.seed, seconds=args.seconds)
    fit_started = time.perf_counter()
    model = fit(xs, ys, config, args.device, log, init=args.init)
    fit_seconds = time.perf_counter() - fit_started
    torch.save({"state": model.state_dict(), "widths": list(widths)}, args.out / "model.pt")
    manifest_path = args.packs / "manifest.json"
    record = {
        "command": " ".join(["python -m spinalsam.train_default", *sys.argv[1:]]),
        "fit": {**config.__dict__, "widths": list(widths)},
        "samples": args.samples,
        "init": str(args.init) if args.init else None,
        "size": args.size,
        "steps_done": model.steps_done,
        "seconds_per_step": {
            ",".join(map(str, a)): round(float(np.median(t)), 4) for a, t in step_times.items()
        },
        "data": json.loads(manifest_path.read_text()) if manifest_path.exists() else {},
        "device": args.device
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""),
        "fit_seconds": round(fit_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "loso": loso,
        "trained_on": [k for k in sorted(data) if k not in held_out],
    }
    if held_out:
        for source in held_out:
            job = _job(model, widths, args.packs / f"{source}.npz", args)
            record.setdefault("held_out", {})[source] = _validate_job(job)
            log(f"held out {source}: {json.dumps(record['held_out'][source])}")
    (args.out / "train.json").write_text(json.dumps(record, indent=1))
    log(f"done in {record['total_seconds']}s")
    return 0


def _export(args: argparse.Namespace) -> int:
    import torch

    from spinalsam.segmenters.learned import LearnedConfig
    from spinalsam.training.default_model import UNet, export_onnx

    checkpoint = torch.load(args.run / "model.pt", map_location="cpu")
    model = UNet(tuple(checkpoint["widths"]))
    model.load_state_dict(checkpoint["state"])
    record = json.loads((args.run / "train.json").read_text())
    inference = LearnedConfig(size=record.get("size", LearnedConfig().size))
    export_onnx(model, inference.size, args.out)
    record["inference"] = inference.__dict__
    record["onnx_sha256"] = hashlib.sha256(args.out.read_bytes()).hexdigest()
    record["parameters"] = sum(p.numel() for p in model.parameters())
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) and its JSON")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "build-data":
        from spinalsam.training.default_data import build_packs

        manifest = build_packs(args.data, args.chest, args.out)
        print(json.dumps(manifest, indent=1))
        return 0
    if args.command == "train":
        return _train(args)
    return _export(args)


if __name__ == "__main__":
    sys.exit(main())
