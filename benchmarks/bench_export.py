"""Export of every network: does it export, how close is the exported model to torch, how long it takes.

Each network at its test width with random weights (an export does not depend on how well a network
was trained), plus the shipped pretrained fast-burst, is exported with ``core.share.export_onnx``,
which checks onnxruntime against torch on two burst sizes and refuses to write a model that differs
by more than 1e-4, or with ``--format bioimageio`` as a bioimage.io package with
``core.share.export_bioimageio`` (TorchScript and ONNX checked the same way, test tensors from the
kidney sample burst, then bioimage.io's own model test).

    python benchmarks/bench_export.py [--threads 2] [--format onnx|bioimageio]

Needs the export extra (``pip install "napari-temdeblur[export]"``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from napari_temdeblur.core.imaging import IntensityWindow
from napari_temdeblur.core.models import MODEL_NAMES, ModelConfig, build_model, frames_required, save_checkpoint
from napari_temdeblur.core.share import export_bioimageio, export_onnx
from napari_temdeblur.core.simulate import SAMPLE_DATA_DIR, SAMPLE_NAMES, write_samples


def _tiny_run(folder: Path, name: str) -> Path:
    cfg = ModelConfig.tiny(name)
    frames = frames_required(cfg) or 5
    window = IntensityWindow(0.0, 1000.0)
    state = build_model(cfg, pretrained=False).state_dict()
    save_checkpoint(
        folder / "best.pt",
        model=cfg,
        state_dict=state,
        epoch=1,
        gt_window=window,
        low_window=window,
        frames=(frames, frames),
    )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--format", choices=("onnx", "bioimageio"), default="onnx", help="what to export")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{'network':<22} {'result':<8} {'max |exported - torch|':>22} {'export s':>9}  load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="temdeblur-export-") as tmp:
        runs = {f"{name} (tiny)": _tiny_run(Path(tmp, name), name) for name in MODEL_NAMES}
        runs["fast-burst (pretrained)"] = "pretrained"
        # the kidney sample burst for the package's test tensors: shipped in a checkout, else simulated
        samples = SAMPLE_DATA_DIR if SAMPLE_DATA_DIR and SAMPLE_DATA_DIR.is_dir() else None
        sample = (samples or write_samples(Path(tmp, "samples"), ("kidney",))) / SAMPLE_NAMES["kidney"]
        for label, run in runs.items():
            start = time.perf_counter()
            try:
                if args.format == "bioimageio":
                    result = export_bioimageio(run, Path(tmp, f"{label}.zip"), sample=sample)
                    outcome = f"ok, test {result.test}"
                else:
                    result, outcome = export_onnx(run, Path(tmp, f"{label}.onnx")), "ok"
                difference = f"{result.max_abs_difference:.1e}"
            except ValueError as exc:
                outcome, difference, reason = "refused", str(exc).split(" by ")[-1].split(" ")[0], str(exc)
            print(f"{label:<22} {outcome:<8} {difference:>22} {time.perf_counter() - start:>9.1f}", flush=True)
            if outcome == "refused" and args.format == "bioimageio":
                print(f"    {reason[:2000]}", flush=True)


if __name__ == "__main__":
    main()
