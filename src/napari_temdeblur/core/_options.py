"""Options and configurations as data: frozen dataclasses whose fields are the single source of names,
defaults and help for the API, the command line, the docks and the docs.
"""

from __future__ import annotations

import dataclasses


def reject_unknown_keys(cls, data: dict, what: str) -> None:
    """Raise a ValueError naming the keys of `data` that are not fields of dataclass `cls`.

    Configurations come from JSON files people edit: a typo must fail loudly, not be ignored.
    `what` names the parameters in the message, e.g. ``"simulation parameter"``.
    """
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}")
