"""``temdeblur demo``: the main job, end to end on simulated data, through the same subcommands a user
types (each step prints the command it runs).

simulate raw sessions -> register them (matcher starts, ECC) and export the registered dataset ->
fine-tune the default network (fast-burst) from its pretrained start on the kidney sample for a few
minutes, with the preset that fits the device (quick on a CPU, thorough on a GPU) -> evaluate it on the
kidney Test session against the unrestored input and the classical baselines -> write a report (markdown
table + a figure of GT / input / each method).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from napari_temdeblur.core import atomic_write, drain
from napari_temdeblur.core.io import check_overwrite
from napari_temdeblur.core.models import DEFAULT_MODEL
from napari_temdeblur.core.simulate import SimulationConfig, simulate

from ._dispatch import run
from ._output import print_progress

#: Demo samples: the two specimen kinds of the paper.
SPECIMENS = ["kidney", "grid"]
MODEL = DEFAULT_MODEL
#: The network should beat every classical baseline by at least this much SSIM to call it clearly better.
CLEAR_MARGIN = 0.05
#: The demo's images are 4 x smaller than the paper's (256 px frames, strips of ~160 x 250 px), so
#: they are scored on 64 px tiles: 128 px tiles would hardly fit between the support-grid bars.
EVAL_TILE = 64
#: What each demo run writes, replaced by the next demo run into the same folder.
RUN_FILES = ("best.pt", "last.pt", "config.json", "history.csv")
REPORT_TITLE = "# napari-temdeblur demo report"


def _run(argv: list[str]) -> int:
    print(f"\n$ temdeblur {shlex.join(argv)}", flush=True)
    code = run(argv)
    if code:
        print(f"temdeblur demo: step 'temdeblur {argv[0]}' failed (exit status {code}); see the messages above")
    return code


def _training_args(minutes: float) -> list[str]:
    # Demo strips are ~160 rows: validation tiles of 64 px fit their top half, 128 px tiles do not.
    return ["--val-tile", str(EVAL_TILE), "--time-limit", str(round(minutes * 60))]


def verdict(scores: dict) -> list[str]:
    """Plain sentences comparing the trained network with the input and the best classical baseline.

    Parameters
    ----------
    scores : dict
        ``methods`` of ``temdeblur evaluate --json``: key -> {"ssim_mean", "ssim_std", "psnr_mean",
        "psnr_std"}; "input" and the run (:data:`MODEL`) must be present.
    """
    net, base = scores[MODEL], scores["input"]
    lines = [
        f"{MODEL}: SSIM {net['ssim_mean']:.3f} vs the input's {base['ssim_mean']:.3f} "
        f"({net['ssim_mean'] - base['ssim_mean']:+.3f}), PSNR {net['psnr_mean']:.2f} dB vs "
        f"{base['psnr_mean']:.2f} dB ({net['psnr_mean'] - base['psnr_mean']:+.2f} dB)."
    ]
    classical = {k: v for k, v in scores.items() if k not in (MODEL, "input")}
    if classical:
        best = max(classical, key=lambda k: classical[k]["ssim_mean"])
        other = classical[best]
        ssim_gap, psnr_gap = net["ssim_mean"] - other["ssim_mean"], net["psnr_mean"] - other["psnr_mean"]
        lines.append(
            f"Best classical baseline by SSIM: {best}, SSIM {other['ssim_mean']:.3f}, PSNR "
            f"{other['psnr_mean']:.2f} dB; the network is {'above' if ssim_gap > 0 else 'below'} it in "
            f"SSIM ({ssim_gap:+.3f}) and {'above' if psnr_gap > 0 else 'below'} it in PSNR "
            f"({psnr_gap:+.2f} dB). The baselines' motion PSF is fitted with the truth of each "
            f"image, so they are an upper bound."
        )
        clear = ssim_gap >= CLEAR_MARGIN
        lines.append(
            f"Verdict: the network {'clearly beats' if clear else 'does NOT clearly beat'} every classical "
            f"baseline (by {ssim_gap:+.3f} SSIM; clearly means by at least {CLEAR_MARGIN})."
        )
    return lines


def write_report(out: Path, commands: list[str], verdict_lines: list[str], tables: Path, figure: Path) -> Path:
    """report.md: what ran, the table of ``temdeblur evaluate``, the verdict and the figure."""
    text = "\n".join(
        [
            REPORT_TITLE,
            "",
            "Simulated kidney-like and calibration-grid acquisitions, registered, a network trained on the "
            "kidney sample and scored on its Test session (a session the network never saw).",
            "",
            "## Commands",
            "",
            "```",
            *commands,
            "```",
            "",
            "## Scores",
            "",
            tables.read_text().strip(),
            "",
            *verdict_lines,
            "",
            "## Figure",
            "",
            f"GT | input (centre frame) | each method, first Test image: ![comparison]({figure.name})",
            "",
        ]
    )
    return atomic_write(out / "report.md", lambda tmp: tmp.write_text(text))


def _own_report(path: Path) -> bool:
    try:
        return path.read_text().startswith(REPORT_TITLE)
    except (OSError, UnicodeDecodeError):
        return False


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_overwrite(out, [out / "report.md"], _own_report)  # a report.md of someone else's is kept
    sessions, dataset, run = out / "sessions", out / "dataset", out / "runs" / MODEL
    print(f"napari-temdeblur demo in {out}: simulate -> register -> train -> evaluate -> report")
    simulate_line = (
        f"temdeblur simulate {sessions} --specimen {' '.join(SPECIMENS)} --layout session "
        f"--seed {args.seed} --overwrite"
    )
    print(f"\n$ {simulate_line}")
    result = drain(
        simulate(sessions, SimulationConfig.demo(), SPECIMENS, layout="session", seed=args.seed, overwrite=True),
        print_progress,
    )
    print(f"wrote {sum(len(f) for f in result.folders.values())} sessions (truth in {result.out / 'truth'})")
    steps = [["register", str(sessions), "--out", str(dataset)]]
    code = _run(steps[-1])
    if not (dataset / "Kidney" / "Train").is_dir():
        return code or 1
    # A demo run folder is the demo's own: start it afresh rather than refuse or resume.
    for name in RUN_FILES:
        (run / name).unlink(missing_ok=True)
    # The paper trained one network per specimen kind; the demo trains the kidney one.
    steps.append(
        [
            "train",
            str(dataset / "Kidney"),
            "--model",
            MODEL,
            "--out",
            str(run),
            "--seed",
            str(args.seed),
            *_training_args(args.minutes),
        ]
    )
    if _run(steps[-1]):
        return 1
    evaluation, tables, figure = out / "evaluation.json", out / "evaluation.md", out / "comparison.png"
    steps.append(
        [
            "evaluate",
            str(dataset / "Kidney"),
            "--model",
            str(run),
            "--split",
            "Test",
            "--baselines",
            "--score-tile",
            str(EVAL_TILE),
            "--json",
            str(evaluation),
            "--markdown",
            str(tables),
            "--figure",
            str(figure),
        ]
    )
    if _run(steps[-1]):
        return 1
    lines = verdict(json.loads(evaluation.read_text())["methods"])
    report = write_report(out, [simulate_line] + [f"temdeblur {shlex.join(s)}" for s in steps], lines, tables, figure)
    print()
    for line in lines:
        print(line)
    print(f"\nreport: {report}")
    print(f"open the results in napari: napari {sessions / 'Kidney'} {dataset}")
    return 0


def add_parser(sub) -> None:
    """Add the ``demo`` subcommand to the ``temdeblur`` subparsers."""
    demo = sub.add_parser(
        "demo", help="the end-to-end demo on simulated data", description=__doc__.split("\n\n", 1)[1].replace("``", "")
    )
    demo.add_argument("--out", default="demo_output", help="output folder (its demo subfolders are replaced)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--minutes", type=float, default=3.0, help="fine-tuning time (default 3)")
    demo.set_defaults(func=cmd_demo)
