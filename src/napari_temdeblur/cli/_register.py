"""``temdeblur register``: register acquisition sessions from the command line (core only).

Each HQ image starts from the frame matcher's proposal, or from the hand alignment saved for it in
``registration.json`` (the dock's); ``--init FILE`` gives hand-picked
starts ``{"<hq name>": {"frame": t, "translation_yx": [dy, dx]}}`` (what the widget records from drags).
Each session's ``registration.json`` is written after every image; ``--out`` also writes the registered
bursts in the published dataset layout, replacing only files an earlier export wrote there (listed in
its ``export.json``) unless ``--overwrite`` is given.

Splits (``--split auto``, the simulator's convention, per sample): the last session is Test; in the
first session the first ``--val-images`` HQ images are Val and the next one, which overlaps them, is
left out so no field of view is in two splits; everything else is Train. A single session has no
Test. ``--split Train|Val|Test`` puts every image in that split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_temdeblur.core import DataError, drain
from napari_temdeblur.core.io import find_sessions, open_session
from napari_temdeblur.core.register import (
    PairDone,
    PairFailed,
    PairRegistration,
    RegistrationSettings,
    check_export,
    export_dataset,
    load_registrations,
    read_init_file,
    register_session,
    sample_name,
    user_starts,
)

from ._options import add_options, options_from

SPLIT_CHOICES = ("auto", "Train", "Val", "Test")


def auto_splits(sessions: list, val_images: int = 2) -> dict[tuple[Path, str], str]:
    """(session folder, HQ name) -> split, following the simulator's convention (module docstring);
    images left out to keep Val apart from Train are absent."""
    by_sample: dict[str, list] = {}
    for session in sessions:
        by_sample.setdefault(sample_name(session), []).append(session)
    splits = {}
    for group in by_sample.values():
        for k, session in enumerate(group):
            for i, name in enumerate(session.hq_names):
                if len(group) >= 2 and k == len(group) - 1:
                    splits[(session.path, name)] = "Test"
                elif k == 0 and i < val_images:
                    splits[(session.path, name)] = "Val"
                elif not (k == 0 and i == val_images and val_images > 0):
                    splits[(session.path, name)] = "Train"
    return splits


def _split_for(args: argparse.Namespace, sessions: list):
    if args.split == "auto":
        table = auto_splits(sessions, args.val_images)
        return lambda session, name: table.get((session.path, name))
    return lambda session, name: args.split


def _describe(pair: PairRegistration) -> str:
    frames = [f.index for f in pair.frames]
    good = pair.accepted
    line = f"    {pair.hq}: frames {frames[0]}-{frames[-1]}, {len(good)}/{len(frames)} accepted"
    if good:
        centre = min(good, key=lambda f: abs(f.translation_yx[0]))
        ty, tx = centre.translation_yx
        r = [f.correlation for f in good]
        line += f"; frame {centre.index} at (ty, tx) = ({ty:.2f}, {tx:.2f}) px; correlation {min(r):.3f}-{max(r):.3f}"
    notes = [f"      frame {f.index} ({f.method}): {f.flag}" for f in pair.frames if f.flag]
    notes += [f"      note: {m}" for m in pair.messages if not m.startswith("frame ")]
    return "\n".join([line, *notes])


def cmd_register(args: argparse.Namespace) -> int:
    settings = options_from(RegistrationSettings, args)
    if not Path(args.session).is_dir():
        raise DataError(args.session, "not a folder")
    unreadable: list[Path] = []
    folders = find_sessions(args.session, unreadable)
    if not folders and unreadable:
        raise DataError.no_permission(unreadable[0])
    if not folders:
        raise DataError(args.session, "no acquisition session here (expected session.json, hq/ and stream.tif)")
    for folder in unreadable:
        print(f"note: no permission to read {folder}; a session in it is not registered")
    inits = read_init_file(args.init) if args.init else {}
    sessions, results, failed, unopened = [], [], [], []
    for folder in folders:
        try:
            sessions.append(open_session(folder))
        except DataError as exc:
            unopened.append(str(exc))
            print(f"skipped session: {exc}")
    unknown = sorted(set(inits) - {n for s in sessions for n in s.hq_names})
    if unknown:
        raise ValueError(f"{args.init}: no HQ image named {', '.join(unknown)} in the sessions found")
    if args.out:  # names and files checked now rather than after a long registration
        check_export(sessions, args.out, _split_for(args, sessions), overwrite=args.overwrite)
    for session in sessions:
        print(f"{session.name} ({session.path}): {len(session.hq_names)} HQ images, {session.stream.shape[0]} frames")

        def show(event):
            if isinstance(event, PairDone):
                print(_describe(event.pair), flush=True)
            elif isinstance(event, PairFailed):
                failed.append(f"{event.hq}: {event.message}")
                print(f"    {event.hq}: FAILED - {event.message}", flush=True)

        # hand alignments saved earlier (the dock) stay the starts unless --init gives new ones
        own = {**user_starts(load_registrations(session)), **{k: v for k, v in inits.items() if k in session.hq_names}}
        pairs = drain(register_session(session, settings, own), show)
        results.append((session, pairs))
        if pairs:
            print(f"  saved {session.path / 'registration.json'}")
        else:
            print(f"  registration.json not written: no image of {session.name} was registered")
    pairs = [p for _, ps in results for p in ps]
    frames = sum(len(p.frames) for p in pairs)
    accepted = sum(len(p.accepted) for p in pairs)
    print(
        f"summary: {len(pairs)} HQ images registered in {len(sessions)} sessions; {accepted}/{frames} frames accepted, "
        f"{frames - accepted} flagged; {len(failed)} images failed; {len(unopened)} sessions unreadable"
    )
    if args.out:
        export = export_dataset(results, args.out, _split_for(args, sessions), overwrite=args.overwrite)
        print(f"wrote {len(export.written)} files in the dataset layout to {args.out}")
        for name, reason in export.dropped.items():
            if args.split == "auto" and reason.startswith("no split"):
                reason = "it overlaps the Val images (--split auto leaves it out so no field of view is in two splits)"
            print(f"  left out of the dataset: {name}: {reason}")
    return 0 if pairs and not failed and not unopened else 1


def add_parser(sub) -> None:
    """Add the ``register`` subcommand to the ``temdeblur`` subparsers."""
    reg = sub.add_parser(
        "register",
        help="register stream frames to the HQ images of acquisition sessions",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""),  # the docstring without its markup
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reg.add_argument("session", help="a session folder, or a folder of sessions")
    reg.add_argument("--out", help="also write the registered bursts to this dataset folder (published layout)")
    reg.add_argument("--init", help='JSON {"<hq name>": {"frame": t, "translation_yx": [dy, dx]}} of starting points')
    add_options(reg, RegistrationSettings, ("motion", "frames", "min_correlation"))
    reg.add_argument(
        "--split",
        default="auto",
        choices=SPLIT_CHOICES,
        help="dataset split with --out: auto (last session Test, first images Val) or one split for all",
    )
    reg.add_argument(
        "--val-images", type=int, default=2, help="with --split auto: Val images of the first session (default 2)"
    )
    reg.add_argument(
        "--overwrite",
        action="store_true",
        help="with --out: replace files no earlier export wrote there (its export.json lists what it wrote)",
    )
    reg.set_defaults(func=cmd_register)
