"""``temdeblur simulate``: a simulated MiniTEM fast-stream acquisition, as raw sessions or a dataset."""

from __future__ import annotations

import argparse
import dataclasses

from napari_temdeblur.core import drain
from napari_temdeblur.core.simulate import (
    LAYOUTS,
    SPECIMENS,
    SimulationConfig,
    SimulationResult,
    simulate,
)

from ._output import print_progress


def _simulation_config(args: argparse.Namespace) -> SimulationConfig:
    cfg = (
        SimulationConfig.load(args.config)
        if args.config
        else (SimulationConfig.demo() if args.size == "demo" else SimulationConfig())
    )
    overrides = {k: v for k, v in (("sessions", args.sessions), ("hq_per_session", args.images)) if v is not None}
    return dataclasses.replace(cfg, **overrides)


def _report(result: SimulationResult, layout: str) -> None:
    print(f"wrote {layout} layout to {result.out}")
    for sample, folders in result.folders.items():
        counts = result.counts.get(sample)
        summary = ", ".join(f"{split} {n}" for split, n in counts.items()) if counts else f"{len(folders)} sessions"
        print(f"  {sample}: {summary}")
        for folder in folders:
            print(f"    {folder}")
    print(f"  truth (positions, blur kernels): {result.out / 'truth'}")
    print(f"  configuration: {result.out / 'simulation.json'}")


def cmd_simulate(args: argparse.Namespace) -> int:
    cfg = _simulation_config(args)
    work = simulate(args.out, cfg, args.specimen, layout=args.layout, seed=args.seed, overwrite=args.overwrite)
    result = drain(work, print_progress)
    _report(result, args.layout)
    return 0


def add_parser(sub) -> None:
    """Add the ``simulate`` subcommand to the ``temdeblur`` subparsers."""
    sim = sub.add_parser("simulate", help="simulate a MiniTEM fast-stream acquisition")
    sim.add_argument("out", help="output folder")
    sim.add_argument("--specimen", nargs="+", default=["kidney"], choices=SPECIMENS, help="one or more specimens")
    sim.add_argument(
        "--layout",
        default="session",
        choices=LAYOUTS,
        help="raw sessions to register, or the published registered dataset layout",
    )
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument(
        "--size",
        default="demo",
        choices=("demo", "full"),
        help="demo: 512 px HQ images, seconds; full: the paper's 2048 px HQ / 1024 px stream",
    )
    sim.add_argument("--config", help="JSON file of simulation parameters (overrides --size)")
    sim.add_argument("--sessions", type=int, help="sessions per specimen")
    sim.add_argument("--images", type=int, help="HQ images per session")
    sim.add_argument(
        "--overwrite",
        action="store_true",
        help="replace earlier output of the same specimens (and a simulation.json not written by simulate)",
    )
    sim.set_defaults(func=cmd_simulate)
