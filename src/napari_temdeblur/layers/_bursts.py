"""Registered bursts shown in the viewer -> training pairs (no napari import: layers are duck-typed).

A burst dataset in the viewer is two image layers named ``<title> GT`` (image, y, x) and
``<title> Low`` (frame, image, y, x), as the reader (:func:`~napari_temdeblur.layers.dataset_layers`)
and registration (``<sample> registered GT`` / ``Low``) make them; a single pair may also be (y, x)
and (frame, y, x).
Images of different sizes are padded with zeros at the bottom and right, and
``metadata["temdeblur"]["valid_shapes"]`` gives each image's own (rows, cols), so the padding is cut
off again here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_temdeblur.core.imaging import IntensityWindow
from napari_temdeblur.core.io import BurstPair

from ._kinds import LayerKind, layer_info

#: Layer-name suffix of each half of a burst dataset.
SUFFIXES = {LayerKind.GT: " GT", LayerKind.LOW: " Low"}
#: Share of the images held out for validation when no validation layers are open and the images
#: come from a single session.
HOLD_OUT_FRACTION = 0.2


@dataclass(frozen=True)
class BurstLayers:
    """A GT layer and the Low layer holding its registered frames.

    Attributes
    ----------
    title : str
        The shared layer-name stem, e.g. ``"Kidney Train"``.
    gt, low : napari.layers.Image
        GT (N, H, W) or (H, W); Low (F, N, H, W) or (F, H, W), same dtype of counts.
    """

    title: str
    gt: Any
    low: Any

    @property
    def split(self) -> str | None:
        """The dataset split the layers were read from (``"Train"``, ``"Val"`` ...), if known."""
        return layer_info(self.gt).get("split")

    @property
    def sample(self) -> str | None:
        """The sample (``"Kidney"`` ...) the layers were read from, if known."""
        return layer_info(self.gt).get("sample")

    def windows(self) -> tuple[IntensityWindow | None, IntensityWindow | None]:
        """The GT and Low contrast windows recorded in the layers' metadata (None where absent)."""
        return tuple(
            IntensityWindow.from_dict(layer_info(layer)["window"]) if "window" in layer_info(layer) else None
            for layer in (self.gt, self.low)
        )

    def pairs(self) -> list[BurstPair]:
        """The image pairs, each cut to its valid size.

        Returns
        -------
        list of BurstPair
            GT uint16 (h, w) and Low (F, h, w) per image, named as in the metadata (else
            ``<title> #<i>``); all-zero (unregistered) images are left out.

        Raises
        ------
        ValueError
            When the two layers' shapes do not fit together.
        """
        gt, low = np.asarray(self.gt.data), np.asarray(self.low.data)
        if gt.ndim == 2 and low.ndim == 3:
            gt, low = gt[None], low[:, None]
        if gt.ndim != 3 or low.ndim != 4 or low.shape[1:] != gt.shape:
            raise ValueError(
                f"layers '{self.gt.name}' {gt.shape} and '{self.low.name}' {low.shape} do not form a burst "
                "dataset: expected GT (image, y, x) and Low (frame, image, y, x) of the same image size"
            )
        info = layer_info(self.gt)
        names = info.get("names") or [f"{self.title} #{i}" for i in range(len(gt))]
        shapes = info.get("valid_shapes") or [gt.shape[1:]] * len(gt)
        if len(names) != len(gt) or len(shapes) != len(gt):
            raise ValueError(f"layer '{self.gt.name}': metadata lists {len(names)} images, the data holds {len(gt)}")
        # Registration pads a burst that kept fewer frames with all-zero frames so that the bursts
        # stack into one layer; "frame_counts" says how many are real (absent: all of them).
        counts = info.get("frame_counts") or [low.shape[0]] * len(gt)
        # An all-zero slot is an HQ image that registration has not (yet) produced a burst for.
        return [
            BurstPair(name=name, gt=gt[i, :h, :w], low=low[:count, i, :h, :w])
            for i, (name, (h, w), count) in enumerate(zip(names, shapes, counts))
            if count and gt[i, :h, :w].any()
        ]


def find_bursts(layers: list[Any]) -> list[BurstLayers]:
    """Pair every GT layer with the Low layer of the same title, in layer-list order.

    Parameters
    ----------
    layers : list of napari layers
        The viewer's layers; anything that is not half of a burst dataset is passed over.
    """
    halves: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for kind, suffix in SUFFIXES.items():
            if layer.name.endswith(suffix):
                halves.setdefault(layer.name[: -len(suffix)], {})[kind] = layer
    return [
        BurstLayers(title, h[LayerKind.GT], h[LayerKind.LOW]) for title, h in halves.items() if set(h) == set(SUFFIXES)
    ]


def validation_for(train: BurstLayers, bursts: list[BurstLayers]) -> BurstLayers | None:
    """The Val split of the same sample as `train`, when its layers are open; else None."""
    if train.split == "Val":
        return None
    return next((b for b in bursts if b.split == "Val" and b.sample == train.sample), None)


def hold_out(pairs: list[BurstPair]) -> tuple[list[BurstPair], list[BurstPair]]:
    """Split pairs into training and validation when no validation data was given.

    Neighbouring images of one session overlap (the HQ images overlap by half along the scan), so a
    whole session is held out when there are several (the paper's split); otherwise the last
    ``HOLD_OUT_FRACTION`` of the images (at least one) are held out and the image just before them,
    which overlaps the first of them, is left out of training (as ``temdeblur register --split auto``
    does) unless it is the only training image left.

    Returns
    -------
    (train, val) : lists of BurstPair

    Raises
    ------
    ValueError
        With fewer than two pairs.
    """
    if len(pairs) < 2:
        raise ValueError(
            f"only {len(pairs)} image pair(s): training needs at least one more pair to validate on "
            "(open the Val split too, or train from a dataset folder)"
        )
    sessions = [p.session for p in pairs]
    if None not in sessions and len(set(sessions)) > 1:
        held = [s == max(sessions) for s in sessions]
        return [p for p, h in zip(pairs, held) if not h], [p for p, h in zip(pairs, held) if h]
    first_val = len(pairs) - max(1, round(HOLD_OUT_FRACTION * len(pairs)))
    gap = 1 if first_val >= 2 else 0
    return pairs[: first_val - gap], pairs[first_val:]
