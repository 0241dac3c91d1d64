"""Command-line arguments built from options objects (:func:`napari_temdeblur.core.option` fields), so a
flag's name, default and help are those of the field it sets."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable

#: The RestoreOptions of mosaic, live and calibrate: device and tiling. No batch-norm adaptation (a
#: calibration measures the run as it is; a restarted mosaic would adapt differently); no trust or flags
#: (their outputs keep neither).
POSITION_OPTIONS = ("device", "inference_tile", "overlap", "batch")


def _value_type(annotation):
    """(type, optional): int for ``int``; the first non-None member of a union, and whether None is one."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = typing.get_args(annotation)
        return next(a for a in members if a is not type(None)), type(None) in members
    return annotation, False


def flag_of(field: dataclasses.Field) -> str:
    """The option's flag: the field's own (``option(flag=...)``) or ``--`` + its name with dashes."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _parser_of(parse, optional: bool = False):
    """An argparse type that turns the parser's ValueError into argparse's own error line; with
    `optional`, the word ``none`` gives None (e.g. ``--time-limit none``: no limit)."""

    def convert(text: str):
        if optional and text.strip().lower() == "none":
            return None
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def add_options(
    parser: argparse.ArgumentParser,
    cls,
    names: Iterable[str] | None = None,
    *,
    aliases: dict[str, tuple[str, ...]] | None = None,
    default_from: str | None = None,
) -> None:
    """Add the command-line options of options class `cls` to `parser`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    cls : dataclass type
        Its fields made with :func:`~napari_temdeblur.core.option` become options; ``dest`` is the field
        name, the default the field's (shown in the help), a bool field a switch.
    names : iterable of str, optional
        Only these fields, in this order (default: every option field).
    aliases : dict of str to tuple of str, optional
        Further flags per field name, e.g. an older spelling kept working.
    default_from : str, optional
        Where the defaults come from instead of the fields (e.g. "the preset"): options not given are
        then absent from the parsed namespace, so the caller can tell them from the given ones.
    """
    aliases = aliases or {}
    fields = {f.name: f for f in dataclasses.fields(cls) if "help" in f.metadata}
    hints = typing.get_type_hints(cls)
    for name in names if names is not None else fields:
        field = fields[name]
        meta = field.metadata
        flags = [flag_of(field), *aliases.get(name, ())]
        kind, optional = _value_type(hints[name])
        default = argparse.SUPPRESS if default_from else field.default
        if kind is bool:
            parser.add_argument(*flags, dest=name, action="store_true", default=default, help=meta["help"])
            continue
        if default_from:
            shown = f" (default: {default_from})"
        else:
            shown = "" if field.default is None else f" (default {field.default})"
        parser.add_argument(
            *flags,
            dest=name,
            default=default,
            help=meta["help"] + shown,
            metavar=meta.get("metavar"),
            choices=meta.get("choices"),
            type=_parser_of(meta.get("parse") or kind, optional),
        )


def options_from(cls, args: argparse.Namespace, **values):
    """An instance of `cls` from the parsed options of its fields that `args` holds, plus `values`."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**given, **values})
