"""What the suite reads must be there in CI: without it the data, kernel and video tests would
skip and the run would still pass. Locally, each missing piece is a skip with its reason."""

from bsrn_cli.backends import bitpack
from bsrn_cli.io.video import find_ffmpeg
from tests.conftest import SHARED_DATA, require_dataset, skip_unless_local


def test_set5_and_set14_with_their_reference_lr_files():
    for name in ("Set5", "Set14"):
        folder = require_dataset(name)
        images = sorted(p.name for p in (folder / "HR").glob("*.png"))
        assert len(images) == {"Set5": 5, "Set14": 14}[name], (folder, images)
        for scale in (2, 3, 4):
            lr = folder / "LR_bicubic" / f"X{scale}"
            missing = [n for n in images if not (lr / n).is_file()]
            if missing:
                skip_unless_local(f"{lr} lacks {', '.join(missing)} (under {SHARED_DATA})")


def test_packed_kernels_are_built():
    if not bitpack.available():
        skip_unless_local("the packed kernels are not built (pip install -e . builds them)")


def test_ffmpeg_is_found():
    if find_ffmpeg() is None:
        skip_unless_local("ffmpeg not available (pip install imageio-ffmpeg)")
