"""Options and configurations as data: frozen dataclasses whose fields are the single source of the
names, defaults and help of an operation's settings, for the API, the command line (its arguments are
built from the fields, :mod:`napari_temdeblur.cli`), the docks and the docs.

A field made with :func:`option` carries its help text (and, where the flag or the parsing of a typed
value differs from the plain field, those too); fields made with plain ``dataclasses.field`` are not
offered on the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    choices: Sequence | None = None,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line option.

    Parameters
    ----------
    default
        The field's default, also the option's.
    help : str
        One line for ``--help`` (the default is appended by the command line).
    flag : str, optional
        The option's name when it is not ``--`` + the field name with dashes.
    metavar, choices
        As for ``argparse``.
    parse : callable, optional
        Turns the typed text into the field's value (e.g. ``"3-5"`` -> (3, 5)); a ValueError names
        what is wrong. Default: the field's type.
    """
    metadata = {"help": help, "flag": flag, "metavar": metavar, "choices": choices, "parse": parse}
    return dataclasses.field(default=default, metadata=metadata)


def reject_unknown_keys(cls, data: dict, what: str) -> None:
    """Raise a ValueError naming the keys of `data` that are not fields of dataclass `cls`.

    Configurations come from JSON files people edit: a typo must fail loudly, not be ignored.
    `what` names the parameters in the message, e.g. ``"simulation parameter"``.
    """
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}")


def check_int(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None, optional: bool = False) -> None:
    """Raise a ValueError naming `name` unless `value` is an integer from `minimum` to `maximum` (or None
    when `optional`); a boolean is not an integer here."""
    if optional and value is None:
        return
    if (
        not isinstance(value, bool)
        and isinstance(value, int)
        and value >= minimum
        and (maximum is None or value <= maximum)
    ):
        return
    if maximum is not None:
        wanted = f"an integer from {minimum} to {maximum}"
    else:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ValueError(f"{name} must be {wanted}{' or None' if optional else ''}, got {value!r}")
