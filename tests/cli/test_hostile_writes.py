"""Failures while writing, one file at a time: a full disk, a folder that refuses files, a file
where a folder should be, a run stopped by SIGTERM or killed by SIGKILL mid-write, two runs
into one folder. Each bad case is one error line naming the input; the rest of the batch comes
out; no hidden temporary file is left (a killed run's are removed by the next run)."""

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from bsrn_cli.io import atomic
from bsrn_cli.io.atomic import OutputExists, atomic_write, remove_stale_temporaries
from tests.cli.test_upscale import _error_lines, bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.cli.test_upscale_claims import _run_main
from tests.conftest import write_image


def _all_files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _batch(folder, names=("a", "b", "c")):
    for i, name in enumerate(names):
        write_image(folder / f"{name}.png", size=(12, 10), seed=i)
    return folder


def _fail_saving(monkeypatch, failing: str, error: OSError):
    """Pillow's save raises ``error`` for outputs named ``failing`` (after writing half a file)."""
    original = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)) and os.path.basename(fp).startswith(f".{failing}."):
            with open(fp, "wb") as half:
                half.write(b"\x89PNG half")
            error.filename = str(fp)
            raise error
        return original(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


@pytest.mark.parametrize("error,reason", [
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    (OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
])
def test_a_write_that_fails_names_the_input_and_the_output_and_the_batch_goes_on(
        tmp_path, tiny_weights, monkeypatch, capsys, error, reason):
    source = _batch(tmp_path / "in")
    out = tmp_path / "out"
    _fail_saving(monkeypatch, "b_x2", error)
    code, stdout, stderr = _run_main(monkeypatch, capsys, "upscale", source, "--model", tiny_weights, "-o", out)
    assert code == 1
    assert _error_lines(stderr) == [f"error: {source / 'b.png'}: cannot write {out / 'b_x2.png'} ({reason})"]
    assert _all_files(out) == ["a_x2.png", "c_x2.png"]  # no hidden half-written file of b
    assert "done 2, skipped 0, failed 1" in stdout


def test_an_output_folder_that_is_a_file_fails_that_input_alone(tmp_path, tiny_weights):
    source = tmp_path / "in"
    _batch(source / "day1", ("a",))
    _batch(source / "day2", ("b",))
    out = tmp_path / "out"
    out.mkdir()
    (out / "day1").write_text("a file where the folder day1 should be")
    result = bsrn("upscale", source, "-r", "--model", tiny_weights, "-o", out)
    assert result.returncode == 1
    assert _error_lines(result.stderr) == [
        f"error: {source / 'day1' / 'a.png'}: cannot write {out / 'day1' / 'a_x2.png'}: {out / 'day1'} is a file, "
        "not a folder"]
    assert _all_files(out) == ["day1", "day2/b_x2.png"]


def test_sigterm_mid_write_removes_the_temporary_file_and_exits_143(tmp_path, tiny_weights, monkeypatch, capsys):
    source = _batch(tmp_path / "in")
    out = tmp_path / "out"
    original = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if os.path.basename(str(fp)).startswith(".b_x2."):
            with open(fp, "wb") as half:
                half.write(b"\x89PNG half")
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the file is half written
        return original(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    try:
        code, _, stderr = _run_main(monkeypatch, capsys, "upscale", source, "--model", tiny_weights, "-o", out)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert (code, stderr.strip().splitlines()[-1]) == (143, "terminated")
    assert _all_files(out) == ["a_x2.png"]


def test_sigkill_mid_write_leaves_a_temporary_file_that_the_next_run_removes(tmp_path, tiny_weights):
    source = _batch(tmp_path / "in")
    out = tmp_path / "out"
    killer = textwrap.dedent(f"""
        import os, signal, sys
        from PIL import Image
        original = Image.Image.save
        def save(self, fp, *args, **kwargs):
            if os.path.basename(str(fp)).startswith(".b_x2."):
                open(fp, "wb").write(b"half")
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, fp, *args, **kwargs)
        Image.Image.save = save
        sys.argv = ["bsrn", "upscale", {str(source)!r}, "--model", {str(tiny_weights)!r}, "-o", {str(out)!r}]
        from bsrn_cli.cli import main
        main()
    """)
    killed = subprocess.run([sys.executable, "-c", killer], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL
    leftovers = [name for name in _all_files(out) if name.startswith(".b_x2.")]
    assert len(leftovers) == 1 and leftovers[0].endswith(".part.png")
    rerun = bsrn("upscale", source, "--model", tiny_weights, "-o", out)
    assert rerun.returncode == 0, rerun.stderr
    assert _all_files(out) == ["a_x2.png", "b_x2.png", "c_x2.png"]
    assert "done 2, skipped 1, failed 0" in rerun.stdout


def test_only_temporary_files_of_processes_that_are_gone_are_removed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f".a_x2.{gone.pid}-abcd1234.part.png"
    live = tmp_path / f".b_x2.{os.getpid()}-abcd1234.part.png"
    frames = tmp_path / f".clip_x2.{gone.pid}-zz_99xyz.frames.mp4"
    theirs = tmp_path / ".notes.txt"  # not a name we make: never touched
    for path in (stale, live, frames, theirs):
        path.write_bytes(b"x")
    other = tmp_path / f".c_x2.{gone.pid}-abcd1234.part.png"
    other.write_bytes(b"x")
    # after a Ray run, only the temporaries of that run's outputs are swept
    assert remove_stale_temporaries(tmp_path, {tmp_path / "a_x2.png", tmp_path / "clip_x2.mp4"}) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, theirs.name])
    assert remove_stale_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, theirs.name])


def test_writing_without_replace_keeps_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "a_x2.png"

    def slow_write(tmp):
        open(tmp, "wb").write(b"ours")
        target.write_bytes(b"theirs")  # another run finished first

    with pytest.raises(OutputExists):
        atomic_write(target, slow_write, replace=False)
    assert target.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["a_x2.png"]
    atomic_write(target, lambda tmp: open(tmp, "wb").write(b"ours"), replace=True)
    assert target.read_bytes() == b"ours" and os.listdir(tmp_path) == ["a_x2.png"]
    with pytest.raises(OutputExists) as other:
        atomic_write(target, lambda tmp: open(tmp, "wb").write(b"mine"), replace=False)
    assert not other.value.same
    # a retried job (a Ray worker killed after its write, before reporting it) finds its own bytes
    with pytest.raises(OutputExists) as again:
        atomic_write(target, lambda tmp: open(tmp, "wb").write(b"ours"), replace=False)
    assert again.value.same and target.read_bytes() == b"ours" and os.listdir(tmp_path) == ["a_x2.png"]


def test_without_hard_links_the_name_is_still_checked_before_the_rename(tmp_path, monkeypatch):
    def no_links(*_):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    target = tmp_path / "a_x2.png"
    atomic_write(target, lambda tmp: open(tmp, "wb").write(b"first"), replace=False)
    with pytest.raises(OutputExists):
        atomic_write(target, lambda tmp: open(tmp, "wb").write(b"second"), replace=False)
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["a_x2.png"]
    with pytest.raises(OutputExists) as again:
        atomic_write(target, lambda tmp: open(tmp, "wb").write(b"first"), replace=False)
    assert again.value.same and target.read_bytes() == b"first" and os.listdir(tmp_path) == ["a_x2.png"]


def test_two_runs_into_one_folder_write_every_output_once(tmp_path, tiny_weights):
    names = [f"im{i:02d}" for i in range(12)]
    source = _batch(tmp_path / "in", names)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bsrn_cli", "upscale", str(source), "--model", str(tiny_weights), "-o", str(out)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
    done = 0
    for code, stdout, stderr in results:
        assert code == 0 and _error_lines(stderr) == [], stderr
        numbers = [int(n) for n in re.search(r"done (\d+), skipped (\d+), failed (\d+)", stdout).groups()]
        assert numbers[0] + numbers[1] == len(names) and numbers[2] == 0  # each file written or skipped
        done += numbers[0]
    assert done == len(names)  # every output written by exactly one of the runs
    assert _all_files(out) == [f"{name}_x2.png" for name in names]
