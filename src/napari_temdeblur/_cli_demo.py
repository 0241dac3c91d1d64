"""``temdeblur demo``: the main job, end to end on simulated data, through the same subcommands a user
types (each step prints the command it runs).

simulate raw sessions -> register them (matcher starts, ECC) and export the registered dataset ->
train the paper's best network (BDU+UC+SSIM) on the kidney sample for a few minutes -> report the
validation SSIM of the restored images against that of the input. On a CPU the network is the tiny
width on 64 px crops; with a GPU the published width on 128 px crops, 4 per batch (the dense network
needs about 2 GB of memory per crop of that size in training).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .core.config import SimulationConfig
from .core.progress import drain
from .core.simulate import simulate

#: Demo samples: the two specimen kinds of the paper.
SPECIMENS = ["kidney", "grid"]
MODEL = "bdu-uc-ssim"


def _run(main, argv: list[str]) -> int:
    print(f"\n$ temdeblur {shlex.join(argv)}", flush=True)
    code = main(argv)
    if code:
        print(f"temdeblur demo: step 'temdeblur {argv[0]}' failed (exit status {code}); see the messages above")
    return code


def _training_args(gpu: bool, minutes: float) -> list[str]:
    # Demo strips are ~160 rows: validation tiles of 64 px fit their top half, 128 px tiles do not.
    size = ["--width", "full", "--patch", "128", "--batch", "4"] if gpu else ["--width", "tiny", "--patch", "64"]
    return [*size, "--val-tile", "64", "--epochs", "1000", "--steps-per-epoch", "20",
            "--time-limit", str(round(minutes * 60))]


def cmd_demo(args: argparse.Namespace) -> int:
    from . import cli

    out = Path(args.out)
    sessions, dataset, run = out / "sessions", out / "dataset", out / "run"
    print(f"napari-temdeblur demo in {out}: simulate -> register -> train -> compare with the input")
    print(f"\n$ temdeblur simulate {sessions} --specimen {' '.join(SPECIMENS)} --layout session --overwrite")
    result = drain(
        simulate(sessions, SimulationConfig.demo(), SPECIMENS, layout="session", seed=args.seed, overwrite=True),
        cli.print_progress,
    )
    print(f"wrote {sum(len(f) for f in result.folders.values())} sessions (truth in {result.out / 'truth'})")
    code = _run(cli.main, ["register", str(sessions), "--out", str(dataset)])
    if not (dataset / "Kidney" / "Train").is_dir():
        return code or 1
    from .core.train import available_devices

    gpu = any(d.startswith("cuda") for d in available_devices())
    # The paper trained one network per specimen kind; the demo trains the kidney one.
    train = ["train", str(dataset / "Kidney"), "--model", MODEL, "--out", str(run), "--seed", str(args.seed)]
    if run.exists():
        # A demo run folder is the demo's own: start it afresh rather than refuse or resume.
        for name in ("best.pt", "last.pt", "config.json", "history.csv"):
            (run / name).unlink(missing_ok=True)
    code = _run(cli.main, [*train, *_training_args(gpu, args.minutes)])
    if code:
        return code
    print(f"\nopen the results in napari: napari {sessions / 'Kidney'} {dataset}")
    return 0


def add_parser(sub) -> None:
    """Add the ``demo`` subcommand to the ``temdeblur`` subparsers."""
    demo = sub.add_parser("demo", help="the end-to-end demo on simulated data",
                          description=__doc__.split("\n\n", 1)[1])
    demo.add_argument("--out", default="demo_output", help="output folder (its demo subfolders are replaced)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--minutes", type=float, default=3.0, help="training time (default 3)")
    demo.set_defaults(func=cmd_demo)
