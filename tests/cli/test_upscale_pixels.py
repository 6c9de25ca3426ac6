"""Pixels of `bsrn upscale`'s image outputs, end to end: what the real CLI writes equals the model
applied in-process to the same decoded pixels, so channel order, orientation, alpha, grayscale,
16-bit scaling, JPEG output, tiling, threads and the default x4 model are all checked by value.

Expectations never use bsrn_cli.io: inputs are decoded here with PIL / OpenCV, the model runs
in-process on pixels / peak (NCHW), alpha and gray come from tests/reference.py. Every input has
random content whose R, G and B differ, so a swapped channel order cannot pass.

Torch backend: the CLI runs the float model channels_last on the CPU (torch_backend.py). The
reference does the same and is then equal to the file exactly; a plain NCHW ``model(x)`` takes
other conv kernels whose sums differ by a few float32 ulps (at most ~1e-4 of an 8-bit level,
~0.03 of a 16-bit level here), so it differs from the file by 1 level on the rare pixels that
sit that close to a rounding boundary -- the bound ``test_torch_backend_png_is_the_float_model``
asserts. Packed backend: ``PackedBSRN(model)`` on the same NCHW input is equal exactly.
"""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from bsrn_cli.backends import make_upscaler
from bsrn_cli.backends.packed_backend import PackedBSRN
from bsrn_cli.pretrained.loader import load_model
from bsrn_cli.pretrained.weights import save_weights
from bsrn_cli.system import cpu_cores
from tests.cli.test_upscale import bsrn
from tests.conftest import tiny_model
from tests.reference import bicubic_resize, luma601

ORIENTATION = 0x0112
WIDTH, HEIGHT = 40, 30  # smaller than the default 256-pixel tile: the default runs are untiled
# JPEG at --quality 95 with Pillow's 4:2:0 chroma: luma (not subsampled) and 2x2 block means
# (the chroma's resolution) stay close to the expectation; an R/B swap moves both far away.
# Measured on these images: luma 40-41 dB (swapped 21-22), 2x2 means 34-35 dB (swapped 9-10).
LUMA_PSNR, BLOCK_PSNR = 36.0, 30.0
SWAPPED_LUMA_PSNR, SWAPPED_BLOCK_PSNR = 28.0, 20.0


def _random(shape: tuple, seed: int, dtype=np.uint8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def _smooth(shape: tuple, seed: int) -> np.ndarray:
    """Random uint8 (h, w, c), each channel its own random 1/4-size image upsampled bicubic:
    content JPEG's 4:2:0 chroma can keep, still with R, G and B differing everywhere."""
    h, w, channels = shape
    small = _random((h // 4 + 1, w // 4 + 1, channels), seed)
    return np.dstack([np.asarray(Image.fromarray(small[..., c], "L").resize((w, h), Image.BICUBIC))
                      for c in range(channels)])


def _as_input(pixels: np.ndarray) -> torch.Tensor:
    """(h, w, 3) uint8/uint16 -> (1, 3, h, w) float32 in [0, 1], NCHW-contiguous."""
    peak = np.iinfo(pixels.dtype).max
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32) / peak)[None]


def _to_pixels(y: torch.Tensor, dtype) -> np.ndarray:
    """(1, 3, H, W) model output -> (H, W, 3) of ``dtype``: clamp(0, 1) * peak, rounded."""
    peak = np.iinfo(dtype).max
    return (y[0].clamp(0, 1) * peak).round().permute(1, 2, 0).numpy().astype(dtype)


@torch.inference_mode()
def torch_reference(model, pixels: np.ndarray, channels_last: bool = True) -> np.ndarray:
    """The float model on pixels / peak, rounded to the input's bit depth."""
    x = _as_input(pixels)
    if channels_last:
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return _to_pixels(model(x), pixels.dtype)


def packed_reference(model, pixels: np.ndarray) -> np.ndarray:
    """The packed model (one thread, untiled) on pixels / peak, rounded to the input's bit depth."""
    return _to_pixels(PackedBSRN(model)(_as_input(pixels)), pixels.dtype)


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB", (path, image.mode)
        return np.asarray(image)


def _read_sixteen_bit(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr is not None and bgr.dtype == np.uint16 and bgr.shape[2] == 3, path
    return np.ascontiguousarray(bgr[..., ::-1])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


def _luma(rgb: np.ndarray) -> np.ndarray:
    """JPEG's (JFIF) full-range Y, in float."""
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _blocks(rgb: np.ndarray) -> np.ndarray:
    """Means of 2x2 blocks (even sizes)."""
    h, w = rgb.shape[:2]
    return rgb.astype(np.float64).reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))


def assert_jpeg_close(written: np.ndarray, expected: np.ndarray) -> None:
    """A decoded JPEG is ``expected`` within the codec's error, and far from it R/B-swapped."""
    assert _psnr(_luma(written), _luma(expected)) >= LUMA_PSNR
    assert _psnr(_blocks(written), _blocks(expected)) >= BLOCK_PSNR
    swapped = expected[..., ::-1]
    assert _psnr(_luma(written), _luma(swapped)) <= SWAPPED_LUMA_PSNR
    assert _psnr(_blocks(written), _blocks(swapped)) <= SWAPPED_BLOCK_PSNR


def _bicubic_alpha(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.clip(np.rint(bicubic_resize(alpha, width, height)), 0, 255).astype(np.uint8)


def _on_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255
    return np.clip(np.rint(colour * a + 255 * (1 - a)), 0, 255).astype(np.uint8)


def _run(*args) -> None:
    """`bsrn upscale ARGS` on the CPU (the references run there; packed is CPU-only)."""
    result = bsrn("upscale", *args, "--device", "cpu")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A random tiny x2 model (and its safetensors file) and a folder of inputs, one per kind;
    ``arrays`` holds each input's pixels as decoded here (upright where EXIF says so)."""
    root = tmp_path_factory.mktemp("pixels")
    model = tiny_model(2)
    weights = root / "tiny-x2.safetensors"
    save_weights(model, weights)
    folder = root / "in"
    folder.mkdir()
    arrays: dict[str, np.ndarray] = {}

    arrays["rgb"] = _smooth((HEIGHT, WIDTH, 3), 1)
    Image.fromarray(arrays["rgb"], "RGB").save(folder / "rgb.png")

    rgba = _smooth((HEIGHT, WIDTH, 4), 2)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    arrays["rgba"] = rgba

    arrays["gray"] = _random((HEIGHT, WIDTH), 3)
    Image.fromarray(arrays["gray"], "L").save(folder / "gray.png")

    arrays["rgb16"] = _random((HEIGHT, WIDTH, 3), 4, np.uint16)
    assert cv2.imwrite(str(folder / "rgb16.png"), np.ascontiguousarray(arrays["rgb16"][..., ::-1]))  # cv2 is BGR

    # Stored sideways (24 wide, 14 high) with EXIF orientation 6 (PNG) or 8 (JPEG): a viewer
    # turns 6 clockwise and 8 counter-clockwise, so the upright images are 14 wide, 24 high.
    for name, orientation, turns in (("rot6.png", 6, -1), ("rot8.jpg", 8, 1)):
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        Image.fromarray(_random((14, 24, 3), orientation), "RGB").save(folder / name, exif=exif, quality=95)
        with Image.open(folder / name) as stored:
            upright = np.ascontiguousarray(np.rot90(np.asarray(stored), turns))
            assert np.array_equal(upright, np.asarray(ImageOps.exif_transpose(stored)))  # the convention
        arrays[Path(name).stem] = upright
    return {"root": root, "model": model, "weights": weights, "in": folder, "arrays": arrays}


@pytest.fixture(scope="module")
def torch_out(setup):
    """Every input through `--backend torch --tile 0`, PNG out."""
    out = setup["root"] / "torch"
    _run(setup["in"], "--model", setup["weights"], "--backend", "torch", "--tile", 0, "-o", out)
    return out


@pytest.fixture(scope="module")
def packed_out(setup):
    """Every input through `--backend packed --alpha model` (default tile, larger than the
    inputs), PNG out."""
    out = setup["root"] / "packed"
    _run(setup["in"], "--model", setup["weights"], "--backend", "packed", "--alpha", "model", "-o", out)
    return out


@pytest.fixture(scope="module")
def jpeg_out(setup):
    """The RGB and the RGBA input through `--backend packed --format jpg --quality 95`."""
    out = setup["root"] / "jpeg"
    _run(setup["in"] / "rgb.png", setup["in"] / "rgba.png", "--model", setup["weights"], "--backend", "packed",
         "--format", "jpg", "--quality", 95, "-o", out)
    return out


@pytest.fixture(scope="module")
def references(setup):
    """In-process torch (channels_last) and packed outputs for each input's colour pixels."""
    model, arrays = setup["model"], setup["arrays"]
    colour = {name: a[..., :3] if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for name, a in arrays.items()}
    return {"torch": {name: torch_reference(model, c) for name, c in colour.items()},
            "packed": {name: packed_reference(model, c) for name, c in colour.items()}}


BACKENDS = ("torch", "packed")


@pytest.fixture(params=BACKENDS)
def backend(request, torch_out, packed_out):
    return request.param, {"torch": torch_out, "packed": packed_out}[request.param]


def test_inputs_tell_red_from_blue(references):
    """Sanity of the data: every colour expectation differs from its R/B-swapped self almost
    everywhere, so each exact comparison below fails if the output's channels were swapped."""
    for name, expected in references["packed"].items():
        if name != "gray":
            assert np.mean(expected[..., 0] != expected[..., 2]) > 0.9, name


def test_torch_backend_png_is_the_float_model(setup, torch_out, references):
    """8-bit RGB PNG, `--backend torch --tile 0`: the file is the float model's output exactly
    (channels_last, as the backend runs it); a plain NCHW model(x) is within 1 level on all
    pixels and differs on at most 0.1% of the values (float32 summation order, see the module
    docstring)."""
    written = _read_rgb(torch_out / "rgb_x2.png")
    assert written.shape == (2 * HEIGHT, 2 * WIDTH, 3)
    assert np.array_equal(written, references["torch"]["rgb"])
    nchw = torch_reference(setup["model"], setup["arrays"]["rgb"], channels_last=False)
    difference = np.abs(written.astype(int) - nchw)
    assert difference.max() <= 1 and np.mean(difference > 0) <= 0.001


def test_packed_backend_png_is_the_packed_model_and_near_the_float_model(packed_out, references):
    """8-bit RGB PNG, `--backend packed`: the file is PackedBSRN on the same pixels exactly, and
    within 1 grey level of the float model on at least 99.9% of the values (the packed body
    sums in another order; a sign flip at a threshold may move a few pixels further)."""
    written = _read_rgb(packed_out / "rgb_x2.png")
    assert np.array_equal(written, references["packed"]["rgb"])
    difference = np.abs(written.astype(int) - references["torch"]["rgb"])
    assert np.mean(difference <= 1) >= 0.999


def test_jpeg_output_is_the_model_within_the_codec_error(jpeg_out, references):
    """`--format jpg --quality 95`: a JPEG whose decoded pixels are the packed model's output
    within the codec's error (luma and 2x2 means) and far from the R/B-swapped output."""
    with Image.open(jpeg_out / "rgb_x2.jpg") as image:
        assert image.format == "JPEG"
    assert_jpeg_close(_read_rgb(jpeg_out / "rgb_x2.jpg"), references["packed"]["rgb"])


@pytest.mark.parametrize("name", ["rot6", "rot8"])
def test_exif_rotated_input_comes_out_upright(backend, name, references):
    """EXIF orientation 6 (PNG) and 8 (JPEG): the output is the model applied to the upright
    pixels (turned here with numpy), 28x48, with EXIF orientation 1."""
    kind, out = backend
    written = out / f"{name}_x2.png"
    assert np.array_equal(_read_rgb(written), references[kind][name])
    with Image.open(written) as image:
        assert image.size == (28, 48)
        assert image.getexif().get(ORIENTATION) == 1


def test_rgba_png_colour_is_the_model_and_alpha_is_bicubic(setup, torch_out, references):
    """RGBA PNG, torch backend: colour = the model on the RGB as stored (never premultiplied by
    alpha), alpha = bicubic of the input alpha rounded half-to-even and clipped
    (tests/reference.py)."""
    with Image.open(torch_out / "rgba_x2.png") as image:
        assert image.mode == "RGBA"
        written = np.asarray(image)
    assert np.array_equal(written[..., :3], references["torch"]["rgba"])
    alpha = setup["arrays"]["rgba"][..., 3]
    assert np.array_equal(written[..., 3], _bicubic_alpha(alpha, 2 * WIDTH, 2 * HEIGHT))


def test_alpha_model_runs_the_alpha_through_the_network(setup, packed_out, references):
    """RGBA PNG, packed backend, `--alpha model`: alpha = rint of the channel mean of the packed
    model on the alpha replicated in RGB (not the bicubic alpha); colour = the model on the RGB."""
    with Image.open(packed_out / "rgba_x2.png") as image:
        assert image.mode == "RGBA"
        written = np.asarray(image)
    assert np.array_equal(written[..., :3], references["packed"]["rgba"])
    alpha = setup["arrays"]["rgba"][..., 3]
    through_model = packed_reference(setup["model"], np.repeat(alpha[..., None], 3, axis=2))
    expected_alpha = np.rint(through_model.astype(np.float64).mean(axis=2)).astype(np.uint8)
    assert np.array_equal(written[..., 3], expected_alpha)
    assert not np.array_equal(expected_alpha, _bicubic_alpha(alpha, 2 * WIDTH, 2 * HEIGHT))


def test_rgba_to_jpeg_is_composited_on_white(setup, jpeg_out, references):
    """RGBA input to JPEG: the model's colour over white through the bicubic alpha,
    rint(c * a/255 + 255 * (1 - a/255)), within the codec's error; not the bare colour."""
    written = _read_rgb(jpeg_out / "rgba_x2.jpg")
    alpha = _bicubic_alpha(setup["arrays"]["rgba"][..., 3], 2 * WIDTH, 2 * HEIGHT)
    assert_jpeg_close(written, _on_white(references["packed"]["rgba"], alpha))
    assert _psnr(_luma(written), _luma(references["packed"]["rgba"])) <= SWAPPED_LUMA_PSNR


def test_grayscale_stays_gray_and_is_the_luma_of_the_model(backend, references):
    """L PNG: an L output equal to ITU-R 601 luma (tests/reference.luma601) of the model's RGB
    output for the gray replicated in RGB."""
    kind, out = backend
    with Image.open(out / "gray_x2.png") as image:
        assert image.mode == "L"
        written = np.asarray(image)
    expected = luma601(references[kind]["gray"])
    assert np.array_equal(written, expected)
    assert not np.array_equal(expected, references[kind]["gray"][..., 1])  # the luma matters


def test_sixteen_bit_png_stays_sixteen_bit(backend, references):
    """48-bit RGB PNG (written by OpenCV): a 16-bit PNG equal to the model on pixels / 65535
    rounded to 16 bits, no 8-bit step (torch: the float model; packed: PackedBSRN)."""
    kind, out = backend
    written = _read_sixteen_bit(out / "rgb16_x2.png")
    expected = references[kind]["rgb16"]
    assert np.array_equal(written, expected)
    assert np.any(expected % 257)  # values an 8-bit step could not give


@pytest.fixture(scope="module")
def tiled(setup):
    """A 32x24 image through a random x3 model on the packed backend with 6-pixel tiles (24
    tiles): the default overlap with 1 and 2 threads, and `--tile-overlap 0`. (Model seed 3:
    its pixels depend on context 5 pixels away strongly enough that an overlap one short of
    the receptive radius changes some 300 values; with some seeds it changes none.)"""
    root = setup["root"] / "tiled"
    root.mkdir()
    model = tiny_model(3, seed=3)
    weights = root / "tiny-x3.safetensors"
    save_weights(model, weights)
    pixels = _random((40, 56, 3), 5)
    Image.fromarray(pixels, "RGB").save(root / "a.png")
    runs = {"threads1": ["--threads", 1], "threads2": ["--threads", 2], "overlap0": ["--tile-overlap", 0]}
    for name, extra in runs.items():
        _run(root / "a.png", "--model", weights, "--backend", "packed", "--tile", 16, *extra, "-o", root / f"{name}.png")
    return {"model": model, "pixels": pixels, **{name: root / f"{name}.png" for name in runs}}


def test_default_tile_overlap_is_seamless_and_zero_overlap_is_not(tiled):
    """x3, `--tile 16`: with the default overlap (the receptive radius) the file is exactly the
    untiled packed model; with `--tile-overlap 0` the tile seams change pixels."""
    untiled = packed_reference(tiled["model"], tiled["pixels"])
    assert untiled.shape == (120, 168, 3)
    assert np.array_equal(_read_rgb(tiled["threads1"]), untiled)
    assert np.mean(_read_rgb(tiled["overlap0"]) != untiled) > 0.01


def test_threads_do_not_change_the_pixels(tiled):
    """`--threads 1` and `--threads 2` write identical files on the packed backend."""
    assert tiled["threads1"].read_bytes() == tiled["threads2"].read_bytes()


def test_threads_reach_the_packed_network(setup):
    """make_upscaler(..., threads=n) gives the packed network n threads; 0, one per core."""
    for threads in (1, 2):
        assert make_upscaler(setup["model"], "packed", "cpu", threads=threads).network.threads == threads
    assert make_upscaler(setup["model"], "packed", "cpu").network.threads == cpu_cores()


def test_default_scale_is_four_with_the_shipped_model(tmp_path, monkeypatch):
    """`bsrn upscale a.png` with no -s and no --model writes a_x4.png, 4x larger, equal to the
    shipped bsrn-fast-x4 run in-process by PackedBSRN (CPU only, so auto picks packed)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    pixels = _random((6, 8, 3), 6)
    Image.fromarray(pixels, "RGB").save(tmp_path / "a.png")
    result = bsrn("upscale", tmp_path / "a.png")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_x4.png"]
    written = _read_rgb(tmp_path / "a_x4.png")
    assert written.shape == (24, 32, 3)
    model, _, _ = load_model("bsrn-fast-x4")
    assert np.array_equal(written, packed_reference(model, pixels))
