"""Training data: registered bursts windowed to [0, 1], random training crops and fixed validation tiles.

Follows the *Data* and *Network training* sections of Wieslander et al. (PLOS ONE 2021): GT and Low
frames get their own intensity windows; training crops lie entirely on the sample (no grid bars, no
registration padding) and get the same random flip/quarter turn for GT and every frame; validation
uses the regular 128 x 128 tiles of the top half of each validation image that are all sample.

Arrays are (row, col) images and (frame, row, col) bursts; batches are (batch, frame, row, col).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError
from napari_temdeblur.core.imaging import (
    TOP_HALF_ROWS,
    IntensityWindow,
    centred_frames,
    evaluation_tiles,
    random_crops,
    suggest_window,
    valid_crop_origins,
    window_pair,
)
from napari_temdeblur.core.io import BurstPair, read_dataset


@dataclass
class TrainingData:
    """Registered pairs for training and validation, with the intensity windows they are read through.

    Attributes
    ----------
    train, val : list of BurstPair
        uint16 GT (H, W) and Low (F, H, W) in detector counts.
    gt_window, low_window : IntensityWindow
        Counts -> [0, 1] for GT and for Low frames (Low is ~1/4 of GT counts, so they differ).
    sources : list of str
        Where the pairs came from (folders, or layer names), recorded in the run's config.json.
    skipped : list of str
        Pairs the dataset reader could not use, with the reason.
    held_out_sessions : list of int
        Sessions left out of train and val (:meth:`from_folders`), recorded in the run's config.json.
    """

    train: list[BurstPair]
    val: list[BurstPair]
    gt_window: IntensityWindow
    low_window: IntensityWindow
    sources: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    held_out_sessions: list[int] = field(default_factory=list)

    @classmethod
    def from_pairs(
        cls,
        train_pairs: Sequence[BurstPair],
        val_pairs: Sequence[BurstPair],
        *,
        gt_window: IntensityWindow | None = None,
        low_window: IntensityWindow | None = None,
        sources: Sequence[str] = (),
    ) -> TrainingData:
        """Training data from pairs in memory (e.g. viewer layers).

        Windows not given are suggested from the training pairs by
        :func:`napari_temdeblur.core.imaging.suggest_window`, separately for GT and Low.

        Raises
        ------
        ValueError
            No training or no validation pair, or a pair whose GT and Low shapes disagree.
        """
        train, val = list(train_pairs), list(val_pairs)
        if not train:
            raise ValueError("no training pairs: a dataset needs a Train split with GT/Low pairs")
        if not val:
            raise ValueError("no validation pairs: a dataset needs a Val split (the best epoch is chosen on it)")
        for pair in train + val:
            gt, low = np.asarray(pair.gt), np.asarray(pair.low)
            if gt.ndim != 2 or low.ndim != 3 or low.shape[1:] != gt.shape:
                raise ValueError(
                    f"{pair.name}: GT must be (H, W) and Low (F, H, W) of the same H, W; "
                    f"got GT {gt.shape}, Low {low.shape}"
                )
        gt_window = gt_window or suggest_window([p.gt for p in train])
        low_window = low_window or suggest_window([p.low for p in train])
        return cls(train, val, gt_window, low_window, list(sources))

    @classmethod
    def from_folders(
        cls,
        paths: str | Path | Sequence[str | Path],
        *,
        gt_window: IntensityWindow | None = None,
        low_window: IntensityWindow | None = None,
        hold_out_sessions: Sequence[int] = (),
    ) -> TrainingData:
        """Training data from one or more dataset folders (root, sample or split level).

        ``Train`` splits give the training pairs and ``Val`` splits the validation pairs; ``Test`` is
        never read into training. `hold_out_sessions` leaves out of both the images of those
        acquisition sessions (names like ``sess2_im5``), for the paper's cross-validation
        (``temdeblur evaluate --cross-validation`` scores the run on them).

        Raises
        ------
        DataError
            A folder that is not a dataset, that holds no Train / no Val pairs, a held-out session
            that is not in the data, or no Train / Val pair left after holding sessions out.
        """
        paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        if not paths:
            raise ValueError("no dataset folder given")
        train, val, skipped = [], [], []
        for path in paths:
            for split in read_dataset(path, ("Train", "Val")):
                skipped += split.skipped
                if split.split == "Train":
                    train += split.pairs
                elif split.split == "Val":
                    val += split.pairs
        where = ", ".join(str(p) for p in paths)
        held = sorted({int(s) for s in hold_out_sessions})
        if held:
            present = sorted({p.session for p in train + val if p.session is not None})
            absent = [s for s in held if s not in present]
            if absent:
                raise DataError(
                    where,
                    f"cannot hold out session(s) {', '.join(map(str, absent))}: the Train and Val "
                    f"images hold sessions {', '.join(map(str, present)) or 'none'}",
                )
            train = [p for p in train if p.session not in held]
            val = [p for p in val if p.session not in held]
            for kind, left in (("Train", train), ("Val", val)):
                if not left:
                    raise DataError(
                        where,
                        f"holding out session(s) {', '.join(map(str, held))} leaves no {kind} "
                        "pair; hold out fewer sessions",
                    )
        why = f" (skipped: {'; '.join(skipped)})" if skipped else ""
        if not train:
            raise DataError(where, f"no readable Train pairs (<Sample>/Train/GT and Low) to train on{why}")
        if not val:
            raise DataError(
                where, f"no readable Val pairs (<Sample>/Val/GT and Low): the best epoch is chosen on them{why}"
            )
        data = cls.from_pairs(train, val, gt_window=gt_window, low_window=low_window, sources=[str(p) for p in paths])
        data.skipped = skipped
        data.held_out_sessions = held
        return data


def _shape_list(pairs: Sequence[BurstPair]) -> str:
    return ", ".join(f"{p.name} {p.gt.shape[0]}x{p.gt.shape[1]}" for p in pairs[:6]) + (
        ", ..." if len(pairs) > 6 else ""
    )


def check_frame_counts(pairs: list[BurstPair], frames: int, what: str) -> None:
    """Raise a ValueError naming the bursts of `pairs` that hold fewer than `frames` frames.

    Registration leaves out frames it flags, so a registered burst may be shorter than the rest.
    """
    short = [f"{p.name} ({len(p.low)})" for p in pairs if len(p.low) < frames]
    if short:
        raise ValueError(
            f"{frames} frames requested but some {what} bursts have fewer: {', '.join(short[:6])}"
            + (", ..." if len(short) > 6 else "")
            + "; ask for fewer frames"
        )


class CropSampler:
    """Draws training batches: random crops fully on the sample, augmented, with random frames.

    Parameters
    ----------
    data : TrainingData
    patch : int
        Crop side in pixels.
    frames : (int, int)
        Inclusive range of the number of frames per batch; each batch draws one count from it.
    ordered : bool
        False (burst models): the frames of a crop are a random run of adjacent frames in random
        order. True (deblurgan, frames as channels): adjacent frames kept in time order, possibly
        reversed, so the middle input stays the centre frame.

    Raises
    ------
    ValueError
        When no training image holds a `patch` x `patch` crop of pure sample, or bursts have fewer
        frames than requested.
    """

    def __init__(self, data: TrainingData, patch: int, frames: tuple[int, int], *, ordered: bool = False):
        self.patch, self.frames, self.ordered = int(patch), (int(frames[0]), int(frames[1])), ordered
        # (gt, low, mask, crop origins): the origins once per image, not once per crop
        self.images: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.unused: list[str] = []
        for pair in data.train:
            gt, low, mask = window_pair(pair, data.gt_window, data.low_window)
            origins = valid_crop_origins(mask, self.patch).astype(np.int32)
            if len(origins):
                self.images.append((gt, low, mask, origins))
            else:
                self.unused.append(pair.name)
        if not self.images:
            raise ValueError(
                f"no {patch} x {patch} training crop fits inside the sample (no grid bar, no padding) of "
                f"any training image ({_shape_list(data.train)}); use a smaller patch size"
            )
        check_frame_counts([p for p in data.train if p.name not in self.unused], self.frames[1], "training")

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """One batch: inputs float32 (size, N, patch, patch) and targets float32 (size, 1, patch, patch)."""
        count = int(rng.integers(self.frames[0], self.frames[1] + 1))
        picks = rng.integers(0, len(self.images), size=size)
        inputs = np.empty((size, count, self.patch, self.patch), np.float32)
        targets = np.empty((size, 1, self.patch, self.patch), np.float32)
        for i, k in enumerate(picks):
            gt, low, mask, origins = self.images[k]
            gt_crop, low_crop = random_crops(
                rng, gt, low, mask, size=self.patch, count=1, augment=True, origins=origins
            )
            start = int(rng.integers(0, low.shape[0] - count + 1))
            order = np.arange(start, start + count)
            if self.ordered:
                order = order[::-1] if rng.integers(2) else order
            else:
                order = rng.permutation(order)
            inputs[i] = low_crop[0, order]
            targets[i, 0] = gt_crop[0]
        return inputs, targets


@dataclass
class ValidationTiles:
    """The fixed validation tiles: windowed images and the origins of their all-sample tiles.

    Attributes
    ----------
    gt : list of ndarray
        float32 (H, W) in [0, 1], one per validation image that has at least one tile.
    low : list of ndarray
        float32 (F, H, W) in [0, 1].
    origins : list of ndarray
        int64 (K, 2) (row, col) tile corners per image.
    size : int
        Tile side in pixels.
    """

    gt: list[np.ndarray]
    low: list[np.ndarray]
    origins: list[np.ndarray]
    size: int

    @classmethod
    def from_data(cls, data: TrainingData, size: int = 128) -> ValidationTiles:
        """Tile the validation pairs (top half only, tiles fully on the sample, as the paper).

        Raises
        ------
        ValueError
            When no validation image holds a single `size` x `size` tile of pure sample.
        """
        gts, lows, origins = [], [], []
        for pair in data.val:
            gt, low, mask = window_pair(pair, data.gt_window, data.low_window)
            tiles = evaluation_tiles(mask, size=size, keep_rows_fraction=TOP_HALF_ROWS)
            if len(tiles):
                gts.append(gt)
                lows.append(low)
                origins.append(tiles)
        if not origins:
            raise ValueError(
                f"the validation images are too small for one {size} x {size} validation tile of pure "
                f"sample in their top half ({_shape_list(data.val)}); use a smaller validation tile "
                "or larger validation images"
            )
        return cls(gts, lows, origins, int(size))

    @property
    def count(self) -> int:
        """Number of tiles over all images."""
        return sum(len(o) for o in self.origins)

    def bursts(self, frames: int) -> list[np.ndarray]:
        """Per image the tiles' bursts, float32 (K, frames, size, size): `frames` adjacent frames
        centred on each burst's centre frame, in time order."""
        out = []
        for low, origins in zip(self.low, self.origins):
            sel = low[centred_frames(low.shape[0], frames)]
            out.append(np.stack([sel[:, r : r + self.size, c : c + self.size] for r, c in origins]))
        return out

    def paste(self, index: int, tiles: np.ndarray) -> np.ndarray:
        """Image `index` with restored tiles (K, size, size) in place and zeros elsewhere, float32 (H, W)."""
        image = np.zeros_like(self.gt[index])
        for (r, c), tile in zip(self.origins[index], tiles):
            image[r : r + self.size, c : c + self.size] = tile
        return image

    def centre_frames(self) -> list[np.ndarray]:
        """The unrestored input of each image: its centre registered frame, float32 (H, W)."""
        return [low[low.shape[0] // 2] for low in self.low]
