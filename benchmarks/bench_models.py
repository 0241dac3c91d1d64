"""Per-model cost: parameters, training step time and peak memory, inference time of a 1024 px burst,
and every model's ratio to the default network (fast-burst), with the speed targets checked.

Training: 128 x 128 crops, batch 8, 5 frames (3 for deblurgan), steps of the real trainer
(:func:`napari_temdeblur.core.train.make_trainer`: forward, backward, Adam; for deblurgan also the
discriminator update), mean over ``--steps`` after ``--warmup`` steps; also one step of the CPU preset
``quick`` (64 px crops), the longest a Stop waits in training. Inference: one ``--size`` x ``--size``
burst through the real restoration path (:func:`napari_temdeblur.core.restore.restore_burst`, the model's
own inference tile, so the paper's networks are tiled as a user's restore tiles them).

Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU, and on the CPU the rise of the process's
peak resident set size (``ru_maxrss``) over its size once the model is built. Every measurement runs
in its own child process, so that one model's peak does not hide the next one's. On a GPU the inference
is also measured with bf16 and fp16 autocast, channels-last and ``torch.compile``, in bursts per second.

    python benchmarks/bench_models.py [--device auto|cpu|cuda] [--threads 2] [--models bu fast-burst]
                                      [--widths tiny full] [--json out.json]

Targets (issue "A fast default burst network", 2 CPU threads): fast-burst restores a 1024 x 1024 x 5
burst in <= 0.5 s, >= 35x faster than tiny bdu-uc-ssim and >= 5x faster than tiny bu measured in the same
run; its training step (batch 8 of 5 x 128 x 128) takes <= 0.5 s with a training peak <= 2 GB.
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

from napari_temdeblur.core import describe_device, drain, resolve_device
from napari_temdeblur.core.models import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    ModelConfig,
    build_model,
    count_parameters,
    frames_required,
)
from napari_temdeblur.core.restore import RestoreOptions, restore_burst
from napari_temdeblur.core.train import PRESETS, TrainConfig, make_trainer

MIB = 2**20
#: Targets of the default network on 2 CPU threads: seconds, speed-ups, MiB.
TARGETS = {"infer_s": 0.5, "vs_tiny_bdu-uc-ssim": 35.0, "vs_tiny_bu": 5.0, "train_step_s": 0.5, "train_peak_mib": 2048}


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


def _config(name: str, width: str) -> ModelConfig:
    return ModelConfig.tiny(name) if width == "tiny" else ModelConfig.full(name)


def _step_seconds(trainer, device, batch: int, frames: int, crop: int, warmup: int, steps: int) -> float:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(batch, frames, crop, crop, generator=generator).to(device)
    targets = torch.rand(batch, 1, crop, crop, generator=generator).to(device)
    for _ in range(warmup):
        trainer.step(inputs, targets)
    _sync(device)
    tic = time.perf_counter()
    for _ in range(steps):
        trainer.step(inputs, targets)
    _sync(device)
    return (time.perf_counter() - tic) / steps


def measure_training(cfg: ModelConfig, device: torch.device, args) -> dict:
    """Mean seconds per training step and peak memory; and one step of the CPU preset's crops."""
    frames = frames_required(cfg) or args.frames
    trainer = make_trainer(
        TrainConfig(model=cfg, patch=args.crop, batch=args.batch, frames=frames, init="scratch"), device
    )
    trainer.train_mode(True)
    start = _memory_start(device)
    step = _step_seconds(trainer, device, args.batch, frames, args.crop, args.warmup, args.steps)
    peak = _memory_peak_mib(device, start)
    quick = PRESETS["quick"].config(model=cfg, init="scratch")
    quick_step = _step_seconds(trainer, device, quick.batch, frames, quick.patch, 1, args.steps)
    return {
        "params": count_parameters(trainer.model),
        "train_step_s": step,
        "train_peak_mib": peak,
        "quick_step_s": quick_step,
    }


def _time_inference(run, device: torch.device, repeats: int) -> float:
    run()  # warm-up: kernel selection, compilation
    _sync(device)
    tic = time.perf_counter()
    for _ in range(repeats):
        run()
    _sync(device)
    return (time.perf_counter() - tic) / repeats


def measure_inference(cfg: ModelConfig, device: torch.device, args) -> dict:
    """Seconds and peak memory to restore one size x size burst as ``temdeblur restore`` does; on a GPU
    also the network alone under autocast, channels-last and torch.compile, in bursts per second."""
    frames = frames_required(cfg) or args.frames
    model = build_model(cfg).to(device).eval()
    burst = torch.rand(frames, args.size, args.size, generator=torch.Generator().manual_seed(0)).numpy()
    options = RestoreOptions(device=str(device), batch=args.infer_batch)
    start = _memory_start(device)
    seconds = _time_inference(lambda: drain(restore_burst(model, burst, options)), device, args.repeats)
    result = {
        "infer_size": args.size,
        "infer_s": seconds,
        "infer_peak_mib": _memory_peak_mib(device, start),
        "inference_tile": int(getattr(model, "inference_tile", 128)),
    }
    if device.type == "cuda":
        x = torch.from_numpy(burst)[None].to(device)
        variants = {}
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            for layout in ("contiguous", "channels_last"):
                net = model.to(memory_format=torch.channels_last) if layout == "channels_last" else model

                def run(net=net, dtype=dtype):
                    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                        net(x)

                variants[f"{label} {layout}"] = 1.0 / _time_inference(run, device, 10)
        if args.compile:
            compiled = torch.compile(model)

            def run_compiled():
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                    compiled(x)

            variants["bf16 compiled"] = 1.0 / _time_inference(run_compiled, device, 10)
        result["gpu_bursts_per_s"] = variants
    return result


def _child(args) -> int:
    device = resolve_device(args.device)
    cfg = _config(args.models[0], args.widths[0])
    try:
        result = measure_training(cfg, device, args) if args.task == "train" else measure_inference(cfg, device, args)
    except (MemoryError, torch.OutOfMemoryError) as exc:
        result = {"error": f"out of memory: {exc}"[:200]}
    print(json.dumps(result))
    return 0


def _run_child(args, name: str, width: str, task: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        task,
        "--device",
        args.device,
        "--models",
        name,
        "--widths",
        width,
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
        "--size",
        str(args.size),
        "--repeats",
        str(args.repeats),
        "--infer-batch",
        str(args.infer_batch),
    ]
    command += ["--compile"] if args.compile else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _checks(rows: dict) -> dict:
    """The targets of the default network against this run's measurements: value, target, met."""
    fast = rows.get(f"{DEFAULT_MODEL} full", {})
    checks = {}
    for key in ("infer_s", "train_step_s", "train_peak_mib"):
        if key in fast:
            checks[key] = {"value": fast[key], "target": f"<= {TARGETS[key]}", "met": fast[key] <= TARGETS[key]}
    for other in ("bdu-uc-ssim", "bu"):
        row = rows.get(f"{other} tiny", {})
        if "infer_s" in row and "infer_s" in fast:
            speedup = row["infer_s"] / fast["infer_s"]
            target = TARGETS[f"vs_tiny_{other}"]
            checks[f"{DEFAULT_MODEL} vs tiny {other}"] = {
                "value": speedup,
                "target": f">= {target}x",
                "met": speedup >= target,
            }
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument(
        "--widths",
        nargs="+",
        default=["tiny", "full"],
        choices=("tiny", "full"),
        help="widths of the paper's networks (the default network is measured at its own)",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--frames", type=int, default=5, help="burst models; deblurgan always takes 3")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first")
    parser.add_argument("--size", type=int, default=1024, help="inference burst side, px")
    parser.add_argument("--repeats", type=int, default=2, help="timed inferences (after one warm-up)")
    parser.add_argument("--infer-batch", type=int, default=1, help="tiles per forward pass in inference")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, as the targets)")
    parser.add_argument("--compile", action="store_true", help="on a GPU, also time torch.compile")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", choices=("train", "infer"), dest="task", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.task:
        return _child(args)

    device = resolve_device(args.device)
    print(
        f"device: {describe_device(device)}; torch {torch.__version__}; training crops {args.crop} x {args.crop}, "
        f"batch {args.batch}, {args.frames} frames (deblurgan 3); inference {args.size} x {args.size}",
        flush=True,
    )
    rows = {}
    for name in args.models:
        for width in ["full"] if name == DEFAULT_MODEL else args.widths:
            key = f"{name} {width}"
            train, infer = _run_child(args, name, width, "train"), _run_child(args, name, width, "infer")
            errors = [f"{part}: {r.pop('error')}" for part, r in (("train", train), ("infer", infer)) if "error" in r]
            rows[key] = {**train, **infer, **({"error": "; ".join(errors)} if errors else {})}
            print(f"  {key}: {rows[key]}", flush=True)
    fast = rows.get(f"{DEFAULT_MODEL} full", {})
    for row in rows.values():  # how many times slower than the default network
        for key in ("infer_s", "train_step_s"):
            if key in row and key in fast:
                row[f"{key}_vs_default"] = row[key] / fast[key]

    header = (
        f"{'model':<18} {'params':>11} {'train step s':>13} {'x default':>10} {'train peak MiB':>15} "
        f"{'infer s':>9} {'x default':>10} {'infer peak MiB':>15}"
    )
    print(header)
    print("-" * len(header))
    for key, row in rows.items():
        cells = [
            (f"{row['params']:,}" if "params" in row else "-", 11),
            (f"{row['train_step_s']:.3f}" if "train_step_s" in row else "-", 13),
            (f"{row['train_step_s_vs_default']:.1f}" if "train_step_s_vs_default" in row else "-", 10),
            (f"{row['train_peak_mib']:.0f}" if "train_peak_mib" in row else "-", 15),
            (f"{row['infer_s']:.3f}" if "infer_s" in row else "-", 9),
            (f"{row['infer_s_vs_default']:.1f}" if "infer_s_vs_default" in row else "-", 10),
            (f"{row['infer_peak_mib']:.0f}" if "infer_peak_mib" in row else "-", 15),
        ]
        print(
            f"{key:<18} " + " ".join(f"{c:>{w}}" for c, w in cells) + (f"  ({row['error']})" if "error" in row else "")
        )
    checks = _checks(rows)
    for name, check in checks.items():
        print(f"{name}: {check['value']:.3f} (target {check['target']}): {'met' if check['met'] else 'MISSED'}")
    if "quick_step_s" in fast:
        print(f"Stop waits at most one step of the quick preset: {fast['quick_step_s']:.3f} s for {DEFAULT_MODEL}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"device": describe_device(device), "settings": vars(args), "results": rows, "targets": checks},
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
