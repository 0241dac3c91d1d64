"""How long a Stop waits: the longest stretch between two progress events of a real training run.

The Train dock and ``temdeblur train`` stop at the next event the training generator yields (after
each optimiser step, and after each epoch's validation and checkpoint), so the longest gap between two
events is the longest a user waits after pressing Stop. This runs the trainer as the dock does, with a
preset's settings (by default ``quick``, the CPU default, with the default network from its pretrained
start), on registered data, for a few epochs, and prints the gaps; then it sends STOP and times how
long the generator takes to return.

    python benchmarks/bench_stop.py DATA [DATA ...] [--preset quick] [--model NAME] [--epochs 3] [--threads 2]

Target (issue "A fast default burst network"): Stop takes effect within 2 s with the default network
and the CPU preset.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from napari_temdeblur.core.models import ModelConfig
from napari_temdeblur.core.train import PRESETS, STOP, BatchDone, EpochDone, TrainingData, train

TARGET_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="registered dataset folders (as temdeblur train takes)")
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    parser.add_argument("--model", help="another model than the preset's (at its published width)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to time before the Stop")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = {"model": ModelConfig(args.model)} if args.model else {}
    cfg = PRESETS[args.preset].config(**model, device="cpu", time_limit_s=None, patience=None)
    data = TrainingData.from_folders(args.data)
    step_gaps, epoch_gaps = [], []
    with tempfile.TemporaryDirectory() as out:
        work = train(cfg, data, out)
        next(work)  # TrainStarted: data read, network built, input scored
        last = time.perf_counter()
        while True:
            event = next(work)
            now = time.perf_counter()
            (epoch_gaps if isinstance(event, EpochDone) else step_gaps).append(now - last)
            last = now
            if isinstance(event, EpochDone) and event.epoch >= args.epochs:
                break
        event = next(work)  # the next step of the next epoch; then the user presses Stop
        assert isinstance(event, BatchDone)
        tic = time.perf_counter()
        try:
            work.send(STOP)
        except StopIteration as done:
            stop_s = time.perf_counter() - tic
            reason = done.value.stopped_reason
        else:
            raise SystemExit("the trainer did not stop when sent STOP")
    print(f"{cfg.model.name} ({args.preset} preset: {cfg.patch} px crops, batch {cfg.batch}), {args.threads} threads")
    print(
        f"  optimiser step: median {np.median(step_gaps):.3f} s, max {max(step_gaps):.3f} s over {len(step_gaps)} steps"
    )
    print(f"  end of epoch (validation + checkpoints): max {max(epoch_gaps):.3f} s over {len(epoch_gaps)} epochs")
    print(f"  from STOP to the run's end (stopped: {reason}): {stop_s:.3f} s")
    longest = max(step_gaps + epoch_gaps) + stop_s
    verdict = "met" if longest <= TARGET_S else "MISSED"
    print(f"longest wait after Stop: {longest:.2f} s (target <= {TARGET_S} s): {verdict}")


if __name__ == "__main__":
    main()
