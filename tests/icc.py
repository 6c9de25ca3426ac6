"""A small ICC v2 CMYK output profile built from the specification (ICC.1:2001-04), and the
published formulas to turn its L*a*b* colours into sRGB, so a test knows what colour a CMYK
file carrying the profile must show without asking the colour engine under test.

The profile's A2B0 (a lut16Type with a 2-point grid) ignores the magenta and yellow inks:
no ink is the PCS white, K darkens towards black and cyan adds a violet hue. No naive
CMYK -> RGB formula gives such colours (magenta ink that changes nothing, cyan that turns
things violet). Its white and its darkest colour are exactly L* 100 and L* 0, so that the
colour engine's white fix-up and black-point compensation (which littleCMS applies in the
perceptual intent towards a v4 sRGB profile) leave every colour where the profile puts it."""

from __future__ import annotations

import struct

import numpy as np

D50 = (0.9642, 1.0, 0.8249)            # the ICC profile connection space white
D65 = (0.95047, 1.0, 1.08883)          # sRGB's white
CYAN = (-40.0, 40.0, -60.0)            # what full cyan does without black: L*, a*, b* change


def profile_lab(cmyk: np.ndarray) -> np.ndarray:
    """(..., 4) CMYK in 0..255 -> (..., 3) L*a*b* (D50) that the profile assigns. It is linear in
    each ink (C times (1 - K) at most), so interpolating between the grid points gives exactly this."""
    c, k = cmyk[..., 0] / 255.0, cmyk[..., 3] / 255.0
    paper = 1 - k
    return np.stack([(100 + CYAN[0] * c) * paper, CYAN[1] * c * paper, CYAN[2] * c * paper], axis=-1)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_type(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _text_type(text: str) -> bytes:
    return b"text" + bytes(4) + text.encode("ascii") + b"\x00"


def _desc_type(text: str) -> bytes:
    ascii_part = text.encode("ascii") + b"\x00"
    return (b"desc" + bytes(4) + struct.pack(">I", len(ascii_part)) + ascii_part
            + struct.pack(">II", 0, 0)           # no Unicode description
            + struct.pack(">HB", 0, 0) + bytes(67))  # no ScriptCode description


def _lab16(lab: np.ndarray) -> list[int]:
    """L*a*b* -> the legacy 16-bit PCS encoding of lut16Type: L* 100 = 0xFF00, a*/b* 0 = 0x8000."""
    l, a, b = lab
    return [round(l * 0xFF00 / 100), round((a + 128) * 256), round((b + 128) * 256)]


def _lut16_a2b0() -> bytes:
    identity_matrix = b"".join(_s15(1.0 if i == j else 0.0) for i in range(3) for j in range(3))
    entries = 2  # identity curves: 0 -> 0, 1 -> 0xFFFF
    curve = struct.pack(">HH", 0, 0xFFFF)
    grid = []
    for c in (0, 255):          # the first input channel varies slowest
        for m in (0, 255):
            for y in (0, 255):
                for k in (0, 255):
                    grid += _lab16(profile_lab(np.array([c, m, y, k], float)))
    return (b"mft2" + bytes(4) + struct.pack(">BBBB", 4, 3, 2, 0) + identity_matrix
            + struct.pack(">HH", entries, entries) + curve * 4
            + struct.pack(f">{len(grid)}H", *grid) + curve * 3)


def cmyk_profile() -> bytes:
    """The ICC v2 output ('prtr') profile: CMYK data, Lab connection space, desc/wtpt/cprt/A2B0."""
    tags = [(b"desc", _desc_type("bsrn test CMYK")), (b"wtpt", _xyz_type(D50)),
            (b"cprt", _text_type("No copyright, test data")), (b"A2B0", _lut16_a2b0())]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)  # each tag starts on a 4-byte boundary
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + bytes([2, 0x10, 0, 0]) + b"prtr" + b"CMYK" + b"Lab "
              + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(4) + bytes(4) + bytes(4) + bytes(4)
              + bytes(8) + struct.pack(">I", 0) + b"".join(_s15(v) for v in D50) + bytes(4) + bytes(44))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """L*a*b* (D50) -> 8-bit sRGB, unrounded: CIE Lab -> XYZ, Bradford D50 -> D65,
    IEC 61966-2-1 matrix and transfer curve."""
    l, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (l + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200
    eps, kappa = 216 / 24389, 24389 / 27

    def finv(f: np.ndarray) -> np.ndarray:
        return np.where(f ** 3 > eps, f ** 3, (116 * f - 16) / kappa)

    xyz_d50 = np.stack([finv(fx) * D50[0], np.where(l > kappa * eps, fy ** 3, l / kappa) * D50[1],
                        finv(fz) * D50[2]], axis=-1)
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    cone_scale = np.diag((bradford @ np.array(D65)) / (bradford @ np.array(D50)))
    adapt = np.linalg.inv(bradford) @ cone_scale @ bradford
    to_linear_srgb = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    linear = np.clip(xyz_d50 @ (to_linear_srgb @ adapt).T, 0, 1)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return encoded * 255
