"""Which compute devices this machine has, and turning a device name into a ``torch.device``."""

from __future__ import annotations

import torch


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Device names usable here, for a dropdown or ``--device``.

    Returns
    -------
    list of str
        ``"auto"`` first, then ``"cpu"``, then ``"cuda"`` and ``"cuda:<i>"`` per GPU when CUDA works,
        then ``"mps"`` on Apple silicon.
    """
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` for a name from :func:`available_devices`.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises
    ------
    ValueError
        When the device does not exist on this machine (the message lists those that do).
    """
    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name not in available_devices():
        raise ValueError(f"device {name!r} is not available here; choose one of {', '.join(available_devices())}")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """Human-readable device, e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3)"`` or ``"cpu (2 threads)"``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
