"""The parts of a bioimage.io package besides the weights: the example burst behind its test tensors,
the cover image, and the model description (``bioimageio.spec`` model 0.5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_temdeblur import __version__
from napari_temdeblur.core import DataError
from napari_temdeblur.core.imaging import centred_frames
from napari_temdeblur.core.io import read_inputs

from ._onnx import TOLERANCE

#: The paper whose networks and data these are, and this package.
PAPER = (
    "Wieslander H, Wählby C, Sintorn I-M (2021) TEM image restoration from fast image streams. "
    "PLOS ONE 16(2): e0246336",
    "10.1371/journal.pone.0246336",
)
SOFTWARE = "napari-temdeblur: burst restoration of fast TEM image streams in napari"
#: Where the package is installed from (``pip install napari-temdeblur``): a citation needs a URL or DOI.
SOFTWARE_URL = "https://pypi.org/project/napari-temdeblur/"
#: The licence of the exported weights: this package's.
LICENSE = "BSD-3-Clause"
#: Model tags: bioimage.io's categories (modality, dims, content, framework, task) and ours.
TAGS = ["electron-microscopy", "2d", "tissue", "pytorch", "image-restoration", "denoising", "deblurring", "burst"]


def _run_folder(run: str | Path) -> Path | None:
    path = Path(run)
    folder = path if path.is_dir() else path.parent
    return folder if (folder / "config.json").is_file() else None


def _run_config(run: str | Path) -> dict:
    """The run's config.json (empty for a checkpoint without one, e.g. the pretrained weights)."""
    folder = _run_folder(run)
    if folder is None:
        return {}
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(folder / "config.json", f"unreadable run configuration ({exc})") from None


def example_burst(run: str | Path, sample: str | Path | None, frames: int, multiple: int, size: int) -> np.ndarray:
    """A real burst for the test tensors: (frames, s, s) uint16 detector counts, s <= `size` a multiple of
    `multiple`, cropped from the centre of `sample`'s first burst or of the run's first Val burst.

    Raises
    ------
    DataError
        No sample given and the run names no training data that can still be read, or a burst that
        has fewer frames than the model takes or is smaller than one size multiple.
    """
    if sample is None:
        data = _run_config(run).get("data", {})
        sources, val = data.get("sources") or [], set(data.get("val") or [])
        for source in sources:
            try:
                inputs = read_inputs(source)
            except DataError:
                continue
            index = next((i for i, name in enumerate(inputs.names) if name in val), 0)
            sample = source
            break
        else:
            raise DataError(
                Path(run),
                "none of the run's training data can be read to make the package's test tensors: name a "
                "registered burst (dataset, burst folder or TIFF) with --sample",
            )
    else:
        inputs, index = read_inputs(sample), 0
    pair = inputs[index]
    low = np.asarray(pair.low)
    if low.ndim == 2:
        low = low[None]
    if len(low) < frames:
        raise DataError(Path(sample), f"the model takes {frames} frames but the burst has {len(low)}")
    side = min(size, *low.shape[1:]) // multiple * multiple
    if side < multiple:
        raise DataError(Path(sample), f"the burst ({low.shape[1]} x {low.shape[2]} px) is smaller than {multiple} px")
    sel = centred_frames(len(low), frames)
    top, left = (low.shape[1] - side) // 2, (low.shape[2] - side) // 2
    crop = low[sel[0] : sel[-1] + 1, top : top + side, left : left + side]
    # the package's input is uint16 counts (registered frames may be float)
    return crop.astype(np.uint16) if crop.dtype == np.uint16 else np.clip(np.rint(crop), 0, 65535).astype(np.uint16)


def write_tensors(folder: Path, burst: np.ndarray, restored: np.ndarray) -> None:
    """The test tensors (.npy, with the batch axis) and the same as sample images (TIFF, without it):
    `burst` (F, s, s) uint16 counts in, `restored` (1, s, s) float32 counts out."""
    import tifffile

    np.save(folder / "test_input.npy", burst[None])
    np.save(folder / "test_output.npy", restored[None])
    tifffile.imwrite(folder / "sample_input.tif", burst)
    tifffile.imwrite(folder / "sample_output.tif", restored[0])


def write_cover(path: Path, centre: np.ndarray, restored: np.ndarray) -> Path:
    """The cover: the centre frame | the restored image ([0, 1], (s, s) each), a 2:1 grey PNG."""
    import matplotlib.image

    both = np.concatenate([centre, restored], axis=1)
    matplotlib.image.imsave(path, np.clip(both, 0, 1), cmap="gray", vmin=0, vmax=1)
    return path


def _training_data(run: str | Path, metadata: dict, readme: Path):
    """The training data as a bioimage.io dataset description (from config.json where there is one),
    documented by the package's README."""
    from bioimageio.spec.dataset.v0_3 import DatasetDescr, FileDescr

    config = _run_config(run)
    data = dict(config.get("data", {}))
    if data:
        # the sources' folder names only: a shared package should not show where the user keeps files
        data["sources"] = [Path(str(source)).name for source in data.get("sources", [])]
        text = (
            f"Registered bursts (stream frames) and sharp HQ images: {len(data.get('train', []))} training and "
            f"{len(data.get('val', []))} validation pairs from {', '.join(data['sources'])}"
        )
        if data.get("held_out_sessions"):
            text += f"; held-out sessions {data['held_out_sessions']}"
    else:
        text = "TEM stream bursts registered to sharp images (the paper's dataset, or data not recorded with the run)"
    windows = metadata["windows"]
    text += f". Intensity windows (counts): Low {windows['low']}, GT {windows['gt']}."
    return DatasetDescr(
        name="TEM burst restoration training data",
        description=text[:1024],
        cite=[{"text": PAPER[0], "doi": PAPER[1]}],
        tags=["electron-microscopy", "2d"],
        authors=[{"name": "napari-temdeblur"}],
        license=LICENSE,
        documentation=FileDescr(source=readme),
        config={"temdeblur": {"train": config.get("train"), "data": data}} if config else {},
    )


def _tolerance(folder: Path, gt) -> dict:
    """How closely a consumer must reproduce the test output: the export's own agreement (TOLERANCE on
    the [0, 1] scale) in GT counts, where bioimage.io's default 1e-3 counts can fail float32 rounding
    near zero counts; bioimage.io caps it at 1 % of the test output's maximum."""
    cap = 0.01 * float(np.load(folder / "test_output.npy").max())
    return {"absolute_tolerance": max(0.0, min(TOLERANCE * (gt.high - gt.low), cap)), "relative_tolerance": 1e-3}


def describe_model(folder: Path, run: str | Path, metadata: dict, checkpoint):
    """The ModelDescr of a package whose files (weights, test tensors, cover) lie in `folder`."""
    import torch
    from bioimageio.spec import ValidationContext
    from bioimageio.spec.model import v0_5 as spec

    frames, multiple = metadata["frames"], metadata["size_multiple"]
    low, gt = checkpoint.low_window, checkpoint.gt_window
    size = spec.ParameterizedSize(min=multiple, step=multiple)
    burst = spec.InputTensorDescr(
        id=spec.TensorId("burst"),
        description=f"{frames} registered stream frames (centre frame {frames // 2}), detector counts",
        axes=[
            spec.BatchAxis(),
            spec.ChannelAxis(channel_names=[f"frame{k}" for k in range(frames)]),
            spec.SpaceInputAxis(id=spec.AxisId("y"), size=size),
            spec.SpaceInputAxis(id=spec.AxisId("x"), size=size),
        ],
        test_tensor=spec.FileDescr(source=folder / "test_input.npy"),
        sample_tensor=spec.FileDescr(source=folder / "sample_input.tif"),
        data=spec.IntervalOrRatioDataDescr(type="uint16"),
        preprocessing=[
            spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32")),
            # the run's Low window: counts -> [0, 1]
            spec.ScaleLinearDescr(
                kwargs=spec.ScaleLinearKwargs(gain=1 / (low.high - low.low), offset=-low.low / (low.high - low.low))
            ),
            spec.ClipDescr(kwargs=spec.ClipKwargs(min=0.0, max=1.0)),
            spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32")),
        ],
    )
    restored = spec.OutputTensorDescr(
        id=spec.TensorId("restored"),
        description="the restored image, GT detector counts",
        axes=[
            spec.BatchAxis(),
            spec.ChannelAxis(channel_names=["restored"]),
            spec.SpaceOutputAxis(id=spec.AxisId("y"), size=spec.SizeReference(tensor_id="burst", axis_id="y")),
            spec.SpaceOutputAxis(id=spec.AxisId("x"), size=spec.SizeReference(tensor_id="burst", axis_id="x")),
        ],
        test_tensor=spec.FileDescr(source=folder / "test_output.npy"),
        sample_tensor=spec.FileDescr(source=folder / "sample_output.tif"),
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        # the run's GT window undone: [0, 1] -> counts
        postprocessing=[spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=gt.high - gt.low, offset=gt.low))],
    )
    torch_version = spec.Version(str(torch.__version__).split("+")[0])
    weights = spec.WeightsDescr(
        torchscript=spec.TorchscriptWeightsDescr(
            source=folder / "weights.torchscript.pt", pytorch_version=torch_version, comment="traced from the run"
        ),
        onnx=spec.OnnxWeightsDescr(
            source=folder / "weights.onnx", opset_version=18, parent="torchscript", comment="exported from the run"
        ),
    )
    name = metadata["model"]["name"]
    (folder / "README.md").write_text(_readme(metadata))
    with ValidationContext(root=folder, perform_io_checks=True):
        return spec.ModelDescr(
            name=f"TEM burst restoration {name}",
            description=(
                f"Restores a sharp TEM image from {frames} fast, motion-blurred stream frames ({name} network of "
                "Wieslander et al. 2021, trained with napari-temdeblur)"
            ),
            authors=[spec.Author(name="napari-temdeblur developers")],
            cite=[
                spec.CiteEntry(text=PAPER[0], doi=spec.Doi(PAPER[1])),
                spec.CiteEntry(text=SOFTWARE, url=SOFTWARE_URL),
            ],
            license=LICENSE,
            tags=TAGS,
            documentation=spec.FileDescr(source=folder / "README.md"),
            covers=[spec.FileDescr(source=folder / "cover.png")],
            inputs=[burst],
            outputs=[restored],
            weights=weights,
            training_data=_training_data(run, metadata, folder / "README.md"),
            version="0.1.0",
            config={"bioimageio": {"reproducibility_tolerance": [_tolerance(folder, gt)]}, "temdeblur": metadata},
        )


def _readme(metadata: dict) -> str:
    windows = metadata["windows"]
    return f"""# TEM burst restoration ({metadata["model"]["name"]})

Exported by napari-temdeblur {__version__} from a trained run (epoch {metadata["epoch"]}).

Input `burst`: {metadata["frames"]} registered stream frames as channels (centre frame at index
{metadata["frames"] // 2}), uint16 detector counts; height and width multiples of
{metadata["size_multiple"]} px. Pre-processing windows the counts with the run's Low window
{windows["low"]} to [0, 1]. Output `restored`: one channel in detector counts (the run's GT window
{windows["gt"]} undone).

## Training data

Described under `training_data` in rdf.yaml, from the run's config.json: the data's folder names, the
numbers of training and validation pairs, held-out sessions and the intensity windows.

## Validation

The test tensors are a crop of a real registered burst and the run's output on it. napari-temdeblur's
`temdeblur evaluate` scores a run with SSIM and PSNR on held-out Test data (the paper's protocol);
restore with `temdeblur restore MODEL.zip INPUT OUT`.
"""
