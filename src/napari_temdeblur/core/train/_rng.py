"""Random state owned by one training run, so runs are reproducible and resumable exactly.

Network initialisation and dropout draw from torch's global generator (torch offers no per-module
generator for them). A run therefore keeps its own copy of that state and swaps it in only while it
computes, so nothing else in the process (another run, a napari layer, a test) shifts its random
stream, and the copy can be saved in last.pt and restored on resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class TorchRandomState:
    """A private torch random stream for the CPU and, on CUDA, the run's GPU.

    Parameters
    ----------
    seed : int
    device : torch.device
        The device the run computes on.
    """

    def __init__(self, seed: int, device: torch.device):
        self._cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=self._cuda):
            torch.manual_seed(seed)
            self._state = self._capture()

    def _capture(self) -> dict:
        state = {"cpu": torch.get_rng_state()}
        if self._cuda:
            state["cuda"] = torch.cuda.get_rng_state(self._cuda[0])
        return state

    @contextmanager
    def active(self, deterministic: bool = False) -> Iterator[None]:
        """Compute with this stream (and, if `deterministic`, torch's deterministic algorithms);
        the process's own random state and settings are restored afterwards."""
        previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
        with torch.random.fork_rng(devices=self._cuda):
            torch.set_rng_state(self._state["cpu"])
            if self._cuda:
                torch.cuda.set_rng_state(self._state["cuda"], self._cuda[0])
            if deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
            try:
                yield
            finally:
                self._state = self._capture()
                torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])

    def state_dict(self) -> dict:
        """The stream's state as tensors, for last.pt."""
        return {k: v.clone() for k, v in self._state.items()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a state saved by :meth:`state_dict`. A run moved between CPU and GPU keeps
        its seeded GPU stream (GPU runs are not bit-reproducible anyway)."""
        self._state["cpu"] = state["cpu"].clone()
        if self._cuda and "cuda" in state:
            self._state["cuda"] = state["cuda"].clone()
