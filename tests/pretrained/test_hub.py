"""The real huggingface_hub client downloading through real HTTP from a local Hub (tests/pretrained/conftest.py)."""

import hashlib
from pathlib import Path

import pytest

from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained import hub
from bsrn_cli.pretrained.loader import load_model, resolve_entry
from bsrn_cli.pretrained.weights import save_weights
from tests.conftest import tiny_model
from tests.pretrained.conftest import free_port_url, hub_env


@pytest.fixture
def tiny_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_weights(tiny_model(2), path)
    return path.read_bytes()


@pytest.fixture
def tiny_entry(temporary_entry, tiny_bytes):
    """A registered model with no bundled file: only the Hub (or the cache) can provide it."""
    return temporary_entry(name="tiny-test-x2", scale=2, filename="tiny-test-x2.safetensors",
                           sha256=hashlib.sha256(tiny_bytes).hexdigest(), size=len(tiny_bytes))


def cached_files(tmp_path):
    return sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())


def flip_one_byte(data: bytes, index: int = -1) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def test_good_download_is_verified_cached_and_then_used_without_the_server(fake_hub, tiny_entry, tiny_bytes,
                                                                           tmp_path):
    fake_hub.add(tiny_entry.hub_repo, tiny_entry.revision, tiny_entry.filename, tiny_bytes)
    model, meta, source = load_model(tiny_entry.name, scale=2)
    assert model.scale == 2 and source == tiny_entry.name
    target = hub.cached_path(tiny_entry)
    assert target.read_bytes() == tiny_bytes
    assert cached_files(tmp_path) == [target]  # the staging folder is gone
    resolve_path = f"/{tiny_entry.hub_repo}/resolve/{tiny_entry.revision}/{tiny_entry.filename}"
    assert ("HEAD", resolve_path) in fake_hub.requests and ("GET", resolve_path) in fake_hub.requests

    fake_hub.stop()
    seen = len(fake_hub.requests)
    assert resolve_entry(tiny_entry) == (target, "cache")
    assert load_model(tiny_entry.name)[0].scale == 2
    assert len(fake_hub.requests) == seen


def test_corrupted_download_is_refused_and_nothing_is_cached(fake_hub, tiny_entry, tiny_bytes, tmp_path):
    fake_hub.add(tiny_entry.hub_repo, tiny_entry.revision, tiny_entry.filename, flip_one_byte(tiny_bytes, 100))
    with pytest.raises(BsrnError, match="not the pinned one .*sha256.*nothing cached") as info:
        load_model(tiny_entry.name)
    assert "\n" not in str(info.value)
    assert any(method == "GET" for method, _ in fake_hub.requests)  # it was downloaded, then refused
    assert cached_files(tmp_path) == []
    assert not hub.cached_path(tiny_entry).parent.exists()


def test_a_hub_file_of_the_wrong_size_is_refused_before_downloading(fake_hub, tiny_entry, tiny_bytes, tmp_path):
    fake_hub.add(tiny_entry.hub_repo, tiny_entry.revision, tiny_entry.filename, tiny_bytes + b"\0")
    with pytest.raises(BsrnError, match="refused without downloading"):
        hub.download(tiny_entry)
    assert [method for method, _ in fake_hub.requests] == ["HEAD"]
    assert cached_files(tmp_path) == []


def test_wrong_revision_is_a_clear_one_line_error(fake_hub, tiny_entry, tiny_bytes, tmp_path):
    fake_hub.add(tiny_entry.hub_repo, "v9.9.9", tiny_entry.filename, tiny_bytes)
    with pytest.raises(BsrnError, match=r"revision 'v0.0.1' not found in bsrn-test/tiny") as info:
        load_model(tiny_entry.name)
    assert "\n" not in str(info.value)
    assert cached_files(tmp_path) == []


def test_missing_repo_and_missing_file_are_named(fake_hub, tiny_entry, tiny_bytes):
    with pytest.raises(BsrnError, match="repository bsrn-test/tiny not found"):
        hub.download(tiny_entry)
    fake_hub.add(tiny_entry.hub_repo, tiny_entry.revision, "other.safetensors", tiny_bytes)
    with pytest.raises(BsrnError, match="file tiny-test-x2.safetensors not found"):
        hub.download(tiny_entry)


def test_server_down_is_a_clear_error_when_nothing_is_local(monkeypatch, tmp_path, tiny_entry):
    hub_env(monkeypatch, tmp_path, free_port_url())
    with pytest.raises(BsrnError, match=r"tiny-test-x2: cannot reach http://127\.0\.0\.1:\d+") as info:
        load_model(tiny_entry.name)
    assert "\n" not in str(info.value)
    assert cached_files(tmp_path) == []


def test_server_down_falls_back_to_the_bundled_file(monkeypatch, tmp_path):
    hub_env(monkeypatch, tmp_path, free_port_url())
    model, _, source = load_model("bsrn-fast-x2")
    assert model.scale == 2 and source == "bsrn-fast-x2"


def test_offline_mode_uses_the_cache_says_so_once_and_never_calls_the_server(fake_hub, tiny_entry, tiny_bytes,
                                                                            monkeypatch, capsys):
    fake_hub.add(tiny_entry.hub_repo, tiny_entry.revision, tiny_entry.filename, tiny_bytes)
    hub.download(tiny_entry)
    capsys.readouterr()
    seen = len(fake_hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_model(tiny_entry.name)[0].scale == 2
    err_lines = capsys.readouterr().err.splitlines()
    assert err_lines == [f"offline mode (HF_HUB_OFFLINE=1): using the cache copy of {tiny_entry.name}"]
    assert hub.download(tiny_entry) == hub.cached_path(tiny_entry)  # already there: nothing to fetch
    with pytest.raises(BsrnError, match="offline mode"):
        hub.download(tiny_entry, force=True)
    assert len(fake_hub.requests) == seen


def test_offline_mode_without_a_local_copy_refuses_to_download(fake_hub, tiny_entry, tiny_bytes, monkeypatch):
    fake_hub.add(tiny_entry.hub_repo, tiny_entry.revision, tiny_entry.filename, tiny_bytes)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BsrnError, match="offline mode .* forbids downloading"):
        load_model(tiny_entry.name)
    with pytest.raises(BsrnError, match="offline mode .* forbids downloading"):
        hub.download(tiny_entry)
    assert fake_hub.requests == []


def test_offline_mode_as_the_client_read_it_at_import_counts_too(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    hub_env(monkeypatch, tmp_path, free_port_url())
    assert not hub.offline_mode()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.offline_mode()


def test_tampered_cached_copy_is_refused_and_download_replaces_it(fake_hub, tiny_entry, tiny_bytes):
    fake_hub.add(tiny_entry.hub_repo, tiny_entry.revision, tiny_entry.filename, tiny_bytes)
    target = hub.download(tiny_entry)
    target.write_bytes(flip_one_byte(tiny_bytes))
    with pytest.raises(BsrnError, match="does not match the registry .* refused"):
        load_model(tiny_entry.name)
    assert hub.download(tiny_entry) == target
    assert target.read_bytes() == tiny_bytes


def test_cache_location_follows_the_environment(monkeypatch, tmp_path, tiny_entry):
    monkeypatch.setenv("BSRN_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert hub.cached_path(tiny_entry) == (tmp_path / "elsewhere" / "models" / "bsrn-test--tiny" / "v0.0.1"
                                           / "tiny-test-x2.safetensors")
    monkeypatch.delenv("BSRN_CACHE_DIR")
    import platformdirs

    assert hub.cache_root() == Path(platformdirs.user_cache_dir("bsrn", appauthor=False))


def test_a_cache_folder_that_cannot_be_written_is_one_line_naming_it(fake_hub, tiny_entry, tiny_bytes, monkeypatch,
                                                                     tmp_path):
    fake_hub.add(tiny_entry.hub_repo, tiny_entry.revision, tiny_entry.filename, tiny_bytes)
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    monkeypatch.setenv("BSRN_CACHE_DIR", str(tmp_path / "blocked"))
    folder = hub.cached_path(tiny_entry).parent
    with pytest.raises(BsrnError) as failure:
        load_model(tiny_entry.name, scale=2)
    assert str(failure.value) == (f"{tiny_entry.name}: cannot write to the model cache {folder} (Not a directory); "
                                  "set BSRN_CACHE_DIR to a folder you can write")
