import os

import pytest

from bsrn_cli.io.atomic import atomic_write


def test_written_file_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.bin", lambda tmp: open(tmp, "wb").write(b"x"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").read_bytes() == b"x"
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644


def test_failure_leaves_neither_target_nor_temporary(tmp_path):
    def broken(tmp):
        open(tmp, "wb").write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.png", broken)
    assert list(tmp_path.iterdir()) == []
