"""ONNX export of every network: does it export, how close is onnxruntime to torch, how long it takes.

Each network at its test width with random weights (an export does not depend on how well a network
was trained), plus the shipped pretrained fast-burst, is exported with ``core.share.export_onnx``,
which checks onnxruntime against torch on two burst sizes and refuses to write a model that differs
by more than 1e-4.

    python benchmarks/bench_export.py [--threads 2]

Needs the export extra (``pip install "napari-temdeblur[export]"``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from napari_temdeblur.core.imaging import IntensityWindow
from napari_temdeblur.core.models import MODEL_NAMES, ModelConfig, build_model, frames_required, save_checkpoint
from napari_temdeblur.core.share import export_onnx


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{'network':<22} {'result':<8} {'max |ort - torch|':>18} {'export s':>9}")
    with tempfile.TemporaryDirectory(prefix="temdeblur-export-") as tmp:
        runs = {f"{name} (tiny)": _tiny_run(Path(tmp, name), name) for name in MODEL_NAMES}
        runs["fast-burst (pretrained)"] = "pretrained"
        for label, run in runs.items():
            start = time.perf_counter()
            try:
                result = export_onnx(run, Path(tmp, f"{label}.onnx"))
                outcome, difference = "ok", f"{result.max_abs_difference:.1e}"
            except ValueError as exc:
                outcome, difference = "refused", str(exc).split(" by ")[-1].split(" ")[0]
            print(f"{label:<22} {outcome:<8} {difference:>18} {time.perf_counter() - start:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
