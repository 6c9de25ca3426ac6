"""Degradations that turn a clean HR image into a realistic LR one: blur, downscaling with a
random kernel, Gaussian and Poisson noise, JPEG, optionally twice (a second order).

Two users: training (``degradation = "real"`` in a training config makes every LR patch on the
fly from its HR patch, seeded by the run's generator) and the degraded test sets of
``bsrn degrade`` (MATLAB-bicubic downscaling, then mild noise and JPEG, one fixed generator
per image). Everything works on uint8 HWC (or HW gray) numpy arrays and needs no torch.

The steps follow the "second-order degradation" idea of Real-ESRGAN (Wang et al., ICCVW 2021,
section 3), scaled down to the mild range of ordinary photos: small blur, noise up to a few
levels, JPEG 50-95.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from bsrn_cli.errors import BsrnError
from bsrn_cli.imresize import resize_matrix

# "bicubic" is MATLAB's (antialiased when shrinking, as the evaluation protocol makes LR);
# the others are OpenCV's: bilinear without antialiasing (aliased, as cheap resizers are), area.
RESIZE_KERNELS = {"bicubic": None, "bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}


# ---------------------------------------------------------------- the steps, one function each

def gaussian_kernel(sigma_x: float, sigma_y: float, theta: float, size: int | None = None) -> np.ndarray:
    """A normalised 2-D Gaussian kernel (float32, odd side), rotated by ``theta`` radians;
    ``sigma_x == sigma_y`` is the isotropic case. The side defaults to cover 3 sigma."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"blur sigmas must be positive, not {sigma_x}, {sigma_y}")
    if size is None:
        size = 2 * math.ceil(3 * max(sigma_x, sigma_y)) + 1
    if size % 2 == 0 or size < 1:
        raise ValueError(f"kernel side must be odd and positive, not {size}")
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    cos, sin = math.cos(theta), math.sin(theta)
    u, v = cos * x + sin * y, -sin * x + cos * y
    kernel = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve with ``kernel`` (float32 in, float32 out), edges mirrored."""
    return cv2.filter2D(image.astype(np.float32, copy=False), -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def resize(image: np.ndarray, width: int, height: int, kernel: str) -> np.ndarray:
    """Resize to ``width`` x ``height`` with one of :data:`RESIZE_KERNELS` (float32)."""
    if kernel not in RESIZE_KERNELS:
        raise ValueError(f"unknown resize kernel {kernel!r} (known: {', '.join(RESIZE_KERNELS)})")
    image = image.astype(np.float32, copy=False)
    if kernel == "bicubic":  # MATLAB's imresize without rounding, as two matrix products
        rows = resize_matrix(image.shape[0], height)
        columns = resize_matrix(image.shape[1], width)
        out = np.tensordot(rows, image, axes=(1, 0))              # (height, w[, c])
        return np.moveaxis(np.tensordot(columns, out, axes=(1, 1)), 0, 1)  # (height, width[, c])
    return cv2.resize(image, (width, height), interpolation=RESIZE_KERNELS[kernel])


def gaussian_noise(image: np.ndarray, sigma: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean Gaussian noise of ``sigma`` grey levels (0-255 scale); ``gray``: the same
    noise on every channel (luminance noise), else independent per channel (colour noise)."""
    shape = image.shape[:2] + (1,) if gray and image.ndim == 3 else image.shape
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    return image.astype(np.float32, copy=False) + noise


def poisson_noise(image: np.ndarray, scale: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Add shot noise: the image in [0, 1] is read as photon counts at 256 photons per unit,
    drawn from a Poisson law and divided back; the difference from the image, times ``scale``,
    is the noise (0: none, 1: full shot noise at that count). ``gray``: the noise of the
    luminance on every channel, else independent per channel."""
    base = np.clip(image.astype(np.float32, copy=False), 0, 255) / 255.0
    if gray and base.ndim == 3:
        base_for_noise = base @ np.array([0.299, 0.587, 0.114], np.float32)
    else:
        base_for_noise = base
    photons = 256.0
    noisy = rng.poisson(base_for_noise * photons).astype(np.float32) / photons
    noise = (noisy - base_for_noise) * np.float32(scale * 255.0)
    if gray and base.ndim == 3:
        noise = noise[..., None]
    return image.astype(np.float32, copy=False) + noise


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round to uint8 and compress with JPEG at ``quality`` (1-100, 4:2:0 chroma as cameras do),
    then decode (uint8 out). Colour images are taken as RGB."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1-100, not {quality}")
    pixels = to_uint8(image)
    colour = pixels.ndim == 3
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if colour else pixels,
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV's encoder does not fail on a uint8 array
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB) if colour else decoded


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ the random training pipeline

def _pair(value, name: str, low: float, high: float) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise BsrnError(f"degradation {name}: expected a number or [low, high], not {value!r}")
    a, b = float(value[0]), float(value[1])
    if not low <= a <= b <= high:
        raise BsrnError(f"degradation {name}: [{a:g}, {b:g}] is not an ordered range within [{low:g}, {high:g}]")
    return a, b


def _probability(value, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise BsrnError(f"degradation {name}: expected a probability in [0, 1], not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Degradation:
    """One stage's settings; a stage runs blur -> (first stage: resize to the LR size) -> noise
    -> JPEG, each step with its probability. ``second_order`` is the probability that a second,
    milder stage (same ranges, at the LR size) follows. Fields are the keys of the TOML table
    ``[degradation]`` of a training config; ``degradation = "real"`` means these defaults."""

    blur_prob: float = 0.7
    blur_sigma: tuple[float, float] = (0.2, 1.2)      # in HR pixels (first stage), LR pixels (second)
    anisotropic_prob: float = 0.3                      # share of blurs with two sigmas and an angle
    resize_kernels: tuple[str, ...] = ("bicubic", "bilinear", "area")
    noise_prob: float = 0.7
    gaussian_sigma: tuple[float, float] = (1.0, 8.0)   # grey levels (0-255)
    poisson_prob: float = 0.3                          # share of noisy stages with shot noise instead
    poisson_scale: tuple[float, float] = (0.05, 1.0)
    gray_noise_prob: float = 0.4                       # share of noise that is the same on every channel
    jpeg_prob: float = 0.9
    jpeg_quality: tuple[float, float] = (50, 95)
    second_order: float = 0.3
    clean_prob: float = 0.0                            # share of patches given the clean MATLAB-bicubic LR

    @classmethod
    def from_config(cls, value) -> "Degradation | None":
        """``None``/``"bicubic"``: the clean MATLAB-bicubic LR (None is returned); ``"real"``:
        the defaults; a table: the defaults with its keys replaced (checked: names, types, ranges)."""
        if value is None or value == "bicubic":
            return None
        if value == "real":
            return cls()
        if not isinstance(value, dict):
            raise BsrnError(f"degradation must be \"bicubic\", \"real\" or a table, not {value!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise BsrnError(f"degradation: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        settings = {}
        for key, item in value.items():
            if key.endswith("_prob") or key == "second_order":
                settings[key] = _probability(item, key)
            elif key == "resize_kernels":
                kernels = [item] if isinstance(item, str) else item
                if not isinstance(kernels, (list, tuple)) or not kernels or any(k not in RESIZE_KERNELS for k in kernels):
                    raise BsrnError(f"degradation resize_kernels: expected names from {', '.join(RESIZE_KERNELS)}, "
                                    f"not {item!r}")
                settings[key] = tuple(kernels)
            else:
                bounds = {"blur_sigma": (0.01, 10.0), "gaussian_sigma": (0.0, 100.0), "poisson_scale": (0.0, 10.0),
                          "jpeg_quality": (1.0, 100.0)}[key]
                settings[key] = _pair(item, key, *bounds)
        return cls(**settings)

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    # -- one stage

    def _blur(self, image: np.ndarray, rng: np.random.Generator, shrink: float = 1.0) -> np.ndarray:
        if rng.random() >= self.blur_prob:
            return image
        low, high = self.blur_sigma
        sigma_x = rng.uniform(low, high) * shrink
        if rng.random() < self.anisotropic_prob:
            sigma_y, theta = rng.uniform(low, high) * shrink, rng.uniform(0, math.pi)
        else:
            sigma_y, theta = sigma_x, 0.0
        return blur(image, gaussian_kernel(sigma_x, sigma_y, theta))

    def _noise(self, image: np.ndarray, rng: np.random.Generator, shrink: float = 1.0) -> np.ndarray:
        if rng.random() >= self.noise_prob:
            return image
        gray = rng.random() < self.gray_noise_prob
        if rng.random() < self.poisson_prob:
            return poisson_noise(image, rng.uniform(*self.poisson_scale) * shrink, gray, rng)
        return gaussian_noise(image, rng.uniform(*self.gaussian_sigma) * shrink, gray, rng)

    def _jpeg(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.jpeg_prob:
            return to_uint8(image)
        low, high = self.jpeg_quality
        return jpeg(image, int(rng.integers(round(low), round(high) + 1)))

    def __call__(self, hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
        """An LR uint8 image of ``hr``'s size / ``scale`` (sides must divide), degraded at random."""
        height, width = hr.shape[:2]
        if height % scale or width % scale:
            raise ValueError(f"HR size {width}x{height} is not divisible by the scale {scale}")
        # Drawn only when asked for, so a table without clean_prob sees the same patches as before.
        if self.clean_prob and rng.random() < self.clean_prob:
            clean = to_uint8(resize(hr, width // scale, height // scale, "bicubic"))
            return clean if clean.ndim == hr.ndim else clean[..., None]
        image = self._blur(hr.astype(np.float32), rng)
        kernel = self.resize_kernels[int(rng.integers(len(self.resize_kernels)))]
        image = resize(image, width // scale, height // scale, kernel)
        if image.ndim < hr.ndim:  # OpenCV drops a single channel axis
            image = image[..., None]
        image = self._jpeg(self._noise(image, rng), rng)
        if rng.random() < self.second_order:  # a milder second pass at the LR size
            image = self._jpeg(self._noise(self._blur(image, rng, shrink=0.5), rng, shrink=0.5), rng)
        return image


# ------------------------------------------------------------------ the fixed test-set degradation

@dataclass(frozen=True)
class EvalDegradation:
    """What ``bsrn degrade`` does to each HR image: the protocol's MATLAB-bicubic downscaling,
    then Gaussian noise of a sigma drawn from ``noise_sigma`` (grey levels) and JPEG at a
    quality drawn from ``jpeg_quality``; the draws come from a generator seeded by ``seed``
    and the image's name, so an image's LR does not depend on the other images."""

    seed: int = 0
    noise_sigma: tuple[float, float] = (1.0, 4.0)
    jpeg_quality: tuple[int, int] = (60, 90)

    def rng_for(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, *name.encode("utf-8")])

    def __call__(self, hr: np.ndarray, scale: int, name: str) -> tuple[np.ndarray, dict]:
        """(LR uint8, the draws made) for a modcropped HR image called ``name``."""
        from bsrn_cli.imresize import imresize

        rng = self.rng_for(name)
        sigma = float(rng.uniform(*self.noise_sigma))
        quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        lr = imresize(hr, 1 / scale).astype(np.float32)
        lr = jpeg(gaussian_noise(lr, sigma, gray=hr.ndim == 2, rng=rng), quality)
        return lr, {"noise_sigma": round(sigma, 4), "jpeg_quality": quality}
