"""The Qt-free core: simulation, disk I/O, registration, networks, training, restoration, evaluation.

Each subpackage is one concern and names its public API in ``__all__``; its modules are private.
Importing the core (or any of its subpackages) never imports napari or Qt, and torch is imported only
by the subpackages that compute with it (``models``, ``train``, ``restore``, ``evaluate`` and
``imaging``'s metrics), when they are first used. What each package may import is in docs/design.md,
Architecture.

The loose modules here are what every concern shares: the exceptions for bad input (``DataError``) and a
full disk (``DiskFull``), progress events (``Progress``, ``drain``), atomic writes, compute devices and
their failures, and options objects.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["evaluate", "imaging", "io", "models", "register", "restore", "simulate", "train"],
    submod_attrs={
        "_atomic": ["atomic_write", "write_json"],
        "_devices": [
            "DEVICE_HELP",
            "available_devices",
            "describe_device",
            "device_failure",
            "first_line",
            "out_of_memory",
            "resolve_device",
        ],
        "_errors": ["DataError", "DiskFull"],
        "_options": ["check_int", "option", "reject_unknown_keys"],
        "_progress": ["STOP", "Progress", "drain", "time_left"],
    },
)
