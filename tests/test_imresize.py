import numpy as np
import pytest

from bsrn_cli.imresize import imresize, modcrop
from bsrn_cli.io.images import read_image_array
from tests.conftest import SHARED_DATA, skip_unless_local


def _reference_pairs():
    for dataset in ("Set5", "Set14"):
        for scale in (2, 3, 4):
            for hr in sorted((SHARED_DATA / dataset / "HR").glob("*.png")):
                yield pytest.param(hr, SHARED_DATA / dataset / "LR_bicubic" / f"X{scale}" / hr.name, scale,
                                   id=f"{dataset}-x{scale}-{hr.stem}")


@pytest.mark.parametrize("hr_path,lr_path,scale", list(_reference_pairs()))
def test_reproduces_matlab_lr_files_bit_for_bit(hr_path, lr_path, scale):
    if not lr_path.exists():
        skip_unless_local(f"{lr_path} not present")
    lr = imresize(modcrop(read_image_array(hr_path), scale), 1 / scale)
    reference = read_image_array(lr_path)
    assert lr.dtype == np.uint8 and lr.shape == reference.shape
    assert np.array_equal(lr, reference)


def test_constant_image_stays_constant_both_ways():
    image = np.full((12, 9, 3), 77, np.uint8)
    assert np.all(imresize(image, 0.5) == 77) and np.all(imresize(image, 3.0) == 77)


def test_output_shape_and_float_input():
    image = np.random.default_rng(0).random((10, 14))
    out = imresize(image, output_shape=(5, 7))
    assert out.shape == (5, 7) and out.dtype == np.float64


def test_modcrop_crops_top_left_to_multiple():
    assert modcrop(np.zeros((13, 10, 3)), 4).shape == (12, 8, 3)
