"""What `bsrn upscale` says while and after it works: a progress bar of tiles for a single
image under a terminal (pseudo-terminal here), the summary naming the output (file or folder),
nothing but the summary and errors when piped, and -q/--quiet."""

import os
import pty
import re
import subprocess
import sys

from rich.progress import Progress

from bsrn_cli.cli import upscale as upscale_module
from tests.cli.test_upscale import bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.cli.test_upscale_claims import _run_main
from tests.conftest import write_image

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # colour codes sit inside one line (between bar segments)


def bsrn_in_terminal(*args) -> tuple[int, str]:
    """Run bsrn with stdin, stdout and stderr on a pseudo-terminal; (status, what it showed)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40", "PYTHONUNBUFFERED": "1"}
    for name in ("BSRN_DEBUG", "NO_COLOR", "TTY_COMPATIBLE", "FORCE_COLOR"):
        env.pop(name, None)
    process = subprocess.Popen([sys.executable, "-m", "bsrn_cli", *map(str, args)], stdin=slave, stdout=slave,
                               stderr=slave, env=env, close_fds=True)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return process.wait(timeout=600), shown.decode("utf-8", "replace")


def test_a_single_image_shows_a_tile_bar_in_a_terminal_and_the_summary_names_the_output(tmp_path):
    image = write_image(tmp_path / "big.png", size=(240, 160))
    status, shown = bsrn_in_terminal("upscale", image, "--tile", "32", "-o", tmp_path / "big_x4.png")
    assert status == 0, shown
    text = ANSI.sub("\n", COLOUR.sub("", shown))
    bars = re.findall(r"big\.png\s+\S*\s+(\d+)/40\s+(\d+\.\d)/s", text)  # 8 x 5 tiles of 32 pixels
    assert bars, shown
    assert f"done 1, skipped 0, failed 0: wrote {tmp_path / 'big_x4.png'}" in text


def test_piped_runs_show_only_the_summary_naming_the_output(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png", size=(40, 30))
    one = bsrn("upscale", image, "--model", tiny_weights, "--tile", "16")
    assert (one.returncode, one.stderr) == (0, "")
    assert one.stdout == f"done 1, skipped 0, failed 0: wrote {tmp_path / 'a_x2.png'}\n"
    write_image(tmp_path / "shots" / "b.png", size=(8, 6))
    write_image(tmp_path / "shots" / "c.png", size=(8, 6), seed=1)
    many = bsrn("upscale", tmp_path / "shots", "--model", tiny_weights)
    assert (many.returncode, many.stderr) == (0, "")
    assert many.stdout == f"done 2, skipped 0, failed 0: wrote into {tmp_path / 'shots_x2'}/\n"
    into = bsrn("upscale", image, tmp_path / "shots" / "b.png", "--model", tiny_weights, "-o", tmp_path / "out")
    assert into.stdout == f"done 2, skipped 0, failed 0: wrote into {tmp_path / 'out'}/\n"


def test_quiet_drops_the_summary_and_notes_but_not_errors(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png", size=(10, 8))
    quiet = bsrn("upscale", image, "-s", "4.5", "-q")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert (tmp_path / "a_x4.5.png").exists()
    (tmp_path / "bad.png").write_text("not an image")
    failed = bsrn("upscale", tmp_path / "bad.png", "--model", tiny_weights, "--quiet")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith(f"error: {tmp_path / 'bad.png'}: ") and failed.stderr.count("\n") == 1


def test_each_finished_tile_moves_the_image_bar(tmp_path, tiny_weights, monkeypatch, capsys):
    """In process: the image's bar hears about every tile, with the image's tile count as total."""
    updates = []

    class Recording(Progress):
        def update(self, task_id, **fields):
            if "total" in fields:  # the tile bar (the images bar only advances)
                name = next(task.description for task in self.tasks if task.id == task_id)
                updates.append((name, fields["completed"], fields["total"]))
            super().update(task_id, **fields)

    monkeypatch.setattr(upscale_module, "make_progress", lambda quiet: Recording(disable=True))
    image = write_image(tmp_path / "a.png", size=(40, 30))
    code, _, err = _run_main(monkeypatch, capsys, "upscale", image, "--model", tiny_weights, "--tile", "16")
    assert code == 0, err
    assert updates == [("a.png", done, 6) for done in range(1, 7)]  # 2 rows x 3 columns of 16-pixel tiles
