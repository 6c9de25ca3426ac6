"""`bsrn models ...`, and tampered or pickled weights refused by upscale, eval and verify (through the CLI)."""

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from bsrn_cli.pretrained import hub, registry
from bsrn_cli.pretrained.weights import read_weights, save_weights, sha256_file
from tests.conftest import REPO, tiny_model, write_image
from tests.pretrained.conftest import free_port_url, hub_env


def run_cli(monkeypatch, capsys, *args):
    """The real entry point, in this process (so tests can swap the registry): (status, stdout, stderr)."""
    from bsrn_cli.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["bsrn", *map(str, args)])
    monkeypatch.delenv("BSRN_DEBUG", raising=False)
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = exc.code or 0
    out, err = capsys.readouterr()
    return status, out, err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def bsrn_subprocess(*args, env_update: dict, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_PROXY": "127.0.0.1,localhost",
           **env_update}
    for name in ("BSRN_DEBUG", "HF_HUB_OFFLINE"):
        if name not in env_update:
            env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "bsrn_cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("BSRN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def tampered_x4(monkeypatch, tmp_path, empty_cache):
    """The bundled folder replaced by copies of the shipped files, x4 with one byte flipped."""
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    for entry in registry.list_models():
        shutil.copyfile(entry.bundled_path(), bundled / entry.filename)
    x4 = bundled / "bsrn-fast-x4.safetensors"
    data = bytearray(x4.read_bytes())
    data[len(data) // 2] ^= 0x01
    x4.write_bytes(bytes(data))
    monkeypatch.setattr(registry, "bundled_weights_dir", lambda: bundled)
    return x4


def test_upscale_refuses_a_tampered_weights_file(monkeypatch, capsys, tmp_path, tampered_x4):
    image = write_image(tmp_path / "in.png", size=(12, 10))
    status, _, err = run_cli(monkeypatch, capsys, "upscale", image, "-s", 4, "-o", tmp_path / "out.png")
    assert status == 1
    assert len(error_lines(err)) == 1 and str(tampered_x4) in err and "does not match the registry" in err
    assert not (tmp_path / "out.png").exists()


def test_eval_refuses_a_tampered_weights_file(monkeypatch, capsys, tmp_path, tampered_x4):
    write_image(tmp_path / "data" / "HR" / "a.png", size=(24, 16))
    status, _, err = run_cli(monkeypatch, capsys, "eval", tmp_path / "data", "-s", 4)
    assert status == 1
    assert len(error_lines(err)) == 1 and "does not match the registry" in err


def test_verify_fails_on_a_tampered_file_and_names_only_it(monkeypatch, capsys, tampered_x4):
    status, out, err = run_cli(monkeypatch, capsys, "models", "verify")
    assert status == 1
    lines = error_lines(err)
    assert len(lines) == 1 and str(tampered_x4) in lines[0] and "reinstall bsrn" in lines[0]
    assert out.count(" ok ") == 3 and "MISMATCH" in out  # x2, x3 and the real-photo x4
    assert run_cli(monkeypatch, capsys, "models", "verify", "bsrn-fast-x2")[0] == 0


def test_list_marks_the_tampered_file(monkeypatch, capsys, tampered_x4):
    status, out, _ = run_cli(monkeypatch, capsys, "models", "list")
    assert status == 0
    rows = {line.split()[1]: line for line in out.splitlines() if "bsrn-fast-x" in line}
    assert "MISMATCH" in rows["bsrn-fast-x4"] and "yes" in rows["bsrn-fast-x2"]


def test_pickle_checkpoint_path_is_refused_with_how_to_convert(monkeypatch, capsys, tmp_path, empty_cache):
    evil = tmp_path / "model.pth"
    evil.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    image = write_image(tmp_path / "in.png", size=(12, 10))
    status, _, err = run_cli(monkeypatch, capsys, "upscale", image, "--model", evil)
    assert status == 1
    [line] = error_lines(err)
    assert "refusing to load a pickle" in line and f"bsrn convert {evil} -o {tmp_path / 'model.safetensors'}" in line


def test_download_list_and_verify_a_model_from_the_hub(monkeypatch, capsys, tmp_path, fake_hub, temporary_entry):
    path = tmp_path / "tiny.safetensors"
    save_weights(tiny_model(3), path)
    data = path.read_bytes()
    entry = temporary_entry(name="tiny-cli-x3", scale=3, filename="tiny-cli-x3.safetensors",
                            sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    fake_hub.add(entry.hub_repo, entry.revision, entry.filename, data)

    status, out, _ = run_cli(monkeypatch, capsys, "models", "list")
    assert status == 0 and "not downloaded" in next(line for line in out.splitlines() if entry.name in line)
    assert run_cli(monkeypatch, capsys, "models", "verify", entry.name)[0] == 1  # named but absent

    status, out, _ = run_cli(monkeypatch, capsys, "models", "download", "tiny-cli-*")
    assert status == 0 and "verified, cached" in out
    assert hub.cached_path(entry).read_bytes() == data
    row = next(line for line in run_cli(monkeypatch, capsys, "models", "list")[1].splitlines() if entry.name in line)
    assert "cache" in row and "yes" in row
    assert run_cli(monkeypatch, capsys, "models", "verify", entry.name)[0] == 0

    hub.cached_path(entry).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    status, _, err = run_cli(monkeypatch, capsys, "models", "verify", entry.name)
    assert status == 1 and "models download tiny-cli-x3 --force" in error_lines(err)[0]


def test_download_with_the_server_down_keeps_the_bundled_copy(monkeypatch, capsys, tmp_path):
    hub_env(monkeypatch, tmp_path, free_port_url())
    status, _, err = run_cli(monkeypatch, capsys, "models", "download", "bsrn-fast-x2")
    assert status == 1
    [line] = error_lines(err)
    assert "cannot reach" in line and "bundled copy stays in use" in line


def test_download_of_an_unknown_name_is_one_line(monkeypatch, capsys, empty_cache):
    status, _, err = run_cli(monkeypatch, capsys, "models", "download", "bsrn-huge-x9")
    assert status == 1 and len(error_lines(err)) == 1 and "unknown model" in err


def test_export_hub_writes_weights_config_and_model_card(monkeypatch, capsys, tmp_path, empty_cache):
    out_dir = tmp_path / "hub-out"
    status, out, _ = run_cli(monkeypatch, capsys, "models", "export-hub", out_dir)
    assert status == 0
    entries = registry.list_models()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        ["README.md", "config.json"] + [e.filename for e in entries])
    for entry in entries:
        assert sha256_file(out_dir / entry.filename) == entry.sha256
        assert entry.sha256 in out
    config = json.loads((out_dir / "config.json").read_text())
    assert config["library_name"] == "bsrn"
    assert {m["scale"] for m in config["models"].values()} == {2, 3, 4}

    card = (out_dir / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "license: mit" in front and "library_name: bsrn" in front and "tags:\n- super-resolution" in front
    for entry in entries:
        _, meta = read_weights(entry.bundled_path())
        metrics = meta["metrics"]
        row = f"| {entry.filename} | x{entry.scale} | {metrics['Set5_psnr']} / {metrics['Set5_ssim']} | " \
              f"{metrics['Set14_psnr']} / {metrics['Set14_ssim']} |"
        assert row in body


def test_export_hub_of_a_path_and_the_folders_it_refuses(monkeypatch, capsys, tmp_path, empty_cache):
    path = tmp_path / "mine-x2.safetensors"
    save_weights(tiny_model(2), path, metrics={"Set5_psnr": 30.5})
    status, _, _ = run_cli(monkeypatch, capsys, "models", "export-hub", tmp_path / "a", "--model", path,
                           "--repo-id", "me/mine", "--licence", "apache-2.0")
    assert status == 0
    card = (tmp_path / "a" / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n") and "# me/mine" in card and "| 30.5 |" in card
    assert (tmp_path / "a" / "mine-x2.safetensors").read_bytes() == path.read_bytes()

    status, _, err = run_cli(monkeypatch, capsys, "models", "export-hub", tmp_path / "a", "--model", path)
    assert status == 1 and "not an empty folder" in err
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(1))
    status, _, err = run_cli(monkeypatch, capsys, "models", "export-hub", tmp_path / "b", "--model", evil)
    assert status == 1 and len(error_lines(err)) == 1 and not (tmp_path / "b").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.")]


# Fresh processes: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import, as for a user.

def test_fresh_install_lists_and_verifies_the_bundled_weights(tmp_path):
    env = {"BSRN_CACHE_DIR": str(tmp_path / "cache"), "HF_ENDPOINT": free_port_url()}
    listed = bsrn_subprocess("models", "list", env_update=env)
    assert listed.returncode == 0, listed.stderr
    for name in ("bsrn-fast-x2", "bsrn-fast-x3", "bsrn-fast-x4", "bsrn-real-x4"):
        row = next(line for line in listed.stdout.splitlines() if name in line)
        assert "bundled" in row and "yes" in row
    verified = bsrn_subprocess("models", "verify", env_update=env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count(" ok ") == 4


def test_offline_upscale_of_the_sample_uses_the_bundled_weights(tmp_path):
    out = tmp_path / "x.png"
    env = {"BSRN_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": free_port_url()}
    result = bsrn_subprocess("upscale", REPO / "samples" / "ladybird.png", "-s", 4, "-o", out, env_update=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["offline mode (HF_HUB_OFFLINE=1): using the bundled copy of bsrn-fast-x4"]
    with Image.open(out) as image:
        assert image.size == (1024, 640)


def test_download_in_a_fresh_process_goes_through_hf_endpoint(tmp_path, fake_hub):
    entry = registry.get_entry("bsrn-fast-x2")
    fake_hub.add(entry.hub_repo, entry.revision, entry.filename, entry.bundled_path().read_bytes())
    env = {"BSRN_CACHE_DIR": str(tmp_path / "cache2"), "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "hf")}
    result = bsrn_subprocess("models", "download", "bsrn-fast-x2", env_update=env)
    assert result.returncode == 0, result.stderr
    cached = tmp_path / "cache2" / "models" / "bsrn-project--bsrn-fast" / entry.revision / entry.filename
    assert sha256_file(cached) == entry.sha256
    assert ("GET", f"/{entry.hub_repo}/resolve/{entry.revision}/{entry.filename}") in fake_hub.requests

    offline = bsrn_subprocess("models", "download", "bsrn-fast-x2", "--force",
                              env_update={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 1 and len(error_lines(offline.stderr)) == 1
    assert "offline mode" in offline.stderr and "bundled copy stays in use" in offline.stderr


def test_registry_entries_match_their_bundled_files():
    for entry in registry.list_models():
        assert registry.PINNED_REVISION.match(entry.revision)
        path = entry.bundled_path()
        assert path.stat().st_size == entry.size
        _, meta = read_weights(path)
        assert meta["architecture"] == entry.architecture and meta["scale"] == entry.scale
        assert entry.quality == {k: v for k, v in meta["metrics"].items() if k != "measured_with"}
        assert entry.licence and "/" in entry.hub_repo


@pytest.mark.parametrize("revision", ["main", "v1", "abc123", "refs/pr/1"])
def test_an_unpinned_revision_cannot_be_registered(revision):
    with pytest.raises(ValueError, match="not pinned"):
        registry.PretrainedModel(name="x", scale=2, filename="x.safetensors", sha256="0" * 64, size=1,
                                 description="", hub_repo="a/b", revision=revision, licence="mit",
                                 architecture="bsrn", config_summary="")
