"""Per-model cost at the paper's settings: parameters, training step time, peak memory, inference time.

Training: full widths, 128 x 128 crops, batch 8, 5 frames (3 for deblurgan), one step of the real
trainer (:func:`napari_temdeblur.core.train.make_trainer`: forward, backward, Adam; for deblurgan
also the discriminator update), mean over ``--steps`` after ``--warmup`` steps. Inference: one
``--size`` x ``--size`` burst, batch 1, eval mode, no gradients.

Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU, and on the CPU the rise of the process's
peak resident set size (``ru_maxrss``) over its size once the model is built. Every measurement runs
in its own child process so that one model's peak does not hide the next one's; an inference that
the machine cannot hold (child killed or out of memory) is retried at half the size and marked.

    python benchmarks/bench_models.py [--device auto|cpu|cuda] [--models bu bdu-uc] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import psutil
import torch

from napari_temdeblur.core import describe_device, resolve_device
from napari_temdeblur.core.models import (
    MODEL_NAMES,
    ModelConfig,
    build_model,
    count_parameters,
    frames_required,
)
from napari_temdeblur.core.train import TrainConfig, make_trainer

MIB = 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory_start(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return 0
    return psutil.Process().memory_info().rss


def _memory_peak_mib(device: torch.device, start: int) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MIB
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - start) / MIB


def measure_training(name: str, device: torch.device, args) -> dict:
    """Mean seconds per training step and peak memory, at the paper's crop, batch and frames."""
    cfg = ModelConfig.full(name)
    frames = frames_required(cfg) or args.frames
    trainer = make_trainer(TrainConfig(model=cfg, patch=args.crop, batch=args.batch, frames=frames), device)
    trainer.train_mode(True)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(args.batch, frames, args.crop, args.crop, generator=generator).to(device)
    targets = torch.rand(args.batch, 1, args.crop, args.crop, generator=generator).to(device)
    start = _memory_start(device)
    for _ in range(args.warmup):
        trainer.step(inputs, targets)
    _sync(device)
    times = []
    for _ in range(args.steps):
        tic = time.perf_counter()
        trainer.step(inputs, targets)
        _sync(device)
        times.append(time.perf_counter() - tic)
    return {
        "params": count_parameters(trainer.model),
        "train_step_s": sum(times) / len(times),
        "train_peak_mib": _memory_peak_mib(device, start),
    }


def measure_inference(name: str, device: torch.device, size: int, args) -> dict:
    """Seconds and peak memory to restore one size x size burst (mean of two after a warm-up)."""
    cfg = ModelConfig.full(name)
    frames = frames_required(cfg) or args.frames
    model = build_model(cfg).to(device).eval()
    burst = torch.rand(1, frames, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    start = _memory_start(device)
    with torch.no_grad():
        model(burst[..., : size // 4, : size // 4])  # warm-up (kernel selection) at a small size
        _sync(device)
        if device.type == "cpu":
            # Activations grow with the area: refuse what would not fit rather than swamp the machine.
            needed = 16 * _memory_peak_mib(device, start) * MIB
            if needed > 0.7 * psutil.virtual_memory().available:
                raise MemoryError(
                    f"about {needed / 2**30:.1f} GiB needed at {size} x {size}, "
                    f"{psutil.virtual_memory().available / 2**30:.1f} GiB available"
                )
        times = []
        for _ in range(2 if device.type == "cuda" else 1):
            tic = time.perf_counter()
            model(burst)
            _sync(device)
            times.append(time.perf_counter() - tic)
    return {"infer_size": size, "infer_s": sum(times) / len(times), "infer_peak_mib": _memory_peak_mib(device, start)}


def _child(args) -> int:
    device = resolve_device(args.device)
    if args.task == "train":
        result = measure_training(args.models[0], device, args)
    else:
        try:
            result = measure_inference(args.models[0], device, args.size, args)
        except (MemoryError, torch.OutOfMemoryError) as exc:
            result = {"error": f"out of memory: {exc}"[:200]}
    print(json.dumps(result))
    return 0


def _run_child(args, name: str, task: str, size: int | None = None) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        task,
        "--device",
        args.device,
        "--models",
        name,
        "--batch",
        str(args.batch),
        "--crop",
        str(args.crop),
        "--frames",
        str(args.frames),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
    ]
    if size is not None:
        command += ["--size", str(size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _inference_with_fallback(args, name: str) -> dict:
    size = args.size
    while True:
        result = _run_child(args, name, "infer", size)
        if "error" not in result or size <= 256:
            return result
        print(f"  {name}: inference at {size} x {size} failed ({result['error']}); trying {size // 2}", flush=True)
        size //= 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--frames", type=int, default=5, help="burst models; deblurgan always takes 3")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first")
    parser.add_argument("--size", type=int, default=1024, help="inference burst side, px")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", choices=("train", "infer"), dest="task", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.task:
        return _child(args)

    device = resolve_device(args.device)
    print(
        f"device: {describe_device(device)}; torch {torch.__version__}; crops {args.crop} x {args.crop}, "
        f"batch {args.batch}, {args.frames} frames (deblurgan 3); {args.steps} timed steps after "
        f"{args.warmup} warm-up",
        flush=True,
    )
    rows = {}
    for name in args.models:
        train, infer = _run_child(args, name, "train"), _inference_with_fallback(args, name)
        errors = [
            f"{part}: {result.pop('error')}"
            for part, result in (("train", train), ("infer", infer))
            if "error" in result
        ]
        rows[name] = {**train, **infer, **({"error": "; ".join(errors)} if errors else {})}
        print(f"  {name}: {rows[name]}", flush=True)

    header = (
        f"{'model':<12} {'params':>11} {'train step s':>13} {'train peak MiB':>15} {'infer size':>11} "
        f"{'infer s':>9} {'infer peak MiB':>15}"
    )
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        cells = [
            f"{row['params']:,}" if "params" in row else "-",
            *(f"{row[key]:.3f}" if key in row else "-" for key in ("train_step_s",)),
            f"{row['train_peak_mib']:.0f}" if "train_peak_mib" in row else "-",
            str(row.get("infer_size", "-")),
            f"{row['infer_s']:.3f}" if "infer_s" in row else "-",
            f"{row['infer_peak_mib']:.0f}" if "infer_peak_mib" in row else "-",
        ]
        widths = (11, 13, 15, 11, 9, 15)
        print(
            f"{name:<12} "
            + " ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths))
            + (f"  ({row['error']})" if "error" in row else "")
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": describe_device(device), "settings": vars(args), "results": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
