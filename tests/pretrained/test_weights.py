import json
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained import registry
from bsrn_cli.pretrained.loader import load_model
from bsrn_cli.pretrained.weights import load_weights, read_weights, save_weights, sha256_file
from tests.conftest import tiny_model


def test_round_trip_keeps_tensors_config_and_metadata(tmp_path):
    model = tiny_model(3)
    path = tmp_path / "m.safetensors"
    save_weights(model, path, training={"steps": 12, "data": ["t91"]}, metrics={"Set5_psnr": 30.1})
    loaded, meta = load_weights(path)
    assert meta["architecture"] == "bsrn" and meta["scale"] == 3
    assert meta["training"]["steps"] == 12 and meta["metrics"]["Set5_psnr"] == 30.1
    assert loaded.config == model.config
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".ckpt", ".pkl"])
def test_pickle_suffixes_are_refused_without_reading(tmp_path, suffix):
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(BsrnError, match="refusing to load a pickle"):
        read_weights(path)


def test_pickle_content_behind_a_safetensors_name_is_refused(tmp_path):
    pickled = tmp_path / "a.safetensors"
    pickled.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    zipped = tmp_path / "b.safetensors"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", b"x")
    for path in (pickled, zipped):
        with pytest.raises(BsrnError, match="refusing to load a pickle"):
            read_weights(path)


def test_safetensors_without_bsrn_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(BsrnError, match="without bsrn metadata"):
        read_weights(path)


def test_garbage_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10" * 64)
    with pytest.raises(BsrnError, match="not a readable safetensors file"):
        read_weights(path)


def test_config_mismatch_is_reported(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(tiny_model(2), path)
    tensors, meta = read_weights(path)
    meta["config"]["channels"] = 16
    save_file(tensors, path, metadata={"bsrn": json.dumps(meta)})
    with pytest.raises(BsrnError):
        load_weights(path)


def test_every_registered_model_is_bundled_and_matches_its_sha256():
    entries = registry.list_models()
    assert {e.scale for e in entries} == {2, 3, 4}
    for entry in entries:
        assert sha256_file(entry.bundled_path()) == entry.sha256, entry.name
        model, meta, _ = load_model(entry.name)
        assert model.scale == entry.scale == meta["scale"]


def test_tampered_bundled_file_is_refused(tmp_path, monkeypatch):
    entry = registry.get_entry(registry.default_model_name(4))
    data = bytearray(entry.bundled_path().read_bytes())
    data[-1] ^= 0x01
    (tmp_path / entry.filename).write_bytes(bytes(data))
    monkeypatch.setattr(registry, "bundled_weights_dir", lambda: tmp_path)
    with pytest.raises(BsrnError, match="does not match the registry"):
        load_model(entry.name)


def test_scale_mismatch_and_unknown_name_are_clear(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(tiny_model(2), path)
    with pytest.raises(BsrnError, match="model is x2"):
        load_model(str(path), scale=4)
    with pytest.raises(BsrnError, match="unknown model"):
        load_model("bsrn-giant-x9")
