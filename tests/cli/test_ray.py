"""`bsrn upscale --ray`: the planner's jobs on a local Ray instance (2 CPUs) give the same bytes
as a local run; a worker killed mid-run is restarted and its job retried; bad files get their
one line; a rerun skips what is done; without Ray, one line says how to install it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cli.test_upscale import _error_lines, bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.conftest import skip_unless_local, write_image


@pytest.fixture(autouse=True)
def ray_installed():
    try:
        import ray  # noqa: F401
    except ImportError:
        skip_unless_local("ray not installed (pip install 'bsrn[ray]')")


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_on_ray_gives_the_local_bytes_and_bad_files_their_line(tmp_path, tiny_weights):
    source = tmp_path / "in"
    for i in range(20):
        write_image(source / f"im{i:02d}.png", size=(30 + i, 20 + i % 3), seed=i)
    (source / "broken.png").write_bytes(b"not an image")
    local = bsrn("upscale", source, "--model", tiny_weights, "-o", tmp_path / "local")
    assert local.returncode == 1 and "done 20, skipped 0, failed 1" in local.stdout
    on_ray = bsrn("upscale", source, "--model", tiny_weights, "-o", tmp_path / "ray", "--ray", "local")
    assert on_ray.returncode == 1
    assert _error_lines(on_ray.stderr) == [f"error: {source / 'broken.png'}: not a recognised image file"]
    assert "done 20, skipped 0, failed 1" in on_ray.stdout
    assert _files(tmp_path / "ray") == _files(tmp_path / "local") and len(_files(tmp_path / "ray")) == 20
    for name in _files(tmp_path / "local"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    rerun = bsrn("upscale", source, "--model", tiny_weights, "-o", tmp_path / "ray", "--ray", "local")
    assert rerun.returncode == 1 and "done 0, skipped 20, failed 1" in rerun.stdout  # no cluster needed


def _ray_workers() -> list[int]:
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if "ray::Worker" in line]


def test_a_worker_killed_mid_run_is_replaced_and_every_output_comes_out_right(tmp_path):
    source = tmp_path / "in"
    for i in range(20):
        write_image(source / f"im{i:02d}.png", size=(96, 72), seed=i)
    reference = bsrn("upscale", source, "-s", "2", "--threads", "1", "-o", tmp_path / "local")
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "ray"
    run = subprocess.Popen([sys.executable, "-m", "bsrn_cli", "upscale", str(source), "-s", "2", "-o", str(out),
                            "--ray", "local"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and run.poll() is None and time.monotonic() < deadline:
        # kill every worker while one is writing: its temporary file must not outlive the run
        if out.is_dir() and any(".part." in p.name for p in out.iterdir()):
            workers = _ray_workers()
            if workers:
                killed = workers
                for pid in workers:
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    stdout, stderr = run.communicate(timeout=600)
    assert killed is not None, "no worker to kill before the run ended"
    assert run.returncode == 0, stderr
    assert "done 20, skipped 0, failed 0" in stdout
    assert _files(out) == _files(tmp_path / "local")
    for name in _files(out):
        assert (out / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_without_ray_the_option_says_how_to_install_it(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png", size=(8, 8))
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "bsrn_cli", "upscale", str(image), "--model", str(tiny_weights),
                             "--ray", "local"], capture_output=True, text=True, env=env, timeout=600)
    assert (result.returncode, result.stderr) == (
        1, "error: --ray needs Ray, which is not installed: pip install 'bsrn[ray]'\n")
    assert not (tmp_path / "a_x2.png").exists()
    cuda = bsrn("upscale", image, "--model", tiny_weights, "--ray", "local", "--device", "cuda")
    assert (cuda.returncode, cuda.stderr) == (2, "error: --ray: runs the packed CPU backend on the workers; drop "
                                                 "--device cuda/--backend torch\n")
