"""Behaviour of the specimen ground truths and the support-grid mask."""

import math

import numpy as np
import pytest

from napari_temdeblur.core.simulate import SPECIMENS, render_specimen, support_grid_bars

HQ_NM, STREAM_NM = 15.625, 31.25
GRATING_NM = 1e6 / 2160


def render(kind, shape=(256, 256), px=STREAM_NM, seed=0):
    return render_specimen(kind, shape, px, np.random.default_rng(seed))


def windowed(image):
    """Mean-free image under a 2-D Hann window, so the image border leaks no power into the spectrum."""
    window = np.hanning(image.shape[0])[:, None] * np.hanning(image.shape[1])[None, :]
    return (image - image.mean()) * window


def peak_frequency(image, px, near_axis):
    """Strongest spatial frequency (fy, fx) in cycles/nm whose direction lies nearer ``near_axis``.

    The FFT peak is refined on a grid of 1/50 bin by evaluating the DFT directly there (two matrix
    products), so a period is measured far more precisely than the FFT's bin spacing allows.
    """
    data = windowed(image)
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    magnitude = np.abs(np.fft.fft2(data))
    wanted = (np.abs(fx) > np.abs(fy)) if near_axis == "x" else (np.abs(fy) >= np.abs(fx))
    magnitude[~wanted | (np.hypot(fy, fx) < 4 / min(image.shape))] = 0
    iy, ix = np.unravel_index(np.argmax(magnitude), magnitude.shape)
    offsets = np.linspace(-1, 1, 101)
    fys = fy[iy, 0] + offsets / image.shape[0]
    fxs = fx[0, ix] + offsets / image.shape[1]
    dft_y = np.exp(-2j * np.pi * np.outer(fys, np.arange(image.shape[0])))
    dft_x = np.exp(-2j * np.pi * np.outer(np.arange(image.shape[1]), fxs))
    fine = np.abs(dft_y @ data @ dft_x)
    j, k = np.unravel_index(np.argmax(fine), fine.shape)
    return fys[j] / px, fxs[k] / px, fine[j, k]


def orientation_power(image):
    """Fraction of spectral power per 1-degree bin of line orientation (0-180 degrees)."""
    power = np.abs(np.fft.fft2(windowed(image))) ** 2
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    angle = np.degrees(np.arctan2(fy, fx)) % 180 * np.ones_like(power)
    ring = np.hypot(fy, fx) > 4 / min(image.shape)
    hist = np.bincount(angle[ring].astype(int) % 180, power[ring], minlength=180)
    return hist / hist.sum()


def spectral_entropy(image):
    """Shannon entropy of the normalised power spectrum, as a fraction of its maximum (white noise = 1).

    A periodic texture puts its power into a few Fourier modes (its harmonics), so its entropy is low and
    a network can learn it by heart, which is how the paper explains over-fitting to the calibration
    grid; tissue spreads its power over many modes at many scales.
    """
    power = np.abs(np.fft.rfft2(windowed(image))) ** 2
    p = power[power > 0] / power.sum()
    return float(-(p * np.log(p)).sum() / np.log(power.size))


# --- render_specimen: contract -------------------------------------------------------------------


@pytest.mark.parametrize("kind", SPECIMENS)
def test_same_seed_same_bytes_other_seed_other_image(kind):
    first, again = render(kind, seed=7), render(kind, seed=7)
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, render(kind, seed=8))


def test_result_depends_on_generator_state_not_only_seed():
    rng = np.random.default_rng(3)
    first = render_specimen("kidney", (128, 128), STREAM_NM, rng)
    second = render_specimen("kidney", (128, 128), STREAM_NM, rng)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("kind", SPECIMENS)
@pytest.mark.parametrize("shape", [(96, 320), (1, 1), (300, 7)])
def test_float32_transmission_in_unit_interval(kind, shape):
    image = render(kind, shape=shape)
    assert image.shape == shape
    assert image.dtype == np.float32
    assert np.isfinite(image).all()
    assert image.min() >= 0 and image.max() <= 1


def test_kidney_transmission_range():
    image = render("kidney", shape=(1024, 1024), seed=1)  # a 32 um field
    # 0 is reserved for the opaque grid bars; Beer-Lambert keeps even stacked granules above it.
    assert image.min() > 0.02
    low, high = np.percentile(image, [5, 95])
    assert low > 0.3 and high < 0.96
    assert (image < 0.25).mean() > 1e-4  # the darkest granules
    assert (image > 0.9).mean() > 1e-3  # empty lumens


@pytest.mark.parametrize("kind", SPECIMENS)
def test_same_physical_specimen_at_stream_and_hq_pixel_size(kind):
    # Geometry is drawn in nanometres, so averaging the HQ render over 2 x 2 pixels must reproduce the
    # render at the doubled stream pixel size of the same 16 um field.
    hq = render(kind, shape=(1024, 1024), px=HQ_NM, seed=5)
    stream = render(kind, shape=(512, 512), px=STREAM_NM, seed=5)
    binned = hq.reshape(512, 2, 512, 2).mean(axis=(1, 3))
    assert np.corrcoef(binned.ravel(), stream.ravel())[0, 1] > 0.99
    assert np.abs(binned - stream).mean() < 0.005


# --- specimen appearance -------------------------------------------------------------------------


@pytest.mark.parametrize("px", [HQ_NM, STREAM_NM])
def test_grating_period_and_tilt_are_physical(px):
    image = render("grid", shape=(1024, 1024), px=px, seed=3)
    for axis in "xy":
        fy, fx, _ = peak_frequency(image, px, axis)
        assert 1 / math.hypot(fy, fx) == pytest.approx(GRATING_NM, rel=0.005)
    fy, fx, _ = peak_frequency(image, px, "x")
    assert 2.5 < math.degrees(math.atan2(abs(fy), abs(fx))) < 10.5  # the grating is slightly rotated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grating_vertical_lines_have_more_contrast_than_horizontal(seed):
    image = render("grid", shape=(512, 512), seed=seed)
    *_, vertical = peak_frequency(image, STREAM_NM, "x")  # lines that vary along x
    *_, horizontal = peak_frequency(image, STREAM_NM, "y")
    assert vertical > 2.5 * horizontal
    # Yet the faint horizontal lines are there: their fundamental stands far above the spectrum.
    typical = np.median(np.abs(np.fft.fft2(windowed(image))))
    assert horizontal > 100 * typical


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kidney_texture_is_more_complex_than_grid(seed):
    kidney = spectral_entropy(render("kidney", shape=(512, 512), seed=seed))
    grid = spectral_entropy(render("grid", shape=(512, 512), seed=seed))
    assert kidney > grid + 0.15


@pytest.mark.parametrize("px", [HQ_NM, STREAM_NM])
def test_lines_one_direction_crosslines_two_perpendicular(px):
    lines = render("lines", shape=(512, 512), px=px, seed=4)
    cross = render("crosslines", shape=(512, 512), px=px, seed=4)

    def share(hist, centre):  # power of line orientations within 10 degrees of ``centre``
        return hist[(centre + np.arange(-10, 11)) % 180].sum()

    hist = orientation_power(lines)
    top = int(np.argmax(hist))
    assert share(hist, top) > 0.95 and share(hist, top + 90) < 0.01
    assert np.median(lines) > 0.9  # dark lines on a blank, bright image

    hist = orientation_power(cross)
    top = int(np.argmax(hist))
    assert share(hist, top) > 0.4 and share(hist, top + 90) > 0.4  # two families at right angles

    for image in (lines, cross):
        fy, fx, _ = peak_frequency(image, px, "x")
        assert 1 / math.hypot(fy, fx) == pytest.approx(1500, rel=0.01)


def test_spots_image_is_clean_with_bright_and_dark_features():
    image = render("spots", shape=(512, 512), seed=2)
    values, counts = np.unique(image, return_counts=True)
    assert values[np.argmax(counts)] == pytest.approx(0.5)  # untextured mid-grey background
    assert counts.max() > 0.3 * image.size
    assert (image < 0.3).mean() > 0.005 and (image > 0.7).mean() > 0.005


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("liver", (8, 8), 15.625), "'liver'"),
        (("liver", (8, 8), 15.625), "kidney, grid, spots, lines, crosslines"),
        (("grid", (0, 8), 15.625), "(0, 8)"),
        (("grid", (8, -3), 15.625), "(8, -3)"),
        (("grid", (8,), 15.625), "(8,)"),
        (("grid", (8, 8), 0.0), "0.0"),
        (("grid", (8, 8), -2.5), "-2.5"),
        (("grid", (8, 8), float("nan")), "nan"),
    ],
)
def test_render_specimen_rejects_bad_input_naming_the_value(args, fragment):
    with pytest.raises(ValueError) as info:
        render_specimen(*args, np.random.default_rng(0))
    assert fragment in str(info.value)


# --- support_grid_bars -----------------------------------------------------------------------------


def test_support_grid_bars_small_case_by_hand():
    # px = 0.5 um from origin (3, -1) um, pitch 4 um, bar 1.5 um:
    # y = 3.0 3.5 4.0 4.5        -> y mod 4 = 3.0 3.5 0.0 0.5         -> bar rows 2, 3
    # x = -1 -0.5 0 0.5 1.0 1.5  -> x mod 4 = 3.0 3.5 0.0 0.5 1.0 1.5 -> bar cols 2, 3, 4 (1.5 < 1.5 fails)
    expected = np.array(
        [
            [0, 0, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1],
        ],
        dtype=bool,
    )
    bars = support_grid_bars((4, 6), (3.0, -1.0), 500.0, 4.0, 1.5)
    assert bars.dtype == bool
    np.testing.assert_array_equal(bars, expected)


def test_support_grid_bar_fraction_over_a_large_area():
    pitch, bar = 25.0, 6.0
    bars = support_grid_bars((2500, 2500), (3.3, -7.1), 100.0, pitch, bar)  # exactly 10 x 10 meshes
    assert bars.mean() == pytest.approx(1 - ((pitch - bar) / pitch) ** 2, abs=0.005)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (((8, 8), (0, 0), 15.625, 25.0, 25.0), "25.0"),
        (((8, 8), (0, 0), 15.625, 25.0, 30.0), "30.0"),
        (((8, 8), (0, 0), 15.625, -25.0, 5.0), "-25.0"),
        (((8, 8), (0, 0), 15.625, 25.0, 0.0), "0.0"),
        (((8, 8), (0, 0), 0.0, 25.0, 5.0), "pixel_size_nm"),
        (((0, 8), (0, 0), 15.625, 25.0, 5.0), "(0, 8)"),
    ],
)
def test_support_grid_bars_rejects_bad_input_naming_the_value(args, fragment):
    with pytest.raises(ValueError) as info:
        support_grid_bars(*args)
    assert fragment in str(info.value)
